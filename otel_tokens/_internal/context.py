"""Who a call is for: agent, workflow, task and user scopes.

``agent("researcher")`` is a context manager and a decorator (functions, coroutines, generators and
async generators). It opens an ``invoke_agent researcher`` INTERNAL span and labels every LLM call inside
it. Labels live in a ``ContextVar``, so they follow asyncio tasks and threads started with a copied
context. The innermost scope wins; a span of an agent framework that carries ``gen_ai.agent.name`` counts
as a scope too.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_tokens import semconv
from otel_tokens._internal.records import NO_LABELS, Labels
from otel_tokens._internal.redact import error_text

F = TypeVar("F", bound=Callable[..., Any])

# (labels, the span our innermost agent scope opened or None)
_SCOPE: contextvars.ContextVar[tuple[Labels, Any]] = contextvars.ContextVar(
    "otel_tokens_scope", default=(NO_LABELS, None)
)


def current_labels() -> Labels:
    """Labels for a call made now; a framework's agent span nested inside our scope wins."""
    labels, scope_span = _SCOPE.get()
    span = trace.get_current_span()
    if span is not scope_span:
        attributes = getattr(span, "attributes", None)
        if attributes:
            name = attributes.get(semconv.GEN_AI_AGENT_NAME)
            if name and name != labels.agent:
                return replace(labels, agent=str(name))
    return labels


class _Scope:
    """A label scope usable as ``with``, ``async with`` and as a decorator."""

    __slots__ = ("_field", "_value", "_tokens", "_spans")

    def __init__(self, field: str, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{field} name must be a non-empty string, got {value!r}")
        self._field = field
        self._value = value
        # A stack, so one scope object can be entered again (recursion, decorator reuse).
        self._tokens: list[contextvars.Token] = []
        self._spans: list[Any] = []

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> _Scope:
        labels, scope_span = _SCOPE.get()
        span = self._start_span()
        otel_token = None
        if span is not None:
            scope_span = span
            # Current, so that the LLM spans inside become its children.
            otel_token = otel_context.attach(trace.set_span_in_context(span))
        self._spans.append((span, otel_token))
        self._tokens.append(_SCOPE.set((replace(labels, **{self._field: self._value}), scope_span)))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        _SCOPE.reset(self._tokens.pop())
        span, otel_token = self._spans.pop()
        if span is None:
            return
        otel_context.detach(otel_token)
        if exc is not None:
            span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, error_text(exc)))
        span.end()

    async def __aenter__(self) -> _Scope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def _start_span(self) -> Any:
        """The span this scope opens, if any."""
        return None

    # -- decorator ---------------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        field, value, cls = self._field, self._value, type(self)

        def fresh() -> _Scope:
            scope = cls.__new__(cls)
            _Scope.__init__(scope, field, value)
            return scope

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    async for item in func(*args, **kwargs):
                        yield item

            return agen_wrapper  # type: ignore[return-value]
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def coro_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return await func(*args, **kwargs)

            return coro_wrapper  # type: ignore[return-value]
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return (yield from func(*args, **kwargs))

            return gen_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class agent(_Scope):  # noqa: N801 - reads as a verb at the call site, like contextlib's helpers
    """Attribute every LLM call inside to an agent, under an ``invoke_agent {name}`` span."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__("agent", name)

    def _start_span(self) -> Any:
        from otel_tokens._internal.runtime import current_runtime

        runtime = current_runtime()
        tracer = runtime.tracer if runtime is not None else trace.get_tracer(semconv.SCOPE_NAME)
        return tracer.start_span(
            f"{semconv.OP_INVOKE_AGENT} {self._value}",
            kind=trace.SpanKind.INTERNAL,
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
                semconv.GEN_AI_AGENT_NAME: self._value,
            },
        )


class workflow(_Scope):  # noqa: N801
    """Label every LLM call inside with a workflow name (ledger and usage log; not a metric label)."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__("workflow", name)


class task(_Scope):  # noqa: N801
    """Label every LLM call inside with a task name."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__("task", name)


class user(_Scope):  # noqa: N801
    """Label every LLM call inside with a user id (span attribute ``user.id``; never a metric label)."""

    __slots__ = ()

    def __init__(self, user_id: str) -> None:
        super().__init__("user", user_id)
