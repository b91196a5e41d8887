"""GenAI spans other instrumentations emit, read into calls and recorded like ``record_usage()``.

:class:`SpanCalls` is a ``SpanProcessor``. It records a foreign span when it ends if it is an inference span
(``gen_ai.operation.name`` ``chat``, ``text_completion``, ``generate_content``, ``embeddings`` and older
spellings, or OpenInference kind ``LLM``/``EMBEDDING``), through the runtime's recorder with no second span:
metrics, ledger, budgets and sinks, marked ``otel_tokens.source`` = the span's instrumentation scope.

Never counted: otel-tokens' own spans (scope ``otel_tokens``); agent, workflow and chain spans, which
repeat their children's usage (``invoke_agent`` with usage, ``gen_ai.aggregated_usage.*``, OpenInference
``AGENT``/``CHAIN``); a foreign inference span with one of otel-tokens' own LLM spans below it (a framework's
model span around an SDK call we instrument); and a foreign span describing a call otel-tokens' instrumentor
recorded (two instrumentations on one SDK). The last is matched within a trace on ``gen_ai.response.id``,
else on the exact (input, output) counts, in either order of ending: a foreign span that ends while one of
our LLM spans of its trace is open waits (bounded, at most ``_PENDING_WAIT_S``) until those end.

Attribution follows spans, not context: each span started under an agent span (``invoke_agent``,
OpenInference ``AGENT``) inherits its agent from its parent's entry, so it works across threads and tasks.
Entries are kept only for open spans that need one and dropped when the span ends (and capped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.trace import StatusCode

from otel_tokens import semconv
from otel_tokens._internal.base.errors import ReportedError
from otel_tokens._internal.base.records import NO_LABELS, Labels, Request, Result, make_usage, valid_cost
from otel_tokens._internal.base.safety import log_internal_error, raise_internal_errors
from otel_tokens._internal.calls.context import scope_labels

if TYPE_CHECKING:  # the SDK's trace module is not imported at run time: it fails on a bad environment
    from opentelemetry.sdk.trace import ReadableSpan, Span

_logger = logging.getLogger("otel_tokens")

# -- what other sources write (read only) ----------------------------------------------------------
OPENINFERENCE_KIND: Final = "openinference.span.kind"
# gen_ai.operation.name values (current, and Semantic Kernel's) -> our operation
OPERATIONS: Final[Mapping[str, str]] = {
    semconv.OP_CHAT: semconv.OP_CHAT,
    semconv.OP_TEXT_COMPLETION: semconv.OP_TEXT_COMPLETION,
    semconv.OP_GENERATE_CONTENT: semconv.OP_GENERATE_CONTENT,
    semconv.OP_EMBEDDINGS: semconv.OP_EMBEDDINGS,
    "chat.completions": semconv.OP_CHAT,
    "chat.streaming_completions": semconv.OP_CHAT,
    "text.completions": semconv.OP_TEXT_COMPLETION,
    "text.streaming_completions": semconv.OP_TEXT_COMPLETION,
}
OPENINFERENCE_KINDS: Final[Mapping[str, str]] = {"LLM": semconv.OP_CHAT, "EMBEDDING": semconv.OP_EMBEDDINGS}
AGENT_KIND: Final = "AGENT"

INPUT_NAMES: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                      "gen_ai.response.prompt_tokens")
OUTPUT_NAMES: Final = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                       "gen_ai.response.completion_tokens")
CACHE_READ_NAMES: Final = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                           "llm.token_count.prompt_details.cache_read")
CACHE_WRITE_NAMES: Final = ("gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
                            "gen_ai.usage.cache_write_input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                            "llm.token_count.prompt_details.cache_write")
REASONING_NAMES: Final = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                          "llm.token_count.completion_details.reasoning")
TOTAL_NAMES: Final = ("gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens")
PROVIDER_NAMES: Final = (semconv.GEN_AI_PROVIDER_NAME, "gen_ai.system", "llm.provider", "llm.system")
REQUEST_MODEL_NAMES: Final = (semconv.GEN_AI_REQUEST_MODEL, "llm.model_name", "embedding.model_name")
RESPONSE_MODEL_NAMES: Final = (semconv.GEN_AI_RESPONSE_MODEL, "llm.model_name", "embedding.model_name")
AGENT_NAMES: Final = (semconv.GEN_AI_AGENT_NAME, "agent.name")

# Other names for well-known gen_ai.provider.name values: legacy gen_ai.system values and OpenInference's
# llm.provider / llm.system values.
PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "az.ai.inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "xai": "x_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "mistralai": "mistral_ai",
}
# genai-prices provider ids -> gen_ai.provider.name, for providers resolved from a model name.
_FROM_PRICE_IDS: Final[Mapping[str, str]] = {
    "azure": "azure.ai.openai", "aws": "aws.bedrock", "google": "gcp.gemini", "x-ai": "x_ai",
    "mistral": "mistral_ai", "moonshotai": "moonshot_ai", "together": "together_ai",
}
UNKNOWN_PROVIDER: Final = "unknown"
UNKNOWN_SOURCE: Final = "unknown"

# Bounds: open spans with an entry, otel-tokens' recent calls per trace, foreign spans waiting for ours.
_MAX_OPEN: Final = 100_000
_MAX_RECENT: Final = 4096
_MAX_PENDING: Final = 1024
_PENDING_WAIT_S: Final = 30.0
_MAX_PROVIDERS: Final = 1024


class _Open:
    """What the processor keeps about one open span."""

    __slots__ = ("agent", "labels", "foreign_call", "ours_call", "covered")

    def __init__(self, agent: Any, labels: Labels, foreign_call: _Open | None, ours_call: bool) -> None:
        # The agent's name, or the agent span itself when it had no name yet at start (read at use).
        self.agent = agent
        self.labels = labels
        # The nearest open foreign inference span at or above this one (this entry when it is one).
        self.foreign_call = foreign_call
        self.ours_call = ours_call
        # A foreign inference span with one of otel-tokens' own LLM spans below it: a duplicate.
        self.covered = False


class _Call:
    __slots__ = ("request", "result", "labels", "duration_s", "error", "keys", "trace_id", "deadline")

    def __init__(self, request: Request, result: Result, labels: Labels, duration_s: float,
                 error: BaseException | None, keys: tuple, trace_id: int) -> None:
        self.request, self.result, self.labels = request, result, labels
        self.duration_s, self.error, self.keys, self.trace_id = duration_s, error, keys, trace_id
        self.deadline = time.monotonic() + _PENDING_WAIT_S


class SpanCalls:
    """Records inference spans of other instrumentations into ``runtime()`` (an object with ``recorder``
    and ``price_book``; None: record nothing). Hooks never raise and never wait on I/O of their own.

    It has every method of the SDK's ``SpanProcessor`` without subclassing it: importing
    ``opentelemetry.sdk.trace`` raises on a malformed ``OTEL_SPAN_*`` variable, and otel-tokens must still
    start then. The public ``GenAISpanProcessor`` (``setup.processor``) is a ``SpanProcessor`` too."""

    def __init__(self, runtime: Callable[[], Any]) -> None:
        self._runtime = runtime
        self._open: dict[int, _Open] = {}
        self._lock = threading.Lock()
        # trace id -> otel-tokens LLM spans open in it
        self._ours_open: dict[int, int] = {}
        # (trace id, key) of otel-tokens' calls that ended with no foreign twin yet -> all that call's keys,
        # oldest first
        self._ours_recent: dict[tuple, tuple] = {}
        # trace id -> foreign calls waiting for otel-tokens' open calls of that trace to end
        self._pending: dict[int, list[_Call]] = {}
        self._pending_count = 0
        self._providers: dict[str, str | None] = {}
        self._full_logged = False

    # -- SpanProcessor ------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Any = None) -> None:
        try:
            self._started(span)
        except Exception:
            _internal_error("reading a span that started")

    def _on_ending(self, span: Span) -> None:
        """The SDK's hook before a span ends (still mutable); nothing to do then."""

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._ended(span)
        except Exception:
            _internal_error("reading a span that ended")

    def shutdown(self) -> None:
        self.force_flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Record foreign calls still waiting for a twin; True (nothing else is buffered)."""
        try:
            with self._lock:
                waiting = [call for calls in self._pending.values() for call in calls]
                self._pending.clear()
                self._pending_count = 0
            for call in waiting:
                self._record(call)
        except Exception:
            _internal_error("recording waiting spans")
        return True

    # -- start: ancestry ----------------------------------------------------------------------------
    def _started(self, span: Span) -> None:
        parent = span.parent
        above = self._open.get(parent.span_id) if parent is not None else None
        attributes = span.attributes or {}
        operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
        kind = attributes.get(OPENINFERENCE_KIND)
        scope = span.instrumentation_scope
        ours = scope is not None and scope.name == semconv.SCOPE_NAME
        inference = operation in OPERATIONS or kind in OPENINFERENCE_KINDS
        if operation == semconv.OP_INVOKE_AGENT or kind == AGENT_KIND:
            agent = _first(attributes, AGENT_NAMES) or span
        else:
            agent = above.agent if above is not None else None
        foreign_call = above.foreign_call if above is not None else None
        if ours:
            labels = NO_LABELS
            if inference:
                if foreign_call is not None:
                    foreign_call.covered = True
                with self._lock:
                    trace_id = span.context.trace_id
                    self._ours_open[trace_id] = self._ours_open.get(trace_id, 0) + 1
        else:
            labels = scope_labels()
        if above is None and agent is None and labels is NO_LABELS and not inference:
            return  # the common case: a span with nothing to inherit or remember
        if len(self._open) >= _MAX_OPEN:
            if not self._full_logged:
                self._full_logged = True
                _logger.warning("more than %d open spans tracked (spans that never end?); further spans "
                                "get no agent attribution", _MAX_OPEN)
            if not (ours and inference):
                return
        entry = _Open(agent, labels, foreign_call, ours and inference)
        if inference and not ours:
            entry.foreign_call = entry
        self._open[span.context.span_id] = entry

    # -- end: record or skip --------------------------------------------------------------------------
    def _ended(self, span: ReadableSpan) -> None:
        context = span.context
        entry = self._open.pop(context.span_id, None)
        scope = span.instrumentation_scope
        if scope is not None and scope.name == semconv.SCOPE_NAME:
            if entry is not None and entry.ours_call:
                self._ours_ended(span)
            return
        attributes = span.attributes or {}
        operation = OPERATIONS.get(attributes.get(semconv.GEN_AI_OPERATION_NAME))  # type: ignore[arg-type]
        if operation is None:
            operation = OPENINFERENCE_KINDS.get(attributes.get(OPENINFERENCE_KIND))  # type: ignore[arg-type]
            if operation is None:
                return  # not an inference span (agents, tools, workflows, HTTP, ...): nothing to count
        if entry is not None and entry.covered:
            return  # otel-tokens recorded the SDK call inside it
        call = self._read(span, attributes, operation, entry)
        waiting_for_ours = False
        with self._lock:
            recent = self._ours_recent
            twin = next((recent[key] for key in call.keys if key in recent and _twins(call.keys, recent[key])),
                        None)
            if twin is not None:
                for key in twin:  # all that call's keys: it is matched now
                    recent.pop(key, None)
                return  # otel-tokens' instrumentor recorded this call already
            if self._ours_open.get(call.trace_id) and self._pending_count < _MAX_PENDING:
                self._pending.setdefault(call.trace_id, []).append(call)
                self._pending_count += 1
                waiting_for_ours = True
        if not waiting_for_ours:
            self._record(call)
        self._record_overdue()

    def _ours_ended(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id
        keys = _keys(trace_id, span.attributes or {}, None)
        released: list[_Call] = []
        with self._lock:
            left = self._ours_open.get(trace_id, 1) - 1
            if left > 0:
                self._ours_open[trace_id] = left
            else:
                self._ours_open.pop(trace_id, None)
            waiting = self._pending.get(trace_id)
            twin = None
            if waiting:
                twin = next((call for call in waiting if _twins(call.keys, keys)), None)
                if twin is not None:
                    waiting.remove(twin)
                    self._pending_count -= 1
            if twin is None and keys:
                recent = self._ours_recent
                for key in keys:
                    recent[key] = keys
                while len(recent) > _MAX_RECENT:
                    del recent[next(iter(recent))]
            if left <= 0:
                released = self._pending.pop(trace_id, [])
                self._pending_count -= len(released)
        for call in released:
            self._record(call)

    def _record_overdue(self) -> None:
        if not self._pending_count:
            return
        now = time.monotonic()
        overdue: list[_Call] = []
        with self._lock:
            for trace_id in list(self._pending):
                calls = self._pending[trace_id]
                late = [call for call in calls if call.deadline <= now]
                if late:
                    overdue += late
                    calls[:] = [call for call in calls if call.deadline > now]
                    if not calls:
                        del self._pending[trace_id]
            self._pending_count -= len(overdue)
        for call in overdue:
            self._record(call)

    # -- reading a span -------------------------------------------------------------------------------
    def _read(self, span: ReadableSpan, attributes: Mapping[str, Any], operation: str, entry: _Open | None) -> _Call:
        input_tokens = _first(attributes, INPUT_NAMES)
        output_tokens = _first(attributes, OUTPUT_NAMES)
        cache_read = _first(attributes, CACHE_READ_NAMES)
        cache_write = _first(attributes, CACHE_WRITE_NAMES)
        reasoning = _first(attributes, REASONING_NAMES)
        input_tokens, output_tokens = _inclusive(attributes, input_tokens, output_tokens, cache_read, cache_write,
                                                 reasoning)
        usage = make_usage(input_tokens, output_tokens, cache_read, cache_write, reasoning)
        request_model = _text(_first(attributes, REQUEST_MODEL_NAMES))
        response_model = _text(_first(attributes, RESPONSE_MODEL_NAMES))
        model = request_model or response_model
        cost = None
        if attributes.get(semconv.GEN_AI_USAGE_COST_CURRENCY, semconv.COST_CURRENCY_USD) == semconv.COST_CURRENCY_USD:
            cost = valid_cost(attributes.get(semconv.GEN_AI_USAGE_COST_AMOUNT))
        finish = attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
        result = Result(
            usage=usage, response_model=response_model, response_id=_text(attributes.get(semconv.GEN_AI_RESPONSE_ID)),
            finish_reasons=tuple(str(reason) for reason in finish) if isinstance(finish, (tuple, list)) else (),
            provider_cost_usd=cost,
        )
        port = attributes.get(semconv.SERVER_PORT)
        scope = span.instrumentation_scope
        request = Request(
            provider=self._provider(_text(_first(attributes, PROVIDER_NAMES)), model),
            operation=operation, model=model, server_address=_text(attributes.get(semconv.SERVER_ADDRESS)),
            server_port=port if type(port) is int and 0 < port <= 65535 else None,
            source=(scope.name if scope is not None and scope.name else UNKNOWN_SOURCE),
        )
        labels = entry.labels if entry is not None else NO_LABELS
        agent = _text(attributes.get(semconv.GEN_AI_AGENT_NAME))
        if agent is None and entry is not None and entry.agent is not None:
            agent = entry.agent if isinstance(entry.agent, str) else _text(
                _first(getattr(entry.agent, "attributes", None) or {}, AGENT_NAMES))
        if agent is not None and agent != labels.agent:
            labels = Labels(agent=agent, workflow=labels.workflow, task=labels.task, user=labels.user)
        error = None
        status = span.status
        if status is not None and status.status_code is StatusCode.ERROR:
            error = ReportedError(_text(attributes.get(semconv.ERROR_TYPE)) or semconv.ERROR_TYPE_OTHER,
                                  status.description)
        start, end = span.start_time, span.end_time
        duration = (end - start) / 1e9 if start is not None and end is not None and end >= start else 0.0
        trace_id = span.context.trace_id
        return _Call(request, result, labels, duration, error, _keys(trace_id, attributes, usage), trace_id)

    def _provider(self, named: str | None, model: str | None) -> str:
        """gen_ai.provider.name for a span: its own when it names a provider; a framework's own name
        (``strands-agents``, ``gcp.vertex.agent``) is replaced by the model's provider when prices know it."""
        if named is not None:
            named = PROVIDER_ALIASES.get(named.lower(), named)
        key = f"{named}|{model}"
        known = self._providers.get(key)
        if known is not None or key in self._providers:
            return known or named or UNKNOWN_PROVIDER
        resolved = None
        runtime = self._runtime()
        book = getattr(runtime, "price_book", None)
        if book is not None and model and (named is None or named not in book.known_providers()):
            found = book.providers_for(model)
            if len(found) == 1:
                resolved = _FROM_PRICE_IDS.get(found[0], found[0])
        if len(self._providers) < _MAX_PROVIDERS:
            self._providers[key] = resolved
        return resolved or named or UNKNOWN_PROVIDER

    def _record(self, call: _Call) -> None:
        runtime = self._runtime()
        if runtime is None:
            return
        try:
            recorder = runtime.recorder
            invocation = recorder.start(call.request, call.labels, elapsed_s=call.duration_s, traced=False)
            recorder.finish(invocation, call.result, call.error)
        except Exception:
            _internal_error("recording another instrumentation's span")


