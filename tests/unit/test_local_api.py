"""The HTTP front: template routes, API Gateway v2 events and responses, API Gateway errors."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws

from local.api import ApiServer, Route, Router, answer_from_result, http_event
from local.cloudformation import HttpRoute, deploy
from local.runtime import LocalFunction

TEMPLATE = """
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Echo:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/echo/
          Handler: app.handle
          Runtime: python3.12
          MemorySize: 256
          Timeout: 7
          Events:
            Dlr: {Type: HttpApi, Properties: {Path: "/dlr/{carrier}", Method: POST}}
            Item: {Type: HttpApi, Properties: {Path: "/items/{id}", Method: GET}}
            Special: {Type: HttpApi, Properties: {Path: /items/special, Method: GET}}
            Files: {Type: HttpApi, Properties: {Path: "/files/{path+}", Method: GET}}
            Boom: {Type: HttpApi, Properties: {Path: /boom, Method: ANY}}
            Plain: {Type: HttpApi, Properties: {Path: /plain, Method: GET}}
            Fancy: {Type: HttpApi, Properties: {Path: /fancy, Method: GET}}
            Binary: {Type: HttpApi, Properties: {Path: /binary, Method: GET}}
            Broken: {Type: HttpApi, Properties: {Path: /broken, Method: GET}}
"""

HANDLER = """
import base64
import json


def handle(event, context):
    path = event["rawPath"]
    if path == "/boom":
        raise RuntimeError("kaboom: internal detail")
    if path == "/plain":
        return {"ok": True, "items": [1, 2]}
    if path == "/broken":
        return {"statusCode": "not a number"}
    if path == "/fancy":
        return {
            "statusCode": 201,
            "headers": {"x-one": "1", "content-type": "text/plain"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": "made",
        }
    if path == "/binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(bytes([0, 255, 1])).decode(),
            "isBase64Encoded": True,
        }
    names = ("function_name", "function_version", "invoked_function_arn", "memory_limit_in_mb",
             "aws_request_id", "log_group_name", "log_stream_name")
    ctx = {name: getattr(context, name) for name in names}
    ctx["remaining"] = context.get_remaining_time_in_millis()
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"event": event, "context": ctx}),
    }
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    root = tmp_path_factory.mktemp("api")
    (root / "template.yaml").write_text(textwrap.dedent(TEMPLATE))
    (root / "functions" / "echo").mkdir(parents=True)
    (root / "functions" / "echo" / "app.py").write_text(HANDLER)
    with mock_aws():
        resources = deploy(boto3.Session(region_name="eu-west-1"), root / "template.yaml")
    function = LocalFunction(resources.functions["Echo"], function_name="stack-Echo")
    routes = [Route(route, function.invoke, fn.logical_id) for fn, route in resources.routes()]
    server = ApiServer(routes, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        function.unload()


def request(
    api: ApiServer,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(api.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest(method, target)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.msg, answer.read()
    finally:
        conn.close()


def echo(api: ApiServer, method: str, target: str, **kw: Any) -> dict[str, Any]:
    status, _, body = request(api, method, target, **kw)
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def test_v2_event_fields(api: ApiServer) -> None:
    target = "/dlr/smartswitch?_login=u&message_id=1&message_id=2&empty=&x=a%20b"
    got = echo(
        api,
        "POST",
        target,
        body=b"message_state=delivered",
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Repeat", "one"),
            ("X-Repeat", "two"),
            ("Cookie", "a=1; b=2"),
            ("User-Agent", "tests/1.0"),
        ],
    )
    event = got["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /dlr/{carrier}"
    assert event["rawPath"] == "/dlr/smartswitch"
    assert event["rawQueryString"] == "_login=u&message_id=1&message_id=2&empty=&x=a%20b"
    assert event["queryStringParameters"] == {
        "_login": "u",
        "message_id": "1,2",
        "empty": "",
        "x": "a b",
    }
    assert event["pathParameters"] == {"carrier": "smartswitch"}
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert event["headers"]["x-repeat"] == "one,two"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["body"] == "message_state=delivered"
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/dlr/smartswitch",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tests/1.0",
    }
    assert ctx["routeKey"] == "POST /dlr/{carrier}"
    assert ctx["stage"] == "$default"
    assert ctx["accountId"] == "123456789012"
    assert ctx["apiId"] and ctx["requestId"] and ctx["domainName"] == "127.0.0.1"
    assert isinstance(ctx["timeEpoch"], int)
    assert ctx["time"].endswith("+0000")


def test_lambda_context(api: ApiServer) -> None:
    ctx = echo(api, "GET", "/items/42")["context"]
    assert ctx["function_name"] == "stack-Echo"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"].endswith(":function:stack-Echo")
    assert ctx["memory_limit_in_mb"] == 256
    assert ctx["log_group_name"] == "/aws/lambda/stack-Echo"
    assert ctx["aws_request_id"]
    assert 0 < ctx["remaining"] <= 7000


def test_get_without_body_or_query(api: ApiServer) -> None:
    event = echo(api, "GET", "/items/a%2Fb")["event"]
    assert event["pathParameters"] == {"id": "a/b"}
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_binary_body_is_base64(api: ApiServer) -> None:
    raw = bytes([0, 159, 146, 150, 255])
    event = echo(api, "POST", "/dlr/vibes", body=raw)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_route_precedence(api: ApiServer) -> None:
    assert echo(api, "GET", "/items/special")["event"]["routeKey"] == "GET /items/special"
    greedy = echo(api, "GET", "/files/a/b/c.txt")["event"]
    assert greedy["routeKey"] == "GET /files/{path+}"
    assert greedy["pathParameters"] == {"path": "a/b/c.txt"}


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", "/nowhere"), ("GET", "/dlr/smartswitch"), ("POST", "/items/1"), ("GET", "/items/")],
)
def test_no_route_is_404(api: ApiServer, method: str, target: str) -> None:
    status, headers, body = request(api, method, target, body=b"" if method == "POST" else None)
    assert status == 404
    assert json.loads(body) == {"message": "Not Found"}
    assert headers["Content-Type"] == "application/json"


def test_handler_error_is_500_without_traceback(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="local.api"):
        status, _, body = request(api, "DELETE", "/boom?_password=hunter2")
        # The access line is written after the answer is sent: give the server thread a moment
        # (while INFO is still captured).
        deadline = time.monotonic() + 2
        while "DELETE /boom 500" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert b"kaboom" not in body and b"Traceback" not in body
    assert "kaboom" in caplog.text  # the traceback is in the local log only
    assert "hunter2" not in caplog.text  # query strings are never logged
    assert "DELETE /boom 500" in caplog.text


def test_invalid_result_is_500(api: ApiServer) -> None:
    status, _, body = request(api, "GET", "/broken")
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}


