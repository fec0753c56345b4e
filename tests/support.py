"""Shared test helpers: local documents and credentials.

Events, the Lambda context and handler loading come from the local stack's own helpers
(`local.api.http_event`, `local.drivers.sqs_event`, `local.runtime`), as used by `make run`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import ThreadedWSGIServer

from smsbridge.models import Message
from smsbridge.statuses import Status

ROOT = Path(__file__).resolve().parents[1]


def local_documents(sim_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The local stack's configuration document (carriers pointing at `sim_url`) and secrets."""
    config = (ROOT / "local" / "config.json").read_text().replace("${SIM_URL}", sim_url)
    secrets = (ROOT / "local" / "secrets.example.json").read_text()
    return json.loads(config), json.loads(secrets)


def bearer(token: str = "demo-token") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def a_message(**fields: Any) -> Message:
    """A stored message of client `demo` with plain defaults; `fields` override any of them."""
    values: dict[str, Any] = {
        "id": "m",
        "client": "demo",
        "message_id": "c-1",
        "phone_number": "+4915112345601",
        "type": "text",
        "body": "hi",
        "sender": "S",
        "carrier": "smartswitch",
        "segments": 1,
        "encoding": "GSM-7",
        "status": Status.SUBMITTED,
        "inserted_at": "2026-11-22T11:00:00.000Z",
        "updated_at": "2026-11-22T11:00:00.000Z",
        "status_changed_at": "2026-11-22T11:00:00.000Z",
    }
    return Message(**(values | fields))


class LoopbackServer:
    """A WSGI app served by werkzeug on a free loopback port, one thread per request."""

    def __init__(self, app: Any) -> None:
        # werkzeug logs every request line to stderr: keep test output quiet.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedWSGIServer("127.0.0.1", 0, app)
        # Do not wait for a deliberately slow answer when the test is over.
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
