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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from otel_tokens._internal.base.errors import ConfigError
from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.base.safety import log_internal_error, raise_internal_errors
from otel_tokens._internal.pricing.rates import (
    _SECONDS_PER_DAY,
    _UNKNOWN,
    DETAIL_UNITS,
    SOURCE_SELF_HOSTED,
    TOOL_FEE_KEYS,
    Rates,
    _convert,
    _day_entry,
    _Entry,
    _Schedule,
    _utc_second_of_day,
)
from otel_tokens.semconv import COST_SOURCE_LOCAL, COST_SOURCE_SELF_HOSTED

logger = logging.getLogger(__name__)


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

_OPENROUTER: Final = "openrouter"
# Gateway vendor prefixes ("mistralai/...") whose genai-prices provider id differs; others are used as is.
_VENDOR_IDS: Final[Mapping[str, str]] = MappingProxyType({"mistralai": "mistral", "xai": "x-ai", "x_ai": "x-ai"})


def parse_gateways(spec: str | None) -> dict[str, str]:
    """``OTEL_TOKENS_GATEWAYS``: ``URL_OR_HOST=provider,...`` -> {host: provider}. Raises ConfigError."""
    gateways: dict[str, str] = {}
    for raw in (spec or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        where, equals, provider = entry.rpartition("=")
        where, provider = where.strip(), provider.strip()
        if not equals or not where or not provider:
            raise ConfigError(f"OTEL_TOKENS_GATEWAYS entry {entry!r}: expected BASE_URL_OR_HOST=provider")
        host = urlsplit(where if "://" in where else f"//{where}").hostname
        if not host:
            raise ConfigError(f"OTEL_TOKENS_GATEWAYS entry {entry!r}: no host in {where!r}")
        gateways[host.lower()] = provider
    return gateways


# Self-hosted servers have no list price; guessing by model name would bill them as some cloud's model.
# Their models cost 0 (source SOURCE_SELF_HOSTED) unless an override prices them.
SELF_HOSTED_PROVIDERS: Final = frozenset({"ollama"})

# Distinct (provider, model) pairs kept; beyond this, resolutions are not cached (and logged once).
_MAX_CACHED: Final = 4096






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


# Override fields beyond input/output/cache: field -> (DETAIL_UNITS usage key, units its price is per).
OVERRIDE_UNITS: Final[Mapping[str, tuple[str, int]]] = MappingProxyType(
    {
        "cache_write_1h": ("cache_write_1h_tokens", 1_000_000),
        "input_audio": ("input_audio_tokens", 1_000_000),
        "output_audio": ("output_audio_tokens", 1_000_000),
        "cache_audio_read": ("cache_audio_read_tokens", 1_000_000),
        "input_image": ("input_image_tokens", 1_000_000),
        "output_image": ("output_image_tokens", 1_000_000),
        "input_video": ("input_video_tokens", 1_000_000),
        "output_video": ("output_video_tokens", 1_000_000),
        "web_search": ("web_searches", 1_000),
        "file_search": ("storage_searches", 1_000),
    }
)
# Keys of one tier's prices in PriceOverride.tiers.
TIER_KEYS: Final = ("input", "output", "cache_read", "cache_write", *OVERRIDE_UNITS)


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A user's price for a model, in USD per million tokens (``web_search`` and ``file_search`` in USD
    per 1,000 calls); wins over genai-prices.

    ``provider`` (a ``gen_ai.provider.name`` value) limits the override to calls to that provider.
    ``tiers`` prices the service tiers by the name the response gives (``otel_tokens.service_tier``:
    ``flex``, ``priority``, ``batch``, ``fast``...), each a mapping of :data:`TIER_KEYS` with ``input`` and
    ``output`` required; a tier's missing cache prices default to its input price, its other missing
    prices to the override's own.
    """

    model: str
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    provider: str | None = None
    cache_write_1h: float | None = None
    input_audio: float | None = None
    output_audio: float | None = None
    cache_audio_read: float | None = None
    input_image: float | None = None
    output_image: float | None = None
    input_video: float | None = None
    output_video: float | None = None
    web_search: float | None = None
    file_search: float | None = None
    tiers: Mapping[str, Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"PriceOverride.model must be a non-empty string, got {self.model!r}")
        owner = f"price override for {self.model!r}"
        _check_price(owner, "input", self.input, required=True)
        _check_price(owner, "output", self.output, required=True)
        for name in ("cache_read", "cache_write", *OVERRIDE_UNITS):
            _check_price(owner, name, getattr(self, name), required=False)
        if self.provider is not None and (not isinstance(self.provider, str) or not self.provider):
            raise ConfigError(f"{owner}: 'provider' must be a non-empty string, got {self.provider!r}")
        if self.tiers is not None:
            if not isinstance(self.tiers, Mapping):
                raise ConfigError(f"{owner}: 'tiers' must map tier names to prices, got {self.tiers!r}")
            for tier, prices in self.tiers.items():
                if not isinstance(tier, str) or not tier:
                    raise ConfigError(f"{owner}: tier names must be non-empty strings, got {tier!r}")
                if not isinstance(prices, Mapping):
                    raise ConfigError(f"{owner}: tier {tier!r} must be a mapping of prices, got {prices!r}")
                unknown = sorted(set(prices) - set(TIER_KEYS))
                if unknown:
                    raise ConfigError(
                        f"{owner}: tier {tier!r}: unknown key {unknown[0]!r} (allowed: {', '.join(TIER_KEYS)})"
                    )
                for name in TIER_KEYS:
                    _check_price(f"{owner}, tier {tier!r}", name, prices.get(name), required=name in ("input", "output"))
            object.__setattr__(self, "tiers", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.tiers.items()}))

    def rates(self, tier: str | None = None, context: tuple[tuple[str, str], ...] = ()) -> Rates:
        """The override's rates; a tier's when ``tier`` is one of :attr:`tiers` (then for ``context``)."""
        prices: dict[str, Any] = {name: getattr(self, name) for name in ("input", "output", "cache_read", "cache_write", *OVERRIDE_UNITS)}
        tier_prices = (self.tiers or {}).get(tier) if tier is not None else None
        if tier_prices is not None:
            prices.update(cache_read=None, cache_write=None)
            prices.update(tier_prices)
        base = Rates.per_million(
            input=prices["input"], output=prices["output"], cache_read=prices["cache_read"], cache_write=prices["cache_write"]
        )
        extra = tuple(
            (key, prices[name] / per) for name, (key, per) in OVERRIDE_UNITS.items() if prices[name] is not None
        )
        implied = tuple(
            key for key, name in (("cache_read_tokens", "cache_read"), ("cache_write_tokens", "cache_write"))
            if prices[name] is None
        )  # fmt: skip
        return replace(base, extra=extra, implied=implied, context=context if tier_prices is not None else ())


# -- price files -----------------------------------------------------------------------------------


class PriceFileError(ConfigError):
    """A price file that cannot be used; the message names the file, the entry and the problem."""

    def __init__(self, path: str, problem: str, entry: str | None = None) -> None:
        self.path = path
        self.entry = entry
        self.problem = problem
        where = f"{path}: {entry}" if entry is not None else path
        super().__init__(f"{where}: {problem}")


_FILE_KEYS: Final = tuple(sorted(("cache_read", "cache_write", "input", "output", "provider", *OVERRIDE_UNITS, "tiers")))


def load_price_file(path: str | os.PathLike[str]) -> list[PriceOverride]:
    """Read price overrides from a TOML (``.toml``) or JSON (``.json``) file, validating strictly.

    Shape: ``[models."my-model"]`` tables (TOML) or ``{"models": {"my-model": {...}}}`` (JSON), each with
    ``input`` and ``output`` (required), ``cache_read``, ``cache_write``, ``cache_write_1h``,
    ``input_audio``, ``output_audio``, ``cache_audio_read``, ``input_image``, ``output_image``,
    ``input_video``, ``output_video`` (USD per million tokens), ``web_search``, ``file_search`` (USD per
    1,000 calls), ``provider`` and ``tiers`` (``[models."my-model".tiers.flex]`` with the same price keys)
    (optional). Raises :class:`PriceFileError`.
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
        for key in ("input", "output", "cache_read", "cache_write", *OVERRIDE_UNITS):
            if key in entry:
                problem = _price_problem(key, entry[key])
                if problem is not None:
                    raise PriceFileError(name, problem, where)
        provider = entry.get("provider")
        if "provider" in entry and (not isinstance(provider, str) or not provider):
            raise PriceFileError(name, f"'provider' must be a non-empty string, got {provider!r}", where)
        tiers = entry.get("tiers")
        if tiers is not None:
            if not isinstance(tiers, dict):
                raise PriceFileError(name, f"'tiers' must be {a_table}, got {_type_name(tiers, table_word)}", where)
            for tier, prices in tiers.items():
                tier_where = f"{where}.tiers.{json.dumps(tier, ensure_ascii=False)}"
                if not isinstance(prices, dict):
                    raise PriceFileError(name, f"must be {a_table} of prices, got {_type_name(prices, table_word)}", tier_where)
                unknown = sorted(set(prices) - set(TIER_KEYS))
                if unknown:
                    raise PriceFileError(name, f"unknown key {unknown[0]!r} (allowed: {', '.join(TIER_KEYS)})", tier_where)
                for key in ("input", "output"):
                    if key not in prices:
                        raise PriceFileError(name, f"missing required key {key!r}", tier_where)
                for key, value in prices.items():
                    problem = _price_problem(key, value)
                    if problem is not None:
                        raise PriceFileError(name, problem, tier_where)
        try:
            overrides.append(
                PriceOverride(
                    model=model,
                    provider=provider,
                    tiers=tiers,
                    **{key: float(entry[key]) for key in ("input", "output", "cache_read", "cache_write", *OVERRIDE_UNITS)
                       if entry.get(key) is not None},
                )
            )
        except ConfigError as err:
            raise PriceFileError(name, str(err), where) from err
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