def test_result_without_status_code_is_json_200(api: ApiServer) -> None:
    status, headers, body = request(api, "GET", "/plain")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ok": True, "items": [1, 2]}


def test_v2_response_headers_cookies_and_base64(api: ApiServer) -> None:
    status, headers, body = request(api, "GET", "/fancy")
    assert status == 201
    assert body == b"made"
    assert headers["x-one"] == "1"
    assert headers.get_all("x-many") == ["a", "b"]
    assert headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert headers["apigw-requestid"]
    status, headers, body = request(api, "GET", "/binary")
    assert (status, body) == (200, bytes([0, 255, 1]))


def test_body_over_10_mb_is_413(api: ApiServer) -> None:
    parts = urlsplit(api.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest("POST", "/dlr/smartswitch")
        conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read()) == {"message": "Request Entity Too Large"}
    finally:
        conn.close()


def test_keep_alive_serves_several_requests(api: ApiServer) -> None:
    parts = urlsplit(api.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        for item in ("1", "2", "3"):
            conn.request("GET", f"/items/{item}")
            answer = conn.getresponse()
            assert json.loads(answer.read())["event"]["pathParameters"] == {"id": item}
    finally:
        conn.close()


# ----------------------------------------------------------------------- pure helpers


def test_router_any_and_default() -> None:
    def noop(event: dict[str, Any]) -> Any:
        return None

    router = Router(
        [
            Route(HttpRoute("ANY", "/x"), noop, "a"),
            Route(HttpRoute("GET", "/x"), noop, "b"),
            Route(HttpRoute("ANY", "$default"), noop, "c"),
        ]
    )
    found = router.match("GET", "/x")
    assert found is not None and found[0].function == "b"
    found = router.match("PUT", "/x")
    assert found is not None and found[0].function == "a"
    found = router.match("GET", "/elsewhere")
    assert found is not None and found[0].function == "c"


def test_http_event_repeated_query_and_cookies() -> None:
    event = http_event(
        "GET",
        "/p?a=1&a=2&b",
        headers=[("Host", "example.test:3000"), ("Cookie", "x=1"), ("cookie", "y=2")],
        source_ip="10.0.0.1",
    )
    assert event["routeKey"] == "GET /p"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["cookies"] == ["x=1", "y=2"]
    assert event["requestContext"]["domainName"] == "example.test"
    assert event["headers"]["x-forwarded-for"] == "10.0.0.1"
    assert "pathParameters" not in event


def test_http_event_for_tests_and_the_catch_all_route() -> None:
    event = http_event(
        "POST",
        "/dlr/vibes",
        route="/dlr/{carrier}",
        query="token=t",
        body="<x/>",
        headers={"Content-Type": "application/xml"},
        path_parameters={"carrier": "vibes"},
    )
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /dlr/{carrier}"
    assert (event["rawQueryString"], event["queryStringParameters"]) == ("token=t", {"token": "t"})
    assert (event["body"], event["isBase64Encoded"]) == ("<x/>", False)
    assert event["headers"]["content-type"] == "application/xml"
    assert event["pathParameters"] == {"carrier": "vibes"}
    assert http_event("GET", "/any", route="$default")["routeKey"] == "$default"


def test_answer_from_plain_values() -> None:
    answer = answer_from_result("text")
    assert (answer.status, answer.body) == (200, b'"text"')
    answer = answer_from_result({"statusCode": 204})
    assert (answer.status, answer.body) == (204, b"")
    with pytest.raises(ValueError, match="body"):
        answer_from_result({"statusCode": 200, "body": {"not": "a string"}})


def test_server_binds_a_free_port(tmp_path: Path) -> None:
    server = ApiServer([], port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
    finally:
        server.stop()
