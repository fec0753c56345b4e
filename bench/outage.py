"""`python -m bench.outage`: submissions a sick carrier receives during an outage, with and
without the circuit breaker (SPEC 4.3).

The local stack is started twice with the template's settings (a 10 s first back-off, five
attempts, a circuit opening after five failures for 30 s): once as deployed, once with the
breaker out of play (`CIRCUIT_FAILURES` set above any count). Each time `--carrier` (default
`smartswitch`, whose failover is `conceptomovil`) answers 503 for `--seconds` (default 60) while
`--rate` messages a second (default 2) are handed in for its route. The table counts the
submissions the carrier refused, and how the messages ended.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import requests

from bench.tables import render
from local.stack import SECRETS_EXAMPLE_FILE, LocalStack

#: More failures than any outage here produces: the breaker never opens.
BREAKER_OFF = {"CIRCUIT_FAILURES": "1000000"}
#: Numbers on the default route (Smartswitch) that the simulator delivers.
NUMBER = "+491511{:05d}01"


def _measure(
    label: str, env: dict[str, str], carrier: str, seconds: float, rate: float, settle: float
) -> dict[str, Any]:
    stack = LocalStack(port=0, sim_port=0, env=env, secrets_path=SECRETS_EXAMPLE_FILE)
    stack.start()
    try:
        http = requests.Session()
        headers = {"Authorization": "Bearer demo-token"}
        http.post(f"{stack.sim_url}/_sim/outage/{carrier}?seconds={seconds}", timeout=5)
        began = time.monotonic()
        ids: list[str] = []
        while time.monotonic() - began < seconds:
            message_id = f"{label}-{len(ids)}"
            answer = http.post(
                f"{stack.api_url}/v1/messages",
                json={"to": NUMBER.format(len(ids)), "text": "hello", "message_id": message_id},
                headers=headers,
                timeout=10,
            )
            answer.raise_for_status()
            ids.append(message_id)
            time.sleep(max(0.0, began + len(ids) / rate - time.monotonic()))
        finals: Counter[str] = Counter()
        deadline = time.monotonic() + settle
        while True:
            finals.clear()
            for message_id in ids:
                record = http.get(
                    f"{stack.api_url}/v1/messages/{message_id}", headers=headers, timeout=10
                ).json()
                finals[f"{record['status']} on {record['carrier']}"] += 1
            if all(key.split()[0] not in ("queued", "submitted", "enroute") for key in finals):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        rows = stack.simulator.submissions()
        refused = sum(1 for r in rows if r["carrier"] == carrier and r["answer"] == "outage")
        return {"label": label, "messages": len(ids), "refused": refused, "finals": finals}
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__)
    parser.add_argument("--carrier", default="smartswitch")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2.0, help="messages a second offered")
    parser.add_argument(
        "--settle", type=float, default=180.0, help="longest wait for finals after the outage"
    )
    args = parser.parse_args(argv)
    results = [
        _measure("breaker", {}, args.carrier, args.seconds, args.rate, args.settle),
        _measure("no-breaker", BREAKER_OFF, args.carrier, args.seconds, args.rate, args.settle),
    ]
    table = render(
        ["run", "messages", f"submissions refused by {args.carrier}", "finals"],
        [
            [
                r["label"],
                str(r["messages"]),
                str(r["refused"]),
                ", ".join(f"{k}: {n}" for k, n in sorted(r["finals"].items())),
            ]
            for r in results
        ],
        "lrrl",
    )
    print(f"{args.carrier} down {args.seconds:.0f} s, {args.rate:g} messages/s offered")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
