"""Frozen records that flow from adapters (parsing) to the recorder (telemetry) and the ledger."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# CallRecord.extra when there is none.
NO_EXTRA: Final = _EMPTY

# No single call bills more; a larger count is a corrupt response, not usage.
MAX_TOKENS: Final = 10**12


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in semconv terms: input includes cache reads and writes, output includes reasoning."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    # The provider sent usage whose counts are not finite, non-negative numbers: none of them is used.
    invalid: bool = False
    # Billed counts beyond the five above, keyed by genai-prices usage key (``cache_write_1h_tokens``,
    # ``input_audio_tokens``, ``web_searches``, ...; see ``pricing.rates.DETAIL_UNITS``), each a subset of
    # the counts above as genai-prices' units nest. Empty for most calls, which keeps pricing on its
    # fast path.
    details: tuple[tuple[str, int], ...] = ()
    # The service tier that served the call, in the provider's words (``flex``, ``priority``, ``batch``,
    # ``fast``...); None when the response does not say.
    service_tier: str | None = None
    # What prices the tier: genai-prices price-context pairs (``("service_tier", "flex")``,
    # ``("processing", "batch")``, ``("speed", "fast")``), set by the adapter that knows the provider.
    price_context: tuple[tuple[str, str], ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def detail(self, key: str) -> int:
        """One of :attr:`details` (0 when absent)."""
        for name, value in self.details:
            if name == key:
                return value
        return 0


class _Invalid:
    """A count the provider sent that is not a token count (NaN, negative, text, ...)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
INVALID_USAGE: Final = Usage(invalid=True)


def count(value: Any) -> int | None | _Invalid:
    """One count as a provider sent it: an int, None when absent, INVALID when it is not a finite,
    non-negative number. Whole floats (Cohere's billed units) become ints; others are rounded."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= MAX_TOKENS else INVALID
    if kind is float:
        return round(value) if math.isfinite(value) and 0 <= value <= MAX_TOKENS else INVALID
    if isinstance(value, int) and not isinstance(value, bool):  # an int subclass (an enum, numpy)
        return count(int(value))
    return INVALID


def tokens(*values: Any) -> int | None | _Invalid:
    """The sum of counts that together make one figure (Anthropic's input = uncached + cache read +
    cache write): None when all are absent, INVALID when any is invalid."""
    total: int | None = None
    for value in values:
        number = count(value)
        if number is None:
            continue
        if number is INVALID:
            return INVALID
        total = number if total is None else total + number  # type: ignore[operator]
    return total


def make_usage(
    input_tokens: Any,
    output_tokens: Any,
    cache_read_tokens: Any = None,
    cache_write_tokens: Any = None,
    reasoning_tokens: Any = None,
    *,
    details: Mapping[str, Any] | None = None,
    service_tier: str | None = None,
    price_context: tuple[tuple[str, str], ...] = (),
) -> Usage | None:
    """The one way adapters build usage from what a provider sent (raw values or ``tokens()``).

    None when neither input nor output was sent (absent is not zero: the call gets estimated or
    flagged); ``INVALID_USAGE`` when any count is invalid; otherwise exact counts, absent subsets 0.
    ``details`` (counts beyond the five, by genai-prices usage key; absent and zero ones dropped),
    ``service_tier`` and ``price_context`` are what the response says about billing beyond tokens.
    """
    if details or service_tier is not None or price_context:
        usage = make_usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
        if usage is None or usage.invalid:
            return usage
        kept: list[tuple[str, int]] = []
        for key, value in (details or {}).items():
            number = count(value)
            if number is INVALID:
                return INVALID_USAGE
            if number:
                kept.append((key, number))  # type: ignore[arg-type]
        tier = service_tier if isinstance(service_tier, str) and service_tier else None
        return replace(usage, details=tuple(kept), service_tier=tier, price_context=tuple(price_context))
    if type(input_tokens) is int and type(output_tokens) is int:  # the usual case, checked inline
        cache_read = 0 if cache_read_tokens is None else cache_read_tokens
        cache_write = 0 if cache_write_tokens is None else cache_write_tokens
        reasoning = 0 if reasoning_tokens is None else reasoning_tokens
        if (
            type(cache_read) is type(cache_write) is type(reasoning) is int
            and 0 <= min(input_tokens, output_tokens, cache_read, cache_write, reasoning)
            and max(input_tokens, output_tokens, cache_read, cache_write, reasoning) <= MAX_TOKENS
        ):
            return Usage(input_tokens, output_tokens, cache_read, cache_write, reasoning)
    values = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    for value in values:  # ints or None, checked without a call per value
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
            values = tuple(map(count, values))
            if INVALID in values:
                return INVALID_USAGE
            break
    input_, output, cache_read, cache_write, reasoning = values
    if input_ is None and output is None:
        return None
    return Usage(input_ or 0, output or 0, cache_read or 0, cache_write or 0, reasoning or 0)  # type: ignore[arg-type]


def with_billing(
    usage: Usage | None,
    *,
    details: Mapping[str, Any] | None = None,
    service_tier: str | None = None,
    price_context: tuple[tuple[str, str], ...] = (),
) -> Usage | None:
    """``usage`` with what the response says about billing beyond its counts, found elsewhere in the
    response (the tier, server-tool calls): validated as :func:`make_usage` validates."""
    if usage is None or usage.invalid or (not details and service_tier is None and not price_context):
        return usage
    merged = dict(usage.details)
    merged.update(details or {})
    return make_usage(
        usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
        usage.reasoning_tokens, details=merged, service_tier=service_tier or usage.service_tier,
        price_context=price_context or usage.price_context,
    )  # fmt: skip


def sum_usages(usages: tuple[Usage | None, ...] | list[Usage | None]) -> Usage | None:
    """The usage of several requests together: None when any is unknown (the call is then estimated),
    ``INVALID_USAGE`` when any is invalid, estimated when any is."""
    if not usages or any(usage is None for usage in usages):
        return None
    if any(usage.invalid for usage in usages):  # type: ignore[union-attr]
        return INVALID_USAGE
    details: dict[str, int] = {}
    for usage in usages:
        for key, value in usage.details:  # type: ignore[union-attr]
            details[key] = details.get(key, 0) + value
    tiers = {usage.service_tier for usage in usages} - {None}  # type: ignore[union-attr]
    return Usage(
        details=tuple(details.items()),
        # One tier for all hops, as they are one call; hops served at different tiers keep none.
        service_tier=tiers.pop() if len(tiers) == 1 else None,
        price_context=usages[0].price_context if len({u.price_context for u in usages}) == 1 else (),  # type: ignore[union-attr]
        input_tokens=sum(u.input_tokens for u in usages),  # type: ignore[union-attr]
        output_tokens=sum(u.output_tokens for u in usages),  # type: ignore[union-attr]
        cache_read_tokens=sum(u.cache_read_tokens for u in usages),  # type: ignore[union-attr]
        cache_write_tokens=sum(u.cache_write_tokens for u in usages),  # type: ignore[union-attr]
        reasoning_tokens=sum(u.reasoning_tokens for u in usages),  # type: ignore[union-attr]
        estimated=any(u.estimated for u in usages),  # type: ignore[union-attr]
    )


def valid_cost(value: Any) -> float | None:
    """A USD amount if it is a finite, non-negative number; None otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class Request:
    """What an adapter reads from a call before it is sent."""

    provider: str
    operation: str
    model: str | None
    server_address: str | None = None
    server_port: int | None = None
    stream: bool = False
    # Request parameters as semconv span attributes (gen_ai.request.max_tokens, ...), only those given.
    attributes: Mapping[str, Any] = field(default_factory=_empty)
    # Where the call was read from when otel-tokens did not make it: the instrumentation scope of another
    # source's span (GenAISpanProcessor); None for otel-tokens' own instrumentors and record_usage().
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """What an adapter reads from a response or a finished stream."""

    usage: Usage | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    # A cost the provider reported itself (OpenRouter usage.cost); used as is when valid.
    provider_cost_usd: float | None = None
    # Tool or function calls the model asked for in this response.
    tool_calls: int = 0
    # Output text, kept only when content capture or estimation needs it.
    output_text: str | None = None
    # With several choices (OpenAI ``n`` > 1) and content capture: each choice's (text, finish reason), in
    # choice order; ``output_text`` is then their concatenation.
    output_choices: tuple[tuple[str, str | None], ...] = ()
    # When one public call made several HTTP requests (Gemini's automatic function calling and
    # continuation), each request's usage: ``usage`` is their sum, and each is priced on its own
    # (price tiers apply per request).
    hop_usages: tuple[Usage, ...] = ()
    # Provider-specific response attributes for the span (``openai.response.service_tier``), names from
    # otel_tokens.semconv, as (name, value) pairs (a plain default: no factory call per result).
    attributes: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Labels:
    """Who a call is for: the innermost agent, workflow, task and user in context."""

    agent: str | None = None
    workflow: str | None = None
    task: str | None = None
    user: str | None = None


