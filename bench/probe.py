"""Time one cold import in a fresh interpreter and print it as JSON on stdout.

Run by `bench.coldimport`, never imported by it:

    python -P bench/probe.py boto3
    python -P bench/probe.py functions/<name>/app.py <shared dir>

The clock starts after interpreter start-up and stops when the import is done, so only the
import itself is measured. A marker line on stderr separates start-up from the timed import in
`python -X importtime` output.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time

MARKER = "bench-probe: timed import starts"
BASELINE = "boto3"


def _baseline() -> None:
    """The floor: boto3 and one client, as every handler needs at least that."""
    import boto3

    boto3.client("dynamodb")


def _handler(path: str) -> None:
    """Import a handler file as the Lambda runtime does: module `app`."""
    spec = importlib.util.spec_from_file_location("app", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def main(argv: list[str]) -> int:
    """Import the target named in argv and print {"ms": duration}."""
    target = argv[1]
    if target != BASELINE:
        sys.path.insert(0, argv[2])
    sys.stderr.write(MARKER + "\n")
    sys.stderr.flush()
    start = time.perf_counter()
    if target == BASELINE:
        _baseline()
    else:
        _handler(target)
    elapsed = time.perf_counter() - start
    print(json.dumps({"ms": elapsed * 1000}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
