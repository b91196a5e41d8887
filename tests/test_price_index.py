"""The shipped price index against genai-prices itself: the same model for every name and provider, the
same rates on every day and time of day, current with the installed genai-prices, and a fallback that
works; and a priced call that never imports genai-prices or pydantic."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import types
from datetime import UTC, date, datetime, time, timedelta, timezone

import genai_prices
import pytest
from genai_prices import types as genai_types
from genai_prices.data import providers as GENAI_PROVIDERS

from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.pricing import book as pricing
from otel_tokens._internal.pricing import index as price_index
from otel_tokens._internal.pricing import rates
from otel_tokens._internal.pricing.book import PROVIDER_IDS, PriceBook
from otel_tokens._internal.pricing.rates import Rates, _Schedule

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture(scope="module")
def genai() -> pricing._GenaiCatalog:
    return pricing._GenaiCatalog()


@pytest.fixture(scope="module")
def index() -> price_index.IndexCatalog:
    catalog = price_index.load()
    assert catalog is not None, "no price index for the installed genai-prices (shipped, cached or built)"
    return catalog


def _clause_strings(logic: object) -> list[str]:
    """The literal names a match clause is written with (equals, starts_with values)."""
    if isinstance(logic, genai_types.ClauseEquals):
        return [logic.equals]
    if isinstance(logic, genai_types.ClauseStartsWith):
        return [logic.starts_with, logic.starts_with + "-preview-0917"]
    if isinstance(logic, genai_types.ClauseOr):
        return [name for part in logic.or_ for name in _clause_strings(part)]
    if isinstance(logic, genai_types.ClauseAnd):
        return [name for part in logic.and_ for name in _clause_strings(part)][:1]
    return []


def _compact(name: str) -> str | None:
    """gpt-4o-2024-08-06 -> gpt-4o-20240806, as LiteLLM and OpenRouter send dated names."""
    compact = re.sub(r"-(20\d\d)-(\d\d)-(\d\d)", r"-\1\2\3", name)
    return compact if compact != name else None


UNKNOWN_NAMES = (
    "no-such-model", "", " ", "gpt", "claude", "GPT-4O", " gpt-4o", "gpt-4o-20240231", "gpt-4o-20241306",
    "anthropic/", "/gpt-4o", "litellm/gpt-4o", "openai/gpt-4o-20240806", "azure/gpt-4o", "über-model",
    "claude-sonnet-4-5-20250929:beta", "models/gemini-2.5-pro", "accounts/fireworks/models/unknown",
)  # fmt: skip


def _names_by_provider() -> dict[str, list[str]]:
    """Per genai-prices provider, the names of its models a caller may send: the id, upper-cased, the
    compact-dated form, ``provider/model`` (LiteLLM), and the names its match clauses are written with."""
    names: dict[str, list[str]] = {}
    for provider in GENAI_PROVIDERS:
        own: list[str] = []
        for info in provider.models:
            own += [info.id, info.id.upper(), f"{provider.id}/{info.id}", *_clause_strings(info.match)]
            own += [compact for compact in (_compact(info.id),) if compact]
        names[provider.id] = list(dict.fromkeys(own))
    return names


NAMES_BY_PROVIDER = _names_by_provider()
ALL_NAMES = list(dict.fromkeys([*UNKNOWN_NAMES, *(name for names in NAMES_BY_PROVIDER.values() for name in names)]))
PROVIDER_ARGUMENTS: tuple[str | None, ...] = (
    None, "no-such-provider", "litellm", "LiteLLM", " OpenAI ", " azure ", "DeepSeek\t", "",
    *(provider.id for provider in GENAI_PROVIDERS), *PROVIDER_IDS,
)  # fmt: skip


def _lookup(catalog: pricing._Catalog, model: str, provider_id: str | None) -> tuple[str, int] | None:
    try:
        return catalog.lookup(model, provider_id)
    except LookupError:
        return None


def test_the_names_are_many() -> None:
    assert len(GENAI_PROVIDERS) >= 40 and sum(len(provider.models) for provider in GENAI_PROVIDERS) >= 2000
    assert len(ALL_NAMES) >= 7_000
    assert sum(1 for name in ALL_NAMES if _compact(name)) >= 50  # dated ids, sent compact as well


@pytest.mark.parametrize("provider", [provider.id for provider in GENAI_PROVIDERS])
def test_every_name_resolves_to_the_same_model(
    genai: pricing._GenaiCatalog, index: price_index.IndexCatalog, provider: str
) -> None:
    """Each provider's names, with no provider, their own provider, LiteLLM and an unknown provider."""
    resolved = 0
    names = (*NAMES_BY_PROVIDER[provider], *UNKNOWN_NAMES)
    for name in names:
        for provider_id in (None, provider, "litellm", "no-such-provider"):
            expected = _lookup(genai, name, provider_id)
            assert _lookup(index, name, provider_id) == expected, (name, provider_id)
            resolved += expected is not None
    for name in (*names[::4], *UNKNOWN_NAMES):  # every provider's own match, for bare names (1 ms a name)
        assert index.listings(name) == genai.listings(name), name
    assert resolved > 0