def _first(attributes: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _inclusive(attributes: Mapping[str, Any], input_tokens: Any, output_tokens: Any, cache_read: Any,
               cache_write: Any, reasoning: Any) -> tuple[Any, Any]:
    """(input, output) in semconv terms. Some sources count cache tokens outside input (Bedrock's
    ``inputTokens`` through Strands, Anthropic's ``input_tokens``): when the span's total says so, or the
    cache counts exceed input, they are added. Likewise reasoning above output is added to output."""
    cached = sum(value for value in (cache_read, cache_write) if type(value) is int)
    if cached and type(input_tokens) is int:
        total = _first(attributes, TOTAL_NAMES)
        outside = type(output_tokens) is int and total == input_tokens + output_tokens + cached
        if outside or cached > input_tokens:
            input_tokens += cached
    if type(reasoning) is int and type(output_tokens) is int and reasoning > output_tokens:
        output_tokens += reasoning
    return input_tokens, output_tokens


def _keys(trace_id: int, attributes: Mapping[str, Any], usage: Any) -> tuple:
    """What identifies a call within its trace: its response id, and its exact (input, output) counts
    (for sources that record no response id, such as OpenInference)."""
    keys: tuple = ()
    response_id = attributes.get(semconv.GEN_AI_RESPONSE_ID)
    if isinstance(response_id, str) and response_id:
        keys = ((trace_id, "id", response_id),)
    if usage is None:
        input_tokens = attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)
        output_tokens = attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 0)  # absent on embeddings
    else:
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
    if type(input_tokens) is int and type(output_tokens) is int and (input_tokens or output_tokens):
        keys += ((trace_id, "usage", input_tokens, output_tokens),)
    return keys


def _twins(keys: tuple, others: tuple) -> bool:
    """Two calls' keys describe one call: the same response id when both have one, else the same counts."""
    ids = [key for key in keys if key[1] == "id"]
    other_ids = [key for key in others if key[1] == "id"]
    if ids and other_ids:
        return ids[0] == other_ids[0]
    return any(key in others for key in keys if key[1] == "usage")


def _internal_error(what: str) -> None:
    log_internal_error(what)
    if raise_internal_errors():
        raise  # noqa: PLE0704 - called only while an exception is being handled


__all__ = ["SpanCalls"]
