"""`python -m local` (`make run`): the whole system on loopback until Ctrl-C.

PORT (default 3000) and SIM_PORT (default 3001) choose the ports; every other setting is an
environment variable read by the stack (SCHEDULE_SECONDS, SIM_DELAY_MS, the time-outs ...).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from local.stack import SAM_ENV_FILE, LocalStack

#: How long Ctrl-C waits for a clean stop before the process leaves anyway. Handlers still busy
#: (a carrier call, a large batch) are not waited for: nothing of theirs outlives the process.
STOP_GRACE_SECONDS = 1.0

MAGIC_NUMBERS = """\
The simulated carrier's outcome follows the last two digits of the number:
  00-09 delivered   11 undeliverable   12 rejected at submission   13 two 503s, then delivered
  14 never final    15 receipts twice and out of order   16 expired
  17 late answers, a retry reuses the reference    18 fails on short code, delivers on long code
  19 receipt before the submission's answer"""


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a port number, got {raw!r}") from None


def credentials(config: dict[str, Any], secrets: dict[str, Any]) -> list[str]:
    """Demo credential lines, from the configuration and the local secrets file."""
    lines: list[str] = []
    client_cfg = config.get("clients") or {}
    for name, secret in (secrets.get("clients") or {}).items():
        kind = (client_cfg.get(name) or {}).get("kind", "json")
        if kind == "ofsc":
            login = secret.get("login", name)
            password = secret.get("password", "")
            lines.append(
                f"  OFSC client {name}: Basic {login}:{password} "
                f"(or the user block: login {login}, secret {password})"
            )
        else:
            parts = [f"Authorization: Bearer {secret['token']}"] if secret.get("token") else []
            if secret.get("callback_secret"):
                parts.append(f"callback signing secret {secret['callback_secret']}")
            label = "support client (read-only)" if kind == "support" else "JSON client"
            lines.append(f"  {label} {name}: " + "; ".join(parts))
    carrier_cfg = config.get("carriers") or {}
    carrier_secrets = secrets.get("carriers") or {}
    for name, settings in carrier_cfg.items():
        secret = carrier_secrets.get(name) or {}
        fmt = settings.get("format", "")
        login, password = secret.get("dlr_login"), secret.get("dlr_password")
        if settings.get("poll") or not (login and password):
            lines.append(f"  carrier {name} ({fmt}): polled, no receipts")
        elif fmt == "smartswitch":
            lines.append(f"  carrier {name} ({fmt}): DLR _login={login}&_password={password}")
        elif fmt == "vibes":
            lines.append(
                f"  carrier {name} ({fmt}): DLR Basic {login}:{password} or ?token={password}"
            )
        else:
            lines.append(f"  carrier {name} ({fmt}): DLR Basic {login}:{password}")
    return lines


def banner(stack: LocalStack) -> str:
    routes = (stack.config.get("routes") or {}).get("by_prefix") or {}
    default = (stack.config.get("routes") or {}).get("default", "")
    route_text = ", ".join(f"{prefix} → {carrier}" for prefix, carrier in routes.items())
    return "\n".join(
        [
            f"smsbridge is running at {stack.api_url}",
            f"  carrier simulator    {stack.sim_url}  (GET /_sim/submissions, /_sim/callbacks)",
            f"  moto (AWS services)  {stack.aws_endpoint}",
            f"  support console      {stack.api_url}/console",
            "Demo credentials:",
            *credentials(stack.config, stack.secrets),
            f"Routes: {route_text}{', ' if route_text else ''}everything else → {default}",
            MAGIC_NUMBERS,
            "Ctrl-C stops.",
        ]
    )


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # botocore announces every client's endpoint and credentials source at INFO.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stack = LocalStack(
        port=_port("PORT", 3000), sim_port=_port("SIM_PORT", 3001), sam_env_path=SAM_ENV_FILE
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            os._exit(128 + signum)  # a second Ctrl-C: leave at once
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except OSError as exc:
        print(f"local stack failed to start: {exc}", file=sys.stderr)
        return 1
    print(banner(stack), flush=True)
    while not stopping.wait(0.1):
        pass
    print("stopping ...", flush=True)
    stop(stack)
    return 0


def stop(stack: LocalStack, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the stack within `grace` seconds, then end the process without waiting for busy
    handler threads (the interpreter would otherwise join their thread pools at exit)."""
    stopper = threading.Thread(target=stack.stop, name="local-stop", daemon=True)
    stopper.start()
    stopper.join(grace)
    if stopper.is_alive():
        print("stopped without waiting for busy handlers", flush=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
