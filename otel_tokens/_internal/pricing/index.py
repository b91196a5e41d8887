"""A compact index of genai-prices' bundled data, so the price book loads in a few ms without pydantic.

``genai_prices.data`` is a 1.6 MB module of pydantic-typed dataclasses (about 0.5 s to import cold).
The index holds only what :class:`~otel_tokens._internal.pricing.book.PriceBook` needs, as plain literals:
every provider (id, ``provider_match``, ``model_match``, fallback providers) and model (``match``, its id)
in genai-prices' order, and each distinct price already converted to Rates by the price book's own
conversion, which checks every price against genai-prices' arithmetic as it is built.
:class:`IndexCatalog` looks models up exactly as genai-prices does (``tests/test_price_index.py`` checks
every model under many names, providers, days and times of day).

Prices are always those of the installed genai-prices (``pip install -U genai-prices`` brings new ones).
An index is identified by the sha256 of the genai-prices files that decide prices and lookups (the data,
and the code that matches models and picks prices), read from the distribution's ``RECORD`` (a fraction of
a ms; no import) or hashed where there is no ``RECORD``. :func:`load` takes the first that matches:

1. the index shipped in ``otel_tokens/_data/price_index.json`` (a few ms);
2. one built earlier for this genai-prices, in the cache directory (``OTEL_TOKENS_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/otel-tokens``, else ``~/.cache/otel-tokens``; a few ms);
3. one built now from the installed genai-prices (about 1 s, once), then written to the cache directory
   in one step (a temporary file renamed over the name), so processes starting together never read half
   a file. An unwritable directory is logged once and the index is used from memory.

``otel-tokens prepare`` does step 3 ahead of time, e.g. in a container image build. If an index cannot
be built, the price book uses genai-prices itself (slower to load, equal in price). Regenerate the shipped
index after upgrading genai-prices in the project::

    python -m otel_tokens._internal.pricing.index --write
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from datetime import date
from importlib.util import find_spec
from typing import Any, Final

from otel_tokens._internal.base.settings import OTEL_TOKENS_CACHE_DIR
from otel_tokens._internal.pricing.rates import (
    SOURCE_GENAI_PRICES,
    Rates,
    RateTier,
    _day_entry,
    _Entry,
)

logger = logging.getLogger(__name__)

REGENERATE: Final = "python -m otel_tokens._internal.pricing.index --write"
# The genai-prices files whose content decides which model a name resolves to and what it costs.
FINGERPRINTED_FILES: Final = ("genai_prices/data.py", "genai_prices/data_snapshot.py", "genai_prices/types.py")
# Bumped whenever the index's rows change meaning, so a cache written by another otel-tokens is not read.
INDEX_FORMAT: Final = 3

Fingerprint = tuple[tuple[str, str], ...]
# providers, models (flat: match, row of prices, model id per model), prices; JSON lists as parsed
Tables = tuple[Sequence[Any], Sequence[Any], Sequence[str]]
_STRIDE: Final = 3  # model n is models[3n:3n + 3]

# A simple clause is one string, its kind's mark then its value (fewer objects to load than a tuple):
# equals, starts_with, ends_with, contains lower-cased, since every text genai-prices matches them against
# is lower-cased first (and those clauses lower-case both sides); a regex as written.
_EQUALS, _STARTS_WITH, _ENDS_WITH, _CONTAINS, _REGEX = "=", "^", "$", "~", "/"
_OR, _AND = "or", "and"
_SINCE, _DAILY = "since", "daily"
# genai-prices' fallback for LiteLLM/OpenRouter names: a compact date suffix (-20251211) read as -2025-12-11.
_COMPACT_DATE = r"-(20\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)"
_literal_starts: dict[str, str] = {}
_compiled: dict[str, re.Pattern[str]] = {}  # compiled on first use: most are never needed


# -- loading -----------------------------------------------------------------------------------------


@functools.cache
def load() -> IndexCatalog | None:
    """The index for the installed genai-prices: shipped, cached or built now (see the module's
    docstring); None, with a log line saying why, when none can be had. Loaded once per process."""
    try:
        installed = installed_fingerprint(from_record=True)
    except Exception as err:
        logger.debug("price index not usable (%r); using genai-prices' own data", err)
        return None
    tables = _read(shipped_path(), installed) or _read(cache_path(installed), installed)
    if tables is None:
        try:
            tables = build_tables()
        except Exception:
            logger.warning(
                "could not build a price index from the installed genai-prices; using genai-prices' own "
                "data (slower to load, same prices)", exc_info=True,
            )  # fmt: skip
            return None
        _write_cache(installed, tables)
    return IndexCatalog(*tables)


def shipped_path() -> str:
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # otel_tokens/
    return os.path.join(package, "_data", "price_index.json")


def cache_dir() -> str:
    """Where indexes built for other genai-prices versions are kept (see the module's docstring)."""
    configured = os.environ.get(OTEL_TOKENS_CACHE_DIR, "").strip()
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "otel-tokens")


