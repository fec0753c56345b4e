"""Process-wide library state that Lambda keeps per execution environment, kept per thread here.

Lambda gives every execution environment a process of its own, and Powertools relies on it:
its resolvers keep the current event on the `BaseRouter` class, its loggers of one service share
one formatter and its keys, and the cold start is a module flag. The local runtime runs every
environment of every function as threads of one process, one invocation per thread at a time;
without this, concurrent invocations would read each other's request (a receipt answered 200 by
an invocation that applied another one) and log under each other's function and request id.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_invocation = threading.local()


class _PerThread:
    """A data descriptor whose value is the calling thread's own."""

    def __init__(self, name: str, state: threading.local) -> None:
        self._name = name
        self._state = state

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        try:
            return getattr(self._state, self._name)
        except AttributeError:
            raise AttributeError(self._name) from None

    def __set__(self, instance: object, value: Any) -> None:
        setattr(self._state, self._name, value)


class _ThreadValues(threading.local):
    value: Any


class _PerThreadCopy:
    """An instance attribute per thread: a thread that has not set it starts from a copy of the
    value given first (by the constructor)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._key = f"_{name}_per_thread"

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        held = instance.__dict__.get(self._key)
        if held is None:
            # Made before the isolation was installed: its own value, shared as before.
            try:
                return instance.__dict__[self._name]
            except KeyError:
                raise AttributeError(self._name) from None
        first, values = held
        try:
            return values.value
        except AttributeError:
            values.value = copy.copy(first)
            return values.value

    def __set__(self, instance: object, value: Any) -> None:
        held = instance.__dict__.get(self._key)
        if held is None:
            held = instance.__dict__[self._key] = (value, _ThreadValues())
        held[1].value = value


def _router_state_per_thread() -> None:
    """`BaseRouter.current_event` and `lambda_context`, which `resolve` assigns to the class.

    The descriptors sit on the class (read through a resolver) and on a metaclass (assignments
    to the class itself, which would otherwise replace them).
    """
    from aws_lambda_powertools.event_handler import api_gateway

    router = api_gateway.BaseRouter
    if isinstance(router.__dict__.get("current_event"), _PerThread):
        return
    state = threading.local()
    descriptors = {name: _PerThread(name, state) for name in ("current_event", "lambda_context")}
    for name, descriptor in descriptors.items():
        setattr(router, name, descriptor)
    meta = type("PerThreadRouterMeta", (type(router),), descriptors)
    router.__class__ = meta  # type: ignore[method-assign]


def _logger_state_per_thread() -> None:
    """The keys of Powertools' shared formatter (function name, request id ...) and its cold
    start flag."""
    from aws_lambda_powertools.logging import formatter, logger

    json_formatter = formatter.LambdaPowertoolsFormatter
    if isinstance(json_formatter.__dict__.get("log_format"), _PerThreadCopy):
        return
    json_formatter.log_format = _PerThreadCopy("log_format")  # type: ignore[assignment]
    process_is_cold = logger._is_cold_start

    def environment_is_cold() -> bool:
        """True for an environment's first invocation only; a handler called outside
        `invocation` (a test importing it) keeps the process's own flag."""
        cold: bool | None = getattr(_invocation, "cold", None)
        if cold is None:
            return process_is_cold()
        _invocation.cold = False
        return cold

    logger._is_cold_start = environment_is_cold


def isolate_environments() -> None:
    """Install the per-thread state (idempotent); before the first handler is loaded."""
    _router_state_per_thread()
    _logger_state_per_thread()


@contextmanager
def invocation(*, cold: bool) -> Iterator[None]:
    """Run one invocation in this thread; `cold` for a fresh environment's first."""
    _invocation.cold = cold
    try:
        yield
    finally:
        _invocation.cold = None
