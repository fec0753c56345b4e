"""The HTTP API in front of the handlers: the template's routes, API Gateway HTTP API events (v2.0).

Requests become payload-format-2.0 events, as API Gateway builds them, and the handlers' v2
responses become HTTP answers with API Gateway's own rules (a result without `statusCode` is JSON
200; a handler error is 500 `{"message":"Internal Server Error"}`; no route is 404
`{"message":"Not Found"}`; over 10 MB is 413). The log shows method, path and status only: query
strings may carry DLR passwords.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from local.cloudformation import ACCOUNT_ID, API_ID, HttpRoute

log = logging.getLogger("local.api")

#: API Gateway's payload limit for HTTP APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

Invoke = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Route:
    """One template route and how to run its function (`invoke(event)` returns the result)."""

    route: HttpRoute
    invoke: Invoke
    function: str = ""


@dataclass(frozen=True, slots=True)
class _Compiled:
    route: Route
    pattern: re.Pattern[str] | None
    names: tuple[str, ...]
    #: Sort key: exact paths, then more literal segments, then greedy; methods before ANY.
    rank: tuple[int, int, int, int]


def _compile(route: Route) -> _Compiled:
    path = route.route.path
    if path == "$default":
        return _Compiled(route, None, (), (3, 0, 0, 1))
    names: list[str] = []
    parts: list[str] = []
    literal = 0
    greedy = 0
    for segment in path.strip("/").split("/") if path != "/" else []:
        match = re.fullmatch(r"\{([^}+]+)(\+?)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
            literal += 1
        elif match.group(2):
            names.append(match.group(1))
            parts.append(r"(.+)")
            greedy = 1
        else:
            names.append(match.group(1))
            parts.append(r"([^/]+)")
    regex = "/" + "/".join(parts)
    exact = 0 if not names else 1
    any_method = 1 if route.route.method == "ANY" else 0
    return _Compiled(
        route, re.compile(regex), tuple(names), (exact + greedy, -literal, greedy, any_method)
    )


class Router:
    """Picks the route for a method and path as API Gateway does (most specific wins)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted((_compile(r) for r in routes), key=lambda c: c.rank)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for compiled in self._routes:
            route = compiled.route.route
            if route.method not in ("ANY", method):
                continue
            if compiled.pattern is None:
                return compiled.route, {}
            found = compiled.pattern.fullmatch(path)
            if found is not None:
                params = {
                    name: unquote(value)
                    for name, value in zip(compiled.names, found.groups(), strict=True)
                }
                return compiled.route, params
        return None


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


class _RequestHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the base class logs request lines with their query strings."""

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over the limit (answered 413, connection closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        started = time.monotonic()
        method = self.command.upper()
        target = self.path
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        raw_path = target.partition("?")[0]
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(_json_answer(400, "Bad Request"), method, raw_path, started)
            return
        if body is None:
            self.close_connection = True
            self._send(_json_answer(413, "Request Entity Too Large"), method, raw_path, started)
            return
        matched = self.server.router.match(method, raw_path)
        if matched is None:
            self._send(_json_answer(404, "Not Found"), method, raw_path, started)
            return
        route, params = matched
        event = http_event(
            method,
            target,
            headers=list(self.headers.items()),
            body=body,
            route=route.route.path,
            path_parameters=params,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        try:
            answer = answer_from_result(route.invoke(event))
        except Exception:
            log.exception("%s %s: %s failed", method, raw_path, route.function or "handler")
            answer = _json_answer(500, "Internal Server Error")
        extra = [("apigw-requestid", event["requestContext"]["requestId"])]
        self._send(
            Answer(answer.status, answer.headers + extra, answer.body), method, raw_path, started
        )

    def _send(self, answer: Answer, method: str, raw_path: str, started: float) -> None:
        self.send_response(answer.status)
        names = {name.lower() for name, _ in answer.headers}
        for name, value in answer.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names and answer.body:
            # API Gateway's default when a v2 response names no type.
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(answer.body)
        elapsed = (time.monotonic() - started) * 1000
        log.info("%s %s %d %.0fms", method, raw_path, answer.status, elapsed)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class ApiServer(ThreadingHTTPServer):
    """The HTTP front. Binds in the constructor (port 0: a free one); `start` serves in a thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, routes: Iterable[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        self.router = Router(routes)
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _RequestHandler)

    def set_routes(self, routes: Iterable[Route]) -> None:
        """Replace the routes (the stack binds the port before the handlers are loaded)."""
        self.router = Router(routes)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="local-api", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
