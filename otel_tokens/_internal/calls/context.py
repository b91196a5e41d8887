"""Who a call is for: agent, workflow, task and user scopes.

``agent("researcher")`` is a context manager and a decorator (functions, coroutines, generators and
async generators). It opens an ``invoke_agent researcher`` INTERNAL span and labels every LLM call inside
it. Labels live in a ``ContextVar``, so they follow asyncio tasks and threads started with a copied
context. The innermost scope wins; a span of an agent framework that carries ``gen_ai.agent.name`` counts
as a scope too.

On a generator or async generator the label is set only while the generator's own frame runs: set on
each resume and reset before each yield, so code that merely holds the generator is not attributed to
it. Its agent span lasts from the first resume until the generator finishes or is closed, and is the
current span only while the frame runs.

Leaving a scope never raises into the application, whatever the order, thread or context: a scope
removes its own entry from the labels in force, so out-of-order exits leave no label behind, a second
exit does nothing, and an exit in another context (a generator finalised elsewhere) leaves that context
as it was.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_tokens import semconv
from otel_tokens._internal.base.errors import ConfigError, ConfigTypeError
from otel_tokens._internal.base.records import NO_LABELS, Labels
from otel_tokens._internal.base.redact import error_text
from otel_tokens._internal.base.safety import guarded

F = TypeVar("F", bound=Callable[..., Any])


class _Entry:
    """One entered scope: its label, its span (agents only), the scope object that entered it, and the
    tokens that undo its entry in the context that entered it."""

    __slots__ = ("field", "value", "span", "owner", "open", "parent_context", "token", "otel_token",
                 "__weakref__")

    def __init__(self, field: str, value: str, span: Any, owner: _Scope) -> None:
        self.field = field
        self.value = value
        self.span = span
        self.owner = owner
        self.open = True
        # The OpenTelemetry context current before this scope made its span current.
        self.parent_context: Any = None
        self.token: contextvars.Token | None = None
        self.otel_token: Any = None


class _Stack:
    """The scopes in force, innermost last, with the labels and agent span they give (immutable)."""

    __slots__ = ("entries", "labels", "span", "parent")

    def __init__(self, entries: tuple[_Entry, ...], labels: Labels, span: Any, parent: _Stack | None) -> None:
        self.entries = entries
        self.labels = labels
        self.span = span
        self.parent = parent

    def push(self, entry: _Entry) -> _Stack:
        labels = replace(self.labels, **{entry.field: entry.value})
        span = entry.span if entry.span is not None else self.span
        return _Stack((*self.entries, entry), labels, span, self)

    def without(self, entry: _Entry) -> _Stack:
        """This stack minus one entry; itself when the entry is not in it."""
        if self.entries and self.entries[-1] is entry and self.parent is not None:
            return self.parent
        if not any(e is entry for e in self.entries):
            return self
        return _EMPTY.extended(e for e in self.entries if e is not entry)

    def extended(self, entries: Iterable[_Entry]) -> _Stack:
        stack = self
        for entry in entries:
            stack = stack.push(entry)
        return stack


_EMPTY = _Stack((), NO_LABELS, None, None)
# Marks an OpenTelemetry context made current by a scope, with that scope's entry.
_ENTRY_KEY = otel_context.create_key("otel_tokens_scope_entry")
# Entries exited in another context than the one that entered them, until that context notices.
_EXITED_ELSEWHERE: weakref.WeakSet[_Entry] = weakref.WeakSet()
_SCOPE: contextvars.ContextVar[_Stack] = contextvars.ContextVar("otel_tokens_scope", default=_EMPTY)


def current_labels() -> Labels:
    """Labels for a call made now; a framework's agent span nested inside our scope wins."""
    stack = _SCOPE.get()
    if _EXITED_ELSEWHERE and stack.entries:
        stack = _settle(stack)
    labels = stack.labels
    span = trace.get_current_span()
    # An ended span can be left current by out-of-order exits; it attributes nothing.
    if span is not stack.span and getattr(span, "end_time", None) is None:
        attributes = getattr(span, "attributes", None)
        if attributes:
            name = attributes.get(semconv.GEN_AI_AGENT_NAME)
            if name and name != labels.agent:
                return replace(labels, agent=str(name))
    return labels


