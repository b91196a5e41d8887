"""Rates: what a model costs per token, and their conversion from genai-prices' prices.

:class:`Rates` and :class:`RateTier` are the price book's own form of a price (USD per token, cliff tiers
by input size); :func:`_convert` turns a genai-prices ``ModelPrice`` into them and checks the result
against genai-prices' own arithmetic (:func:`_probe`). Both the price book and the price index build on
this module, so neither needs the other's.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from otel_tokens._internal.base.records import Usage

if TYPE_CHECKING:
    from decimal import Decimal

    from genai_prices.types import ModelPrice

logger = logging.getLogger(__name__)

SOURCE_GENAI_PRICES: Final = "genai-prices"


SOURCE_OVERRIDE: Final = "override"


# A self-hosted model with no price set: it costs 0, and says so (never the unpriced flag).
SOURCE_SELF_HOSTED: Final = "self-hosted"


_SECONDS_PER_DAY: Final = 86_400


# The price keys Rates represents; any other key needs a count Usage does not have.
_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING, _REQUESTS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
)


_PROBE_TOLERANCE_USD: Final = 1e-9


@dataclass(frozen=True, slots=True)
class RateTier:
    """Rates (USD per token) that replace the base rates once a request's input tokens exceed a threshold."""

    above_input_tokens: int
    input: float
    output: float
    cache_read: float
    cache_write: float
    # None: reasoning tokens are billed as output.
    reasoning: float | None = None
    # USD per request.
    request: float = 0.0


