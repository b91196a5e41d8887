"""Stream proxies: the caller sees the SDK's own stream; we see every chunk and finish exactly once.

A proxy finishes its call on exhaustion, error, ``close``/``aclose``, context exit, or when it is
garbage-collected unfinished (abandoned). Our state lives in ``_self_``-prefixed attributes (wrapt's
rule) and in a separate ``StreamState`` so the finalizer does not keep the proxy alive.
"""

from __future__ import annotations

import contextvars
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import wrapt

from otel_tokens._internal.base.records import INVALID_USAGE, Result, Usage, sum_usages
from otel_tokens._internal.base.safety import guarded, log_internal_error, raise_internal_errors
from otel_tokens._internal.calls.recorder import Invocation, Recorder

# The requests ("hops") of the recorded call in progress, for SDKs whose one public call may send
# several (Gemini's automatic function calling and continuation). Set while the public call runs and
# while its stream computes a chunk; "hop" wrappers add each request's Result or Accumulator to it.
CURRENT_HOPS: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("otel_tokens_hops", default=None)


class Accumulator(Protocol):
    def add(self, chunk: Any) -> bool:
        """Take a chunk; return False to hide it from the caller (a usage chunk we asked for)."""

    def result(self) -> Result: ...


def with_hops(result: Result, hops: list[Any] | None) -> Result:
    """The public call's result, with the usage of the requests it sent summed (each request's usage is
    kept, to be priced on its own) and their tool calls counted. Unchanged when no request was seen."""
    if not hops:
        return result
    results = [hop if isinstance(hop, Result) else hop.result() for hop in hops]
    usages = tuple(hop.usage for hop in results)
    usage = sum_usages(usages)
    per_request = usages if len(usages) > 1 and usage is not None and usage is not INVALID_USAGE else ()
    return replace(
        result,
        usage=usage,
        hop_usages=per_request,  # type: ignore[arg-type]
        tool_calls=sum(hop.tool_calls for hop in results),
        response_model=result.response_model or results[-1].response_model,
    )