NO_LABELS = Labels()


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A finished call: everything the ledger, usage log and budgets need, independent of spans."""

    request: Request
    result: Result | None
    labels: Labels = NO_LABELS
    duration_s: float = 0.0
    end_time_unix: float = 0.0
    time_to_first_chunk_s: float | None = None
    error_type: str | None = None
    cost_usd: float | None = None
    cost_source: str | None = None
    # The provider's usage was not a set of valid counts (it may have been estimated instead).
    usage_invalid: bool = False
    extra: Mapping[str, Any] = field(default_factory=_empty)
    # cost_usd split by billed bucket (PriceBook.price); None when not priced locally.
    input_cost_usd: float | None = None
    output_cost_usd: float | None = None
    # USD of per-call server-tool fees within cost_usd (on its input side); 0.0 when none.
    tool_fee_usd: float = 0.0
    # Billing dimensions the response revealed that no price covers (PriceBook's Priced.unpriced): the
    # cost counts what is known.
    unpriced_dimensions: tuple[str, ...] = ()

    # Derived once in __post_init__ (read by every consumer of every call; properties cost a call each).
    usage: Usage | None = field(init=False, repr=False, compare=False)
    # The model that served the call: the response model, else the requested one.
    model: str | None = field(init=False, repr=False, compare=False)
    # A call that succeeded with no token counts at all, neither exact nor estimated.
    usage_unknown: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        result = self.result
        usage = result.usage if result is not None else None
        model = result.response_model if result is not None else None
        setattr_ = object.__setattr__
        setattr_(self, "usage", usage)
        setattr_(self, "model", model or self.request.model)
        setattr_(self, "usage_unknown", usage is None and self.error_type is None)
