"""`python -m bench`: cold-import ratios per handler, cold start per route (import + first
answer), AWS calls per message, warm CPU per message per handler, DynamoDB units, log bytes, local
throughput and cost per million delivered messages, then one summary table of every figure against
its baseline or floor. `python -m bench coldstart` runs the cold start per route only.

Options: `--runs N` timed imports per handler (default 7); `--cold-runs N` fresh processes per
route for the cold start (default 5); `--skip-imports`, `--skip-coldstart`, `--skip-calls`,
`--skip-per-message`, `--skip-throughput` to leave a part out; `--throughput-messages N`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from bench import awscalls, coldimport, coldstart, permessage, summary

ROOT = Path(__file__).resolve().parent.parent


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Cold-import time of each handler and AWS calls per message.",
    )
    parser.add_argument(
        "part",
        nargs="?",
        choices=("all", "coldstart"),
        default="all",
        help="`coldstart`: only the cold start per route (default: all)",
    )
    parser.add_argument(
        "--runs", type=int, default=7, help="timed fresh processes per handler (default 7)"
    )
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=5,
        help="timed fresh processes per route for the cold start (default 5)",
    )
    parser.add_argument("--skip-imports", action="store_true", help="skip the cold imports")
    parser.add_argument(
        "--skip-coldstart", action="store_true", help="skip the cold start per route"
    )
    parser.add_argument("--skip-calls", action="store_true", help="skip the AWS call counts")
    parser.add_argument(
        "--skip-per-message", action="store_true", help="skip CPU, units, logs and cost"
    )
    parser.add_argument(
        "--skip-throughput", action="store_true", help="skip the local end-to-end throughput"
    )
    parser.add_argument(
        "--throughput-messages",
        type=int,
        default=120,
        help="messages through the local stack for the throughput (default 120)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.cold_runs < 1:
        parser.error("--runs and --cold-runs must be at least 1")
    if args.part == "coldstart":
        args.skip_imports = args.skip_calls = args.skip_per_message = True
        args.skip_throughput = True
        args.skip_coldstart = False
    return args


def _print(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def _template_defaults() -> tuple[str, str]:
    """CONFIG_PARAMETER and SECRETS_ID as the template sets them for the local stack (the stack
    makes both: `/<stack>/config` and a secret with a generated name)."""
    from local.cloudformation import ACCOUNT_ID, DEFAULT_REGION, STACK_NAME

    return (
        f"/{STACK_NAME}/config",
        f"arn:aws:secretsmanager:{DEFAULT_REGION}:{ACCOUNT_ID}:secret:{STACK_NAME}-AppSecrets",
    )


def main(argv: list[str] | None = None) -> int:
    """Run both parts; 1 when a handler could not be imported or a scenario failed."""
    args = _arguments(argv)
    started = time.monotonic()
    status = 0
    _print(
        [
            f"smsbridge bench: Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}",
            "",
        ]
    )
    found = summary.Found()
    if not args.skip_imports:
        env = coldimport.probe_environment(*_template_defaults())
        report = coldimport.measure(ROOT, args.runs, env)
        _print([*coldimport.format_report(report), ""])
        status |= int(report.failed)
        found.cold = report
    if not args.skip_coldstart:
        try:
            cold = coldstart.measure(ROOT, args.cold_runs)
        except coldstart.ProbeFailure as exc:
            print(f"Cold start: FAILED: {exc}", file=sys.stderr, flush=True)
            status = 1
        else:
            _print([*coldstart.format_report(cold), ""])
            status |= int(cold.failed)
            found.cold_start = cold
    if not args.skip_calls:
        try:
            calls = awscalls.run(ROOT)
        except awscalls.BenchFailure as exc:
            lines = [f"AWS calls per message: FAILED: {exc}"]
            if exc.log:
                lines += ["  last lines of the handlers' output:"]
                lines += [f"    {line}" for line in awscalls.log_tail(exc.log)]
            print("\n".join(lines), file=sys.stderr, flush=True)
            status = 1
        else:
            _print([*awscalls.format_report(calls), ""])
            found.calls = calls
    if not args.skip_throughput:
        found.throughput = summary.local_throughput(args.throughput_messages)
    if not args.skip_per_message:
        per = permessage.run(ROOT)
        if found.throughput:
            per.throughput = found.throughput
        _print([*permessage.format_report(per, summary.calls_gap(found.calls)), ""])
        found.per_message = per
    _print([*summary.format_summary(found), ""])
    _print([f"bench finished in {time.monotonic() - started:.0f} s"])
    return status


if __name__ == "__main__":
    sys.exit(main())
