"""The price book: what a call cost in USD, from genai-prices' bundled snapshot or user overrides.

genai-prices' own ``calc_price`` does Decimal arithmetic over a unit registry (about 70 µs a call). Here a
(provider, model) pair is resolved to :class:`Rates` once per UTC day (misses too), and a call's cost is
then a few float multiplications (about 0.5 µs a call, see ``benchmarks/pricing.py``).

Only the snapshot bundled with genai-prices is read; ``UpdatePrices`` is never used, so pricing never
touches the network and a given genai-prices version always gives the same numbers. It is read from a
compact index of it shipped with otel_tokens (``price_index``: a few ms to load, no pydantic), which
mirrors genai-prices' model lookup; when the index does not match the installed genai-prices, from
genai-prices itself (about 0.1 s to load). Both sit behind the small :class:`_Catalog` interface.

Billed buckets, from semconv counts (input includes cache reads and writes, output includes reasoning)::

    (input - cache_read - cache_write) * input rate
    + cache_read * cache-read rate      (the input rate when the model has no cache-read price)
    + cache_write * cache-write rate    (the input rate when the model has no cache-write price)
    + output * output rate              (reasoning at its own rate where genai-prices has one)
    + the per-request fee, if any

This is what genai-prices computes for the same counts, checked by the sweep in ``tests/test_pricing.py``.

How genai-prices' price shapes are handled:

* Tiered prices ("cliff" tiers): once the request's total input tokens (cache included) exceed a tier's
  start, that tier's price applies to all tokens of that kind. Kept exactly as :class:`RateTier` rows;
  thresholds of different kinds are merged, so one row gives every rate above its threshold.
* Historic prices (start dates) are resolved for the book's day. Time-of-day prices (DeepSeek's
  off-peak hours) are kept as a schedule over the UTC day and chosen at each call from the clock.
* Per-request fees (Perplexity Sonar's ``requests_kcount``) are kept in ``Rates.request``.
* Separate reasoning prices (Perplexity Sonar Deep Research) are kept in ``Rates.reasoning``.
* Ignored, because ``Usage`` has no count for them: modality prices (audio, image, video tokens are
  billed at the text rates), the 1-hour cache-write price (every cache write is billed at the default,
  5-minute rate), citation tokens, web/storage searches and code executions, and service-tier variants
  (flex, priority, batch: the standard price is used). genai-prices gives the same numbers when it is
  not told those counts either.
* Models priced only per character, audio hour, page or message are unknown here (``None``), with a
  DEBUG log line saying why. Models whose genai-prices entry has no price at all (``:free`` models,
  subscriptions) cost 0, as genai-prices says.
* Every resolution is checked against genai-prices' own arithmetic on a few probe usages (both sides
  of every tier threshold); a model that does not match is unknown, with a DEBUG log line, rather than
  priced wrongly.

Providers are ``gen_ai.provider.name`` values, mapped to genai-prices ids by :data:`PROVIDER_IDS`. A
mapped provider only prices its own models (and genai-prices' fallbacks for it, e.g. Azure to OpenAI);
an unmapped name is used if genai-prices has that exact id, else the provider is guessed from the model
name, as ``calc_price(provider_id=None)`` does. Models of :data:`SELF_HOSTED_PROVIDERS` (Ollama) have no
per-token price: they cost 0 with source :data:`SOURCE_SELF_HOSTED`, unless an override prices them.
Model names match as genai-prices matches them, dated and versioned names included.

Overrides (``set_price``, price files) win over the database. An override is found by exact model name
(case-insensitive), for its provider or for any provider, then by genai-prices model entry: an override
for ``gpt-4o`` also prices ``gpt-4o-2024-08-06`` when genai-prices resolves both to the same entry.
Override cache prices default to the override's input price, as genai-prices does for a missing price.

Bad counts never raise: uncached input below zero (cache counts above input) is billed as zero.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

from otel_tokens._internal.errors import ConfigError
from otel_tokens._internal.records import Usage
from otel_tokens._internal.safety import log_internal_error, raise_internal_errors
from otel_tokens.semconv import COST_SOURCE_LOCAL, COST_SOURCE_SELF_HOSTED

if TYPE_CHECKING:
    from decimal import Decimal

    from genai_prices.types import ModelPrice

logger = logging.getLogger(__name__)

SOURCE_GENAI_PRICES: Final = "genai-prices"
SOURCE_OVERRIDE: Final = "override"
# A self-hosted model with no price set: it costs 0, and says so (never the unpriced flag).
SOURCE_SELF_HOSTED: Final = "self-hosted"

# gen_ai.provider.name (and legacy gen_ai.system) values -> genai-prices provider ids. Providers missing
# here are passed through when genai-prices has that exact id, else the provider is guessed by model.
PROVIDER_IDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "openai": "openai",
        "anthropic": "anthropic",
        "azure.ai.openai": "azure",
        "azure.ai.inference": "azure",
        "az.ai.openai": "azure",
        "az.ai.inference": "azure",
        "aws.bedrock": "aws",
        "gcp.gemini": "google",
        "gcp.vertex_ai": "google",
        "gcp.gen_ai": "google",
        "gemini": "google",
        "vertex_ai": "google",
        "deepseek": "deepseek",
        "groq": "groq",
        "x_ai": "x-ai",
        "xai": "x-ai",
        "mistral_ai": "mistral",
        "cohere": "cohere",
        "perplexity": "perplexity",
        "moonshot_ai": "moonshotai",
        "openrouter": "openrouter",
        "together_ai": "together",
        "fireworks": "fireworks",
    }
)

# Self-hosted servers have no list price; guessing by model name would bill them as some cloud's model.
# Their models cost 0 (source SOURCE_SELF_HOSTED) unless an override prices them.
SELF_HOSTED_PROVIDERS: Final = frozenset({"ollama"})

_SECONDS_PER_DAY: Final = 86_400
# Distinct (provider, model) pairs kept; beyond this, resolutions are not cached (and logged once).
_MAX_CACHED: Final = 4096
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


def _check_price(owner: str, name: str, value: object, *, required: bool) -> None:
    if value is None:
        if required:
            raise ConfigError(f"{owner}: '{name}' is required")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{owner}: '{name}' must be a number (USD per million tokens), got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{owner}: '{name}' must be finite, got {value!r}")
    if value < 0:
        raise ConfigError(f"{owner}: '{name}' must not be negative, got {value!r}")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A user's price for a model, in USD per million tokens; wins over genai-prices.

    ``provider`` (a ``gen_ai.provider.name`` value) limits the override to calls to that provider.
    """

    model: str
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    provider: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"PriceOverride.model must be a non-empty string, got {self.model!r}")
        owner = f"price override for {self.model!r}"
        _check_price(owner, "input", self.input, required=True)
        _check_price(owner, "output", self.output, required=True)
        _check_price(owner, "cache_read", self.cache_read, required=False)
        _check_price(owner, "cache_write", self.cache_write, required=False)
        if self.provider is not None and (not isinstance(self.provider, str) or not self.provider):
            raise ConfigError(f"{owner}: 'provider' must be a non-empty string, got {self.provider!r}")

    def rates(self) -> Rates:
        return Rates.per_million(
            input=self.input, output=self.output, cache_read=self.cache_read, cache_write=self.cache_write
        )


