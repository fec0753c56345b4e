"""Handlers as Lambda runs them: each execution environment a process of its own.

Lambda runs one invocation at a time per execution environment, gives each environment a process,
and handlers (and Powertools) rely on both. So each function gets a small pool of worker
processes, forked as they are needed up to the function's limit from one process that imported
the handler once (`local.worker`); an invocation takes an idle one, or starts one, or waits.
`LambdaContext` and `load_module` also serve the tests and the bench, which call handlers in
their own process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from local.cloudformation import ACCOUNT_ID, DEFAULT_REGION, REPO_ROOT, FunctionSpec

log = logging.getLogger("local.runtime")

Handler = Callable[[Any, Any], Any]

#: Environments per function when neither the template nor the caller sets a limit.
DEFAULT_MAX_ENVIRONMENTS = 4


class LambdaContext:
    """The context object the Python runtime passes to a handler (local, tests and bench)."""

    def __init__(
        self,
        *,
        function_name: str = "local",
        memory_limit_in_mb: int = 512,
        timeout_seconds: float = 60,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        log_stream_name: str = "local",
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_loader_lock = threading.Lock()


def load_module(path: Path, module_name: str | None = None) -> ModuleType:
    """Execute a handler file as module `module_name`, its folder first on sys.path meanwhile.

    Lambda puts the function's folder at the root of the import path, so a handler may import a
    sibling module; the folder stays on the path only while the file runs. Each call runs the
    file afresh (a new execution environment), under a unique name unless one is given.
    """
    module_name = module_name or f"_handler_{path.parent.name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    with _loader_lock:
        sys.modules[module_name] = module
        sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        finally:
            sys.path.remove(folder)
    return module


class InvocationError(Exception):
    """The handler raised (its one-line description), or its environment died or timed out."""


@dataclass(slots=True)
class _Environment:
    """An execution environment: a process forked by its function's worker (`local.worker`)."""

    pid: int
    connection: Connection


def _forward(stream: Any) -> None:
    """A worker's output (and its environments'), line by line, to this process's current
    stdout (the soak's log capture replaces it)."""
    for line in iter(stream.readline, b""):
        target = sys.stdout
        try:
            target.write(line.decode("utf-8", "replace"))
            target.flush()
        except (OSError, ValueError):
            pass
    stream.close()


