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

_BASE_KEYS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "output_reasoning_tokens")


def _token_unit(direction: str, modality: str | None = None, kind: str | None = None, ttl: str | None = None) -> tuple[int, frozenset[tuple[str, str]]]:
    dims = {("family", "tokens"), ("direction", direction)}
    if modality:
        dims.add(("modality", modality))
    if kind:
        dims.add(("token_type", kind))
    if ttl:
        dims.add(("cache_ttl", ttl))
    return 1_000_000, frozenset(dims)


def _detail_units() -> dict[str, tuple[int, frozenset[tuple[str, str]]]]:
    units = {
        "input_tokens": _token_unit("input"),
        "output_tokens": _token_unit("output"),
        "cache_read_tokens": _token_unit("input", kind="cache_read"),
        "cache_write_tokens": _token_unit("input", kind="cache_write"),
        "output_reasoning_tokens": _token_unit("output", kind="reasoning"),
        "web_searches": (1000, frozenset({("family", "tool_calls"), ("tool_type", "web_search")})),
        "storage_searches": (1000, frozenset({("family", "tool_calls"), ("tool_type", "storage_search")})),
    }
    for ttl in ("5m", "1h"):
        units[f"cache_write_{ttl}_tokens"] = _token_unit("input", kind="cache_write", ttl=ttl)
    for modality in ("text", "audio", "image", "video"):
        units[f"input_{modality}_tokens"] = _token_unit("input", modality)
        units[f"output_{modality}_tokens"] = _token_unit("output", modality)
        units[f"cache_{modality}_read_tokens"] = _token_unit("input", modality, "cache_read")
        units[f"cache_{modality}_write_tokens"] = _token_unit("input", modality, "cache_write")
        for ttl in ("5m", "1h"):
            units[f"cache_{modality}_write_{ttl}_tokens"] = _token_unit("input", modality, "cache_write", ttl)
        units[f"output_{modality}_reasoning_tokens"] = _token_unit("output", modality, "reasoning")
    return units


# genai-prices' units that Usage.details may carry: usage key -> (units per price, dimensions). A unit
# nests in another when its dimensions include the other's (cache_write_1h_tokens in cache_write_tokens
# in input_tokens); tests/test_billing_dimensions.py checks this table against genai-prices' registry.
DETAIL_UNITS: Final = _detail_units()
# usage key -> genai-prices price key
PRICE_KEYS: Final = {
    key: f"{key[:-len('_tokens')]}_mtok" if per == 1_000_000 else f"{key}_kcount"
    for key, (per, _) in DETAIL_UNITS.items()
}
PRICE_KEYS["input_tokens"], PRICE_KEYS["output_tokens"] = "input_mtok", "output_mtok"
# Per-call tool fees (counted calls, not tokens).
TOOL_FEE_KEYS: Final = frozenset(key for key, (_, dims) in DETAIL_UNITS.items() if ("family", "tool_calls") in dims)


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
    # Rates (USD per unit) of the other dimensions this row prices: (usage key, rate), see Rates.extra.
    extra: tuple[tuple[str, float], ...] = ()


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
    # Rates (USD per unit) of dimensions beyond the five buckets, by usage key of DETAIL_UNITS
    # (``cache_write_1h_tokens``, ``input_audio_tokens``, ``web_searches``...); used only for usage with
    # details, where each priced unit bills what none of its priced sub-units does (genai-prices' rule).
    extra: tuple[tuple[str, float], ...] = ()
    # Cache buckets whose rate above is the input rate because the model has no price of its own for
    # them ("cache_read_tokens", "cache_write_tokens"): not priced units when nesting details.
    implied: tuple[str, ...] = ()
    # The price context (service tier, batch...) these rates are for; () for standard.
    context: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for row in (self, *self.tiers):
            for name in ("input", "output", "cache_read", "cache_write", "reasoning", "request"):
                value = getattr(row, name)
                if value is not None and not (isinstance(value, float | int) and 0 <= value < math.inf):
                    raise ValueError(f"Rates.{name} must be a finite non-negative number, got {value!r}")
            for key, value in row.extra:
                if key not in DETAIL_UNITS:
                    raise ValueError(f"Rates.extra: unknown unit {key!r}")
                if not (isinstance(value, float | int) and 0 <= value < math.inf):
                    raise ValueError(f"Rates.extra[{key!r}] must be a finite non-negative number, got {value!r}")
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
        if usage.details:
            return self._split_details(rates, usage)
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


    def _split_details(self, rates: Rates | RateTier, usage: Usage) -> tuple[float, float]:
        """:meth:`split` for usage with details: genai-prices' nesting of units. Every priced unit bills
        its count less what its priced sub-units bill; per-call fees count on the input side."""
        priced: dict[str, float] = {"input_tokens": rates.input, "output_tokens": rates.output}
        if "cache_read_tokens" not in self.implied:
            priced["cache_read_tokens"] = rates.cache_read
        if "cache_write_tokens" not in self.implied:
            priced["cache_write_tokens"] = rates.cache_write
        if rates.reasoning is not None:
            priced["output_reasoning_tokens"] = rates.reasoning
        priced.update(rates.extra)
        counts = dict(usage.details)
        counts.update(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        )
        units = sorted(priced, key=lambda key: (-len(DETAIL_UNITS[key][1]), key))
        leaves: dict[str, int] = {}
        input_cost = output_cost = 0.0
        for key in units:
            dims = DETAIL_UNITS[key][1]
            leaf = counts.get(key, 0) - sum(
                leaves[other] for other in leaves if other != key and dims <= DETAIL_UNITS[other][1]
            )
            leaf = leaves[key] = max(leaf, 0)
            if ("direction", "output") in dims:
                output_cost += leaf * priced[key]
            else:
                input_cost += leaf * priced[key]
        return input_cost + rates.request, output_cost

    def fees(self, usage: Usage) -> float:
        """USD of per-call tool fees (web searches, file searches) in the usage: part of :meth:`split`."""
        if not usage.details:
            return 0.0
        rates: Rates | RateTier = self
        for tier in self.tiers:
            if usage.input_tokens > tier.above_input_tokens:
                rates = tier
                break
        extra = dict(rates.extra)
        return sum(value * extra.get(key, 0.0) for key, value in usage.details if key in TOOL_FEE_KEYS)

    def prices(self, key: str) -> bool:
        """Whether these rates price the unit ``key`` of DETAIL_UNITS at a rate of its own."""
        if key in ("input_tokens", "output_tokens"):
            return True
        if key in ("cache_read_tokens", "cache_write_tokens"):
            return key not in self.implied
        if key == "output_reasoning_tokens":
            return self.reasoning is not None
        return any(name == key for name, _ in self.extra)


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