def cache_path(installed: Fingerprint) -> str:
    from otel_tokens.version import __version__

    key = json.dumps([INDEX_FORMAT, __version__, installed]).encode()
    return os.path.join(cache_dir(), f"price-index-{hashlib.sha256(key).hexdigest()[:24]}.json")


def _read(path: str, installed: Fingerprint) -> Tables | None:
    """The tables of the index file at ``path`` if it was built for ``installed``, else None."""
    try:
        with open(path, encoding="utf-8") as file:
            index = json.load(file)
        if index["format"] != INDEX_FORMAT:
            raise ValueError(f"format {index['format']!r}, not {INDEX_FORMAT}")
        built = tuple(tuple(pair) for pair in index["fingerprint"])
        if built != installed:
            logger.debug(
                "the price index %s was built from genai-prices %s; the installed one differs (%s)",
                path, index["genai_prices_version"], _difference(built, installed),
            )  # fmt: skip
            return None
        # Used as parsed: rebuilding thousands of tuples would cost more than the parse.
        return index["providers"], index["models"], index["prices"]
    except FileNotFoundError:
        return None
    except Exception as err:  # unreadable or not ours: built again (and a cached one replaced)
        logger.debug("the price index %s is not usable (%r)", path, err)
        return None


def render(tables: Tables, installed: Fingerprint) -> str:
    """An index file: JSON with one provider, model or price a line (readable diffs for the shipped one)."""
    from importlib.metadata import version

    providers, models, prices = tables

    def lines(values: Any) -> str:
        return ",\n".join(json.dumps(value, separators=(",", ":")) for value in values)

    # One model a line, flat: match, row of prices, id.
    model_rows = ",\n".join(json.dumps(list(models[n : n + _STRIDE]), separators=(",", ":"))[1:-1]
                             for n in range(0, len(models), _STRIDE))
    return (
        f'{{"format": {INDEX_FORMAT}, "genai_prices_version": {json.dumps(version("genai-prices"))},\n'
        f'"fingerprint": {json.dumps(installed)},\n'
        f'"providers": [\n{lines(providers)}],\n"models": [\n{model_rows}],\n'
        f'"prices": [\n{lines(prices)}]}}\n'
    )


def _write_cache(installed: Fingerprint, tables: Tables) -> str | None:
    """The path written, or None (logged: the index is then used from memory in this process)."""
    from otel_tokens._internal.base.files import write_atomically

    path = cache_path(installed)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Price data is public, and a cache prepared in an image build is read by the app's user.
        write_atomically(path, render(tables, installed), mode=0o644)
    except OSError as err:
        logger.warning(
            "could not cache the price index in %s (%s); each process builds it again (about 1 s). Set %s "
            "to a writable directory, or run `otel-tokens prepare` where it is writable",
            os.path.dirname(path), err, OTEL_TOKENS_CACHE_DIR,
        )  # fmt: skip
        return None
    return path


