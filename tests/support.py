"""Shared test helpers: local documents and credentials.

Events, the Lambda context and handler loading come from the local stack's own helpers
(`local.api.http_event`, `local.drivers.sqs_event`, `local.runtime`), as used by `make run`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

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
