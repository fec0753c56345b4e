"""The local runtime runs invocations as Lambda does: one at a time per environment, and
environments that share nothing an invocation depends on, although they share one process."""

from __future__ import annotations

import json
import textwrap
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

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


#: A handler that logs, through Powertools, once every concurrent invocation has started.
LOGGING_HANDLER = textwrap.dedent(
    """
    import sys

    from aws_lambda_powertools import Logger

    logger = Logger(service=SERVICE, stream=sys.stdout)
    inside = None  # set by the test: a barrier shared by the environments


    @logger.inject_lambda_context(clear_state=True)
    def lambda_handler(event, context):
        inside.wait(timeout=10)
        logger.info("invoked", extra={"caller": event["caller"]})
        return {}
    """
)


def test_concurrent_invocations_log_under_their_own_function_and_cold_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Loggers of one service share a formatter and its keys in one process; each line still
    names the function and request that wrote it, and only an environment's first invocation
    is a cold start."""
    service = f"isolation-{uuid.uuid4().hex[:8]}"
    (tmp_path / "app.py").write_text(f"SERVICE = {service!r}\n" + LOGGING_HANDLER)
    barrier = threading.Barrier(2)

    def share_barrier(module: Any) -> None:
        module.inside = barrier

    functions = {
        name: LocalFunction(
            FunctionSpec(
                logical_id=name, code_uri=tmp_path, handler="app.lambda_handler", environment={}
            ),
            max_environments=1,
            on_load=share_barrier,
        )
        for name in ("First", "Second")
    }
    try:
        with ThreadPoolExecutor(2) as pool:
            for _ in range(2):
                list(pool.map(lambda n: functions[n].invoke({"caller": n}), functions))
    finally:
        for function in functions.values():
            function.unload()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logged = sorted((line["caller"], line["function_name"], line["cold_start"]) for line in lines)
    assert logged == [
        ("First", "First", False),
        ("First", "First", True),
        ("Second", "Second", False),
        ("Second", "Second", True),
    ]
    assert len({line["function_request_id"] for line in lines}) == 4


def test_a_formatter_made_before_the_isolation_keeps_working() -> None:
    """A Powertools logger created before the first handler was loaded still logs."""
    import io
    import logging

    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    from local.isolation import isolate_environments

    isolate_environments()
    early = LambdaPowertoolsFormatter()
    # As if made before the descriptor was installed: the value in the instance itself.
    keys = early.__dict__.pop("_log_format_per_thread")[1].value
    early.__dict__["log_format"] = keys
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(early)
    record = logging.LogRecord("early", logging.INFO, __file__, 1, "still logs", None, None)
    handler.emit(record)
    early.clear_state()  # what inject_lambda_context does: from now on, per thread
    early.append_keys(function_name="Early")
    handler.emit(record)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["message"], line.get("function_name")) for line in lines] == [
        ("still logs", None),
        ("still logs", "Early"),
    ]
