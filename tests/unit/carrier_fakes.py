"""Test doubles for the carrier format modules.

`FakeCarrier` is a carrier on 127.0.0.1 that answers with scripted replies and records what it
received; `http_request` builds the neutral HttpRequest a receipt handler would pass on.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from werkzeug.wrappers import Request, Response

from smsbridge.config import CarrierConfig
from smsbridge.web import HttpRequest
from tests.support import LoopbackServer

#: DLR credentials per format, as the local stack configures them (SPEC 9).
DLR_CREDENTIALS: dict[str, tuple[str, str]] = {
    "smartswitch": ("smartswitch", "smartswitch-secret"),
    "conceptomovil": ("conceptomovil", "conceptomovil-secret"),
    "vibes": ("vibes", "vibes-secret"),
    "ip2sms": ("ip2sms", "ip2sms-secret"),
}

SUBMIT_USERNAME = "smsbridge"
SUBMIT_PASSWORD = "sim-submit-secret"

# Hostile XML: each must be refused without expanding anything or reading any file.
XML_WITH_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE status [<!ELEMENT status ANY>]>
<status id="1"><state error="">Delivered</state></status>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<{root} id="1" messageId="1"><state error="">&lol9;</state><type>&lol9;</type></{root}>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<{root} id="1" messageId="1"><state error="">&xxe;</state><type>&xxe;</type></{root}>"""


def hostile_documents(root: str) -> dict[str, bytes]:
    """The three hostile shapes with `root` as the document element."""
    return {
        "dtd": XML_WITH_DTD.replace(b"status", root.encode()),
        "billion_laughs": BILLION_LAUGHS.replace(b"{root}", root.encode()),
        "external_entity": EXTERNAL_ENTITY.replace(b"{root}", root.encode()),
    }


@dataclass(frozen=True)
class Scripted:
    """One answer of the fake carrier; `delay` seconds pass before it is sent."""

    status: int = 200
    body: str | bytes = ""
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the fake carrier saw it (header names in lower case)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def xml(self) -> ET.Element:
        # The body is our own output, not hostile input: the stdlib parser is fine here.
        return ET.fromstring(self.body)

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        login, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        return login, password


class FakeCarrier:
    """A carrier on a free loopback port.

    Answers come from `script(...)` in order; the last one repeats. Every request is kept in
    `received`. Use as a context manager.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: list[Scripted] = [Scripted(status=599, body="no answer scripted")]
        self._scripted = False
        self._lock = threading.Lock()
        # Set when the test is over: a deliberately slow answer stops waiting.
        self._closing = threading.Event()
        self._server = LoopbackServer(self._app)

    @property
    def url(self) -> str:
        return self._server.url

    def script(self, *answers: Scripted) -> None:
        with self._lock:
            self._answers = list(answers)
            self._scripted = True

    def answer(
        self,
        status: int = 200,
        body: str | bytes = "",
        content_type: str = "application/json",
        delay: float = 0.0,
    ) -> None:
        """Script a single answer, repeated for every request."""
        self.script(Scripted(status, body, content_type, delay))

    def _next(self, request: Received) -> Scripted:
        with self._lock:
            self.received.append(request)
            return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        parts = urlsplit(str(environ.get("RAW_URI") or request.full_path))  # as sent
        received = Received(
            method=request.method,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=request.get_data(),
        )
        scripted = self._next(received)
        if scripted.delay:
            self._closing.wait(scripted.delay)
        response = Response(scripted.body, scripted.status, content_type=scripted.content_type)
        return response(environ, start_response)

    def __enter__(self) -> FakeCarrier:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._server.stop()


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/send"


def new_session() -> requests.Session:
    """A session that ignores proxy settings of the environment (everything here is loopback)."""
    session = requests.Session()
    session.trust_env = False
    return session


def carrier_config(format_name: str, base_url: str = "", **overrides: Any) -> CarrierConfig:
    """A carrier as the local stack configures it, its endpoints on `base_url`."""
    dlr_login, dlr_password = DLR_CREDENTIALS[format_name]
    values: dict[str, Any] = {
        "name": format_name,
        "format": format_name,
        "submit_url": f"{base_url}/{format_name}/send",
        "status_url": f"{base_url}/{format_name}/status",
        "sender": "SMSBRIDGE",
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "username": SUBMIT_USERNAME,
        "password": SUBMIT_PASSWORD,
        "api_key": "sim-api-key",
        "token": "sim-submit-token",
        "dlr_login": dlr_login,
        "dlr_password": dlr_password,
    }
    values.update(overrides)
    return CarrierConfig(**values)


def basic(login: str, password: str) -> str:
    """An `Authorization` header value."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def http_request(
    url: str = "/dlr/carrier",
    *,
    method: str = "POST",
    body: bytes | str = b"",
    content_type: str | None = None,
    auth: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpRequest:
    """The HttpRequest for `method url`; the query string of `url` keeps its order and repeats."""
    parts = urlsplit(url)
    all_headers = {name.lower(): value for name, value in (headers or {}).items()}
    if content_type is not None:
        all_headers["content-type"] = content_type
    if auth is not None:
        all_headers["authorization"] = basic(*auth)
    return HttpRequest(
        method=method,
        path=parts.path or "/",
        headers=all_headers,
        query=parse_qsl(parts.query, keep_blank_values=True),
        body=body.encode("utf-8") if isinstance(body, str) else body,
    )