def _convert(price: ModelPrice, context: tuple[tuple[str, str], ...] = ()) -> Rates | str:
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

    extra_keys = tuple(
        key for key in DETAIL_UNITS if key not in _BASE_KEYS and PRICE_KEYS[key] in values
    )

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
            "extra": tuple(
                (key, per_unit(PRICE_KEYS[key], total_input, Decimal(DETAIL_UNITS[key][0])))
                for key in extra_keys
            ),
        }

    implied = tuple(key for key, price_key in (("cache_read_tokens", _CACHE_READ), ("cache_write_tokens", _CACHE_WRITE))
                    if price_key not in values)  # fmt: skip
    # Any input total in (t, next t] picks the same tier of every kind, so t + 1 stands for the range.
    tiers = tuple(RateTier(above_input_tokens=t, **row(t + 1)) for t in reversed(thresholds))
    rates = Rates(**row(0), tiers=tiers, source=SOURCE_GENAI_PRICES, implied=implied, context=context)
    mismatch = _probe(price, rates, thresholds)
    if mismatch is not None:
        return f"cannot represent its prices exactly ({mismatch})"
    return rates


def probe_details(total: int) -> dict[str, int]:
    """Counts for every unit of DETAIL_UNITS that nest validly in a probe usage of ``total`` input
    tokens (cache read total // 4, cache write total // 8, output 2,000, reasoning 500)."""
    details: dict[str, int] = {"web_searches": 3, "storage_searches": 2}
    for key in DETAIL_UNITS:
        if key in _BASE_KEYS or key in details:
            continue
        if key.endswith("_reasoning_tokens"):
            details[key] = 10
        elif key.startswith("output_"):
            details[key] = 125
        elif key.startswith("input_"):
            details[key] = total // 16
        elif key.endswith("_read_tokens"):
            details[key] = total // 64
        elif key.startswith("cache_write_"):  # cache_write_5m / _1h
            details[key] = total // 16 if "1h" in key else total // 32
        elif key.endswith(("_5m_tokens", "_1h_tokens")):
            details[key] = total // 512
        else:  # cache_<modality>_write_tokens
            details[key] = total // 128
    return details


def _probe(price: ModelPrice, rates: Rates, thresholds: list[int]) -> str | None:
    """Compare with genai-prices' own arithmetic on both sides of every threshold, with and without
    every detail; None when equal."""
    from genai_prices.types import Usage as GenaiUsage

    totals = {0, 1_000, 150_000, *thresholds, *(t + 1 for t in thresholds)}
    for total in sorted(totals):
        for details in ((), tuple(probe_details(total).items())):
            usage = Usage(
                input_tokens=total,
                output_tokens=2_000,
                cache_read_tokens=total // 4,
                cache_write_tokens=total // 8,
                reasoning_tokens=500,
                details=details,
            )
            expected = float(price.calc_price(_genai_usage(usage, GenaiUsage))["total_price"])
            actual = rates.cost(usage)
            if abs(actual - expected) > _PROBE_TOLERANCE_USD:
                return f"input tokens {total}{' with details' if details else ''}: genai-prices {expected!r}, rates {actual!r}"
    return None


def _genai_usage(usage: Usage, genai_usage_type: Any) -> Any:
    # genai-prices counts like semconv: input includes cache tokens, output includes reasoning.
    return genai_usage_type(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        **dict(usage.details),
    )