# -- price files -----------------------------------------------------------------------------------


class PriceFileError(ConfigError):
    """A price file that cannot be used; the message names the file, the entry and the problem."""

    def __init__(self, path: str, problem: str, entry: str | None = None) -> None:
        self.path = path
        self.entry = entry
        self.problem = problem
        where = f"{path}: {entry}" if entry is not None else path
        super().__init__(f"{where}: {problem}")


_FILE_KEYS: Final = ("cache_read", "cache_write", "input", "output", "provider")


def load_price_file(path: str | os.PathLike[str]) -> list[PriceOverride]:
    """Read price overrides from a TOML (``.toml``) or JSON (``.json``) file, validating strictly.

    Shape: ``[models."my-model"]`` tables (TOML) or ``{"models": {"my-model": {...}}}`` (JSON), each with
    ``input`` and ``output`` (required), ``cache_read``, ``cache_write`` (USD per million tokens) and
    ``provider`` (optional). Raises :class:`PriceFileError`.
    """
    name = os.fspath(path)
    extension = os.path.splitext(name)[1].lower()
    if extension not in (".toml", ".json"):
        raise PriceFileError(name, f"unsupported price file extension {extension!r} (use .toml or .json)")
    try:
        with open(name, "rb") as file:
            raw = file.read()
    except OSError as err:
        raise PriceFileError(name, f"cannot read price file ({err.strerror or err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PriceFileError(name, f"not valid UTF-8 (byte {err.start})") from err

    table_word, a_table = ("table", "a table") if extension == ".toml" else ("object", "an object")
    if extension == ".toml":
        import tomllib

        try:
            document: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise PriceFileError(name, f"invalid TOML: {err}") from err
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise PriceFileError(
                name, f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
            ) from err
        if not isinstance(document, dict):
            raise PriceFileError(name, f"top level must be an object, got {_type_name(document, table_word)}")

    unknown_top = sorted(set(document) - {"models"})
    if unknown_top:
        raise PriceFileError(name, f"unknown top-level key {unknown_top[0]!r} (allowed: models)")
    if "models" not in document:
        raise PriceFileError(name, f"missing top-level 'models' {table_word}")
    models = document["models"]
    if not isinstance(models, dict):
        raise PriceFileError(name, f"'models' must be {a_table}, got {_type_name(models, table_word)}")

    overrides: list[PriceOverride] = []
    for model, entry in models.items():
        where = f"models.{json.dumps(model, ensure_ascii=False)}"
        if not model:
            raise PriceFileError(name, "model name must not be empty", where)
        if not isinstance(entry, dict):
            raise PriceFileError(
                name, f"must be {a_table} of prices, got {_type_name(entry, table_word)}", where
            )
        unknown = sorted(set(entry) - set(_FILE_KEYS))
        if unknown:
            raise PriceFileError(
                name, f"unknown key {unknown[0]!r} (allowed: {', '.join(_FILE_KEYS)})", where
            )
        for key in ("input", "output"):
            if key not in entry:
                raise PriceFileError(name, f"missing required key {key!r}", where)
        for key in ("input", "output", "cache_read", "cache_write"):
            if key in entry:
                problem = _price_problem(key, entry[key])
                if problem is not None:
                    raise PriceFileError(name, problem, where)
        provider = entry.get("provider")
        if "provider" in entry and (not isinstance(provider, str) or not provider):
            raise PriceFileError(name, f"'provider' must be a non-empty string, got {provider!r}", where)
        overrides.append(
            PriceOverride(
                model=model,
                input=float(entry["input"]),
                output=float(entry["output"]),
                cache_read=None if entry.get("cache_read") is None else float(entry["cache_read"]),
                cache_write=None if entry.get("cache_write") is None else float(entry["cache_write"]),
                provider=provider,
            )
        )
    return overrides


def _price_problem(key: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key!r} must be a number (USD per million tokens), got {value!r}"
    if not math.isfinite(value):
        return f"{key!r} must be finite, got {value!r}"
    if value < 0:
        return f"{key!r} must not be negative, got {value!r}"
    return None


def _type_name(value: object, table_word: str) -> str:
    names = {dict: table_word, list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- the book --------------------------------------------------------------------------------------


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
_SELF_HOSTED: Final = Rates(input=0.0, output=0.0, cache_read=0.0, cache_write=0.0, source=SOURCE_SELF_HOSTED)
_Entry = Rates | _Schedule | _Unknown


class _Generation:
    """Overrides and the resolution cache for one day; replaced whole, so readers need no lock."""

    __slots__ = ("overrides", "day", "starts_at", "ends_at", "cache", "by_entry")

    def __init__(
        self,
        overrides: Mapping[tuple[str | None, str], PriceOverride],
        day: date,
        starts_at: float,
        ends_at: float,
    ) -> None:
        self.overrides = overrides
        self.day = day
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.cache: dict[tuple[str | None, str], _Entry] = {}
        # (provider, model number in the catalog) -> override; built on first need, under the book's lock.
        self.by_entry: dict[tuple[str | None, int], PriceOverride] | None = None


class PriceBook:
    """Prices calls from genai-prices' bundled snapshot, with overrides that win.

    ``today`` pins the date used for historic prices; by default it is the current UTC date, and
    resolutions are redone when the date changes. Time-of-day prices follow ``clock`` (seconds since
    the epoch; injectable for tests) either way. ``cost`` never raises; ``set_price`` may be called
    from any thread at any time, and every call that starts after it returns sees the new price.
    """

    def __init__(
        self,
        overrides: Iterable[PriceOverride] = (),
        *,
        today: date | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        table: dict[tuple[str | None, str], PriceOverride] = {}
        for override in overrides:
            if not isinstance(override, PriceOverride):
                raise TypeError(f"overrides must be PriceOverride objects, got {type(override).__name__}")
            table[(override.provider, override.model.lower())] = override
        self._today = today
        self._clock = clock
        self._lock = threading.Lock()
        self._catalog: _Catalog | None = None
        self._cache_full_logged = False
        self._generation = self._new_generation(MappingProxyType(table), clock())

    # -- per call (lock-free unless resolving) ------------------------------------------------------

    def cost(self, provider: str | None, model: str | None, usage: Usage) -> float | None:
        """USD for a call, or None when the model has no known price."""
        priced = self.cost_with_source(provider, model, usage)
        return None if priced is None else priced[0]

    def cost_with_source(self, provider: str | None, model: str | None, usage: Usage) -> tuple[float, str] | None:
        """USD for a call and its ``gen_ai.usage.cost.source`` (``local``, or ``self_hosted`` for a
        self-hosted model with no price set); None when the model has no known price."""
        split = self.cost_split(provider, model, usage)
        return None if split is None else (split[0] + split[1], split[2])

    def cost_split(
        self, provider: str | None, model: str | None, usage: Usage
    ) -> tuple[float, float, str] | None:
        """USD for a call as (input, output, cost source): the split of :meth:`Rates.split`, which sums to
        the cost; None when the model has no known price."""
        try:
            rates = self.rates(provider, model)
            if rates is None:
                return None
            source = COST_SOURCE_SELF_HOSTED if rates.source == SOURCE_SELF_HOSTED else COST_SOURCE_LOCAL
            return (*rates.split(usage), source)
        except Exception:
            log_internal_error(f"pricing {provider}/{model}")
            if raise_internal_errors():
                raise
            return None

    def rates(self, provider: str | None, model: str | None) -> Rates | None:
        """The model's current rates, or None for an unknown model. Cached, including misses."""
        if not model:
            return None
        now = self._clock()
        generation = self._generation
        if not generation.starts_at <= now < generation.ends_at:
            generation = self._roll_day(now)
        entry = generation.cache.get((provider, model))
        if entry is None:
            entry = self._resolve(generation, provider, model)
        if type(entry) is Rates:
            return entry
        if type(entry) is _Schedule:
            return entry.at(now % _SECONDS_PER_DAY)
        return None

    def is_known(self, provider: str | None, model: str | None) -> bool:
        return self.rates(provider, model) is not None

    # -- configuration ------------------------------------------------------------------------------

    def set_price(
        self,
        model: str,
        *,
        input: float,
        output: float,
        cache_read: float | None = None,
        cache_write: float | None = None,
        provider: str | None = None,
    ) -> None:
        """Price ``model`` in USD per million tokens, over the database; calls after this see it."""
        override = PriceOverride(
            model=model,
            input=input,
            output=output,
            cache_read=cache_read,
            cache_write=cache_write,
            provider=provider,
        )
        with self._lock:
            current = self._generation
            table = dict(current.overrides)
            table[(override.provider, override.model.lower())] = override
            self._generation = self._new_generation(MappingProxyType(table), self._clock())

    def overrides(self) -> tuple[PriceOverride, ...]:
        return tuple(self._generation.overrides.values())

    # -- resolution (under the lock) ----------------------------------------------------------------

    def _new_generation(
        self, overrides: Mapping[tuple[str | None, str], PriceOverride], now: float
    ) -> _Generation:
        if self._today is not None:
            return _Generation(overrides, self._today, -math.inf, math.inf)
        day_start = (now // _SECONDS_PER_DAY) * _SECONDS_PER_DAY
        day = datetime.fromtimestamp(day_start, UTC).date()
        return _Generation(overrides, day, day_start, day_start + _SECONDS_PER_DAY)

    def _roll_day(self, now: float) -> _Generation:
        with self._lock:
            generation = self._generation
            if not generation.starts_at <= now < generation.ends_at:
                generation = self._generation = self._new_generation(generation.overrides, now)
            return generation

    def _resolve(self, generation: _Generation, provider: str | None, model: str) -> _Entry:
        with self._lock:
            key = (provider, model)
            entry = generation.cache.get(key)
            if entry is not None:
                return entry
            try:
                entry = self._build(generation, provider, model)
            except Exception:  # genai-prices or our bug: unknown, never a wrong number
                logger.debug("no price for %s/%s: resolution failed", provider, model, exc_info=True)
                entry = _UNKNOWN
            if len(generation.cache) < _MAX_CACHED:
                generation.cache[key] = entry
            elif not self._cache_full_logged:
                self._cache_full_logged = True
                logger.warning(
                    "price cache full (%d models); further models are resolved per call", _MAX_CACHED
                )
            return entry

    def _build(self, generation: _Generation, provider: str | None, model: str) -> _Entry:
        name = model.lower()
        override = generation.overrides.get((provider, name)) or generation.overrides.get((None, name))
        if override is not None:
            return override.rates()
        if provider in SELF_HOSTED_PROVIDERS:
            return _SELF_HOSTED
        found = self._find(provider, model)
        if found is None:
            logger.debug("no price for %s/%s: genai-prices has no such model", provider, model)
            return _UNKNOWN
        if generation.by_entry is None:
            generation.by_entry = self._overrides_by_entry(generation.overrides)
        override = generation.by_entry.get((provider, found)) or generation.by_entry.get((None, found))
        if override is not None:
            return override.rates()
        return self._load_catalog().entry(found, generation.day, f"{provider}/{model}")

    def _find(self, provider: str | None, model: str) -> int | None:
        catalog = self._load_catalog()
        provider_id = PROVIDER_IDS.get(provider) if provider is not None else None
        if provider_id is None and provider is not None:
            # An unmapped provider is used only when genai-prices has that exact id; else guess by model.
            lowered = provider.lower()
            if lowered in catalog.provider_ids:
                provider_id = lowered
        try:
            return catalog.lookup(model, provider_id)[1]
        except LookupError:
            if provider_id is not None:
                return None
        # genai-prices guesses a provider only from its name patterns; a model that one provider lists
        # (llama-3.1-8b-instant: groq) or that every listing prices alike is still unambiguous.
        listings = _listings(catalog, model)
        return listings[0][1] if len(listings) == 1 else None

    def providers_for(self, model: str) -> tuple[str, ...]:
        """The genai-prices providers a bare model name is priced by: one when the name resolves without a
        provider (by genai-prices' name patterns, or because every provider listing it charges the same),
        several when it is ambiguous (ask for a provider), none when no provider lists it."""
        with self._lock:
            catalog = self._load_catalog()
            try:
                return (catalog.lookup(model, None)[0],)
            except LookupError:
                pass
            listings = _listings(catalog, model)
            if len(listings) == 1:
                return (listings[0][0],)
            return tuple(sorted(provider_id for provider_id, _ in listings))

    def known_providers(self) -> tuple[str, ...]:
        """Every provider name :meth:`rates` understands: ``gen_ai.provider.name`` values and
        genai-prices ids (sorted)."""
        with self._lock:
            ids = set(self._load_catalog().provider_ids)
        return tuple(sorted(ids | set(PROVIDER_IDS) | SELF_HOSTED_PROVIDERS))

    def _overrides_by_entry(
        self, overrides: Mapping[tuple[str | None, str], PriceOverride]
    ) -> dict[tuple[str | None, int], PriceOverride]:
        by_entry: dict[tuple[str | None, int], PriceOverride] = {}
        for (provider, _), override in overrides.items():
            if provider in SELF_HOSTED_PROVIDERS:
                continue
            found = self._find(provider, override.model)
            if found is not None:
                by_entry.setdefault((provider, found), override)
        return by_entry

    def preload(self) -> None:
        """Load the price data now (instrument() does it in the background), so no call pays for it."""
        with self._lock:
            self._load_catalog()

    def _load_catalog(self) -> _Catalog:
        if self._catalog is None:
            self._catalog = _default_catalog()
        return self._catalog


# -- catalogs: genai-prices' models, looked up as genai-prices looks them up -------------------------


class _Catalog(Protocol):
    """genai-prices' providers and models, numbered in its order (a model's number is its entry)."""

    provider_ids: tuple[str, ...]

    def lookup(self, model: str, provider_id: str | None) -> tuple[str, int]:
        """(provider id, model number) as ``DataSnapshot.find_provider_model``; LookupError when none."""

    def listings(self, model: str) -> list[tuple[str, int]]:
        """(provider id, model number) for every provider that lists ``model`` itself (no fallbacks)."""

    def same_prices(self, first: int, second: int) -> bool: ...

    def fallbacks(self, provider_id: str) -> tuple[str, ...]: ...

    def entry(self, number: int, day: date, label: str) -> _Entry:
        """The model's rates on ``day``, as a schedule when they change during it."""


def _default_catalog() -> _Catalog:
    """The compact index shipped with otel_tokens; genai-prices' own data when the index does not match
    the installed genai-prices (its loader logs why)."""
    from otel_tokens._internal import price_index

    return price_index.load() or _GenaiCatalog()


class _GenaiCatalog:
    """genai-prices' own objects and lookup (pydantic, about 0.1 s to load): the fallback, and the
    reference the index is generated from and tested against."""

    def __init__(self) -> None:
        # Our own snapshot object over the bundled data: never the one UpdatePrices may install, and
        # its lookup caches are only touched under the book's lock.
        from genai_prices.data import providers
        from genai_prices.data_snapshot import DataSnapshot

        self._snapshot = DataSnapshot(providers=providers, from_auto_update=False)
        self.provider_ids = tuple(provider.id for provider in providers)
        self.models = tuple(info for provider in providers for info in provider.models)
        self._numbers = {id(info): number for number, info in enumerate(self.models)}

    def lookup(self, model: str, provider_id: str | None) -> tuple[str, int]:
        try:
            provider, info = self._snapshot.find_provider_model(model, None, provider_id, None)
        finally:
            _bound_lookup_caches(self._snapshot)
        return provider.id, self._numbers[id(info)]

    def listings(self, model: str) -> list[tuple[str, int]]:
        return [
            (provider.id, self._numbers[id(info)])
            for provider in self._snapshot.providers
            if (info := provider.find_model(model))
        ]

    def same_prices(self, first: int, second: int) -> bool:
        return self.models[first].prices == self.models[second].prices

    def fallbacks(self, provider_id: str) -> tuple[str, ...]:
        provider = next(provider for provider in self._snapshot.providers if provider.id == provider_id)
        return tuple(provider.fallback_model_providers or ())

    def entry(self, number: int, day: date, label: str) -> _Entry:
        from genai_prices.types import TimeOfDateConstraint

        info = self.models[number]
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        boundaries = set()
        if isinstance(info.prices, list):
            for conditional in info.prices:
                constraint = conditional.constraint
                if isinstance(constraint, TimeOfDateConstraint):
                    boundaries.add(_utc_second_of_day(constraint.start_time))
                    boundaries.add(_utc_second_of_day(constraint.end_time))
        return _day_entry(
            boundaries, lambda second: _convert(info.get_prices(midnight + timedelta(seconds=second))), label
        )


def _listings(catalog: _Catalog, model: str) -> list[tuple[str, int]]:
    """(provider id, model number) for every provider that lists ``model`` itself (fallbacks aside),
    folded to one when all of them charge the same: the provider the others fall back to, else the first."""
    listings = catalog.listings(model)
    if len(listings) > 1 and all(catalog.same_prices(number, listings[0][1]) for _, number in listings):
        listed = {provider_id for provider_id, _ in listings}
        fallbacks = {
            fallback for provider_id in catalog.provider_ids if provider_id in listed
            for fallback in catalog.fallbacks(provider_id)
        }
        return [next((listing for listing in listings if listing[0] in fallbacks), listings[0])]
    return listings


def _bound_lookup_caches(snapshot: Any) -> None:
    """genai-prices memoises every model name it is asked about, hits and misses; an app that sends
    ever-new names would grow them without end. Cleared when large (called under the book's lock)."""
    for name in ("_lookup_cache", "_provider_cache", "_provider_misses"):
        cache = getattr(snapshot, name, None)
        if cache is not None and len(cache) > _MAX_CACHED:
            cache.clear()


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