class LocalFunction:
    """A template function made callable: `invoke(event)` runs its handler in a free
    environment process, starting one while under the limit, else waiting for one."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        function_name: str | None = None,
        env: Mapping[str, str] | None = None,
        path: list[str] | None = None,
        faults: Any = None,
    ) -> None:
        self.spec = spec
        self.name = function_name or spec.logical_id
        self.region = region
        self.account_id = account_id
        limit = max_environments
        if spec.reserved_concurrency is not None:
            limit = min(limit, spec.reserved_concurrency)
        self.max_environments = max(1, limit)
        #: The environment variables of the worker processes (default: this process's).
        self.env = dict(os.environ if env is None else env)
        #: Folders put first on the workers' sys.path (the layers).
        self.path = list(path if path is not None else [str(REPO_ROOT / "shared")])
        #: Fault injection (`make soak`): a `tools.chaos.Faults`, whose hooks the workers install.
        self.faults = faults
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._worker_lock = threading.Lock()
        self._idle: list[_Environment] = []
        self._all: list[_Environment] = []
        self._starting = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def pids(self) -> list[int]:
        """Process ids of the environments started so far."""
        with self._cond:
            return [environment.pid for environment in self._all]

    def _source(self) -> Path:
        relative = Path(*self.spec.module_path.split("."))
        path = self.spec.code_uri / relative.with_suffix(".py")
        if not path.is_file():
            path = self.spec.code_uri / relative / "__init__.py"
        if not path.is_file():
            raise FileNotFoundError(f"{self.spec.logical_id}: no handler module {path}")
        return path

    def _worker(self) -> tuple[subprocess.Popen[bytes], Connection]:
        """The function's worker process (started on first use): it imports the handler once."""
        if self._process is not None and self._connection is not None:
            return self._process, self._connection
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "local.worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        connection = Connection(ours.detach())
        threading.Thread(
            target=_forward, args=(process.stdout,), name=f"{self.name}-out", daemon=True
        ).start()
        faults = self.faults
        connection.send(
            {
                "path": self.path,
                "source": str(self._source()),
                "module": f"_local_fn_{self.spec.logical_id}",
                "handler": self.spec.handler_name,
                "logical_id": self.spec.logical_id,
                "faults": None
                if faults is None
                else {"rates": faults.rates.as_dict(), "seed": faults.seed},
            }
        )
        try:
            answer = connection.recv()
        except EOFError:
            answer = ("error", "the worker process ended while starting", "", {})
        if answer[0] != "ready":
            connection.close()
            process.wait(timeout=5)
            raise InvocationError(f"{self.spec.logical_id}: {answer[1]}\n{answer[2]}")
        self._process, self._connection = process, connection
        return process, connection

    def _start(self) -> _Environment:
        """A new environment, forked by the worker, with a connection of its own."""
        with self._worker_lock:
            _, worker = self._worker()
            ours, theirs = socket.socketpair()
            try:
                worker.send("fork")
                reduction.send_handle(worker, theirs.fileno(), 0)
                pid = int(worker.recv())
            except (EOFError, OSError):
                ours.close()
                raise InvocationError(f"{self.name}: the worker process ended") from None
            finally:
                theirs.close()
        return _Environment(pid, Connection(ours.detach()))

    def _take(self) -> _Environment:
        with self._cond:
            while not self._idle and len(self._all) + self._starting >= self.max_environments:
                if self._closed:
                    raise InvocationError(f"{self.name}: the function is unloaded")
                self._cond.wait(0.5)
            if self._closed:
                raise InvocationError(f"{self.name}: the function is unloaded")
            if self._idle:
                return self._idle.pop()
            self._starting += 1
        try:
            environment = self._start()
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._starting -= 1
            self._all.append(environment)
        return environment

    def _give_back(self, environment: _Environment, alive: bool) -> None:
        with self._cond:
            if alive and not self._closed:
                self._idle.append(environment)
            else:
                if environment in self._all:
                    self._all.remove(environment)
                self._end(environment)
            self._cond.notify()

    @staticmethod
    def _end(environment: _Environment) -> None:
        environment.connection.close()
        with contextlib.suppress(OSError):  # it may have left already
            os.kill(environment.pid, signal.SIGKILL)

    def warm(self, count: int = 1) -> None:
        """Start `count` environments now (at most the limit), so that an import error shows at
        start and the first invocations need not wait for a cold start."""
        taken = [self._take() for _ in range(min(count, self.max_environments))]
        for environment in taken:
            self._give_back(environment, alive=True)

    def context_fields(self) -> dict[str, Any]:
        return {
            "function_name": self.name,
            "memory_limit_in_mb": self.spec.memory_size,
            "timeout_seconds": self.spec.timeout,
            "region": self.region,
            "account_id": self.account_id,
        }

    def invoke(self, event: Any) -> Any:
        """Run the handler in a free environment (waits when all are busy).

        Raises InvocationError when the handler raises (the environment stays), and when the
        environment dies (it is dropped). The function's `Timeout` is not enforced: on a busy
        shared machine an invocation may take longer than it would on AWS.
        """
        environment = self._take()
        alive = False
        try:
            enabled = bool(self.faults is not None and self.faults.enabled)
            environment.connection.send((event, self.context_fields(), enabled))
            answer = environment.connection.recv()
            alive = True
        except (EOFError, OSError):
            raise InvocationError(f"{self.name}: the environment process ended") from None
        finally:
            self._give_back(environment, alive)
        if self.faults is not None:
            self.faults.add(answer[-1])
        if answer[0] == "error":
            # As Lambda's runtime does: the uncaught exception goes to the function's log.
            log.error("%s: %s\n%s", self.name, answer[1], answer[2].rstrip())
            raise InvocationError(answer[1])
        return answer[1]

    def unload(self, grace: float = 0.5) -> None:
        """End every environment and the worker: idle environments leave cleanly, busy ones are
        killed after `grace` seconds."""
        with self._cond:
            self._closed = True
            environments = list(self._all)
            idle = list(self._idle)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for environment in idle:
            with contextlib.suppress(OSError):
                environment.connection.send(None)
        deadline = time.monotonic() + grace
        for environment in environments:
            if environment in idle:
                environment.connection.close()
                continue
            with contextlib.suppress(OSError):
                environment.connection.poll(max(0.0, deadline - time.monotonic()))
            self._end(environment)
        with self._worker_lock:
            process, connection = self._process, self._connection
            self._process = self._connection = None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.send(None)
            connection.close()
        if process is not None:
            try:
                process.wait(2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
