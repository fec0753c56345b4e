"""A function's execution environments: one process that imports the handler once, and forks
an environment from itself whenever the local runtime asks for one.

`python -m local.worker FD` reads its setup from the connection on file descriptor FD, imports
the handler (an import error is answered, and it ends), answers ("ready", pid), then serves
"fork" requests: each comes with the file descriptor of a new connection, on which a forked child
runs invocations, one at a time, until the connection closes or it reads None. The child reads
(event, context fields, faults on) and answers ("ok", result, fault counts) or ("error", one
line, traceback, fault counts).

So each environment is a process of its own, as Lambda gives it: Powertools' per-process state
(the router's current event, the logger's keys, the cold start flag) is that environment's
alone, with nothing patched. Forking from an imported handler (Lambda's SnapStart does much the
same) makes an environment start in milliseconds instead of an import's second; the parent
never invokes the handler, so each child starts cold, its clients not yet connected.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _invocations(connection: Connection, handler: Any, faults: Any) -> None:
    """One environment: invocations one at a time until the parent lets it go."""
    from local.runtime import LambdaContext

    if faults is not None:
        faults.reseed(os.getpid())
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
            answer: tuple[Any, ...] = ("error", one_line(exc), traceback.format_exc(), counts)
        else:
            answer = ("ok", result, dict(faults.counts) if faults is not None else {})
        sys.stdout.flush()
        connection.send(answer)


def serve(connection: Connection) -> None:
    from local.runtime import load_module

    setup: dict[str, Any] = connection.recv()
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
        connection.send(("error", one_line(exc), traceback.format_exc(), {}))
        return
    # LOCAL_DEBUG_LOGGERS=a,b: those loggers at DEBUG (the soak keeps the receipts' effects).
    for name in filter(None, os.environ.get("LOCAL_DEBUG_LOGGERS", "").split(",")):
        logging.getLogger(name.strip()).setLevel(logging.DEBUG)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended environments leave no zombies
    connection.send(("ready", os.getpid()))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        fd = reduction.recv_handle(connection)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            connection.close()
            environment = Connection(fd)
            try:
                _invocations(environment, handler, faults)
            finally:
                environment.close()
            sys.stdout.flush()
            raise SystemExit(0)
        os.close(fd)
        connection.send(pid)


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
