"""The generic engine: one patch table per SDK drives both instrument and uninstrument, and one set of
wrapper factories owns spans, streams, suppression and the sync/async split for every provider.

Calling the SDK and observing the call are separate steps: the SDK call is never inside our ``try``,
so its exceptions pass through unchanged, and an error in observing code is logged, never raised.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_tokens._internal.base.errors import BudgetExceededError
from otel_tokens._internal.base.records import Request, Result, Usage
from otel_tokens._internal.base.redact import remember_client_secrets
from otel_tokens._internal.base.safety import guarded, log_internal_error, raise_internal_errors
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.context import current_labels
from otel_tokens._internal.calls.recorder import Invocation, Recorder
from otel_tokens._internal.calls.streams import (
    CURRENT_HOPS,
    Accumulator,
    AsyncStreamProxy,
    HopAsyncStream,
    HopAsyncStreamProxy,
    HopSyncStream,
    HopSyncStreamProxy,
    StreamManagerProxy,
    StreamState,
    SyncStreamProxy,
    with_hops,
)

_logger = logging.getLogger("otel_tokens")

# Set while a wrapped call runs, so an SDK method that calls another wrapped method counts once.
_IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_tokens_in_call", default=False)


def in_recorded_call() -> bool:
    """True while an SDK method otel-tokens records is running (on this thread or task)."""
    return _IN_CALL.get()


Style = Literal[
    "sync", "async", "sync_manager", "sending_manager", "hop", "async_hop", "user_code", "async_user_code",
    "completed_calls", "async_completed_calls", "batches", "async_batches",
]


class Operation(Protocol):
    """A provider adapter for one kind of call. It only parses; it never touches telemetry.

    An adapter whose patched entry point serves many APIs (botocore's ``_make_api_call`` serves every
    AWS service) also defines ``accepts(instance, args, kwargs)``, a cheap check run first on every
    call: False sends the call straight to the SDK. An adapter whose stream is part of a larger
    response (botocore's ``{"stream": EventStream}``) also defines ``with_stream(response, wrap)``,
    returning what the caller gets with ``wrap(stream)`` in the stream's place; without it the
    response is the stream.
    """

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared: ...

    def result(self, response: Any, want_text: bool) -> Result: ...

    def stream_kind(self, response: Any) -> Literal["sync", "async"] | None: ...

    def accumulator(self, prepared: Prepared) -> Accumulator: ...

    def prompt_text(self, kwargs: dict) -> str: ...

    # Optional: ``prompt_tokens(kwargs, model) -> int``, the prompt as the provider bills it (a chat's
    # per-message wrappers, reply priming and tool definitions); without it the prompt text is counted.

    def input_messages(self, kwargs: dict) -> Any: ...

    # Optional, for APIs that take the system prompt apart from the messages (Anthropic's ``system``):
    # ``system_instructions(kwargs)`` gives its parts for ``gen_ai.system_instructions``.

    # Optional: ``estimates_usage = False`` for APIs not billed by the text they send and return (image
    # generation): a call whose response has no usage is then flagged as usage unknown, not estimated.


class HopOperation(Protocol):
    """For "hop" patches: an SDK's per-request method that one public call may call several times
    (automatic function calling, continuation). An Operation whose ``counts_hops`` is true has its
    usage summed from these requests, each priced on its own; without one seen, from its own response."""

    def result(self, response: Any, want_text: bool) -> Result: ...

    def stream_kind(self, response: Any) -> Literal["sync", "async"] | None: ...

    def hop_accumulator(self) -> Accumulator: ...


class HelperOperation(Operation, Protocol):
    """For "sending_manager" helpers: where the helper's stream keeps the SDK's raw stream."""

    raw_stream_attribute: str


class CompletedCallsOperation(Protocol):
    """An SDK method whose result yields calls that already ran elsewhere (batch results): each item is
    one call, recorded when the caller reads it (``completed_calls`` / ``async_completed_calls``)."""

    def completed(self, instance: Any, args: tuple, kwargs: dict, item: Any) -> tuple[Request, Result] | None:
        """The call an item is (None: not a billed call, e.g. an errored or expired batch request)."""


class BatchOperation(Protocol):
    """An SDK method whose result holds batch jobs (one, or a page of them) that may have finished
    (``batches`` / ``async_batches``): a finished batch's calls are recorded once per batch id, however
    often and in whichever process it is read (the recorder's ``batches`` says whether it was seen)."""

    def batches(self, response: Any) -> Iterable[Any]:
        """The batch objects in a result (a page's items; the result itself; none for anything else)."""

    def calls(
        self, instance: Any, args: tuple, kwargs: dict, batch: Any
    ) -> tuple[str, list[tuple[Request, Result]]] | None:
        """A finished batch's id and the billed calls it holds; None while it is not finished or billed."""


class Prepared(NamedTuple):
    """A parsed request, and the arguments to send (an adapter may ask for stream usage).

    A NamedTuple, not a frozen dataclass: every call builds one, and a tuple is built in one step
    where a frozen dataclass sets each field with ``object.__setattr__``."""

    request: Request
    kwargs: dict
    hide_usage_chunk: bool = False
    # "true" for with_raw_response, "stream" for with_streaming_response, None for a plain call.
    raw_mode: str | None = None
    # Positional arguments to send instead of the caller's: an adapter that passes them by name in
    # ``kwargs`` (so the prompt can be read from them) sends ``()``.
    args: tuple | None = None
    # What prompt_text and input_messages read when the SDK takes its parameters positionally and they
    # must stay so (botocore's api_params); None: the keyword arguments sent.
    inputs: dict | None = None

    @property
    def prompt_inputs(self) -> dict:
        return self.kwargs if self.inputs is None else self.inputs


@dataclass(frozen=True, slots=True)
class Patch:
    module: str
    attribute: str  # "Class.method", or "function" for a module attribute (ollama.chat is a bound method)
    # Operation; a HelperOperation for "sending_manager"; a HopOperation for "hop"/"async_hop"; for
    # "sync_manager" a function returning the helper's raw stream; None for "user_code"/"async_user_code"
    # (where an SDK runs the caller's functions inside a call: automatic function calling)
    operation: Any
    style: Style


class Switch:
    """Wrappers stay reachable after uninstrument (SDKs cache bound methods); this turns them off."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


# -- patch table ---------------------------------------------------------------------------------
class PatchSet:
    """A patch table applied to an SDK. A module the SDK has imported is patched now; one it has not is
    patched when it does (a post-import hook): importing an SDK's modules only to patch them would load,
    at start-up, parts of the SDK the app may never use (openai 3.x loads its resources lazily)."""

    def __init__(self, patches: Iterable[Patch], recorder: Recorder, switch: Switch) -> None:
        self._patches = tuple(patches)
        self._recorder = recorder
        self._switch = switch
        self._lock = threading.RLock()
        self.applied: list[tuple[Patch, Any]] = []
        # Old and new module paths may re-export one class: each method is wrapped once.
        self._seen: set[tuple[int, str]] = set()

    def apply(self) -> None:
        waiting: dict[str, list[Patch]] = {}
        for patch in self._patches:
            if patch.module in sys.modules:
                self._apply(patch)
            else:
                waiting.setdefault(patch.module, []).append(patch)
        for module, patches in waiting.items():
            wrapt.register_post_import_hook(lambda _module, patches=patches: self._apply_all(patches), module)

    def _apply_all(self, patches: list[Patch]) -> None:
        for patch in patches:
            guarded(f"patching {patch.module}:{patch.attribute}", self._apply, patch)

    def _apply(self, patch: Patch) -> None:
        with self._lock:
            if not self._switch.on:  # uninstrumented before the SDK imported this module
                return
            try:
                module = importlib.import_module(patch.module)
                owner_name, _, method = patch.attribute.rpartition(".")
                owner = getattr(module, owner_name) if owner_name else module
                if not hasattr(owner, method):
                    return
            except (ImportError, AttributeError):
                _logger.debug("%s:%s not present; not patched", patch.module, patch.attribute)
                return
            if (id(owner), method) in self._seen:
                return
            self._seen.add((id(owner), method))
            handle = wrapt.wrap_function_wrapper(
                module, patch.attribute, make_wrapper(patch, self._recorder, self._switch)
            )
            self.applied.append((patch, handle))

    def remove(self) -> None:
        """Remove exactly our wrappers, even when another library wrapped the same method after us."""
        with self._lock:
            applied, self.applied = self.applied, []
            self._seen.clear()
        for patch, handle in applied:
            try:
                module = importlib.import_module(patch.module)
                wrapt.unwrap_object(module, patch.attribute, handle, missing_ok=True)
            except Exception:
                log_internal_error(f"unpatching {patch.module}:{patch.attribute}")


def make_wrapper(patch: Patch, recorder: Recorder, switch: Switch) -> Callable[..., Any]:
    if patch.style == "sync_manager":
        return _manager_wrapper(patch.operation, switch)
    if patch.style == "sending_manager":
        return _sending_manager_wrapper(patch.operation, recorder, switch)
    if patch.style == "async":
        return _async_wrapper(patch.operation, recorder, switch)
    if patch.style == "hop":
        return _hop_wrapper(patch.operation, switch)
    if patch.style == "user_code":
        return _user_code_wrapper(switch)
    if patch.style == "async_user_code":
        return _async_user_code_wrapper(switch)
    if patch.style == "async_hop":
        return _async_hop_wrapper(patch.operation, switch)
    if patch.style == "completed_calls":
        return _completed_calls_wrapper(patch.operation, recorder, switch)
    if patch.style == "async_completed_calls":
        return _async_completed_calls_wrapper(patch.operation, recorder, switch)
    if patch.style == "batches":
        return _batches_wrapper(patch.operation, recorder, switch)
    if patch.style == "async_batches":
        return _async_batches_wrapper(patch.operation, recorder, switch)
    return _sync_wrapper(patch.operation, recorder, switch)


# -- calls that already ran (batch results) ------------------------------------------------------
def _completed_calls_wrapper(
    operation: CompletedCallsOperation, recorder: Recorder, switch: Switch
) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        response = wrapped(*args, **kwargs)  # outside any try of ours: the SDK's errors pass unchanged
        if not switch.on or not is_instrumentation_enabled():
            return response
        return _CompletedCallsProxy(response, _completed_call_recorder(operation, recorder, instance, args, kwargs))

    return wrapper


def _async_completed_calls_wrapper(
    operation: CompletedCallsOperation, recorder: Recorder, switch: Switch
) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        response = await wrapped(*args, **kwargs)
        if not switch.on or not is_instrumentation_enabled():
            return response
        return _AsyncCompletedCallsProxy(
            response, _completed_call_recorder(operation, recorder, instance, args, kwargs)
        )

    return wrapper


def _batches_wrapper(operation: BatchOperation, recorder: Recorder, switch: Switch) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        response = wrapped(*args, **kwargs)
        if switch.on and is_instrumentation_enabled():
            _record_batches(operation, recorder, instance, args, kwargs, response)
        return response

    return wrapper


def _async_batches_wrapper(operation: BatchOperation, recorder: Recorder, switch: Switch) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        response = await wrapped(*args, **kwargs)
        if switch.on and is_instrumentation_enabled():
            _record_batches(operation, recorder, instance, args, kwargs, response)
        return response

    return wrapper


def _record_batches(
    operation: BatchOperation, recorder: Recorder, instance: Any, args: tuple, kwargs: dict, response: Any
) -> None:
    """Record each finished batch in ``response`` not counted before (here, or where the runtime keeps
    batch ids: a store, the usage log). Only a batch seen finished asks the store."""
    try:
        labels = None
        for batch in operation.batches(response):
            found = operation.calls(instance, args, kwargs, batch)
            if not found or not found[1]:
                continue
            batch_id, calls = found
            seen = recorder.batches
            if seen is not None and not seen.first_sighting(calls[0][0].provider, batch_id):
                continue
            labels = labels or current_labels()
            for request, result in calls:
                # It already ran: a blocking budget counts it rather than stopping it (elapsed_s is given).
                recorder.finish(recorder.start(request, labels, elapsed_s=0.0), result)
    except Exception:
        log_internal_error("recording a finished batch")
        if raise_internal_errors():
            raise


def _completed_call_recorder(
    operation: CompletedCallsOperation, recorder: Recorder, instance: Any, args: tuple, kwargs: dict
) -> Callable[[Any], None]:
    def record(item: Any) -> None:
        try:
            call = operation.completed(instance, args, kwargs, item)
            if call is None:
                return
            # It already ran: a blocking budget counts it rather than stopping it (elapsed_s is given).
            invocation = recorder.start(call[0], current_labels(), elapsed_s=0.0)
            recorder.finish(invocation, call[1])
        except Exception:
            log_internal_error("recording a batch result")
            if raise_internal_errors():
                raise

    return record


class _CompletedCallsProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """The SDK's result iterator, unchanged for the caller; each item read is recorded once."""

    def __init__(self, wrapped: Any, record: Callable[[Any], None]) -> None:
        super().__init__(wrapped)
        self._self_record = record

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        item = next(self.__wrapped__)
        self._self_record(item)
        return item


class _AsyncCompletedCallsProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, record: Callable[[Any], None]) -> None:
        super().__init__(wrapped)
        self._self_record = record

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        item = await self.__wrapped__.__anext__()
        self._self_record(item)
        return item


# -- the call flow -------------------------------------------------------------------------------
class _Call:
    __slots__ = ("prepared", "invocation", "token", "hops", "hops_token", "span_token")

    def __init__(self, prepared: Prepared, invocation: Invocation) -> None:
        self.prepared = prepared
        self.invocation = invocation
        self.token: contextvars.Token | None = None
        # The LLM span is the current span while the SDK sends (its HTTP spans, and another
        # instrumentation's span for the same call, are its children), until the SDK returns.
        self.span_token: Any = None
        self.hops: list[Any] | None = None
        self.hops_token: contextvars.Token | None = None


def _begin(operation: Operation, recorder: Recorder, instance: Any, args: tuple, kwargs: dict) -> _Call | None:
    """Parse the request and open the span. None means: just call the SDK, observe nothing."""
    # _prepare() and _started(), inlined: this runs on every call.
    if _IN_CALL.get() or not is_instrumentation_enabled():
        return None
    try:
        prepared = operation.request(instance, args, kwargs, recorder.settings)
        labels = current_labels()
    except Exception:
        log_internal_error("reading a request")
        if raise_internal_errors():
            raise
        return None
    inputs = prepared.kwargs if prepared.inputs is None else prepared.inputs
    try:
        invocation = recorder.start(prepared.request, labels, _prompt(operation, inputs, prepared.request.model))
    except BudgetExceededError:
        raise
    except Exception:
        return _start_failed()
    if recorder.capture_enabled or getattr(operation, "counts_hops", False):
        return _started(operation, recorder, prepared, invocation)
    call = _Call(prepared, invocation)
    call.token = _IN_CALL.set(True)
    call.span_token = otel_context.attach(trace.set_span_in_context(invocation.span))
    return call


async def _begin_async(
    operation: Operation, recorder: Recorder, instance: Any, args: tuple, kwargs: dict
) -> _Call | None:
    """:func:`_begin` for async calls: the budget check may wait, but never on the event loop."""
    prepared = _prepare(operation, recorder, instance, args, kwargs)
    if prepared is None:
        return None
    inputs = prepared[0].prompt_inputs
    try:
        invocation = await recorder.start_async(
            prepared[0].request, prepared[1], _prompt(operation, inputs, prepared[0].request.model)
        )
    except BudgetExceededError:
        raise
    except Exception:
        return _start_failed()
    return _started(operation, recorder, prepared[0], invocation)


def _prompt(operation: Operation, inputs: dict, model: str | None) -> Callable[[], str | int]:
    """What a blocking budget counts, only if one applies: the adapter's chat-format token count when it
    has one, else the prompt's text."""
    prompt_tokens = getattr(operation, "prompt_tokens", None)
    if prompt_tokens is not None:
        return lambda: prompt_tokens(inputs, model)
    return lambda: operation.prompt_text(inputs)


def _prepare(
    operation: Operation, recorder: Recorder, instance: Any, args: tuple, kwargs: dict
) -> tuple[Prepared, Any] | None:
    if _IN_CALL.get() or not is_instrumentation_enabled():
        return None
    try:
        return operation.request(instance, args, kwargs, recorder.settings), current_labels()
    except Exception:
        log_internal_error("reading a request")
        if raise_internal_errors():
            raise
        return None


def _start_failed() -> None:
    log_internal_error("starting a span")
    if raise_internal_errors():
        raise
    return None


def _started(operation: Operation, recorder: Recorder, prepared: Prepared, invocation: Invocation) -> _Call:
    inputs = prepared.prompt_inputs
    if recorder.capture_enabled:
        invocation.input_messages = guarded("reading input messages", operation.input_messages, inputs)
        system_instructions = getattr(operation, "system_instructions", None)
        if system_instructions is not None:
            invocation.system_instructions = guarded("reading system instructions", system_instructions, inputs)
    call = _Call(prepared, invocation)
    call.token = _IN_CALL.set(True)
    call.span_token = otel_context.attach(trace.set_span_in_context(invocation.span))
    if getattr(operation, "counts_hops", False):
        call.hops = []
        call.hops_token = CURRENT_HOPS.set(call.hops)
    return call


def _failed(recorder: Recorder, call: _Call, error: BaseException, instance: Any) -> None:
    """The SDK raised: record it (its text without the key the client holds, wherever it is written)."""
    _reset(call)
    remember_client_secrets(instance)
    guarded("recording a failed call", recorder.finish, call.invocation, None, error)


def _reset(call: _Call) -> None:
    span_token = call.span_token
    if span_token is not None:
        call.span_token = None
        if isinstance(span_token, contextvars.Token):  # the SDK's contextvars runtime context
            try:
                span_token.var.reset(span_token)
            except ValueError:  # reset from another context (a generator resumed elsewhere): left as it is
                pass
        else:
            otel_context.detach(span_token)
    if call.token is not None:
        try:
            _IN_CALL.reset(call.token)
        except ValueError:  # reset from another context (a generator resumed elsewhere)
            _IN_CALL.set(False)
        call.token = None
    if call.hops_token is not None:
        try:
            CURRENT_HOPS.reset(call.hops_token)
        except ValueError:
            CURRENT_HOPS.set(None)
        call.hops_token = None


def _returned(operation: Operation, recorder: Recorder, call: _Call, response: Any) -> Any:
    """Record the response, or wrap a stream. Returns what the caller gets: the response or a proxy."""
    _reset(call)
    try:
        prepared = call.prepared
        invocation = call.invocation
        kind = operation.stream_kind(response)
        if kind is not None:
            state = StreamState(
                recorder, invocation, operation.accumulator(prepared), _estimator(operation, prepared), call.hops
            )
            if call.hops is not None:  # its requests are sent while it is read
                proxy = HopSyncStreamProxy if kind == "sync" else HopAsyncStreamProxy
            else:
                proxy = SyncStreamProxy if kind == "sync" else AsyncStreamProxy
            with_stream = getattr(operation, "with_stream", None)
            if with_stream is None:
                return proxy(response, state)
            return with_stream(response, lambda stream: proxy(stream, state))
        if prepared.raw_mode is not None:
            return _returned_raw(operation, recorder, call, response)
        result = operation.result(response, recorder.capture_enabled)
        if call.hops is not None:
            result = with_hops(result, call.hops)
        usage = result.usage
        if usage is not None and not usage.invalid:  # the usual case: nothing to estimate
            recorder.finish(invocation, result)
        else:
            recorder.finish(invocation, result, estimate=_result_estimator(operation, prepared, result))
    except Exception:
        log_internal_error("recording a response")
        if raise_internal_errors():
            raise
        guarded("closing a span", recorder.finish, call.invocation, None)
    return response


def _returned_raw(operation: Operation, recorder: Recorder, call: _Call, response: Any) -> Any:
    # with_raw_response: parse() caches, so the caller's own parse() gets the same object back.
    prepared = call.prepared
    if prepared.raw_mode == "true" and not prepared.request.stream and hasattr(response, "parse"):
        result = operation.result(response.parse(), recorder.capture_enabled)
        recorder.finish(call.invocation, result, estimate=_result_estimator(operation, prepared, result))
        return response
    if hasattr(response, "parse"):
        # A raw stream or a with_streaming_response body is the caller's to read: usage is read when
        # the caller parses it; a body never parsed ends as usage unknown (flagged and counted).
        return _UnreadResponseProxy(response, _UnreadBody(operation, recorder, call))
    recorder.finish(call.invocation, None)
    return response


class _UnreadBody:
    """The call behind a response whose body the caller reads; finishes exactly once."""

    __slots__ = ("_operation", "_recorder", "_call", "_done", "_finalizer", "__weakref__")

    def __init__(self, operation: Operation, recorder: Recorder, call: _Call) -> None:
        self._operation = operation
        self._recorder = recorder
        self._call = call
        self._done = False
        self._finalizer: Any = None

    def watch(self, proxy: Any) -> None:
        self._finalizer = weakref.finalize(proxy, self.unread)
        self._finalizer.atexit = False

    def parsed(self, parsed: Any) -> Any:
        """What the caller's parse() returns: a stream is proxied (its call finishes with it)."""
        if self._done:
            return parsed
        self._done = True
        self._finalizer.detach()
        try:
            # The body is parsed now: record it as a plain call (or stream) would be.
            prepared = self._call.prepared._replace(raw_mode=None)
            return _returned(self._operation, self._recorder, _Call(prepared, self._call.invocation), parsed)
        except Exception:  # _returned logs; under the test switch it re-raises
            if raise_internal_errors():
                raise
            return parsed

    async def parsed_async(self, awaitable: Any) -> Any:
        return self.parsed(await awaitable)

    def unread(self) -> None:
        if not self._done:
            self._done = True
            if self._finalizer is not None:
                self._finalizer.detach()
            guarded("recording an unread response", self._recorder.finish, self._call.invocation, None)


class _UnreadResponseProxy(wrapt.ObjectProxy):
    """``with_streaming_response`` / raw stream responses: the SDK's own response object, whose
    ``parse()`` also hands the parsed body to the engine."""

    def __init__(self, wrapped: Any, body: _UnreadBody) -> None:
        super().__init__(wrapped)
        self._self_body = body
        body.watch(self)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(parsed):
            return self._self_body.parsed_async(parsed)
        return self._self_body.parsed(parsed)

    def close(self) -> Any:
        closed = self.__wrapped__.close()
        if inspect.isawaitable(closed):
            return self._closed_async(closed)
        self._self_body.unread()
        return closed

    async def _closed_async(self, closing: Any) -> Any:
        try:
            return await closing
        finally:
            self._self_body.unread()


def _estimator(operation: Operation, prepared: Prepared) -> Callable[[Result], Usage | None] | None:
    if not getattr(operation, "estimates_usage", True):
        return None

    def estimate(result: Result) -> Usage | None:
        from otel_tokens._internal.pricing.tokenizer import count_tokens

        model = result.response_model or prepared.request.model
        prompt_tokens = getattr(operation, "prompt_tokens", None)
        return Usage(
            input_tokens=prompt_tokens(prepared.prompt_inputs, model) if prompt_tokens is not None
            else count_tokens(operation.prompt_text(prepared.prompt_inputs), model),
            output_tokens=count_tokens(result.output_text or "", model),
            estimated=True,
        )

    return estimate


def _result_estimator(
    operation: Operation, prepared: Prepared, result: Result
) -> Callable[[], Usage | None] | None:
    if result.usage is not None and not result.usage.invalid:
        return None  # the usual case: nothing to estimate, nothing to build
    estimate = _estimator(operation, prepared)
    return None if estimate is None else lambda: estimate(result)


def _sync_wrapper(operation: Operation, recorder: Recorder, switch: Switch) -> Callable[..., Any]:
    accepts = getattr(operation, "accepts", None)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not switch.on or (accepts is not None and not accepts(instance, args, kwargs)):
            return wrapped(*args, **kwargs)
        call = _begin(operation, recorder, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        prepared = call.prepared
        try:
            response = wrapped(*(args if prepared.args is None else prepared.args), **prepared.kwargs)
        except BaseException as error:
            _failed(recorder, call, error, instance)
            raise
        return _returned(operation, recorder, call, response)

    return wrapper


def _async_wrapper(operation: Operation, recorder: Recorder, switch: Switch) -> Callable[..., Any]:
    accepts = getattr(operation, "accepts", None)

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not switch.on or (accepts is not None and not accepts(instance, args, kwargs)):
            return await wrapped(*args, **kwargs)
        call = await _begin_async(operation, recorder, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        prepared = call.prepared
        try:
            response = await wrapped(*(args if prepared.args is None else prepared.args), **prepared.kwargs)
        except BaseException as error:
            _failed(recorder, call, error, instance)
            raise
        return _returned(operation, recorder, call, response)

    return wrapper


def _hop_wrapper(operation: HopOperation, switch: Switch) -> Callable[..., Any]:
    """For an SDK's per-request method: inside a call that counts hops, each request is one hop."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        hops = CURRENT_HOPS.get() if switch.on else None
        response = wrapped(*args, **kwargs)
        if hops is None:
            return response
        return _observed_hop(operation, hops, response)

    return wrapper


def _async_hop_wrapper(operation: HopOperation, switch: Switch) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        hops = CURRENT_HOPS.get() if switch.on else None
        response = await wrapped(*args, **kwargs)
        if hops is None:
            return response
        return _observed_hop(operation, hops, response)

    return wrapper


def _outside_the_call() -> tuple[contextvars.Token, contextvars.Token]:
    return _IN_CALL.set(False), CURRENT_HOPS.set(None)


def _back_in_the_call(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    CURRENT_HOPS.reset(tokens[1])
    _IN_CALL.reset(tokens[0])


def _user_code_wrapper(switch: Switch) -> Callable[..., Any]:
    """The caller's own functions, run by the SDK inside a recorded call, are not part of it: their LLM
    calls are recorded as calls of their own, and their requests are not the outer call's hops."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not (switch.on and _IN_CALL.get()):
            return wrapped(*args, **kwargs)
        tokens = _outside_the_call()
        try:
            return wrapped(*args, **kwargs)
        finally:
            _back_in_the_call(tokens)

    return wrapper


def _async_user_code_wrapper(switch: Switch) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not (switch.on and _IN_CALL.get()):
            return await wrapped(*args, **kwargs)
        tokens = _outside_the_call()
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _back_in_the_call(tokens)

    return wrapper


def _observed_hop(operation: HopOperation, hops: list[Any], response: Any) -> Any:
    """Add a request's result (or, for a stream, its accumulator) to the call's hops; return what the
    SDK gets: the response, or a stream that feeds the accumulator."""
    try:
        kind = operation.stream_kind(response)
        if kind is None:
            hops.append(operation.result(response, False))
            return response
        accumulator = operation.hop_accumulator()
        hops.append(accumulator)
        return (HopSyncStream if kind == "sync" else HopAsyncStream)(response, accumulator)
    except Exception:
        log_internal_error("reading one request of a call")
        if raise_internal_errors():
            raise
        return response


def _manager_wrapper(raw_stream_of: Callable[[Any], Any], switch: Switch) -> Callable[..., Any]:
    """For helpers whose manager calls a wrapped ``create`` on enter: finish on the manager's exit."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        manager = wrapped(*args, **kwargs)
        if not switch.on:
            return manager
        try:
            return StreamManagerProxy(manager, raw_stream_of)
        except Exception:
            log_internal_error("wrapping a stream manager")
            return manager

    return wrapper


def _sending_manager_wrapper(operation: HelperOperation, recorder: Recorder, switch: Switch) -> Callable[..., Any]:
    """For helpers whose manager sends the request itself on enter (anthropic ``messages.stream()``
    calls ``_post``, not a wrapped ``create``): the call starts when the manager is entered."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        manager = wrapped(*args, **kwargs)
        if not switch.on:
            return manager
        try:
            return _SendingManagerProxy(manager, operation, recorder, switch, (instance, args, kwargs))
        except Exception:
            log_internal_error("wrapping a stream manager")
            if raise_internal_errors():
                raise
            return manager

    return wrapper


class _SendingManagerProxy(wrapt.ObjectProxy):
    """The caller gets the manager's own helper stream, which reads the SDK's raw stream through our
    proxy. The call finishes with that stream (exhaustion, close, error, abandonment) or when the
    manager's context is left (an early ``break``). ``Prepared.kwargs`` is not sent: the manager has
    bound its arguments already."""

    def __init__(
        self, wrapped: Any, operation: HelperOperation, recorder: Recorder, switch: Switch, call_args: tuple
    ) -> None:
        super().__init__(wrapped)
        self._self_operation = operation
        self._self_recorder = recorder
        self._self_switch = switch
        self._self_call_args = call_args  # (instance, args, kwargs) of the helper call
        self._self_state: StreamState | None = None

    def _begin(self) -> _Call | None:
        if not self._self_switch.on:
            return None
        return _begin(self._self_operation, self._self_recorder, *self._self_call_args)

    def _entered(self, call: _Call, helper_stream: Any) -> None:
        # Before the helper's first read: it reads its raw stream lazily, on first iteration.
        attribute = self._self_operation.raw_stream_attribute
        raw = getattr(helper_stream, attribute, None)
        proxy = _returned(self._self_operation, self._self_recorder, call, raw)
        if proxy is not raw:
            self._self_state = proxy._self_state
            guarded("wrapping a helper's stream", setattr, helper_stream, attribute, proxy)

    def _exited(self) -> None:
        state, self._self_state = self._self_state, None
        if state is not None:
            state.finish()

    def __enter__(self) -> Any:
        call = self._begin()
        if call is None:
            return self.__wrapped__.__enter__()
        try:
            helper_stream = self.__wrapped__.__enter__()
        except BaseException as error:
            _failed(self._self_recorder, call, error, self._self_call_args[0])
            raise
        self._entered(call, helper_stream)
        return helper_stream

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._exited()

    async def __aenter__(self) -> Any:
        call = None
        if self._self_switch.on:
            call = await _begin_async(self._self_operation, self._self_recorder, *self._self_call_args)
        if call is None:
            return await self.__wrapped__.__aenter__()
        try:
            helper_stream = await self.__wrapped__.__aenter__()
        except BaseException as error:
            _failed(self._self_recorder, call, error, self._self_call_args[0])
            raise
        self._entered(call, helper_stream)
        return helper_stream

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._exited()
