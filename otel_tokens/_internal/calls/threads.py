"""Labels and per-request budgets that follow threads.

``with otel_tokens.agent("analyst"):`` sets labels in a ``ContextVar``, and a new thread starts with an
empty context: calls made through ``ThreadPoolExecutor.submit`` (and ``map``), ``loop.run_in_executor`` or a
``threading.Thread`` started inside the scope would count under ``(none)`` and outside its
``otel_tokens.budget()``. So, while instrumented (``OTEL_TOKENS_THREAD_CONTEXT``, on by default):

* ``ThreadPoolExecutor.submit`` runs the function in a copy of the submitter's context;
* ``Thread.start`` runs the thread's ``run`` in a copy of the starter's context (a per-instance ``run``, so
  subclasses that override it are covered too).

Only while an otel-tokens scope or per-request budget is in force: elsewhere threads start as they always
did. The copy is the whole context, so the OpenTelemetry context (the agent span) follows as well, as
``opentelemetry-instrumentation-threading`` makes it do; the two compose in either order, each wrapper once,
and removing ours leaves theirs in place. The executor's own worker threads never inherit their first
submitter's context: each task brings its own.

Nothing is imported here on a call: the patches are installed when the runtime is built.
"""

from __future__ import annotations

import contextvars
import threading
import types
from concurrent.futures import thread as futures_thread
from typing import Any

import wrapt

from otel_tokens._internal.budgets.manager import REQUEST_ACCOUNTS
from otel_tokens._internal.calls.context import scope_in_force

# (owner, attribute) patched; their wrappers carry this attribute so they are never stacked twice.
_MARKER = "_otel_tokens_thread_context"
_TARGETS = ((threading.Thread, "start"), (futures_thread.ThreadPoolExecutor, "submit"))
_lock = threading.Lock()


def _in_force() -> bool:
    return bool(REQUEST_ACCOUNTS.get()) or scope_in_force()


def _start(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    # A pool's worker serves every later task: each task brings its own context (see _submit).
    if _in_force() and getattr(instance, "_target", None) is not futures_thread._worker:
        run = instance.run
        context = contextvars.copy_context()
        instance.run = lambda: context.run(run)
    return wrapped(*args, **kwargs)


def _submit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if args and _in_force():
        context = contextvars.copy_context()
        args = (context.run, *args)
    return wrapped(*args, **kwargs)


_WRAPPERS = {"start": _start, "submit": _submit}
for _wrapper in _WRAPPERS.values():
    setattr(_wrapper, _MARKER, True)


def _chain(owner: type, attribute: str) -> list[Any]:
    """The wrappers on ``owner.attribute``, outermost first (wrapt's and anyone's with ``__wrapped__``)."""
    layers = []
    current = owner.__dict__.get(attribute)
    while type(current) is not types.FunctionType and hasattr(current, "__wrapped__"):
        layers.append(current)
        current = current.__wrapped__
    return layers


def _ours(layer: Any) -> bool:
    return getattr(getattr(layer, "_self_wrapper", None), _MARKER, False)


def install() -> None:
    """Patch ``Thread.start`` and ``ThreadPoolExecutor.submit``; a no-op for a patch already there."""
    with _lock:
        for owner, attribute in _TARGETS:
            if any(_ours(layer) for layer in _chain(owner, attribute)):
                continue
            wrapt.wrap_function_wrapper(owner, attribute, _WRAPPERS[attribute])


def uninstall() -> None:
    """Remove our patches only: a wrapper someone put over ours (opentelemetry-instrumentation-threading
    instrumented after us) stays, now over what ours wrapped."""
    with _lock:
        for owner, attribute in _TARGETS:
            layers = _chain(owner, attribute)
            for index, layer in enumerate(layers):
                if not _ours(layer):
                    continue
                if index == 0:
                    setattr(owner, attribute, layer.__wrapped__)
                else:
                    layers[index - 1].__wrapped__ = layer.__wrapped__
                break


def installed() -> bool:
    return any(_ours(layer) for owner, attribute in _TARGETS for layer in _chain(owner, attribute))


__all__ = ["install", "installed", "uninstall"]