class StreamState:
    __slots__ = (
        "_recorder", "invocation", "_accumulator", "add", "_estimate", "_done", "_finalizer", "hops",
        "__weakref__",
    )

    def __init__(
        self,
        recorder: Recorder,
        invocation: Invocation,
        accumulator: Accumulator,
        estimate: Callable[[Result], Usage | None] | None,
        hops: list[Any] | None = None,
    ) -> None:
        self._recorder = recorder
        self.invocation = invocation
        self._accumulator = accumulator
        # What the proxies call per chunk: first the one that notes the first chunk's time, then the
        # accumulator's own add (no per-chunk check, no extra call).
        self.add: Callable[[Any], bool] = self._first_chunk
        self._estimate = estimate
        self._done = False
        self._finalizer: weakref.finalize | None = None
        self.hops = hops

    def watch(self, proxy: Any) -> None:
        """Finish the call if the proxy is collected before it finished (an abandoned stream)."""
        finalizer = weakref.finalize(proxy, self.finish)
        finalizer.atexit = False
        self._finalizer = finalizer

    def _first_chunk(self, chunk: Any) -> bool:
        self.invocation.first_chunk_at = time.perf_counter()
        self.add = self._accumulator.add
        return self.add(chunk)

    def chunk_failed(self) -> bool:
        """Called from an ``except`` block around ``add``: our error reading a chunk; the caller still
        gets it."""
        log_internal_error("reading a stream chunk")
        if raise_internal_errors():
            raise  # noqa: PLE0704 - called only while an exception is being handled
        return True

    def finish(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        if self._finalizer is not None:
            self._finalizer.detach()
        guarded("finishing a stream", self._finish, error)

    def _finish(self, error: BaseException | None) -> None:
        result = with_hops(self._accumulator.result(), self.hops)
        estimate = None
        if self._estimate is not None:
            estimate_fn = self._estimate

            def estimate() -> Usage | None:
                return estimate_fn(result)

        # A stream that failed after it opened was billed: what arrived is still estimated.
        self._recorder.finish(self.invocation, result, error, estimate=estimate, estimate_on_error=True)


class SyncStreamProxy(wrapt.ObjectProxy):
    """Proxy for ``openai.Stream`` / ``anthropic.Stream`` and other sync chunk iterators, and for
    iterables that are not their own iterator (botocore's ``EventStream``), read through one iterator."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_iterator = wrapped if hasattr(type(wrapped), "__next__") else iter(wrapped)
        state.watch(self)

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        state = self._self_state
        while True:
            try:
                chunk = self._self_iterator.__next__()
            except StopIteration:
                state.finish()
                raise
            except BaseException as exc:
                state.finish(exc)
                raise
            try:
                keep = state.add(chunk)
            except Exception:
                keep = state.chunk_failed()
            if keep:
                return chunk

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            # An exception raised by the caller's own block is not the call's failure.
            self._self_state.finish()

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.finish()


class AsyncStreamProxy(wrapt.ObjectProxy):
    """Proxy for ``openai.AsyncStream`` / ``anthropic.AsyncStream`` and other async chunk iterators, and
    for async iterables that are not iterators themselves (google-api-core's gRPC stream responses)."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_iterator = wrapped if hasattr(type(wrapped), "__anext__") else None
        state.watch(self)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = self.__wrapped__.__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                state.finish()
                raise
            except BaseException as exc:
                state.finish(exc)
                raise
            try:
                keep = state.add(chunk)
            except Exception:
                keep = state.chunk_failed()
            if keep:
                return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.finish()

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_state.finish()

    async def aclose(self) -> None:
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            await closer()
        finally:
            self._self_state.finish()


class HopSyncStreamProxy(SyncStreamProxy):
    """A public stream whose SDK sends its requests while it is read: they count as this call's hops."""

    def __next__(self) -> Any:
        token = CURRENT_HOPS.set(self._self_state.hops)
        try:
            return super().__next__()
        finally:
            CURRENT_HOPS.reset(token)


class HopAsyncStreamProxy(AsyncStreamProxy):
    """The async form of :class:`HopSyncStreamProxy`."""

    async def __anext__(self) -> Any:
        token = CURRENT_HOPS.set(self._self_state.hops)
        try:
            return await super().__anext__()
        finally:
            CURRENT_HOPS.reset(token)


class _HopStream(wrapt.ObjectProxy):
    """One request's stream inside a recorded call: its chunks feed that request's accumulator."""

    def __init__(self, wrapped: Any, accumulator: Accumulator) -> None:
        super().__init__(wrapped)
        self._self_accumulator = accumulator

    def _add(self, chunk: Any) -> None:
        try:
            self._self_accumulator.add(chunk)
        except Exception:
            log_internal_error("reading a request's stream chunk")
            if raise_internal_errors():
                raise


class HopSyncStream(_HopStream):
    def __iter__(self) -> HopSyncStream:
        return self

    def __next__(self) -> Any:
        chunk = self.__wrapped__.__next__()
        self._add(chunk)
        return chunk


class HopAsyncStream(_HopStream):
    def __aiter__(self) -> HopAsyncStream:
        return self

    async def __anext__(self) -> Any:
        chunk = await self.__wrapped__.__anext__()
        self._add(chunk)
        return chunk


class StreamManagerProxy(wrapt.ObjectProxy):
    """Proxy for a helper's stream manager (``chat.completions.stream()`` and friends).

    The helper stream closes the HTTP response itself on an early ``break``, so the raw stream proxy
    gets no signal; leaving the manager's context is that signal.
    """

    def __init__(self, wrapped: Any, raw_stream_of: Callable[[Any], Any]) -> None:
        super().__init__(wrapped)
        self._self_raw_stream_of = raw_stream_of
        self._self_stream: Any = None

    def __enter__(self) -> Any:
        self._self_stream = self.__wrapped__.__enter__()
        return self._self_stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._finish_raw()

    async def __aenter__(self) -> Any:
        self._self_stream = await self.__wrapped__.__aenter__()
        return self._self_stream

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._finish_raw()

    def _finish_raw(self) -> None:
        stream, self._self_stream = self._self_stream, None
        if stream is None:
            return
        raw = guarded("finding a helper's raw stream", self._self_raw_stream_of, stream)
        state = getattr(raw, "_self_state", None)
        if isinstance(state, StreamState):
            state.finish()
