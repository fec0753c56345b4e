"""The local runtime runs invocations as Lambda does: one at a time per environment, and
environments that share nothing an invocation depends on, although they share one process."""

from __future__ import annotations

import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from local.api import http_event
from local.cloudformation import FunctionSpec
from local.runtime import LocalFunction

#: A resolver-based handler whose route waits until every concurrent invocation is inside a
#: route, then answers with the path of the event it reads: its own, in an environment of its own.
RESOLVER_HANDLER = textwrap.dedent(
    """
    import threading

    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    app = APIGatewayHttpResolver()
    inside = None  # set by the test: a barrier shared by the environments


    @app.get("/echo/<name>")
    def echo(name):
        inside.wait(timeout=10)
        return {"routed": name, "read": app.current_event.raw_path}


    def lambda_handler(event, context):
        return app.resolve(event, context)
    """
)


def test_concurrent_invocations_each_read_their_own_event(tmp_path: Path) -> None:
    """Powertools keeps the current event on its router class, one per process; two
    environments of one process must not read each other's request (a receipt answered 200
    and never applied, because its invocation applied another one)."""
    (tmp_path / "app.py").write_text(RESOLVER_HANDLER)
    spec = FunctionSpec(
        logical_id="Echo", code_uri=tmp_path, handler="app.lambda_handler", environment={}
    )
    barrier = threading.Barrier(2)

    def share_barrier(module: Any) -> None:
        module.inside = barrier

    function = LocalFunction(spec, max_environments=2, on_load=share_barrier)
    try:

        def invoke(name: str) -> Any:
            return function.invoke(http_event("GET", f"/echo/{name}"))

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(invoke, ["first", "second"]))
    finally:
        function.unload()
    assert [a["statusCode"] for a in answers] == [200, 200]
    assert [a["body"] for a in answers] == [
        '{"routed":"first","read":"/echo/first"}',
        '{"routed":"second","read":"/echo/second"}',
    ]
