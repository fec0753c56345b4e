"""The HTTP API in front of the handlers: the template's routes, API Gateway HTTP API events (v2.0).

Requests become payload-format-2.0 events, as API Gateway builds them, and the handlers' v2
responses become HTTP answers with API Gateway's own rules (a result without `statusCode` is JSON
200; a handler error is 500 `{"message":"Internal Server Error"}`; no route is 404
`{"message":"Not Found"}`; over 10 MB is 413). The log shows method, path and status only: query
strings may carry DLR passwords. werkzeug serves the requests and matches the routes.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from local.cloudformation import ACCOUNT_ID, API_ID, HttpRoute

log = logging.getLogger("local.api")

#: API Gateway's payload limit for HTTP APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024

Invoke = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Route:
    """One template route and how to run its function (`invoke(event)` returns the result)."""

    route: HttpRoute
    invoke: Invoke
    function: str = ""


class Router:
    """Picks the route for a method and path as API Gateway does: literal segments before
    parameters before greedy `{x+}`, a method before ANY, `$default` last (werkzeug's routing)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        ordered = sorted(routes, key=lambda r: r.route.method == "ANY")
        self._default = next((r for r in ordered if r.route.path == "$default"), None)
        rules = [
            Rule(
                re.sub(r"\{(\w+)\+\}", r"<path:\1>", re.sub(r"\{(\w+)\}", r"<\1>", r.route.path)),
                endpoint=r,
                methods=None if r.route.method == "ANY" else [r.route.method],
            )
            for r in ordered
            if r.route.path != "$default"
        ]
        self._map = Map(rules, strict_slashes=False, merge_slashes=False).bind("local")

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """`path` as sent (percent-encoded): `%2F` stays inside one path parameter."""
        try:
            route, params = self._map.match(path, method=method)
        except HTTPException:
            route, params = None, {}
        if route is None or route.route.method not in ("ANY", method):  # werkzeug adds HEAD
            return None if self._default is None else (self._default, {})
        return route, {name: unquote(value) for name, value in params.items()}


def _request_id() -> str:
    """An id shaped like API Gateway's (`JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(secrets.token_bytes(10)).decode()


def http_event(
    method: str,
    target: str,
    *,
    body: str | bytes = b"",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    query: str = "",
    route: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway builds for a request.

    `target` is the path, with or without its query string (`query` adds one); `route` is the
    matched route's path (`$default` for the catch-all; default: the path itself). The one
    builder of HTTP API events for the local API, the tests and the benchmarks.
    """
    raw_path, _, raw_query = target.partition("?")
    raw_query = "&".join(q for q in (raw_query, query) if q)
    route_key = "$default" if route == "$default" else f"{method} {route or raw_path}"
    now = now or datetime.now(UTC)
    request_id = request_id or _request_id()
    data = body.encode("utf-8") if isinstance(body, str) else body

    joined: dict[str, str] = {}
    cookies: list[str] = []
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    host = joined.get("host", "localhost")
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-forwarded-port", host.rpartition(":")[2] if ":" in host else "80")
    joined.setdefault(
        "x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"
    )

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if raw_query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    domain = host.partition(":")[0]
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain,
        "domainPrefix": domain.partition(".")[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = False
    if data:
        try:
            event["body"] = data.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(data).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_answer(status: int, message: str) -> Answer:
    body = json.dumps({"message": message}).encode()
    return Answer(status, [("Content-Type", "application/json")], body)


def answer_from_result(result: Any) -> Answer:
    """The HTTP answer API Gateway makes of a handler's payload-2.0 result.

    Raises ValueError for a result API Gateway would refuse (it answers 500).
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        body = json.dumps(result).encode()
        return Answer(200, [("Content-Type", "application/json")], body)
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        raise ValueError(f"statusCode {result['statusCode']!r} is not a number") from None
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode {status} is out of range")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        lower = str(name).lower()
        headers = [h for h in headers if h[0].lower() != lower]
        headers.extend((str(name), _header_value(v)) for v in values or [])
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise ValueError("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except binascii.Error:
            raise ValueError("isBase64Encoded body is not base64") from None
    else:
        body = raw_body.encode("utf-8")
    return Answer(status, headers, body)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ApiServer:
    """The HTTP front. Binds in the constructor (port 0: a free one); `start` serves in a thread."""

    def __init__(self, routes: Iterable[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        self.router = Router(routes)
        self._thread: threading.Thread | None = None
        # werkzeug logs request lines, query strings (DLR passwords) included: not here.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(host, port, self._app, threaded=True)

    def set_routes(self, routes: Iterable[Route]) -> None:
        """Replace the routes (the stack binds the port before the handlers are loaded)."""
        self.router = Router(routes)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.monotonic()
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        method = request.method.upper()
        target = str(environ.get("RAW_URI") or request.full_path)
        raw_path = target.partition("?")[0]
        try:
            body = request.get_data()
        except RequestEntityTooLarge:
            answer = _json_answer(413, "Request Entity Too Large")
            answer.headers.append(("Connection", "close"))  # the unread body is dropped
        else:
            matched = self.router.match(method, raw_path)
            answer = (
                _json_answer(404, "Not Found")
                if matched is None
                else self._invoke(matched, method, target, body, request, environ)
            )
        elapsed = (time.monotonic() - started) * 1000
        log.info("%s %s %d %.0fms", method, raw_path, answer.status, elapsed)
        response = Response(answer.body, answer.status)
        response.headers = Headers(answer.headers)
        if "content-type" not in {name.lower() for name, _ in answer.headers} and answer.body:
            response.headers["Content-Type"] = "text/plain; charset=utf-8"  # API Gateway's
        return response(environ, start_response)

    def _invoke(
        self,
        matched: tuple[Route, dict[str, str]],
        method: str,
        target: str,
        body: bytes,
        request: Request,
        environ: dict[str, Any],
    ) -> Answer:
        route, params = matched
        event = http_event(
            method,
            target,
            headers=list(request.headers.items()),
            body=body,
            route=route.route.path,
            path_parameters=params,
            source_ip=request.remote_addr or "",
            protocol=str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
        )
        try:
            answer = answer_from_result(route.invoke(event))
        except Exception as exc:
            # The handler's traceback, if any, is in its environment's log (local.runtime).
            what = route.function or "handler"
            log.error("%s %s: %s failed: %s", method, event["rawPath"], what, exc)
            answer = _json_answer(500, "Internal Server Error")
        answer.headers.append(("apigw-requestid", event["requestContext"]["requestId"]))
        return answer

    def start(self) -> str:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="local-api",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
