"""The recorder: the one place that turns a call into a span, metric points and a cost.

Adapters parse; the engine decides when a call starts and ends; the recorder writes telemetry. The
cost is computed in its own guarded step, so a pricing failure never loses the token counts.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol

from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from otel_tokens import semconv
from otel_tokens._internal.base.errors import ReportedError
from otel_tokens._internal.base.instruments import Instruments, LatestInstruments
from otel_tokens._internal.base.records import (
    MAX_TOKENS,
    NO_EXTRA,
    NO_LABELS,
    CallRecord,
    Labels,
    Request,
    Result,
    Usage,
    valid_cost,
)
from otel_tokens._internal.base.redact import error_text
from otel_tokens._internal.base.safety import OnceEach, guarded, log_internal_error, raise_internal_errors
from otel_tokens._internal.base.settings import Settings

_logger = logging.getLogger("otel_tokens")

# Usage details that count server-side tool calls -> their span attribute.
_SERVER_TOOL_ATTRIBUTES: Final = {
    "web_searches": semconv.OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH,
    "storage_searches": semconv.OTEL_TOKENS_SERVER_TOOL_FILE_SEARCH,
}


class PriceSource(Protocol):
    def price(self, provider: str, model: str, usage: Usage) -> Any:
        """The call's price (``PriceBook.price``: ``input_usd`` and ``output_usd`` summing to the cost,
        ``source``, ``fees_usd``, ``unpriced``); None when the model has no known price."""


class Budgets(Protocol):
    def reserve(
        self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None, *, enforce: bool = True
    ) -> Any:
        """Called before a call is sent (``prompt_text`` gives the prompt's text, or its token count when
        the adapter counts the chat format); may raise BudgetExceededError unless ``enforce`` is False (a call
        that already happened). Returns a reservation."""

    def settle(self, reservation: Any, record: CallRecord | None) -> Sequence[tuple[str, dict[str, Any]]]:
        """Called when the call finished (None: it never started); returns span events to add."""

    async def reserve_async(self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None) -> Any:
        """``reserve`` for async callers: must not block the event loop (e.g. on a network store)."""

    def observe(self, record: CallRecord) -> None:
        """Every finished call, budget or not: what it produced informs the next projections. O(1)."""


class Ledger(Protocol):
    def record(self, record: CallRecord) -> None: ...


class SeenBatches(Protocol):
    def first_sighting(self, provider: str, batch_id: str) -> bool:
        """True the first time a finished batch is seen (then its calls are recorded); never raises."""


class Invocation:
    """An in-flight call. Mutable on purpose: streams fill it in chunk by chunk."""

    __slots__ = (
        "request", "labels", "span", "started", "first_chunk_at", "reservation", "finished",
        "input_messages", "system_instructions", "request_attributes",
    )

    def __init__(
        self, request: Request, labels: Labels, span: Any, reservation: Any, request_attributes: dict[str, Any]
    ) -> None:
        self.request = request
        # What span and metric points share, built once.
        self.request_attributes = request_attributes
        self.labels = labels
        self.span = span
        self.started = time.perf_counter()
        self.first_chunk_at: float | None = None
        self.reservation = reservation
        self.finished = False
        self.input_messages: Any = None
        self.system_instructions: Any = None


class Recorder:
    def __init__(
        self,
        tracer: Tracer,
        instruments: Instruments,
        prices: PriceSource | None,
        settings: Settings,
        *,
        budgets: Budgets | None = None,
        ledger: Ledger | None = None,
        sinks: Sequence[Callable[[CallRecord], None]] = (),
        batches: SeenBatches | None = None,
        latest: LatestInstruments | None = None,
        details_logger: Any = None,
    ) -> None:
        """``latest``: write the GenAI conventions' newer metrics instead of the core ones (opted into).
        ``details_logger``: an OpenTelemetry Logs API logger for the content event (content capture in
        events); None writes no event."""
        self._tracer = tracer
        self._instruments = instruments
        self._latest = latest
        self._prices = prices
        self.settings = settings
        self.capture_enabled = settings.capture_content.enabled  # read on every call
        self._content_on_span = settings.capture_content.on_span
        self._details_logger = details_logger if settings.capture_content.on_event else None
        self._debug: Any = None
        if self._details_logger is not None:  # only events need the logs API: not imported otherwise
            from opentelemetry._logs import SeverityNumber

            self._debug = SeverityNumber.DEBUG
        self._budgets = budgets
        self._ledger = ledger
        self._sinks = tuple(sinks)
        # Finished batches counted already; read only when a batch job is seen finished.
        self.batches = batches
        self._warnings = OnceEach()
        # Attribute dicts built once per distinct request / metric attribute set (bounded).
        self._requests: dict[tuple, dict[str, Any]] = {}
        # (provider, server.address, model) -> (price provider, model): gateway names priced elsewhere.
        self.gateway_prices: dict[tuple[str, str | None, str], tuple[str, str]] = {}
        self._points: dict[tuple, _MetricPoints] = {}

    # -- start -------------------------------------------------------------------------------------
    def start(
        self,
        request: Request,
        labels: Labels = NO_LABELS,
        prompt_text: Callable[[], str] | None = None,
        *,
        elapsed_s: float | None = None,
        traced: bool = True,
    ) -> Invocation:
        """Open the span. A blocking budget raises BudgetExceededError here, before anything is sent.

        ``elapsed_s``: the call already happened and took this long (``record_usage``); the span starts
        that long ago, and a blocking budget counts the call instead of stopping it. ``traced=False``: the
        call has a span already (another instrumentation's), so it gets no second one; everything else
        (metrics, ledger, budgets, sinks) is the same.
        """
        reservation = None
        if self._budgets is not None:
            # Every call: budgets may apply by agent, workflow, task, user, total or per request.
            if elapsed_s is None:
                reservation = self._budgets.reserve(request, labels, prompt_text)
            else:
                reservation = self._budgets.reserve(request, labels, None, enforce=False)
        return self._open(request, labels, reservation, elapsed_s, traced)

    async def start_async(self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None) -> Invocation:
        """:meth:`start` for async calls: a budget check that needs the network runs off the event loop."""
        budgets = self._budgets
        reservation = await budgets.reserve_async(request, labels, prompt_text) if budgets is not None else None
        return self._open(request, labels, reservation, None)

    def _open(
        self, request: Request, labels: Labels, reservation: Any, elapsed_s: float | None, traced: bool = True
    ) -> Invocation:
        if not traced:
            invocation = Invocation(request, labels, INVALID_SPAN, reservation, self._request_attributes(request))
            if elapsed_s:
                invocation.started -= elapsed_s
            return invocation
        try:
            request_attributes = self._request_attributes(request)
            attributes = _start_attributes(request, labels, request_attributes)
            name = f"{request.operation} {request.model}" if request.model else request.operation
            start_time = time.time_ns() - round(elapsed_s * 1e9) if elapsed_s else None
            span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_time)
        except Exception:
            if reservation is not None:
                self._budgets.settle(reservation, None)  # type: ignore[union-attr]
            raise
        invocation = Invocation(request, labels, span, reservation, request_attributes)
        if elapsed_s:
            invocation.started -= elapsed_s
        return invocation

    def _request_attributes(self, request: Request) -> dict[str, Any]:
        """What span and metric points say about the request; one shared dict per distinct request."""
        key = (request.provider, request.operation, request.model, request.server_address, request.server_port,
               request.source)
        attributes = self._requests.get(key)
        if attributes is None:
            attributes = _request_attributes(request)
            if len(self._requests) < _MAX_POINT_SETS:
                self._requests[key] = attributes
        return attributes

    # -- finish ------------------------------------------------------------------------------------
    def finish(
        self,
        invocation: Invocation,
        result: Result | None,
        error: BaseException | None = None,
        *,
        estimate: Callable[[], Usage | None] | None = None,
        estimate_on_error: bool = False,
    ) -> CallRecord | None:
        """Close the call exactly once: usage, cost, budgets, span, metrics, ledger, sinks. Returns the
        call's record (None if it was already closed).

        The span always ends and the call is always counted; each step after the record is built is
        guarded on its own, so one failing step (or a budget callback raising) loses nothing else.
        ``estimate_on_error``: the call failed after it was billed (a stream cut off), so what was
        received is still estimated.
        """
        if invocation.finished:
            return None
        invocation.finished = True
        duration = time.perf_counter() - invocation.started
        # Each step is guarded on its own (try blocks, not guarded(): no call on the hot path).
        try:
            record = self._record(invocation, result, error, estimate, estimate_on_error, duration)
        except Exception:
            _internal_error("reading a call's result")
            record = CallRecord(  # still count the call and end its span
                request=invocation.request, result=None, labels=invocation.labels, duration_s=duration,
                end_time_unix=time.time(), error_type=_error_type(error) if error is not None else None,
            )
        events: Sequence[tuple[str, dict[str, Any]]] = ()
        budgets = self._budgets
        try:
            if budgets is not None:
                try:
                    budgets.observe(record)
                except Exception:
                    _internal_error("noting a call's output for budget projections")
                if invocation.reservation is not None:
                    events = guarded("settling a budget", budgets.settle, invocation.reservation, record) or ()
        finally:  # a budget callback may raise anything; the call is still ended and counted
            span = invocation.span
            content = None
            try:
                if self.capture_enabled:
                    content = _content(invocation, record.result)
                if span.is_recording():
                    self._write_span(invocation, record, error, events, content)
            except Exception:
                _internal_error("writing span attributes")
            if content and self._details_logger is not None:
                try:
                    self._emit_details(invocation, record, content)
                except Exception:
                    _internal_error("emitting the content event")
            try:
                span.end()
            except Exception:
                _internal_error("ending a span")
            try:
                self._write_metrics(record, invocation.request_attributes)
            except Exception:
                _internal_error("writing metrics")
            if self._ledger is not None:
                self._ledger.record(record)
            for sink in self._sinks:
                try:
                    sink(record)
                except Exception:
                    _internal_error("writing a call record")
        return record

    def _record(
        self,
        invocation: Invocation,
        result: Result | None,
        error: BaseException | None,
        estimate: Callable[[], Usage | None] | None,
        estimate_on_error: bool,
        duration: float,
    ) -> CallRecord:
        request = invocation.request
        usage = result.usage if result is not None else None
        if (
            usage is not None and not usage.invalid
            and result.provider_cost_usd is None and not result.hop_usages  # type: ignore[union-attr]
        ):
            # The usual call: exact counts to price; nothing to flag, estimate or replace. Adapters build
            # usage only with make_usage, which validated the counts (tests/test_records.py checks that).
            model = result.response_model or request.model
            cost, cost_source, split = self._cost(request, usage, model)
            first_chunk_at = invocation.first_chunk_at
            return CallRecord(
                request=request, result=result, labels=invocation.labels, duration_s=duration,
                end_time_unix=time.time(),
                time_to_first_chunk_s=None if first_chunk_at is None else first_chunk_at - invocation.started,
                error_type=None if error is None else _error_type(error), cost_usd=cost, cost_source=cost_source,
                # Passed, so the default factory is not called; NO_EXTRA unless a gateway name was priced.
                extra=NO_EXTRA if cost is None or not self.gateway_prices else self.price_extra(request, model),
                input_cost_usd=None if split is None else split[0],
                output_cost_usd=None if split is None else split[1],
                tool_fee_usd=0.0 if split is None else split[2],
                unpriced_dimensions=() if split is None else split[3],
            )
        invalid = False
        if usage is not None and not _is_valid(usage):
            invalid = True
            usage = None
        provider_cost = None
        if result is not None and result.provider_cost_usd is not None:
            provider_cost = valid_cost(result.provider_cost_usd)
            invalid = invalid or provider_cost is None
        if invalid:
            self._warn_invalid(request.provider, result)
        if (
            usage is None and estimate is not None and self.settings.estimate
            and (error is None or estimate_on_error)
        ):
            usage = guarded("estimating tokens", estimate)
            if usage is not None and not _is_valid(usage):
                usage = None
        if result is not None and (usage is not result.usage or provider_cost != result.provider_cost_usd):
            result = replace(result, usage=usage, provider_cost_usd=provider_cost)
        elif result is None and usage is not None:
            result = Result(usage=usage)

        model = (result.response_model if result is not None else None) or request.model
        cost, cost_source, split = None, None, None
        if provider_cost is not None:
            cost, cost_source = provider_cost, semconv.COST_SOURCE_PROVIDER
        elif usage is not None:
            hops = result.hop_usages if result is not None and usage is result.usage else ()
            cost, cost_source, split = self._cost(request, usage, model, hops)

        ttfc = None
        if invocation.first_chunk_at is not None:
            ttfc = invocation.first_chunk_at - invocation.started
        return CallRecord(
            request=request,
            result=result,
            labels=invocation.labels,
            duration_s=duration,
            end_time_unix=time.time(),
            time_to_first_chunk_s=ttfc,
            error_type=_error_type(error) if error is not None else None,
            cost_usd=cost,
            cost_source=cost_source,
            usage_invalid=invalid,
            extra=self.price_extra(request, model) if cost_source == semconv.COST_SOURCE_LOCAL and self.gateway_prices
            else NO_EXTRA,
            input_cost_usd=split[0] if split is not None else None,
            output_cost_usd=split[1] if split is not None else None,
            tool_fee_usd=split[2] if split is not None else 0.0,
            unpriced_dimensions=split[3] if split is not None else (),
        )

    def _cost(
        self, request: Request, usage: Usage, model: str | None, hops: tuple[Usage, ...] = ()
    ) -> tuple[float | None, str | None, tuple[float, float, float, tuple[str, ...]] | None]:
        """(cost, source, its (input, output) split with the tool fees in it and the unpriced
        dimensions), all None when unknown."""
        if self._prices is None or not model:
            return None, None, None
        try:
            if hops:  # several requests: price tiers apply to each on its own
                each = [self._priced(request, hop, model) for hop in hops]
                if None in each:
                    priced = None
                else:
                    unpriced = tuple(dict.fromkeys(name for part in each for name in part.unpriced))  # type: ignore[union-attr]
                    priced = (
                        sum(part.input_usd for part in each), sum(part.output_usd for part in each),  # type: ignore[union-attr]
                        each[0].source, sum(part.fees_usd for part in each), unpriced,  # type: ignore[union-attr]
                    )  # fmt: skip
            else:
                one = self._priced(request, usage, model)
                priced = None if one is None else (one.input_usd, one.output_usd, one.source, one.fees_usd, one.unpriced)
        except Exception:
            _logger.exception("pricing failed for %s %s; cost left unknown", request.provider, model)
            return None, None, None
        if priced is None:
            self._warn_unpriced(request.provider, model)
            return None, None, None
        input_cost, output_cost, source, fees, unpriced = priced
        # Never a non-finite or negative amount, whatever a price override says.
        cost = input_cost + output_cost
        if not (0 <= input_cost <= cost and 0 <= output_cost <= cost < math.inf):  # also False for NaN
            return None, None, None
        if unpriced:
            self._warn_incomplete(request.provider, model, unpriced, usage)
        # Float noise (0.00020800000000000001) off, far below any price's precision.
        return round(cost, 12), source, (round(input_cost, 12), round(output_cost, 12), round(fees, 12), unpriced)

    def _priced(self, request: Request, usage: Usage, model: str) -> Any:
        priced = self._prices.price(request.provider, model, usage)  # type: ignore[union-attr]
        if priced is None and request.model and request.model != model:
            priced = self._prices.price(request.provider, request.model, usage)  # type: ignore[union-attr]
        if priced is None:
            for name in (model, request.model):
                route = self._route(request, name) if name and "/" in name else None
                if route is not None:
                    return self._prices.price(route[0], route[1], usage)  # type: ignore[union-attr]
        return priced

    def _warn_incomplete(self, provider: str, model: str, unpriced: tuple[str, ...], usage: Usage) -> None:
        for dimension in unpriced:
            if self._warnings.first("incomplete", (provider, model, dimension)):
                what = f"service tier {usage.service_tier!r}" if dimension == "service_tier" else dimension
                _logger.warning(
                    "no price known for %s of model %r (provider %s); its calls are costed at the prices "
                    "that are known and marked %s. Price it with otel_tokens.set_price() or OTEL_TOKENS_PRICES.",
                    what, model, provider, semconv.OTEL_TOKENS_COST_INCOMPLETE,
                )

    def _route(self, request: Request, model: str) -> tuple[str, str] | None:
        """The other provider's price a gateway name is priced by (see PriceBook.gateway_route)."""
        gateway_route = getattr(self._prices, "gateway_route", None)
        if gateway_route is None:
            return None
        route = gateway_route(request.provider, model, request.server_address)
        if route is not None and len(self.gateway_prices) < _MAX_POINT_SETS:
            self.gateway_prices.setdefault((request.provider, request.server_address, model), route)
        return route

    def price_extra(self, request: Request, model: str | None) -> Any:
        """Span attributes naming the price used, for a gateway name priced by another provider."""
        routes = self.gateway_prices
        route = routes.get((request.provider, request.server_address, model)) if model else None
        if route is None and request.model:
            route = routes.get((request.provider, request.server_address, request.model))
        if route is None:
            return NO_EXTRA
        return {semconv.OTEL_TOKENS_PRICE_PROVIDER: route[0], semconv.OTEL_TOKENS_PRICE_MODEL: route[1]}

    def _warn_unpriced(self, provider: str, model: str) -> None:
        if self._warnings.first("unpriced", (provider, model)):
            _logger.warning(
                "no price known for model %r (provider %s); its calls are counted with cost "
                "unknown. Add it with otel_tokens.set_price() or OTEL_TOKENS_PRICES.",
                model, provider,
            )

    def _warn_invalid(self, provider: str, result: Result | None) -> None:
        if self._warnings.first("invalid", provider):
            usage = result.usage if result is not None else None
            _logger.warning(
                "%s sent usage that is not a set of finite, non-negative counts (%s); the call "
                "is counted, marked %s and estimated where possible. Further such calls are only counted.",
                provider, "provider cost" if usage is not None and _is_valid(usage) else "token counts",
                semconv.OTEL_TOKENS_USAGE_INVALID,
            )

    def _write_span(
        self,
        invocation: Invocation,
        record: CallRecord,
        error: BaseException | None,
        events: Sequence[tuple[str, dict[str, Any]]],
        content: dict[str, str] | None,
    ) -> None:
        span = invocation.span
        attributes = _end_attributes(record)
        if content and self._content_on_span:
            attributes.update(content)
        if record.error_type is not None:
            span.set_status(Status(StatusCode.ERROR, error_text(error) if error is not None else record.error_type))
        span.set_attributes(attributes)
        for name, event_attributes in events:
            span.add_event(name, event_attributes)

    def _emit_details(self, invocation: Invocation, record: CallRecord, content: dict[str, str]) -> None:
        """The log-based ``gen_ai.client.inference.operation.details`` event: the span's attributes and the
        content in structured form, in the span's trace (whether or not the span is sampled)."""
        if record.request.operation == semconv.OP_EMBEDDINGS:
            return  # an inference event; embeddings have no messages
        attributes = _start_attributes(record.request, invocation.labels, invocation.request_attributes)
        attributes.update(_end_attributes(record))
        for name, text in content.items():
            attributes[name] = json.loads(text)  # plain lists and dicts, as the JSON on the span says
        self._details_logger.emit(  # type: ignore[union-attr]
            timestamp=time.time_ns(),
            context=set_span_in_context(invocation.span),
            severity_number=self._debug,
            event_name=semconv.EVENT_INFERENCE_OPERATION_DETAILS,
            attributes=attributes,
        )

    def _write_metrics(self, record: CallRecord, request_attributes: dict[str, Any]) -> None:
        result = record.result
        key = (
            id(request_attributes),
            result.response_model if result is not None else None,
            record.labels.agent,
            record.error_type,
        )
        points = self._points.get(key)
        if points is None or points.request_attributes is not request_attributes:
            points = _MetricPoints(request_attributes, key[1], key[2], key[3], self._instruments, self._latest)
            if len(self._points) < _MAX_POINT_SETS:
                self._points[key] = points
        points.duration.record(record.duration_s, points.call)
        if record.time_to_first_chunk_s is not None:
            points.first_chunk.record(record.time_to_first_chunk_s, points.call)
        usage = record.usage
        if usage is not None:
            histogram = points.input_tokens
            if histogram is not None:
                histogram.record(usage.input_tokens, points.input)
            histogram = points.output_tokens
            if histogram is not None:
                histogram.record(usage.output_tokens, points.output)
        instruments = self._instruments
        if record.cost_usd is not None:
            instruments.operation_cost.record(record.cost_usd, points.cost(record.cost_source))
        instruments.totals.add(points.call, record, points.key)


def _start_attributes(request: Request, labels: Labels, request_attributes: dict[str, Any]) -> dict[str, Any]:
    """The span's attributes when it starts: the request's, its parameters and the labels in force."""
    attributes = dict(request_attributes)
    if request.stream:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    if request.attributes:
        attributes.update(request.attributes)
    if labels.agent:
        attributes[semconv.GEN_AI_AGENT_NAME] = labels.agent
    if labels.workflow:
        attributes[semconv.GEN_AI_WORKFLOW_NAME] = labels.workflow
    if labels.task:
        attributes[semconv.OTEL_TOKENS_TASK_NAME] = labels.task
    if labels.user:
        attributes[semconv.USER_ID] = labels.user
    return attributes


def _end_attributes(record: CallRecord) -> dict[str, Any]:
    """The span's attributes once the call finished: response, usage, cost, error."""
    result = record.result
    usage = record.usage
    attributes: dict[str, Any] = {}
    if result is not None:
        if result.response_model:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = result.response_model
        if result.response_id:
            attributes[semconv.GEN_AI_RESPONSE_ID] = result.response_id
        if result.finish_reasons:
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = result.finish_reasons
        if result.hop_usages:
            attributes[semconv.OTEL_TOKENS_REQUEST_COUNT] = len(result.hop_usages)
        if result.attributes:
            attributes.update(result.attributes)
    if usage is not None:
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
        if record.request.operation != semconv.OP_EMBEDDINGS or usage.output_tokens:
            attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        if usage.cache_read_tokens:
            attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        if usage.estimated:
            attributes[semconv.OTEL_TOKENS_USAGE_ESTIMATED] = True
        if usage.service_tier is not None:
            attributes[semconv.OTEL_TOKENS_SERVICE_TIER] = usage.service_tier
        if usage.details:
            for key, value in usage.details:
                name = _SERVER_TOOL_ATTRIBUTES.get(key)
                if name is not None:
                    attributes[name] = value
    elif record.usage_unknown:
        attributes[semconv.OTEL_TOKENS_USAGE_UNKNOWN] = True
    if record.usage_invalid:
        attributes[semconv.OTEL_TOKENS_USAGE_INVALID] = True
    if record.cost_usd is not None:
        attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] = record.cost_usd
        attributes[semconv.GEN_AI_USAGE_COST_CURRENCY] = semconv.COST_CURRENCY_USD
        attributes[semconv.GEN_AI_USAGE_COST_SOURCE] = record.cost_source
        if record.tool_fee_usd:
            attributes[semconv.OTEL_TOKENS_COST_TOOL_FEES] = record.tool_fee_usd
        if record.unpriced_dimensions:
            attributes[semconv.OTEL_TOKENS_COST_INCOMPLETE] = True
            attributes[semconv.OTEL_TOKENS_COST_UNPRICED_DIMENSIONS] = record.unpriced_dimensions
        if record.extra:
            attributes.update(record.extra)
    elif usage is not None:
        attributes[semconv.OTEL_TOKENS_PRICE_UNKNOWN] = True
    if record.time_to_first_chunk_s is not None:
        attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = record.time_to_first_chunk_s
    if record.error_type is not None:
        attributes[semconv.ERROR_TYPE] = record.error_type
    return attributes