# Details billed at their own rate by the providers that report them: one the model has no rate for makes
# the cost incomplete. Text, 5-minute cache writes, image and video tokens are billed at the text (or
# default cache-write) rate where the model has no rate of its own, as OpenAI and Google bill them.
FLAGGED_UNITS: Final = frozenset(
    key for key in DETAIL_UNITS if "_1h_" in key or "audio" in key or key in TOOL_FEE_KEYS
)
# Usage.price_context when the model has no price for the tier that served the call.
UNPRICED_TIER: Final = "service_tier"


@dataclass(frozen=True, slots=True)
class Priced:
    """A call's price: USD on the input and output side (summing to the cost; per-call tool fees are on
    the input side, and ``fees_usd`` says how much), its ``gen_ai.usage.cost.source``, and the billing
    dimensions the response revealed that no price covers (the cost is then a lower bound)."""

    input_usd: float
    output_usd: float
    source: str
    fees_usd: float = 0.0
    unpriced: tuple[str, ...] = ()


def unpriced_dimensions(rates: Rates, usage: Usage) -> tuple[str, ...]:
    """What ``usage`` reveals that ``rates`` cannot price: :data:`UNPRICED_TIER` for a tier with no
    price of its own, and each flagged detail (:data:`FLAGGED_UNITS`) with no rate."""
    missing: list[str] = []
    if usage.price_context and not set(usage.price_context) <= set(rates.context):
        missing.append(UNPRICED_TIER)
    if rates.source != SOURCE_SELF_HOSTED:
        missing.extend(
            key for key, value in usage.details if value and key in FLAGGED_UNITS and not rates.prices(key)
        )
    return tuple(missing)


