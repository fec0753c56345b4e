"""The local runtime runs invocations as Lambda does: each execution environment a process of its
own, one invocation at a time in it, the handler imported once per environment."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from local.api import http_event
from local.cloudformation import FunctionSpec
from local.runtime import InvocationError, LocalFunction

#: A resolver-based handler with a Powertools logger. Its route waits until every concurrent
#: invocation is inside a route (a rendezvous in a folder), then answers with what it reads of
#: Powertools' per-process state: the router's current event, the logger's request id and cold
#: start, and its process id.
HANDLER = textwrap.dedent(
    """
    import os
    import pathlib
    import time

    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    app = APIGatewayHttpResolver()
    logger = Logger(service="echo")
    RENDEZVOUS = pathlib.Path(os.environ["RENDEZVOUS"])
    IMPORTED = time.time()


    @app.get("/echo/<name>")
    def echo(name):
        (RENDEZVOUS / name).touch()
        deadline = time.monotonic() + 20
        while len(list(RENDEZVOUS.iterdir())) < int(os.environ["TOGETHER"]):
            if time.monotonic() > deadline:
                raise TimeoutError("the other invocation never came")
            time.sleep(0.01)
        keys = logger.get_current_keys()
        return {
            "routed": name,
            "read": app.current_event.raw_path,
            "pid": os.getpid(),
            "request_id": keys["function_request_id"],
            "own_request_id": app.lambda_context.aws_request_id,
            "cold_start": keys["cold_start"],
            "imported": IMPORTED,
        }


    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")


    @logger.inject_lambda_context
    def lambda_handler(event, context):
        return app.resolve(event, context)
    """
)


@pytest.fixture
def echo(tmp_path: Path) -> Any:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    spec = FunctionSpec(
        logical_id="Echo", code_uri=code, handler="app.lambda_handler", environment={}
    )
    env = {**os.environ, "RENDEZVOUS": str(rendezvous), "TOGETHER": "2"}
    function = LocalFunction(spec, max_environments=2, env=env)
    yield function
    function.unload()


def _body(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["statusCode"] == 200, answer
    body: dict[str, Any] = json.loads(answer["body"])
    return body


def test_concurrent_invocations_run_in_their_own_process_with_their_own_powertools_state(
    echo: LocalFunction,
) -> None:
    """Powertools keeps the current event on its router class, the request id in its logger's
    keys and the cold start in a module flag, one of each per process, as Lambda gives each
    environment a process. Two concurrent invocations run in two processes, and each reads its
    own event and request, with nothing of Powertools patched."""
    assert importlib.util.find_spec("local.isolation") is None  # no per-thread patching left

    def invoke(name: str) -> dict[str, Any]:
        return _body(echo.invoke(http_event("GET", f"/echo/{name}")))

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(invoke, ["first", "second"])
    assert (first["routed"], first["read"]) == ("first", "/echo/first")
    assert (second["routed"], second["read"]) == ("second", "/echo/second")
    assert first["pid"] != second["pid"]
    assert {first["pid"], second["pid"]} == set(echo.pids)
    assert os.getpid() not in echo.pids
    for body in (first, second):
        assert body["request_id"] == body["own_request_id"]
        assert body["cold_start"] is True  # each environment's first invocation
    assert first["request_id"] != second["request_id"]


def test_an_environment_imports_its_handler_once_and_runs_one_invocation_at_a_time(
    echo: LocalFunction,
) -> None:
    echo.env["TOGETHER"] = "0"
    echo.max_environments = 1
    answers = [_body(echo.invoke(http_event("GET", f"/echo/n{n}"))) for n in range(3)]
    assert len({a["pid"] for a in answers}) == 1
    assert len({a["imported"] for a in answers}) == 1
    assert [a["cold_start"] for a in answers] == [True, False, False]


def test_a_handler_error_raises_and_the_environment_stays(echo: LocalFunction) -> None:
    echo.env["TOGETHER"] = "0"
    echo.max_environments = 1
    with pytest.raises(InvocationError, match="kaboom"):
        echo.invoke(http_event("GET", "/boom"))
    assert _body(echo.invoke(http_event("GET", "/echo/after")))["read"] == "/echo/after"
    assert len(echo.pids) == 1


def test_an_import_error_shows_when_the_environment_starts(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import no_such_module_here\n")
    spec = FunctionSpec(
        logical_id="Broken", code_uri=tmp_path, handler="app.lambda_handler", environment={}
    )
    function = LocalFunction(spec)
    try:
        with pytest.raises(InvocationError, match="no_such_module_here"):
            function.warm()
    finally:
        function.unload()