def scope_labels() -> Labels:
    """The labels of the ``agent()``/``workflow()``/``task()``/``user()`` scopes in force, without
    looking at the current span (the span processor follows spans itself)."""
    stack = _SCOPE.get()
    if _EXITED_ELSEWHERE and stack.entries:
        stack = _settle(stack)
    return stack.labels


def scope_in_force() -> bool:
    """Whether an agent, workflow, task or user scope is in force here (cheap: one load)."""
    return bool(_SCOPE.get().entries)


def _end_span(span: Any, exc: BaseException | None) -> None:
    if span is None:
        return
    # Closing a generator (GeneratorExit) is how it is abandoned, not a failure.
    if exc is not None and not isinstance(exc, GeneratorExit):
        span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
        span.set_status(trace.Status(trace.StatusCode.ERROR, error_text(exc)))
    span.end()


# The runtime's tracer, so agent spans go where its call spans go; None: the global tracer provider.
_agent_tracer: Any = None


def use_tracer(tracer: Any) -> None:
    """Write agent spans through ``tracer`` (the runtime binds its own; None when it is dropped)."""
    global _agent_tracer
    _agent_tracer = tracer


class _Scope:
    """A label scope usable as ``with``, ``async with`` and as a decorator."""

    __slots__ = ("_field", "_value", "_entered")

    def __init__(self, field: str, value: str) -> None:
        if not isinstance(value, str):
            raise ConfigTypeError(f"{field} name must be a non-empty string, got {type(value).__name__} {value!r}")
        if not value.strip():
            raise ConfigError(f"{field} name must be a non-empty string, got {value!r}")
        self._field = field
        self._value = value
        # Entries not yet exited: one scope object may be entered again (recursion, decorator reuse,
        # several threads or tasks).
        self._entered: list[_Entry] = []

    # -- entering and leaving ----------------------------------------------------------------------
    def _enter(self, span: Any) -> _Entry:
        entry = _Entry(self._field, self._value, span, self)
        if span is not None:
            # Current, so that the LLM spans inside become its children.
            entry.parent_context = otel_context.get_current()
            made = trace.set_span_in_context(span, entry.parent_context)
            entry.otel_token = otel_context.attach(otel_context.set_value(_ENTRY_KEY, entry, made))
        entry.token = _SCOPE.set(_SCOPE.get().push(entry))
        return entry

    def __enter__(self) -> _Scope:
        self._entered.append(self._enter(self._start_span()))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        entry = self._pop_entered()
        if entry is None:  # exited more often than entered: nothing left to undo
            return
        entry.open = False
        if not _leave(entry):
            # Another thread or task: that context cannot be reset from here, so it is settled the
            # next time it asks for labels; this one just drops the label if it has it.
            current = _SCOPE.get()
            if (wanted := current.without(entry)) is not current:
                _SCOPE.set(wanted)
            _EXITED_ELSEWHERE.add(entry)
        _end_span(entry.span, exc)

    def _pop_entered(self) -> _Entry | None:
        """The innermost entry of this scope in the current context, else the last one entered."""
        mine = next((e for e in reversed(_SCOPE.get().entries) if e.owner is self), None)
        # Other threads may enter and exit the same scope object meanwhile: work on a snapshot.
        if mine is not None and any(e is mine for e in self._entered[:]):
            try:
                self._entered.remove(mine)
                return mine
            except ValueError:
                pass
        try:
            return self._entered.pop()
        except IndexError:
            return None

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
                frame = _Frame(fresh())
                agen = func(*args, **kwargs)
                failure: BaseException | None = None
                try:
                    step, sent = agen.asend, None
                    while True:
                        try:
                            item = await frame.run_async(step, sent)
                        except StopAsyncIteration:
                            return
                        try:
                            sent = yield item
                            step = agen.asend
                        except GeneratorExit:
                            # Also how asyncio finalises an abandoned generator, in a task of its own.
                            await frame.run_async(agen.aclose)
                            raise
                        except BaseException as thrown:  # delegated, as ``yield from`` does
                            step, sent = agen.athrow, thrown
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    _end_span(frame.entry.span, failure)

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
                frame = _Frame(fresh())
                gen = func(*args, **kwargs)
                failure: BaseException | None = None
                try:
                    step, sent = gen.send, None
                    while True:
                        try:
                            item = frame.run(step, sent)
                        except StopIteration as stop:
                            return stop.value
                        try:
                            sent = yield item
                            step = gen.send
                        except GeneratorExit:
                            frame.run(gen.close)
                            raise
                        except BaseException as thrown:  # delegated, as ``yield from`` does
                            step, sent = gen.throw, thrown
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    _end_span(frame.entry.span, failure)

            return gen_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class _Frame:
    """A decorated generator's scope: set while its frame runs a step, the caller's restored after.

    One entry and span for the generator's life; the stack and context a step runs under are kept
    while the caller's stay the same, so a step costs two context-variable swaps.
    """

    __slots__ = ("entry", "_below", "_stack", "_below_context", "_context")

    def __init__(self, scope: _Scope) -> None:
        # Runs at the first resume: the span starts then, under whatever is current.
        self.entry = _Entry(scope._field, scope._value, scope._start_span(), scope)
        self._below = self._stack = self._below_context = self._context = None

    def _set(self) -> None:
        entry = self.entry
        below = _SCOPE.get()
        if below is not self._below:
            self._below, self._stack = below, below.push(entry)
        if entry.span is not None:
            below_context = otel_context.get_current()
            if below_context is not self._below_context:
                made = trace.set_span_in_context(entry.span, below_context)
                self._below_context, self._context = below_context, otel_context.set_value(_ENTRY_KEY, entry, made)
            entry.otel_token = otel_context.attach(self._context)
        entry.token = _SCOPE.set(self._stack)  # type: ignore[arg-type]

    def run(self, step: Callable[..., Any], *args: Any) -> Any:
        self._set()
        try:
            return step(*args)
        finally:
            _restore(self.entry)

    async def run_async(self, step: Callable[..., Any], *args: Any) -> Any:
        self._set()
        try:
            return await step(*args)
        finally:
            _restore(self.entry)


