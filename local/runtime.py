"""Handlers in this process as Lambda runs them: one module copy per execution environment.

Lambda runs one invocation at a time per execution environment, and handlers rely on it. So each
function gets a small pool of environments, each its own copy of the handler module loaded with
importlib under a unique name; concurrent invocations take different environments, never share
one. Lambda also gives each environment a process of its own; the library state that relies on
it is kept per thread (`local.isolation`).
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from local.cloudformation import ACCOUNT_ID, DEFAULT_REGION, REPO_ROOT, FunctionSpec
from local.isolation import invocation, isolate_environments

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
        isolate_environments()
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


def load_handler(function: str, module_name: str | None = None) -> ModuleType:
    """functions/<function>/app.py, imported afresh with the layer (shared/) on sys.path."""
    shared = str(REPO_ROOT / "shared")
    if shared not in sys.path:
        sys.path.insert(0, shared)
    return load_module(REPO_ROOT / "functions" / function / "app.py", module_name)


class LocalFunction:
    """A template function made callable: `invoke(event)` runs its handler with a context."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        function_name: str | None = None,
        on_load: Callable[[ModuleType], None] | None = None,
    ) -> None:
        self.spec = spec
        #: Called with each new module copy (the local stack's fault hooks).
        self.on_load = on_load
        self.name = function_name or spec.logical_id
        self.region = region
        self.account_id = account_id
        limit = max_environments
        if spec.reserved_concurrency is not None:
            limit = min(limit, spec.reserved_concurrency)
        self.max_environments = max(1, limit)
        self._idle: list[Handler] = []
        #: Environments invoked at least once (the others start cold).
        self._invoked: set[Handler] = set()
        #: Environments loaded or being loaded.
        self._count = 0
        self._serial = itertools.count()
        self._modules: list[str] = []
        self._cond = threading.Condition()

    @property
    def module_names(self) -> list[str]:
        """Names under which this function's module copies sit in sys.modules."""
        return list(self._modules)

    def _source(self) -> Path:
        relative = Path(*self.spec.module_path.split("."))
        path = self.spec.code_uri / relative.with_suffix(".py")
        if not path.is_file():
            path = self.spec.code_uri / relative / "__init__.py"
        if not path.is_file():
            raise FileNotFoundError(f"{self.spec.logical_id}: no handler module {path}")
        return path

    def _load(self, serial: int) -> Handler:
        module_name = f"_local_fn_{self.spec.logical_id}_{serial}"
        module = load_module(self._source(), module_name)
        handler = getattr(module, self.spec.handler_name, None)
        if not callable(handler):
            sys.modules.pop(module_name, None)
            raise AttributeError(f"{self.spec.logical_id}: {self.spec.handler} is not callable")
        if self.on_load is not None:
            self.on_load(module)
        with self._cond:
            self._modules.append(module_name)
        return handler  # type: ignore[no-any-return]

    @contextmanager
    def _environment(self) -> Iterator[Handler]:
        """An idle environment, a new one while under the limit, else wait for one."""
        with self._cond:
            while not self._idle and self._count >= self.max_environments:
                self._cond.wait()
            handler = self._idle.pop() if self._idle else None
            if handler is None:
                self._count += 1
                serial = next(self._serial)
        if handler is None:
            try:
                handler = self._load(serial)
            except BaseException:
                with self._cond:
                    self._count -= 1
                    self._cond.notify()
                raise
        try:
            yield handler
        finally:
            with self._cond:
                self._idle.append(handler)
                self._cond.notify()

    def warm(self) -> None:
        """Load the first environment now, so that an import error shows at start."""
        with self._environment():
            pass

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.spec.memory_size,
            timeout_seconds=self.spec.timeout,
            region=self.region,
            account_id=self.account_id,
        )

    def invoke(self, event: Any, context: LambdaContext | None = None) -> Any:
        """Run the handler in a free environment (waits when all are busy); exceptions propagate."""
        with self._environment() as handler:
            cold = handler not in self._invoked  # this thread holds the environment
            self._invoked.add(handler)
            with invocation(cold=cold):
                return handler(event, context or self.context())

    def unload(self) -> None:
        """Drop every module copy from sys.modules (a later stack loads fresh ones)."""
        with self._cond:
            for name in self._modules:
                sys.modules.pop(name, None)
            self._idle.clear()
            self._invoked.clear()
            self._modules.clear()
            self._count = 0
