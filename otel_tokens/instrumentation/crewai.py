"""CrewAI instrumentor: ``CrewAIInstrumentor().instrument()``: agent and task attribution, no user code.

Every LLM call a CrewAI agent makes is labelled with the agent's role (``gen_ai.agent.name``) and the
task's name, or its description shortened (``otel_tokens.task.name``), under an ``invoke_agent {role}``
span per agent execution, whichever route the call takes (CrewAI's native OpenAI, Anthropic or Gemini
clients, or LiteLLM): the SDK instrumentors record the calls, this one supplies who they are for.

The seam is CrewAI's own event bus: ``CrewAIEventsBus.emit`` is observed (after CrewAI has handled the
event) for agent-execution and task start and end events. CrewAI runs its listeners on a thread pool, so
a registered listener could not label calls; ``emit`` itself is called by the code that runs the agent,
in the context its LLM calls are made in. Budgets set for a role apply to that agent's calls.
"""

from __future__ import annotations

import contextvars
import importlib
from collections.abc import Sequence
from typing import Any

import wrapt
from opentelemetry import trace

from otel_tokens import semconv
from otel_tokens._internal.base.safety import guarded, log_internal_error
from otel_tokens._internal.calls.context import agent, task
from otel_tokens._internal.calls.engine import Patch
from otel_tokens._internal.providers import crewai as adapter
from otel_tokens.instrumentation._base import SDKInstrumentor

_BUS_MODULE = "crewai.events.event_bus"
_EMIT = "CrewAIEventsBus.emit"


class _Frame:
    __slots__ = ("kind", "key", "scope", "span")

    def __init__(self, kind: str, key: Any, scope: Any, span: Any) -> None:
        self.kind = kind
        self.key = key
        self.scope = scope
        self.span = span


# Scopes opened by CrewAI events in this context, innermost last.
_FRAMES: contextvars.ContextVar[tuple[_Frame, ...]] = contextvars.ContextVar("otel_tokens_crewai", default=())


def _observe(event: Any) -> None:
    parsed = adapter.scope_event(event)
    if parsed is None:
        return
    if parsed.starts:
        if parsed.name:
            _open(parsed)
    else:
        _close(parsed)


def _open(parsed: adapter.ScopeEvent) -> None:
    scope = agent(parsed.name) if parsed.kind == "agent" else task(parsed.name)  # type: ignore[arg-type]
    scope.__enter__()
    span = trace.get_current_span() if parsed.kind == "agent" else None
    _FRAMES.set((*_FRAMES.get(), _Frame(parsed.kind, parsed.key, scope, span)))


def _close(parsed: adapter.ScopeEvent) -> None:
    frames = _FRAMES.get()
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].kind == parsed.kind and frames[index].key == parsed.key:
            break
    else:
        return  # started in another context, or before instrument()
    _FRAMES.set(frames[:index])
    # Scopes left open inside this one (an execution that ended without its end event) close with it.
    for frame in reversed(frames[index:]):
        if frame is frames[index] and parsed.error_type and frame.span is not None:
            frame.span.set_attribute(semconv.ERROR_TYPE, parsed.error_type)
            frame.span.set_status(trace.Status(trace.StatusCode.ERROR, parsed.error or parsed.error_type))
        guarded("closing a CrewAI scope", frame.scope.__exit__, None, None, None)


def _emit_wrapper(switch: Any) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        result = wrapped(*args, **kwargs)
        if switch.on:
            event = kwargs.get("event", args[1] if len(args) > 1 else None)
            guarded("reading a CrewAI event", _observe, event)
        return result

    return wrapper


class CrewAIInstrumentor(SDKInstrumentor):
    package = "crewai"
    requirement = "crewai >= 1.0"

    def patches(self) -> Sequence[Patch]:
        return ()

    def _prepare(self, recorder: Any) -> None:
        self._emit_handle = None
        try:
            module = importlib.import_module(_BUS_MODULE)
        except ImportError:
            return
        if not hasattr(getattr(module, "CrewAIEventsBus", None), "emit"):
            return
        self._emit_handle = wrapt.wrap_function_wrapper(module, _EMIT, _emit_wrapper(self._switch))

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        handle, self._emit_handle = getattr(self, "_emit_handle", None), None
        if handle is None:
            return
        try:
            wrapt.unwrap_object(importlib.import_module(_BUS_MODULE), _EMIT, handle, missing_ok=True)
        except Exception:
            log_internal_error("unpatching CrewAI's event bus")