def _content(invocation: Invocation, result: Result | None) -> dict[str, str]:
    """The captured content as the span carries it: JSON texts of the conventions' message shapes."""
    content: dict[str, str] = {}
    if invocation.input_messages is not None:
        content[semconv.GEN_AI_INPUT_MESSAGES] = json.dumps(invocation.input_messages, default=str)
    if invocation.system_instructions:
        content[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps(invocation.system_instructions, default=str)
    if result is not None and result.output_choices:  # one output message per choice
        content[semconv.GEN_AI_OUTPUT_MESSAGES] = json.dumps([
            _output_message(text, reason) for text, reason in result.output_choices
        ])
    elif result is not None and result.output_text is not None:
        reason = result.finish_reasons[0] if result.finish_reasons else None
        content[semconv.GEN_AI_OUTPUT_MESSAGES] = json.dumps([_output_message(result.output_text, reason)])
    return content


# Distinct metric attribute sets whose dicts are built once and reused; more are built per call.
_MAX_POINT_SETS: Final = 1024


class _MetricPoints:
    """The attribute dicts of one call's metric points, built once per distinct set and never mutated
    (the SDK only reads them), and the histograms they go to: the core set, or the GenAI conventions'
    newer one (``latest``), chosen here once, not per call."""

    __slots__ = ("request_attributes", "call", "input", "output", "key", "_costs", "duration", "first_chunk",
                 "input_tokens", "output_tokens")

    def __init__(
        self,
        request_attributes: dict[str, Any],
        response_model: str | None,
        agent: str | None,
        error: str | None,
        instruments: Instruments,
        latest: LatestInstruments | None = None,
    ) -> None:
        self.request_attributes = request_attributes  # held, so the id() in the cache key stays unique
        call = dict(request_attributes)
        if response_model:
            call[semconv.GEN_AI_RESPONSE_MODEL] = response_model
        if agent:
            call[semconv.GEN_AI_AGENT_NAME] = agent
        if error is not None:
            call[semconv.ERROR_TYPE] = error
        self.call = call
        self.key = tuple(call.items())
        self._costs: dict[str | None, dict[str, Any]] = {}
        self.input_tokens: Any
        self.output_tokens: Any
        if latest is None:
            self.duration, self.first_chunk = instruments.duration, instruments.time_to_first_chunk
            self.input_tokens = self.output_tokens = instruments.token_usage
            self.input = {**call, semconv.GEN_AI_TOKEN_TYPE: semconv.TOKEN_TYPE_INPUT}
            self.output = {**call, semconv.GEN_AI_TOKEN_TYPE: semconv.TOKEN_TYPE_OUTPUT}
            return
        embeddings = request_attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_EMBEDDINGS
        self.duration = latest.embeddings_duration if embeddings else latest.inference_duration
        self.first_chunk = latest.time_to_first_chunk
        self.input = self.output = call
        # Per-operation token histograms: successful operations only (the usage counters count failed
        # ones too); embeddings have input tokens only.
        if error is not None:
            self.input_tokens = self.output_tokens = None
        elif embeddings:
            self.input_tokens, self.output_tokens = latest.embeddings_input_tokens, None
        else:
            self.input_tokens, self.output_tokens = latest.input_tokens, latest.output_tokens

    def cost(self, source: str | None) -> dict[str, Any]:
        """gen_ai.client.operation.cost's attributes: the call's, the currency (required) and the cost's
        source (``local``, ``provider``, ``self_hosted``)."""
        attributes = self._costs.get(source)
        if attributes is None:
            attributes = {**self.call, semconv.GEN_AI_USAGE_COST_CURRENCY: semconv.COST_CURRENCY_USD}
            if source:
                attributes[semconv.GEN_AI_USAGE_COST_SOURCE] = source
            self._costs[source] = attributes
        return attributes


def _request_attributes(request: Request) -> dict[str, Any]:
    """What both the span and the metric points say about the request."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: request.operation,
        semconv.GEN_AI_PROVIDER_NAME: request.provider,
    }
    if request.model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = request.model
    if request.server_address:
        attributes[semconv.SERVER_ADDRESS] = request.server_address
        if request.server_port:
            attributes[semconv.SERVER_PORT] = request.server_port
    if request.source:
        attributes[semconv.OTEL_TOKENS_SOURCE] = request.source
    return attributes


def _output_message(text: str, finish_reason: str | None) -> dict[str, Any]:
    """One ``gen_ai.output.messages`` entry (the conventions' output message: role, parts, finish reason)."""
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


def _error_type(error: BaseException) -> str:
    if isinstance(error, ReportedError):
        return error.error_type or semconv.ERROR_TYPE_OTHER
    name = type(error).__qualname__
    return name or semconv.ERROR_TYPE_OTHER


def _internal_error(what: str) -> None:
    """Log our own bug from an ``except`` block; re-raise it under the test switch."""
    log_internal_error(what)
    if raise_internal_errors():
        raise  # noqa: PLE0704 - called only while an exception is being handled


def _is_valid(usage: Usage) -> bool:
    """Counts an adapter or a caller built are whole, finite and non-negative (make_usage ensures it)."""
    if usage.invalid:
        return False
    input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
    cache_read, cache_write, reasoning = usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens
    return (
        type(input_tokens) is type(output_tokens) is type(cache_read) is type(cache_write) is type(reasoning) is int
        and 0 <= min(input_tokens, output_tokens, cache_read, cache_write, reasoning)
        and max(input_tokens, output_tokens, cache_read, cache_write, reasoning) <= MAX_TOKENS
    )