def _leave(entry: _Entry) -> bool:
    """Undo an exited entry in the context that entered it, in whatever order the exits come.

    False (and nothing changed) in any other context. Never raises.
    """
    wanted = _SCOPE.get().without(entry)
    try:
        _SCOPE.reset(entry.token)  # type: ignore[arg-type]
    except (ValueError, RuntimeError):  # another context (or the token was used already)
        return False
    if _SCOPE.get() is not wanted:  # an out-of-order exit: keep the scopes still open
        _SCOPE.set(wanted)
    # A span another scope made current since stays current (it restores past this one when it exits).
    if entry.otel_token is not None and otel_context.get_value(_ENTRY_KEY) is entry:
        otel_context.detach(entry.otel_token)
        parent = entry.parent_context
        while (below := otel_context.get_value(_ENTRY_KEY, parent)) is not None and not below.open:
            parent = below.parent_context  # exited out of order before this one: skip its span too
        if parent is not entry.parent_context:
            otel_context.attach(parent)
    return True


def _settle(stack: _Stack) -> _Stack:
    """Undo, in this context, entries exited elsewhere if this is the context that entered them.

    A context copied from it (a task or thread started inside the scope) keeps their labels, as
    copied contexts do.
    """
    for entry in stack.entries:
        if entry in _EXITED_ELSEWHERE and _leave(entry):
            _EXITED_ELSEWHERE.discard(entry)
    return _SCOPE.get()


def _restore(entry: _Entry) -> None:
    """Give the caller back exactly the labels and span it had before a generator step."""
    try:
        _SCOPE.reset(entry.token)  # type: ignore[arg-type]
    except (ValueError, RuntimeError):  # a step driven across contexts by hand: leave that context be
        return
    if entry.otel_token is not None:
        otel_context.detach(entry.otel_token)


class agent(_Scope):  # noqa: N801 - reads as a verb at the call site, like contextlib's helpers
    """Attribute every LLM call inside to an agent, under an ``invoke_agent {name}`` span."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__("agent", name)

    def _start_span(self) -> Any:
        return guarded("starting an agent span", self._open_span)

    def _open_span(self) -> Any:
        tracer = _agent_tracer if _agent_tracer is not None else trace.get_tracer(semconv.SCOPE_NAME)
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