@dataclass(frozen=True, slots=True)
class Rates:
    """A model's prices in USD per token, resolved once; :meth:`cost` is plain arithmetic.

    ``input`` is for uncached input tokens and ``output`` for output tokens including reasoning, unless
    ``reasoning`` is set. ``tiers`` are ordered by threshold, highest first: the first tier whose
    ``above_input_tokens`` the request's input tokens exceed gives every rate (genai-prices' cliff tiers).
    """

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float | None = None
    request: float = 0.0
    tiers: tuple[RateTier, ...] = ()
    source: str = SOURCE_GENAI_PRICES

    def __post_init__(self) -> None:
        for row in (self, *self.tiers):
            for name in ("input", "output", "cache_read", "cache_write", "reasoning", "request"):
                value = getattr(row, name)
                if value is not None and not (isinstance(value, float | int) and 0 <= value < math.inf):
                    raise ValueError(f"Rates.{name} must be a finite non-negative number, got {value!r}")
        thresholds = [tier.above_input_tokens for tier in self.tiers]
        if thresholds != sorted(thresholds, reverse=True):
            raise ValueError("Rates.tiers must be ordered by above_input_tokens, highest first")

    @classmethod
    def per_million(
        cls,
        *,
        input: float,
        output: float,
        cache_read: float | None = None,
        cache_write: float | None = None,
        source: str = SOURCE_OVERRIDE,
    ) -> Rates:
        """Rates from USD per million tokens; missing cache prices fall back to the input price."""
        input_rate = input / 1_000_000
        return cls(
            input=input_rate,
            output=output / 1_000_000,
            cache_read=input_rate if cache_read is None else cache_read / 1_000_000,
            cache_write=input_rate if cache_write is None else cache_write / 1_000_000,
            source=source,
        )

    def cost(self, usage: Usage) -> float:
        """USD for one call's usage. Never raises for int counts; negative buckets are billed as zero."""
        input_cost, output_cost = self.split(usage)
        return input_cost + output_cost

    def split(self, usage: Usage) -> tuple[float, float]:
        """USD for one call's usage as (input, output): input is uncached input, cache reads, cache writes
        and any per-request fee; output is output tokens, reasoning included. They sum to :meth:`cost`."""
        input_tokens = usage.input_tokens
        rates: Rates | RateTier = self
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                rates = tier
                break
        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0:
            uncached = 0
        reasoning_rate = rates.reasoning
        if reasoning_rate is None:
            output_cost = usage.output_tokens * rates.output
        else:
            reasoning = usage.reasoning_tokens
            output_cost = max(usage.output_tokens - reasoning, 0) * rates.output + reasoning * reasoning_rate
        input_cost = uncached * rates.input + cache_read * rates.cache_read + cache_write * rates.cache_write
        return input_cost + rates.request, output_cost


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Rates that change over the UTC day (time-of-day prices): segment i runs from starts[i]."""

    starts: tuple[float, ...]  # seconds after UTC midnight, ascending, starts[0] == 0
    rates: tuple[Rates | None, ...]

    def at(self, second_of_day: float) -> Rates | None:
        return self.rates[bisect_right(self.starts, second_of_day) - 1]


class _Unknown:
    __slots__ = ()


_UNKNOWN: Final = _Unknown()


_Entry = Rates | _Schedule | _Unknown


def _day_entry(boundaries: set[float], price_at: Callable[[float], Rates | str], label: str) -> _Entry:
    """The day's entry from the price at each time-of-day boundary (seconds after UTC midnight): Rates,
    or why the model has no per-token price (logged, and unknown)."""
    segments: list[Rates | None] = []
    starts = tuple(sorted(boundaries | {0.0}))
    for second in starts:  # a segment's prices hold for all of it, so evaluating at its start is exact
        price = price_at(second)
        if isinstance(price, str):
            logger.debug("no price for %s: %s", label, price)
            price = None
        segments.append(price)
    if all(segment == segments[0] for segment in segments):
        only = segments[0]
        return _UNKNOWN if only is None else only
    return _Schedule(starts, tuple(segments))


def _utc_second_of_day(value: Any) -> float:
    if value.tzinfo is not None:
        value = datetime.combine(date(2000, 1, 1), value).astimezone(UTC).timetz()
    return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6


def _convert(price: ModelPrice) -> Rates | str:
    """A genai-prices price as Rates, checked against its own arithmetic; else why not (a str)."""
    from decimal import Decimal

    from genai_prices.types import TieredPrices

    per_million = Decimal(1_000_000)

    values = {
        key: value for key, value in price.__dict__.items() if not key.startswith("_") and value is not None
    }
    if values and _INPUT not in values and _OUTPUT not in values:
        return f"priced per {', '.join(sorted(values))}, not per token"

    thresholds = sorted(
        {tier.start for value in values.values() if isinstance(value, TieredPrices) for tier in value.tiers}
    )

    def per_unit(key: str, total_input: int, per: Decimal) -> float | None:
        value = values.get(key)
        if value is None:
            return None
        if isinstance(value, TieredPrices):
            chosen = value.base
            for tier in reversed(value.tiers):
                if total_input > tier.start:
                    chosen = tier.price
                    break
            value = chosen
        return float(value / per)

    def row(total_input: int) -> dict[str, Any]:
        input_rate = per_unit(_INPUT, total_input, per_million) or 0.0
        cache_read = per_unit(_CACHE_READ, total_input, per_million)
        cache_write = per_unit(_CACHE_WRITE, total_input, per_million)
        return {
            "input": input_rate,
            "output": per_unit(_OUTPUT, total_input, per_million) or 0.0,
            "cache_read": input_rate if cache_read is None else cache_read,
            "cache_write": input_rate if cache_write is None else cache_write,
            "reasoning": per_unit(_REASONING, total_input, per_million),
            "request": per_unit(_REQUESTS, total_input, Decimal(1000)) or 0.0,
        }

    # Any input total in (t, next t] picks the same tier of every kind, so t + 1 stands for the range.
    tiers = tuple(RateTier(above_input_tokens=t, **row(t + 1)) for t in reversed(thresholds))
    rates = Rates(**row(0), tiers=tiers, source=SOURCE_GENAI_PRICES)
    mismatch = _probe(price, rates, thresholds)
    if mismatch is not None:
        return f"cannot represent its prices exactly ({mismatch})"
    return rates


def _probe(price: ModelPrice, rates: Rates, thresholds: list[int]) -> str | None:
    """Compare with genai-prices' own arithmetic on both sides of every threshold; None when equal."""
    from genai_prices.types import Usage as GenaiUsage

    totals = {0, 1_000, 150_000, *thresholds, *(t + 1 for t in thresholds)}
    for total in sorted(totals):
        usage = Usage(
            input_tokens=total,
            output_tokens=2_000,
            cache_read_tokens=total // 4,
            cache_write_tokens=total // 8,
            reasoning_tokens=500,
        )
        expected = float(price.calc_price(_genai_usage(usage, GenaiUsage))["total_price"])
        actual = rates.cost(usage)
        if abs(actual - expected) > _PROBE_TOLERANCE_USD:
            return f"input tokens {total}: genai-prices {expected!r}, rates {actual!r}"
    return None


def _genai_usage(usage: Usage, genai_usage_type: Any) -> Any:
    # genai-prices counts like semconv: input includes cache tokens, output includes reasoning.
    return genai_usage_type(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )

