"""Shared test helpers: local documents and credentials.

Events, the Lambda context and handler loading come from the local stack's own helpers
(`local.api.http_event`, `local.drivers.sqs_event`, `local.runtime`), as used by `make run`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

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