def prepare() -> tuple[str, str | None]:
    """Build and cache the index for the installed genai-prices unless it is shipped: (what was done,
    the cached path or None). For ``otel-tokens prepare``."""
    installed = installed_fingerprint(from_record=True)
    if _read(shipped_path(), installed) is not None:
        return "the shipped price index matches the installed genai-prices; nothing to prepare", None
    path = cache_path(installed)
    if _read(path, installed) is not None:
        return "the price index for the installed genai-prices is already cached", path
    if _write_cache(installed, build_tables()) is None:
        raise OSError(f"could not write the price index to {cache_dir()} (set {OTEL_TOKENS_CACHE_DIR})")
    return "built the price index for the installed genai-prices", path


def installed_fingerprint(*, from_record: bool = False) -> tuple[tuple[str, str], ...]:
    """(path, ``sha256=...``) of :data:`FINGERPRINTED_FILES` in the installed genai-prices, without
    importing it: hashed, or ``from_record`` read from the distribution's RECORD (cheap) where there is
    one (a file whose size differs from its RECORD line reads as ``missing``)."""
    spec = find_spec("genai_prices")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("genai-prices is not installed")
    package_dir = spec.submodule_search_locations[0]
    site = os.path.dirname(package_dir)
    if from_record:
        recorded = _recorded_hashes(site, package_dir)
        if recorded is not None:
            return tuple((path, recorded.get(path, "missing")) for path in FINGERPRINTED_FILES)
    return tuple((path, _file_hash(os.path.join(site, path))) for path in FINGERPRINTED_FILES)