@pytest.mark.parametrize("provider_id", PROVIDER_ARGUMENTS)
def test_every_provider_argument_resolves_alike(
    genai: pricing._GenaiCatalog, index: price_index.IndexCatalog, provider_id: str | None
) -> None:
    """Every provider id, gen_ai.provider.name and odd argument, over a spread of every provider's names."""
    for name in ALL_NAMES[::7]:
        assert _lookup(index, name, provider_id) == _lookup(genai, name, provider_id), (name, provider_id)


@pytest.mark.parametrize("provider", [None, "my-gateway", "ollama", *PROVIDER_IDS, *(p.id for p in GENAI_PROVIDERS)])
def test_the_book_finds_the_same_entry(provider: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """PriceBook._find over both: the gen_ai.provider.name mapping, exact ids and bare-name listings."""
    by_index = PriceBook()
    by_index.preload()
    monkeypatch.setattr(pricing, "_default_catalog", pricing._GenaiCatalog)
    by_genai = PriceBook()
    for name in ALL_NAMES[::13]:
        assert by_index._find(provider, name) == by_genai._find(provider, name), (provider, name)
    for name in ("gpt-4o", "llama-3.1-8b-instant", "deepseek-r1", "claude-sonnet-4-5", "nope"):
        assert by_index.providers_for(name) == by_genai.providers_for(name), name
    assert by_index.known_providers() == by_genai.known_providers()


def _days() -> dict[int, list[date]]:
    """Per model number, the days to price it on: before and on each of its start dates, and two more."""
    days: dict[int, list[date]] = {}
    number = 0
    for provider in GENAI_PROVIDERS:
        for info in provider.models:
            chosen = [date(2023, 1, 1), date(2031, 6, 30)]
            for conditional in info.prices if isinstance(info.prices, list) else ():
                if isinstance(conditional.constraint, genai_types.StartDateConstraint):
                    start = conditional.constraint.start_date
                    chosen += [start - timedelta(days=1), start]
            days[number] = chosen
            number += 1
    return days


DAYS = _days()


def test_every_model_has_the_same_rates_on_every_day(
    genai: pricing._GenaiCatalog, index: price_index.IndexCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    kinds = set()
    with caplog.at_level(logging.DEBUG, logger="otel_tokens._internal.pricing"):
        for number, days in DAYS.items():
            for day in days:
                caplog.clear()
                expected = genai.entry(number, day, "p/m")
                expected_log = caplog.text
                caplog.clear()
                actual = index.entry(number, day, "p/m")
                assert (actual, caplog.text) == (expected, expected_log), (genai.models[number].id, day)
                kinds.add(type(actual))
    assert kinds == {Rates, _Schedule, rates._Unknown}
    assert sum(len(days) > 2 for days in DAYS.values()) >= 100  # models with start dates


def test_time_of_day_prices_match_genai_prices_at_every_boundary(
    genai: pricing._GenaiCatalog, index: price_index.IndexCatalog
) -> None:
    day = date(2026, 11, 20)
    midnight = datetime(2026, 11, 20, tzinfo=UTC)
    checked = 0
    for number, info in enumerate(genai.models):
        if not isinstance(info.prices, list) or not any(
            isinstance(c.constraint, genai_types.TimeOfDateConstraint) for c in info.prices
        ):
            continue
        schedule = index.entry(number, day, "p/m")
        assert isinstance(schedule, _Schedule)
        for boundary in schedule.starts:
            for second in (boundary - 1, boundary, boundary + 1, boundary + 0.5):
                second %= 86_400
                expected = rates._convert(info.get_prices(midnight + timedelta(seconds=second)))
                assert schedule.at(second) == expected, (info.id, second)
                checked += 1
    assert checked >= 40


# -- the clause kinds and constraints, beyond what today's data uses -----------------------------------

_CLAUSES = (
    genai_types.ClauseEquals(equals="GPT-4o"),
    genai_types.ClauseStartsWith(starts_with="Claude-"),
    genai_types.ClauseEndsWith(ends_with="-Latest"),
    genai_types.ClauseContains(contains="Sonnet"),
    genai_types.ClauseRegex(regex=r"sonnet-\d"),  # unanchored: re.search
    genai_types.ClauseRegex(regex=r"^[A-Z]"),  # never matches: texts are lower-cased first
    # anchored regexes whose literal start is checked before compiling them
    genai_types.ClauseRegex(regex=r"^claude-sonnet-4-5?-\d"),
    genai_types.ClauseRegex(regex=r"^my\-sonnet\.?-\d$"),
    genai_types.ClauseRegex(regex=r"^gpt-4o|sonnet"),
    genai_types.ClauseRegex(regex=r"^(typesafe/)?gpt-4"),
    genai_types.ClauseRegex(regex=r"^gp{1}t-4o"),
    genai_types.ClauseOr(or_=[genai_types.ClauseEquals(equals="a"), genai_types.ClauseEndsWith(ends_with="B")]),
    genai_types.ClauseAnd(
        and_=[genai_types.ClauseStartsWith(starts_with="claude"), genai_types.ClauseContains(contains="4-5")]
    ),
)
_TEXTS = (
    "gpt-4o", "GPT-4O", "claude-sonnet-4-5", "CLAUDE-Sonnet-4-5-Latest", "my-sonnet-7", "a", "xb", "", "B",
    "claude-sonnet-4-7", "claude-sonnet-4-5-2", "my-sonnet.-7", "typesafe/gpt-4", "the-sonnet",
)  # fmt: skip


@pytest.mark.parametrize("clause", _CLAUSES, ids=lambda clause: type(clause).__name__)
def test_every_clause_kind_matches_as_genai_prices(clause: object) -> None:
    encoded = price_index.encode_clause(clause)
    for text in _TEXTS:
        # Every caller in genai-prices lower-cases the text before matching, as the index's callers do.
        assert price_index._is_match(encoded, text.lower()) is clause.is_match(text.lower()), text


@pytest.mark.parametrize(
    ("start", "end"),
    [((0, 30), (16, 30)), ((16, 30), (0, 30)), ((6, 0), (6, 0)), ((23, 0), (1, 0)), ((0, 0), (23, 59))],
)
@pytest.mark.parametrize("offset_hours", [0, 8, -5])
def test_time_of_day_windows_are_active_as_in_genai_prices(start, end, offset_hours: int) -> None:
    zone = timezone(timedelta(hours=offset_hours))
    constraint = genai_types.TimeOfDateConstraint(
        start_time=time(*start, tzinfo=zone), end_time=time(*end, tzinfo=zone)
    )
    encoded = price_index.encode_constraint(constraint)
    for minute in range(0, 24 * 60, 15):
        moment = datetime(2026, 11, 20, tzinfo=UTC) + timedelta(minutes=minute)
        second = minute * 60.0
        assert price_index._active(encoded, (2026, 11, 20), second) is constraint.active(moment), moment


def test_start_dates_are_active_as_in_genai_prices() -> None:
    encoded = price_index.encode_constraint(genai_types.StartDateConstraint(start_date=date(2026, 3, 1)))
    for day in (date(2025, 12, 31), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2), date(2027, 1, 1)):
        expected = genai_types.StartDateConstraint(start_date=date(2026, 3, 1)).active(
            datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        )
        assert price_index._active(encoded, (day.year, day.month, day.day), 43_200.0) is expected, day


# -- shipped, cached or built: always the installed genai-prices' prices ------------------------------


def shipped() -> dict:
    with open(price_index.shipped_path(), encoding="utf-8") as file:
        return json.load(file)


SHIPPED_FINGERPRINT = tuple(tuple(pair) for pair in shipped()["fingerprint"])
SHIPPED_IS_INSTALLED = price_index.installed_fingerprint() == SHIPPED_FINGERPRINT
shipped_matches = pytest.mark.skipif(
    not SHIPPED_IS_INSTALLED,
    reason=f"the shipped index is for genai-prices {shipped()['genai_prices_version']}, not the installed "
    f"{genai_prices.__version__}: the index built for the installed one is tested instead",
)


@shipped_matches
def test_the_shipped_index_is_current_for_its_genai_prices() -> None:
    assert price_index.installed_fingerprint(from_record=True) == SHIPPED_FINGERPRINT  # RECORD agrees
    with open(price_index.shipped_path(), encoding="utf-8") as file:
        text = file.read()
    assert price_index.generate() == text, f"the price index is stale: run `{price_index.REGENERATE}`"


@shipped_matches
def test_check_command_says_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert price_index.main([]) == 0
    assert capsys.readouterr().out.endswith("price_index.json is current\n")


@pytest.fixture
def fresh_load(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """load() afresh, with an empty cache directory of its own."""
    monkeypatch.setenv(price_index.OTEL_TOKENS_CACHE_DIR, str(tmp_path / "cache"))
    price_index.load.cache_clear()
    yield price_index.load
    price_index.load.cache_clear()


@pytest.fixture(scope="module")
def built_tables() -> price_index.Tables:
    """One real build for the module (about 1 s, minutes over a suite if every cache test built again)."""
    return price_index.build_tables()


@pytest.fixture
def built_once(built_tables, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_tables() returns the module's one real build: for tests of the cache, not of the builder
    (test_a_newer_genai_prices_is_built_once_then_read_from_the_cache builds for real)."""
    monkeypatch.setattr(price_index, "build_tables", lambda: built_tables)


@pytest.fixture
def newer_genai_prices(monkeypatch: pytest.MonkeyPatch):
    """As if the installed genai-prices were newer than the shipped index: its fingerprint differs."""
    installed = price_index.installed_fingerprint

    def newer(*, from_record: bool = False):
        return (("genai_prices/data.py", "sha256=newer"), *installed(from_record=from_record)[1:])

    monkeypatch.setattr(price_index, "installed_fingerprint", newer)
    return newer()


def _same_catalog(first: price_index.IndexCatalog, second: price_index.IndexCatalog) -> None:
    """The same tables, whether built (tuples) or read back from a file (JSON lists)."""

    def tables(catalog: price_index.IndexCatalog) -> str:
        return json.dumps([catalog._providers, catalog._models, catalog._prices])

    assert tables(first) == tables(second)


def test_a_newer_genai_prices_is_built_once_then_read_from_the_cache(
    fresh_load, newer_genai_prices, index: price_index.IndexCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="otel_tokens._internal.pricing.index"):
        built = fresh_load()
    assert built is not None
    _same_catalog(built, index)  # the installed data, whatever the shipped file holds
    path = price_index.cache_path(newer_genai_prices)
    assert os.path.isfile(path) and os.stat(path).st_mode & 0o777 == 0o644
    assert [name for name in os.listdir(os.path.dirname(path))] == [os.path.basename(path)]  # no temporaries
    assert "the installed one differs (changed: genai_prices/data.py)" in caplog.text

    price_index.load.cache_clear()
    with open(path, encoding="utf-8") as file:
        assert json.load(file)["fingerprint"] == [list(pair) for pair in newer_genai_prices]
    # Read back, not rebuilt: building would import genai-prices' build path.
    original = price_index.build_tables
    try:
        price_index.build_tables = lambda: pytest.fail("rebuilt although cached")  # type: ignore[assignment]
        _same_catalog(fresh_load(), index)
    finally:
        price_index.build_tables = original


def test_a_cache_for_another_genai_prices_or_a_damaged_one_is_rebuilt(
    built_once, fresh_load, newer_genai_prices, index: price_index.IndexCatalog
) -> None:
    path = price_index.cache_path(newer_genai_prices)
    os.makedirs(os.path.dirname(path))
    for damage in ("{not json", json.dumps({"format": 1, "fingerprint": [["genai_prices/data.py", "x"]]}),
                   json.dumps({"format": 999}), ""):
        with open(path, "w", encoding="utf-8") as file:
            file.write(damage)
        price_index.load.cache_clear()
        _same_catalog(fresh_load(), index)
        with open(path, encoding="utf-8") as file:
            assert json.load(file)["fingerprint"] == [list(pair) for pair in newer_genai_prices], damage


def test_an_unwritable_cache_directory_is_logged_and_the_index_used_from_memory(
    built_once, fresh_load, newer_genai_prices, index, tmp_path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(price_index.OTEL_TOKENS_CACHE_DIR, str(blocker / "cache"))  # under a file: never a dir
    with caplog.at_level(logging.WARNING, logger="otel_tokens._internal.pricing.index"):
        _same_catalog(fresh_load(), index)
    (record,) = [r for r in caplog.records if r.name == "otel_tokens._internal.pricing.index"]
    assert record.levelno == logging.WARNING
    assert f"could not cache the price index in {blocker / 'cache'}" in record.getMessage()
    assert "Set OTEL_TOKENS_CACHE_DIR to a writable directory" in record.getMessage()


def test_the_cache_directory_follows_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(price_index.OTEL_TOKENS_CACHE_DIR, str(tmp_path / "mine"))
    assert price_index.cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv(price_index.OTEL_TOKENS_CACHE_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert price_index.cache_dir() == str(tmp_path / "xdg" / "otel-tokens")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert price_index.cache_dir() == str(tmp_path / "home" / ".cache" / "otel-tokens")


def test_a_genai_prices_the_builder_cannot_read_falls_back_to_genai_prices_itself(
    fresh_load, newer_genai_prices, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unknown_shape() -> None:
        raise TypeError("unknown genai-prices clause")

    monkeypatch.setattr(price_index, "build_tables", unknown_shape)
    with caplog.at_level(logging.DEBUG, logger="otel_tokens._internal.pricing.index"):
        assert fresh_load() is None
        book = PriceBook(today=date(2026, 11, 20))
        usage = Usage(input_tokens=230_417, cache_read_tokens=51_203, output_tokens=3_917)
        cost = book.cost("anthropic", "claude-sonnet-4-5", usage)
    assert isinstance(book._catalog, pricing._GenaiCatalog)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=230_417, cache_read_tokens=51_203, output_tokens=3_917),
        "claude-sonnet-4-5", provider_id="anthropic",
        genai_request_timestamp=datetime(2026, 11, 20, 12, tzinfo=UTC),
    ).total_price  # fmt: skip
    assert cost == pytest.approx(float(expected), rel=0, abs=1e-12)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "could not build a price index from the installed genai-prices; using genai-prices' own data "
        "(slower to load, same prices)"
    ]


def test_an_unreadable_shipped_index_is_built_instead(built_once, fresh_load, index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(price_index, "shipped_path", lambda: "/nonexistent/price_index.json")
    _same_catalog(fresh_load(), index)


def test_prepare_builds_for_an_image_then_says_it_is_cached(built_once, fresh_load, newer_genai_prices, index) -> None:
    done, path = price_index.prepare()
    assert done == "built the price index for the installed genai-prices"
    assert path == price_index.cache_path(newer_genai_prices) and os.path.isfile(path)
    assert price_index.prepare() == ("the price index for the installed genai-prices is already cached", path)
    _same_catalog(fresh_load(), index)


def test_prepare_with_the_shipped_index_has_nothing_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(price_index, "installed_fingerprint", lambda *, from_record=False: SHIPPED_FINGERPRINT)
    assert price_index.prepare() == (
        "the shipped price index matches the installed genai-prices; nothing to prepare", None
    )


def test_many_processes_starting_together_with_an_empty_cache_all_price_and_leave_one_file(tmp_path) -> None:
    """Cold pods: each process builds and renames its own temporary file; readers never see a part."""
    cache = tmp_path / "cache"
    PROCESSES = 4  # twice the cores CI has: they build at the same time
    script = (
        "import json, sys\n"
        "from otel_tokens._internal.pricing import index as price_index\n"
        "from otel_tokens._internal.pricing.book import PriceBook\n"
        "from otel_tokens._internal.base.records import Usage\n"
        "price_index.shipped_path = lambda: '/nonexistent.json'  # as if genai-prices were newer\n"
        "cost = PriceBook().cost('openai', 'gpt-4o-mini', Usage(input_tokens=1000, output_tokens=100))\n"
        "print(json.dumps(cost))\n"
    )
    environment = {**os.environ, price_index.OTEL_TOKENS_CACHE_DIR: str(cache)}
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=environment)
        for _ in range(PROCESSES)
    ]  # fmt: skip
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * PROCESSES, [err for _, err in results]
    expected = float(genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=100), "gpt-4o-mini", provider_id="openai"
    ).total_price)  # fmt: skip
    assert [json.loads(out) for out, _ in results] == [pytest.approx(expected, rel=0, abs=1e-12)] * PROCESSES
    assert len(os.listdir(cache)) == 1 and os.listdir(cache)[0].startswith("price-index-")


@pytest.fixture
def copied_site(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A site-packages holding a copy of genai-prices' fingerprinted files, where find_spec looks."""
    package = tmp_path / "genai_prices"
    package.mkdir()
    source = os.path.dirname(genai_prices.__file__)
    for path in price_index.FINGERPRINTED_FILES:
        (tmp_path / path).write_bytes(open(os.path.join(source, os.path.basename(path)), "rb").read())
    spec = types.SimpleNamespace(submodule_search_locations=[str(package)])
    monkeypatch.setattr(price_index, "find_spec", lambda name: spec if name == "genai_prices" else None)
    return tmp_path


def test_without_a_record_the_files_are_hashed(copied_site) -> None:
    hashed = price_index.installed_fingerprint()
    assert [path for path, _ in hashed] == list(price_index.FINGERPRINTED_FILES)
    assert price_index.installed_fingerprint(from_record=True) == hashed
    assert all(digest.startswith("sha256=") and len(digest) == 50 for _, digest in hashed)


def test_a_record_is_read_and_a_file_that_differs_from_it_is_missing(copied_site) -> None:
    hashed = price_index.installed_fingerprint()
    record = copied_site / "genai_prices-9.9.9.dist-info" / "RECORD"
    record.parent.mkdir()
    lines = [f"{path},{digest},{(copied_site / path).stat().st_size}" for path, digest in hashed]
    record.write_text("genai_prices/__init__.py,sha256=x,1\n" + "\n".join(lines) + "\n")
    assert price_index.installed_fingerprint(from_record=True) == hashed
    with open(copied_site / "genai_prices/types.py", "a") as file:
        file.write("# edited by hand\n")
    assert dict(price_index.installed_fingerprint(from_record=True))["genai_prices/types.py"] == "missing"
    assert price_index.installed_fingerprint() != hashed  # hashed: differs too


def test_no_genai_prices_installed_falls_back(fresh_load, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(price_index, "find_spec", lambda name: None)
    with caplog.at_level(logging.DEBUG, logger="otel_tokens._internal.pricing.index"):
        assert fresh_load() is None
    assert "genai-prices is not installed" in caplog.text


# -- the normal path never imports genai-prices or pydantic -------------------------------------------

_PRICED_CALL = """
import json, sys
import otel_tokens
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.metrics import MeterProvider

exporter = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
otel_tokens.instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider())
cost = otel_tokens.record_usage(
    model="claude-sonnet-4-5-20250929", provider="anthropic", input_tokens=230_417,
    cache_read_tokens=51_203, cache_write_tokens=7_129, output_tokens=3_917,
)
span = exporter.get_finished_spans()[0]
print(json.dumps({
    "cost": cost,
    "span_cost": span.attributes.get("gen_ai.usage.cost.amount"),
    "loaded": sorted(name for name in ("genai_prices", "pydantic") if name in sys.modules),
}))
"""


def test_a_priced_call_imports_neither_genai_prices_nor_pydantic(index) -> None:
    """With the index shipped or cached (the index fixture built and cached it if need be)."""
    environment = {**os.environ, "OTEL_TOKENS_RAISE_INTERNAL_ERRORS": "1"}
    environment.pop("OTEL_SDK_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", _PRICED_CALL], capture_output=True, text=True, env=environment, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=230_417, cache_read_tokens=51_203, cache_write_tokens=7_129, output_tokens=3_917
        ),
        "claude-sonnet-4-5-20250929", provider_id="anthropic",
    ).total_price  # fmt: skip
    assert result["cost"] == pytest.approx(float(expected), rel=0, abs=1e-12)
    assert result["span_cost"] == result["cost"]
    assert result["loaded"] == []
