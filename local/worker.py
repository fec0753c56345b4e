"""One Lambda execution environment: a process that imports its handler once, then runs one
invocation at a time for as long as its parent keeps the connection open.

`python -m local.worker FD` reads (event, context fields, faults on) from the connection on
file descriptor FD and answers ("ok", result, fault counts) or ("error", one line, traceback,
fault counts). The process has nothing but its own handler in it, as Lambda gives each
environment a process of its own: Powertools' per-process state (the router's current event,
the logger's keys, the cold start flag) is this environment's alone, with nothing patched.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def serve(connection: Connection) -> None:
    from local.runtime import LambdaContext, load_module

    setup: dict[str, Any] = connection.recv()
    os.environ.update(setup["env"])
    for entry in reversed(setup["path"]):
        sys.path.insert(0, entry)
    faults = None
    try:
        module = load_module(Path(setup["source"]), setup["module"])
        handler = getattr(module, setup["handler"])
        if setup.get("faults") is not None:
            from tools.chaos import FaultRates, Faults

            rates = FaultRates(**setup["faults"]["rates"])
            faults = Faults(rates, seed=setup["faults"]["seed"], enabled=False)
            faults.attach(setup["logical_id"], module)
    except BaseException as exc:
        connection.send(("error", _one_line(exc), traceback.format_exc(), {}))
        return
    # LOCAL_DEBUG_LOGGERS=a,b: those loggers at DEBUG (the soak keeps the receipts' effects).
    for name in filter(None, os.environ.get("LOCAL_DEBUG_LOGGERS", "").split(",")):
        logging.getLogger(name.strip()).setLevel(logging.DEBUG)
    connection.send(("ready", os.getpid()))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        event, context_fields, faults_enabled = message
        if faults is not None:
            faults.enabled = faults_enabled
            faults.counts.clear()
        try:
            result = handler(event, LambdaContext(**context_fields))
        except Exception as exc:
            counts = dict(faults.counts) if faults is not None else {}
            connection.send(("error", _one_line(exc), traceback.format_exc(), counts))
        else:
            counts = dict(faults.counts) if faults is not None else {}
            connection.send(("ok", result, counts))
        sys.stdout.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the parent decides when environments end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = Connection(int(sys.argv[1]))
    try:
        serve(connection)
    finally:
        connection.close()


if __name__ == "__main__":
    main()