def _recorded_hashes(site: str, package_dir: str) -> dict[str, str] | None:
    """path -> ``sha256=...`` from the one genai-prices RECORD beside the package, for files whose size on
    disk is the recorded size; None when there is no such RECORD (e.g. a source checkout)."""
    records = [
        os.path.join(site, name, "RECORD")
        for name in os.listdir(site)
        if name.startswith("genai_prices-") and name.endswith(".dist-info")
    ]
    if len(records) != 1 or os.path.basename(package_dir) != "genai_prices":
        return None
    try:
        with open(records[0], encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    hashes: dict[str, str] = {}
    for line in lines:
        path, _, rest = line.partition(",")
        if path in FINGERPRINTED_FILES:
            digest, _, size = rest.partition(",")
            if size.isdigit() and os.path.getsize(os.path.join(site, path)) == int(size):
                hashes[path] = digest
    return hashes


def _file_hash(path: str) -> str:
    import base64
    import hashlib

    with open(path, "rb") as file:
        digest = hashlib.sha256(file.read()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _difference(built: tuple[tuple[str, str], ...], installed: tuple[tuple[str, str], ...]) -> str:
    changed = [path for (path, digest), (_, now) in zip(built, installed, strict=True) if digest != now]
    return "changed: " + ", ".join(changed)


# -- the matcher: genai-prices' lookup over the index -------------------------------------------------


def _is_match(clause: str | tuple[str, Any], text: str) -> bool:
    """genai-prices' clause match for ``text`` already lower-cased."""
    if type(clause) is not str:  # a compound clause: (kind, parts), a list as parsed from JSON
        kind, parts = clause
        if kind == _OR:
            return any(_is_match(part, text) for part in parts)
        if kind == _AND:
            return all(_is_match(part, text) for part in parts)
        raise ValueError(f"unknown clause kind {kind!r}")
    kind, value = clause[0], clause[1:]
    if kind == _EQUALS:
        return text == value
    if kind == _STARTS_WITH:
        return text.startswith(value)
    if kind == _ENDS_WITH:
        return text.endswith(value)
    if kind == _CONTAINS:
        return value in text
    if kind == _REGEX:
        return _regex_match(value, text)
    raise ValueError(f"unknown clause kind {kind!r}")


def _regex_match(regex: str, text: str) -> bool:
    """``re.search``; an anchored regex's literal start is checked first, so a first resolution compiles
    only the regexes its name could match (each costs about 0.1 ms)."""
    start = _literal_starts.get(regex)
    if start is None:
        start = _literal_starts[regex] = _literal_start(regex)
    return text.startswith(start) and _pattern(regex).search(text) is not None


def _literal_start(regex: str) -> str:
    """What every match of ``regex`` starts with (conservatively: "" unless it is plain ^literal...)."""
    if not regex.startswith("^") or "|" in regex:
        return ""
    literal: list[str] = []
    index = 1
    while index < len(regex):
        char = regex[index]
        if char == "\\" and index + 1 < len(regex) and regex[index + 1] in ".-/:[](){}?*+^$\\":
            char, index = regex[index + 1], index + 1
        elif not (char.isascii() and (char.isalnum() or char in "-_/:@,=")):
            break
        literal.append(char)
        index += 1
    if index < len(regex) and regex[index] in "?*{":  # the last character is optional or repeated
        literal = literal[:-1]
    return "".join(literal)


def _pattern(regex: str) -> re.Pattern[str]:
    pattern = _compiled.get(regex)
    if pattern is None:
        pattern = _compiled[regex] = re.compile(regex)
    return pattern


def _normalize_compact_date(model: str) -> str:
    def dashed(found: re.Match[str]) -> str:
        year, month, day = (int(part) for part in found.groups())
        try:
            date(year, month, day)
        except ValueError:  # 20250231: not a date, left alone
            return found.group(0)
        return f"-{year:04d}-{month:02d}-{day:02d}"

    return _pattern(_COMPACT_DATE).sub(dashed, model)


class IndexCatalog:
    """genai-prices' providers and models from the index, looked up as ``DataSnapshot`` looks them up.

    Providers are ``(id, provider_match, model_match, fallback ids, first model, end model)``; model ``n``
    is ``models[3 * n]`` (its match), ``models[3 * n + 1]`` (its row of ``prices``) and its id. A row is JSON, read
    when a model using it is resolved (thousands of small tuples would double the load time): a list of
    the conditional prices in genai-prices' order (one with no constraint for a plain price), each
    ``[constraint, price]``. A constraint is null, ``["since", y, m, d]`` or ``["daily", start, end]`` in
    seconds after UTC midnight; a price is a Rates row or why it has no per-token price (a string).
    """

    __slots__ = ("_providers", "_models", "_prices", "provider_ids", "_by_id")

    def __init__(self, providers: tuple[Any, ...], models: tuple[Any, ...], prices: tuple[Any, ...]) -> None:
        self._providers = providers
        self._models = models
        self._prices = prices
        self.provider_ids: tuple[str, ...] = tuple(provider[0] for provider in providers)
        self._by_id: dict[str, tuple[Any, ...]] = {}
        for provider in providers:
            self._by_id.setdefault(provider[0], provider)

    def lookup(self, model: str, provider_id: str | None) -> tuple[str, int]:
        model = model.lower()
        # LiteLLM names carry the provider: "anthropic/claude-sonnet-4-5".
        if provider_id and provider_id.lower() == "litellm" and "/" in model:
            prefix, rest = model.split("/", 1)
            if prefix and self._provider_by_id(prefix) is not None:
                provider_id, model = prefix, rest
        provider = self._provider(model, provider_id)
        number = self._find_model(provider, model, fallback=True)
        if number is None:
            raise LookupError(f"Unable to find model with model_ref={model!r} in {provider[0]}")
        return provider[0], number

    def listings(self, model: str) -> list[tuple[str, int]]:
        model = model.lower()
        return [
            (provider[0], number)
            for provider in self._providers
            if (number := self._find_model(provider, model, fallback=False)) is not None
        ]

    def same_prices(self, first: int, second: int) -> bool:
        return self._models[_STRIDE * first + 1] == self._models[_STRIDE * second + 1]

    def owns(self, provider_id: str, number: int) -> bool:
        provider = self._by_id.get(provider_id)
        return provider is not None and provider[4] <= number < provider[5]

    def fallbacks(self, provider_id: str) -> tuple[str, ...]:
        return self._by_id[provider_id][3]

    def variant_items(self, number: int) -> frozenset[tuple[str, str]]:
        """Every (key, value) of the price context some price variant of the model is for."""
        table = json.loads(self._prices[self._models[_STRIDE * number + 1]])
        if not isinstance(table, dict):
            return frozenset()
        return frozenset(item for key in table["v"] for item in _context_from_key(key))

    def entry(self, number: int, day: date, label: str, context: tuple[tuple[str, str], ...] = ()) -> _Entry:
        table = json.loads(self._prices[self._models[_STRIDE * number + 1]])
        if isinstance(table, dict):  # {"p": prices, "v": {context key: prices with that context}}
            table = table["v"].get(context_key(context), table["p"]) if context else table["p"]
        today = (day.year, day.month, day.day)
        boundaries = {bound for constraint, _ in table if constraint and constraint[0] == _DAILY
                      for bound in constraint[1:]}  # fmt: skip

        def price_at(second: float) -> Rates | str:
            # ModelInfo.get_prices: the last active conditional price, else the first.
            price = table[0][1]
            for constraint, candidate in reversed(table):
                if constraint is None or _active(constraint, today, second):
                    price = candidate
                    break
            return price if isinstance(price, str) else rates_from_row(price, context)

        return _day_entry(boundaries, price_at, label)

    def _provider(self, model: str, provider_id: str | None) -> tuple[Any, ...]:
        """``DataSnapshot.find_provider`` without an API URL."""
        if provider_id is not None:
            provider = self._provider_by_id(provider_id)
            if provider is not None:
                return provider
            if provider_id.lower() != "litellm":
                raise LookupError(f"Unable to find provider provider_id={provider_id!r}")
        if model:
            for provider in self._providers:
                if provider[2] is not None and _is_match(provider[2], model):
                    return provider
        raise LookupError(f"Unable to find provider with model matching {model!r}")

    def _provider_by_id(self, provider_id: str) -> tuple[Any, ...] | None:
        """``find_provider_by_id``: an exact id first, then the first ``provider_match``."""
        normalized = provider_id.lower().strip()
        provider = self._by_id.get(normalized)
        if provider is not None:
            return provider
        for provider in self._providers:
            if provider[1] is not None and _is_match(provider[1], normalized):
                return provider
        return None

    def _find_model(self, provider: tuple[Any, ...], model: str, *, fallback: bool) -> int | None:
        """``Provider.find_model`` for a lower-cased name: as sent, then with a compact date dashed."""
        number = self._match_model(provider, model, fallback)
        if number is None:
            normalized = _normalize_compact_date(model)
            if normalized != model:
                number = self._match_model(provider, normalized, fallback)
        return number

    def _match_model(self, provider: tuple[Any, ...], model: str, fallback: bool) -> int | None:
        models = self._models
        for number in range(provider[4], provider[5]):
            if _is_match(models[_STRIDE * number], model):
                return number
        if fallback:
            # One step only: a fallback provider's own fallbacks are not followed.
            for fallback_id in provider[3]:
                other = self._by_id.get(fallback_id)
                if other is not None and (number := self._match_model(other, model, False)) is not None:
                    return number
        return None


def context_key(context: tuple[tuple[str, str], ...]) -> str:
    """A price context as the index keys it: ``key=value`` pairs, sorted, joined by ``&``."""
    return "&".join(f"{key}={value}" for key, value in sorted(context))


def _context_from_key(key: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(pair.split("=", 1)) for pair in key.split("&"))  # type: ignore[misc]


def _active(constraint: tuple[Any, ...], today: tuple[int, int, int], second: float) -> bool:
    if constraint[0] == _SINCE:
        return today >= tuple(constraint[1:])
    start, end = constraint[1], constraint[2]
    if end < start:  # a window across midnight
        return second >= start or second < end
    return start <= second < end


def rates_from_row(row: list[Any], context: tuple[tuple[str, str], ...] = ()) -> Rates:
    """A Rates row of the index: the six base rates, the tiers, then (when the model has any) its other
    units' rates and the cache buckets it prices only at the input rate."""
    flat, tiers = row[:6], row[6]
    extra = tuple((key, value) for key, value in row[7]) if len(row) > 7 else ()
    implied = tuple(row[8]) if len(row) > 8 else ()
    return Rates(
        *flat,
        tiers=tuple(
            RateTier(*tier[:7], extra=tuple((key, value) for key, value in tier[7]) if len(tier) > 7 else ())
            for tier in tiers
        ),
        source=SOURCE_GENAI_PRICES, extra=extra, implied=implied, context=context,
    )  # fmt: skip


def row_from_rates(rates: Rates) -> list[Any]:
    def values(row: Rates | RateTier) -> list[Any]:
        return [row.input, row.output, row.cache_read, row.cache_write, row.reasoning, row.request]

    def extra(row: Rates | RateTier) -> list[Any]:
        return [[[key, value] for key, value in row.extra]] if rates.extra else []

    tiers = [[tier.above_input_tokens, *values(tier), *extra(tier)] for tier in rates.tiers]
    if not rates.extra and not rates.implied:
        return [*values(rates), tiers]
    return [*values(rates), tiers, [[key, value] for key, value in rates.extra], list(rates.implied)]


# -- the generator -------------------------------------------------------------------------------------


def encode_clause(logic: Any) -> str | tuple[str, Any] | None:
    """A genai-prices match clause as index literals (its strings lower-cased, regexes as written)."""
    from genai_prices import types

    if logic is None:
        return None
    for kind, cls, attribute in (
        (_EQUALS, types.ClauseEquals, "equals"),
        (_STARTS_WITH, types.ClauseStartsWith, "starts_with"),
        (_ENDS_WITH, types.ClauseEndsWith, "ends_with"),
        (_CONTAINS, types.ClauseContains, "contains"),
    ):
        if type(logic) is cls:
            return kind + getattr(logic, attribute).lower()
    if type(logic) is types.ClauseRegex:
        return _REGEX + logic.regex
    if type(logic) is types.ClauseOr:
        return _OR, tuple(encode_clause(part) for part in logic.or_)
    if type(logic) is types.ClauseAnd:
        return _AND, tuple(encode_clause(part) for part in logic.and_)
    raise TypeError(f"unknown genai-prices clause {logic!r}")


def encode_constraint(logic: Any) -> tuple[Any, ...] | None:
    """A conditional price's constraint as index literals; times of day in seconds after UTC midnight."""
    from genai_prices import types

    from otel_tokens._internal.pricing.rates import _utc_second_of_day

    if logic is None:
        return None
    if type(logic) is types.StartDateConstraint:
        return _SINCE, logic.start_date.year, logic.start_date.month, logic.start_date.day
    if type(logic) is types.TimeOfDateConstraint:
        return _DAILY, _utc_second_of_day(logic.start_time), _utc_second_of_day(logic.end_time)
    raise TypeError(f"unknown genai-prices constraint {logic!r}")


def build_tables() -> Tables:
    """The index's tables from the installed genai-prices (imports it; about 1 s)."""
    from genai_prices import types
    from genai_prices.data import providers

    from otel_tokens._internal.pricing.rates import _convert

    def price(model_price: Any) -> list[Any] | str:
        rates = _convert(model_price)
        return rates if isinstance(rates, str) else row_from_rates(rates)

    # Equal genai-prices prices (as ModelInfo.prices compare) share one row, so equality is row identity.
    def price_key(value: Any) -> Any:
        if isinstance(value, types.TieredPrices):
            return "tiered", value.base, tuple((tier.start, tier.price) for tier in value.tiers)
        if isinstance(value, types.ModelPrice):
            return tuple(sorted((key, price_key(item)) for key, item in value._comparable_values().items()))
        if isinstance(value, list):
            return "conditional", tuple((price_key(item.constraint), price_key(item.prices)) for item in value)
        if isinstance(value, types.PriceVariant):
            return "variant", tuple(sorted(value.when.items())), price_key(value.constraint), price_key(value.prices)
        if isinstance(value, types.StartDateConstraint | types.TimeOfDateConstraint):
            return type(value).__name__, *vars(value).values()
        return value

    price_rows: dict[Any, int] = {}
    prices: list[str] = []
    provider_rows: list[tuple[Any, ...]] = []
    models: list[Any] = []
    for provider in providers:
        first = len(models) // _STRIDE
        for info in provider.models:
            key = (price_key(info.prices), tuple(price_key(variant) for variant in info.price_variants or ()))
            if key not in price_rows:
                price_rows[key] = len(prices)
                conditionals = info.prices if isinstance(info.prices, list) else [types.ConditionalPrice(prices=info.prices)]
                table: Any = [[encode_constraint(item.constraint), price(item.prices)] for item in conditionals]
                variants = _variant_tables(info, price)
                if variants:
                    table = {"p": table, "v": variants}
                prices.append(json.dumps(table, separators=(",", ":")))
            models += (encode_clause(info.match), price_rows[key], info.id)
        provider_rows.append((
            provider.id, encode_clause(provider.provider_match), encode_clause(provider.model_match),
            tuple(provider.fallback_model_providers or ()), first, len(models) // _STRIDE,
        ))  # fmt: skip
    return tuple(provider_rows), tuple(models), tuple(prices)


def _variant_tables(info: Any, price: Any) -> dict[str, list[Any]]:
    """For each price context the model's variants answer (every choice of at most one value per context
    key), its prices by start date: ``[[constraint, price], ...]`` as the plain table, resolved with
    ``ModelInfo.get_prices(day, context)``. Models with time-of-day prices keep none (then every tier is
    priced as standard and flagged)."""
    from datetime import UTC, datetime
    from itertools import product

    from genai_prices import types

    variants = info.price_variants or ()
    conditionals = info.prices if isinstance(info.prices, list) else []
    constraints = [item.constraint for item in conditionals] + [variant.constraint for variant in variants]
    if not variants or any(isinstance(c, types.TimeOfDateConstraint) for c in constraints):
        return {}
    values: dict[str, set[str]] = {}
    for variant in variants:
        for key, value in variant.when.items():
            values.setdefault(key, set()).add(value)
    starts = sorted({c.start_date for c in constraints if isinstance(c, types.StartDateConstraint)})
    keys = sorted(values)
    tables: dict[str, list[Any]] = {}
    for choice in product(*([None, *sorted(values[key])] for key in keys)):
        context = tuple((key, value) for key, value in zip(keys, choice, strict=True) if value is not None)
        if not context:
            continue
        table = [[None, price(info.get_prices(datetime(2000, 1, 1, tzinfo=UTC), dict(context)))]]
        for start in starts:
            day = datetime(start.year, start.month, start.day, tzinfo=UTC)
            row = price(info.get_prices(day, dict(context)))
            if row != table[-1][1]:  # a date that changes nothing for this context is left out
                table.append([[_SINCE, start.year, start.month, start.day], row])
        tables[context_key(context)] = table
    return tables


def generate() -> str:
    """The shipped index file's text, from the installed genai-prices."""
    return render(build_tables(), installed_fingerprint())


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m otel_tokens._internal.pricing.index", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the index (else check it is current)")
    args = parser.parse_args(argv)
    text = generate()
    path = shipped_path()
    if args.write:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        print(f"wrote {path}")
        return 0
    try:
        with open(path, encoding="utf-8") as file:
            current = file.read() == text
    except OSError:
        current = False
    print(f"{path} is {'current' if current else f'out of date: run `{REGENERATE}`'}")
    return 0 if current else 1


if __name__ == "__main__":
    raise SystemExit(main())