_SELF_HOSTED: Final = Rates(input=0.0, output=0.0, cache_read=0.0, cache_write=0.0, source=SOURCE_SELF_HOSTED)


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
        gateways: Mapping[str, str] | None = None,
    ) -> None:
        # server.address (host) -> the provider whose prices its "vendor/model" names use (parse_gateways).
        self._gateways: Mapping[str, str] = MappingProxyType(dict(gateways or {}))
        self._routes: dict[tuple[str | None, str | None, str], tuple[str, str] | None] = {}
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
        priced = self.price(provider, model, usage)
        return None if priced is None else (priced.input_usd + priced.output_usd, priced.source)

    def price(self, provider: str | None, model: str | None, usage: Usage) -> Priced | None:
        """The call's :class:`Priced`, at the rates of the tier that served it; None when the model has
        no known price."""
        try:
            if usage.service_tier is None and not usage.price_context:
                rates = self.rates(provider, model)
            else:
                rates = self.rates(provider, model, tier=usage.service_tier, context=usage.price_context)
            if rates is None:
                return None
            source = COST_SOURCE_SELF_HOSTED if rates.source == SOURCE_SELF_HOSTED else COST_SOURCE_LOCAL
            input_usd, output_usd = rates.split(usage)
            if not usage.details and not usage.price_context:  # the usual call
                return Priced(input_usd, output_usd, source)
            return Priced(input_usd, output_usd, source, rates.fees(usage), unpriced_dimensions(rates, usage))
        except Exception:
            log_internal_error(f"pricing {provider}/{model}")
            if raise_internal_errors():
                raise
            return None

    def rates(
        self,
        provider: str | None,
        model: str | None,
        *,
        tier: str | None = None,
        context: tuple[tuple[str, str], ...] = (),
    ) -> Rates | None:
        """The model's current rates, or None for an unknown model. Cached, including misses. With a
        ``tier`` (the tier that served the call) and its genai-prices price ``context``, that tier's
        rates where known (``Rates.context`` says which part of the context they price)."""
        if not model:
            return None
        now = self._clock()
        generation = self._generation
        if not generation.starts_at <= now < generation.ends_at:
            generation = self._roll_day(now)
        key: tuple[Any, ...] = (provider, model) if tier is None and not context else (provider, model, tier, context)
        entry = generation.cache.get(key)
        if entry is None:
            entry = self._resolve(generation, key, provider, model, tier, context)
        if type(entry) is Rates:
            return entry
        if type(entry) is _Schedule:
            return entry.at(now % _SECONDS_PER_DAY)
        return None

    def gateway_route(self, provider: str | None, model: str, server_address: str | None) -> tuple[str, str] | None:
        """Where a gateway's ``vendor/model`` name (``deepseek/deepseek-chat``, ``x-ai/grok-4-fast``) that
        ``provider`` does not price is priced: ``(price provider, model name)``, or None.

        A base URL mapped by ``OTEL_TOKENS_GATEWAYS`` uses its provider's price (the full name, then the bare
        one); OpenRouter's URL, or no URL known, uses OpenRouter's price of the full name (genai-prices
        lists gateway names there); any other URL (a proxy in front of the vendors) uses the vendor's own
        price of the bare name, else OpenRouter's. Cached per (provider, host, model), bounded."""
        key = (provider, server_address, model)
        routes = self._routes
        if key in routes:
            return routes[key]
        route = self._route(provider, model, server_address)
        if len(routes) < _MAX_CACHED:
            routes[key] = route
        return route

    def _route(self, provider: str | None, model: str, server_address: str | None) -> tuple[str, str] | None:
        vendor, _, bare = model.partition("/")
        if not vendor or not bare:
            return None
        mapped = self._gateways.get(server_address.lower()) if server_address else None
        if mapped is not None:
            candidates = [(mapped, model), (mapped, bare)]
        elif provider == _OPENROUTER or server_address is None:
            candidates = [(_OPENROUTER, model)]
        else:
            vendor_id = _VENDOR_IDS.get(vendor.lower(), vendor.lower())
            candidates = [(vendor_id, bare), (_OPENROUTER, model)]
        for candidate in candidates:
            if candidate[0] == provider and candidate[1] == model:
                continue  # already not priced
            rates = self.rates(*candidate)
            if rates is not None:
                return candidate
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
        **more: Any,
    ) -> None:
        """Price ``model`` in USD per million tokens, over the database; calls after this see it. ``more``
        takes the other :class:`PriceOverride` prices (``cache_write_1h``, ``input_audio``, ...,
        ``web_search``, ``file_search``, ``tiers``)."""
        unknown = sorted(set(more) - {*OVERRIDE_UNITS, "tiers"})
        if unknown:
            raise ConfigError(f"price override for {model!r}: unknown price {unknown[0]!r}")
        override = PriceOverride(
            model=model,
            input=input,
            output=output,
            cache_read=cache_read,
            cache_write=cache_write,
            provider=provider,
            **more,
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

    def _resolve(
        self,
        generation: _Generation,
        key: tuple[Any, ...],
        provider: str | None,
        model: str,
        tier: str | None = None,
        context: tuple[tuple[str, str], ...] = (),
    ) -> _Entry:
        with self._lock:
            entry = generation.cache.get(key)
            if entry is not None:
                return entry
            try:
                entry = self._build(generation, provider, model, tier, context)
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

    def _build(
        self,
        generation: _Generation,
        provider: str | None,
        model: str,
        tier: str | None = None,
        context: tuple[tuple[str, str], ...] = (),
    ) -> _Entry:
        name = model.lower()
        override = generation.overrides.get((provider, name)) or generation.overrides.get((None, name))
        if override is not None:
            return override.rates(tier, context)
        if provider in SELF_HOSTED_PROVIDERS:
            return _SELF_HOSTED
        listing = self._find_listing(provider, model)
        if listing is None:
            logger.debug("no price for %s/%s: genai-prices has no such model", provider, model)
            return _UNKNOWN
        provider_id, found = listing
        if generation.by_entry is None:
            generation.by_entry = self._overrides_by_entry(generation.overrides)
        override = generation.by_entry.get((provider, found)) or generation.by_entry.get((None, found))
        if override is not None:
            return override.rates(tier, context)
        catalog = self._load_catalog()
        if context:
            # genai-prices applies a model's variants only when its own provider prices it (not through a
            # fallback, e.g. Azure to OpenAI), and only those of the context's pairs it has.
            known = catalog.variant_items(found) if catalog.owns(provider_id, found) else frozenset()
            context = tuple(pair for pair in context if pair in known)
        return catalog.entry(found, generation.day, f"{provider}/{model}", context)

    def _find(self, provider: str | None, model: str) -> int | None:
        listing = self._find_listing(provider, model)
        return None if listing is None else listing[1]

    def _find_listing(self, provider: str | None, model: str) -> tuple[str, int] | None:
        catalog = self._load_catalog()
        provider_id = PROVIDER_IDS.get(provider) if provider is not None else None
        if provider_id is None and provider is not None:
            # An unmapped provider is used only when genai-prices has that exact id; else guess by model.
            lowered = provider.lower()
            if lowered in catalog.provider_ids:
                provider_id = lowered
        try:
            return catalog.lookup(model, provider_id)
        except LookupError:
            if provider_id is not None:
                return None
        # genai-prices guesses a provider only from its name patterns; a model that one provider lists
        # (llama-3.1-8b-instant: groq) or that every listing prices alike is still unambiguous.
        listings = _listings(catalog, model)
        return listings[0] if len(listings) == 1 else None

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

    def listing_providers(self, model: str) -> tuple[str, ...]:
        """Every genai-prices provider that lists ``model`` itself, and the one its name alone resolves to
        (``mixtral-8x7b-32768``: groq lists it, the name says mistral), sorted."""
        with self._lock:
            catalog = self._load_catalog()
            providers = {provider_id for provider_id, _number in catalog.listings(model)}
            try:
                providers.add(catalog.lookup(model, None)[0])
            except LookupError:
                pass
        return tuple(sorted(providers))

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

    def entry(self, number: int, day: date, label: str, context: tuple[tuple[str, str], ...] = ()) -> _Entry:
        """The model's rates on ``day`` (with its variants for ``context``), as a schedule when they change
        during it."""

    def variant_items(self, number: int) -> frozenset[tuple[str, str]]:
        """Every (key, value) of price context some variant of the model prices."""

    def owns(self, provider_id: str, number: int) -> bool:
        """Whether the model is the provider's own (not found through a fallback provider)."""


def _default_catalog() -> _Catalog:
    """The compact index shipped with otel_tokens; genai-prices' own data when the index does not match
    the installed genai-prices (its loader logs why)."""
    from otel_tokens._internal.pricing import index as price_index

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

    def variant_items(self, number: int) -> frozenset[tuple[str, str]]:
        return frozenset(item for variant in self.models[number].price_variants or () for item in variant.when.items())

    def owns(self, provider_id: str, number: int) -> bool:
        provider = next(provider for provider in self._snapshot.providers if provider.id == provider_id)
        return any(info is self.models[number] for info in provider.models)

    def entry(self, number: int, day: date, label: str, context: tuple[tuple[str, str], ...] = ()) -> _Entry:
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
        if boundaries:
            context = ()  # as the index: no variants for models with time-of-day prices

        def price_at(second: float) -> Rates | str:
            return _convert(info.get_prices(midnight + timedelta(seconds=second), dict(context) or None), context)

        return _day_entry(boundaries, price_at, label)


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










