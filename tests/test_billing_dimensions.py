"""Billing dimensions beyond tokens (service tiers, batch, fast mode, 1-hour cache writes, modalities,
server-tool fees) priced as genai-prices prices them, over the index and genai-prices' own catalog."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import genai_prices
import pytest
from genai_prices.data import providers as genai_providers

from otel_tokens._internal.base.records import INVALID_USAGE, Usage, make_usage, sum_usages
from otel_tokens._internal.pricing.book import UNPRICED_TIER, PriceBook, PriceOverride, load_price_file
from otel_tokens._internal.pricing.rates import DETAIL_UNITS, PRICE_KEYS, TOOL_FEE_KEYS, probe_details

# After every variant in genai-prices 0.2.5 has started (the tier variants start 2026-10-12/14).
NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("no_network", "both_price_sources")


def book() -> PriceBook:
    return PriceBook(today=NOON.date(), clock=lambda: NOON.timestamp())


def genai_total(provider_id: str, model: str, usage: Usage, context: tuple[tuple[str, str], ...]) -> float:
    genai_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        **dict(usage.details),
    )
    calculation = genai_prices.calc_price(
        genai_usage, model, provider_id=provider_id, genai_request_timestamp=NOON,
        price_context=dict(context) or None,
    )  # fmt: skip
    return float(calculation.total_price)


def test_detail_units_match_genai_prices_registry() -> None:
    from genai_prices.data_units import unit_data

    for key, (per, dims) in DETAIL_UNITS.items():
        assert key in unit_data, key
        assert unit_data[key]["per"] == per, key
        assert frozenset(unit_data[key]["dimensions"].items()) == dims, key
        assert unit_data[key]["price_key"] == PRICE_KEYS[key], key


def _usages(total: int) -> list[Usage]:
    base = Usage(
        input_tokens=total, output_tokens=2_000, cache_read_tokens=total // 4, cache_write_tokens=total // 8,
        reasoning_tokens=500,
    )  # fmt: skip
    every = tuple(probe_details(total).items())
    return [
        base,
        Usage(**{**_fields(base), "details": every}),
        Usage(**{**_fields(base), "details": (("cache_write_1h_tokens", total // 16),)}),
        Usage(**{**_fields(base), "details": (("web_searches", 4), ("storage_searches", 3))}),
        Usage(**{**_fields(base), "details": (("input_audio_tokens", total // 3), ("output_audio_tokens", 700))}),
    ]


def _fields(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }  # fmt: skip


def _contexts(info: object) -> list[tuple[tuple[str, str], ...]]:
    items = sorted({item for variant in info.price_variants or () for item in variant.when.items()})  # type: ignore[attr-defined]
    # Each pair the variants price, each combination of two keys, and tiers no variant prices.
    contexts: list[tuple[tuple[str, str], ...]] = [(), (("service_tier", "scale"),), (("speed", "fast"),)]
    contexts += [(item,) for item in items]
    contexts += [pair for pair in itertools.combinations(items, 2) if pair[0][0] != pair[1][0]]
    return contexts


def _models_with_dimensions() -> list[tuple[str, str]]:
    keys = {PRICE_KEYS[key] for key in DETAIL_UNITS}
    found = []
    for provider in genai_providers:
        for info in provider.models:
            prices = info.prices if isinstance(info.prices, list) else [info.prices]
            prices = [getattr(price, "prices", price) for price in prices]
            extra = any(
                value is not None and key in keys - {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"}
                for price in prices for key, value in price.__dict__.items()
            )  # fmt: skip
            if extra or info.price_variants:
                found.append((provider.id, info.id))
    return found


SWEPT = _models_with_dimensions()


@pytest.mark.parametrize("provider_id", sorted({provider_id for provider_id, _ in SWEPT}))
def test_sweep_every_tier_and_dimension_against_calc_price(provider_id: str) -> None:
    """model x tier x dimension, below and above every long-context threshold, to 1e-9 USD."""
    prices = book()
    infos = {info.id: info for provider in genai_providers if provider.id == provider_id for info in provider.models}
    checked = 0
    mismatches = []
    for model in sorted(model for pid, model in SWEPT if pid == provider_id):
        for context in _contexts(infos[model]):
            for total in (1_000, 150_000, 250_000, 1_100_000):
                for usage in _usages(total):
                    try:
                        expected = genai_total(provider_id, model, usage, context)
                    except (LookupError, ValueError):  # priced per hour or page, not per token
                        continue
                    usage = Usage(**{**_fields(usage), "details": usage.details, "price_context": context})
                    priced = prices.price(provider_id, model, usage)
                    if priced is None:
                        continue
                    checked += 1
                    actual = priced.input_usd + priced.output_usd
                    if abs(actual - expected) > 1e-9:
                        mismatches.append((model, context, total, usage.details[:3], actual, expected))
    assert not mismatches, mismatches[:5]
    assert checked


@pytest.mark.parametrize(
    ("provider", "model", "context", "input_rate", "output_rate"),
    [
        ("openai", "gpt-5", (), 1.25, 10),
        ("openai", "gpt-5", (("service_tier", "flex"),), 0.625, 5),
        ("openai", "gpt-5", (("service_tier", "priority"),), 2.5, 20),
        ("openai", "gpt-5", (("processing", "batch"),), 0.625, 5),
        ("anthropic", "claude-sonnet-4-5", (("processing", "batch"),), 1.5, 7.5),
        ("anthropic", "claude-opus-4-8", (("speed", "fast"),), 10, 50),
    ],
)
def test_tier_rates(provider: str, model: str, context: tuple, input_rate: float | None, output_rate: float | None) -> None:
    usage = Usage(input_tokens=100_000, output_tokens=100_000, price_context=context)  # below 200k
    priced = book().price(provider, model, usage)
    assert priced is not None
    if input_rate is not None:
        assert priced.input_usd == pytest.approx(input_rate / 10)
        assert priced.output_usd == pytest.approx(output_rate / 10)
    assert priced.unpriced == ()


def test_a_tier_genai_prices_does_not_price_is_flagged_at_standard_rates() -> None:
    prices = book()
    standard = prices.price("anthropic", "claude-sonnet-4-5", Usage(input_tokens=1000, output_tokens=100))
    priority = prices.price(
        "anthropic", "claude-sonnet-4-5",
        Usage(input_tokens=1000, output_tokens=100, service_tier="priority", price_context=(("service_tier", "priority"),)),
    )  # fmt: skip
    assert priority is not None and standard is not None
    assert (priority.input_usd, priority.output_usd) == (standard.input_usd, standard.output_usd)
    assert priority.unpriced == (UNPRICED_TIER,)


def test_variants_are_not_applied_through_a_fallback_provider() -> None:
    """genai-prices skips variants for a model found through a fallback (Azure -> OpenAI): so do we,
    and say the tier is unpriced."""
    usage = Usage(input_tokens=1000, output_tokens=100, service_tier="flex", price_context=(("service_tier", "flex"),))
    azure = book().price("azure.ai.openai", "gpt-5", usage)
    openai = book().price("openai", "gpt-5", usage)
    assert azure is not None and openai is not None
    assert azure.unpriced == (UNPRICED_TIER,) and openai.unpriced == ()
    assert azure.input_usd == pytest.approx(2 * openai.input_usd)
    assert azure.input_usd + azure.output_usd == pytest.approx(genai_total("azure", "gpt-5", usage, usage.price_context))


def test_cache_write_ttl_split_and_long_context_tier() -> None:
    prices = book()
    for total, base_input in ((100_000, 3.0), (300_000, 6.0)):  # claude-sonnet-4-5, above 200k: 2x
        usage = make_usage(
            total, 0, 0, 40_000, details={"cache_write_5m_tokens": 10_000, "cache_write_1h_tokens": 30_000}
        )
        priced = prices.price("anthropic", "claude-sonnet-4-5", usage)  # type: ignore[arg-type]
        assert priced is not None
        bill = ((total - 40_000) * base_input + 10_000 * base_input * 1.25 + 30_000 * base_input * 2) / 1e6
        assert priced.input_usd == pytest.approx(bill, abs=1e-12)
        assert priced.unpriced == ()


def test_tool_fees_are_in_the_cost_and_reported_apart() -> None:
    usage = make_usage(1000, 100, details={"web_searches": 3})
    priced = book().price("anthropic", "claude-sonnet-4-5", usage)  # type: ignore[arg-type]
    assert priced is not None
    assert priced.fees_usd == pytest.approx(0.03)
    assert priced.input_usd + priced.output_usd == pytest.approx((1000 * 3 + 100 * 15) / 1e6 + 0.03)


def test_unpriced_dimensions_are_costed_at_what_is_known_and_flagged() -> None:
    prices = book()
    # gpt-4o prices no audio: audio tokens at the text rate, flagged; image tokens at the text rate are
    # what OpenAI bills, not flagged.
    usage = make_usage(1000, 100, details={"input_audio_tokens": 400, "input_image_tokens": 200})
    priced = prices.price("openai", "gpt-4o", usage)  # type: ignore[arg-type]
    assert priced is not None
    assert priced.unpriced == ("input_audio_tokens",)
    assert priced.input_usd == pytest.approx(1000 * 2.5 / 1e6)
    # gpt-audio prices audio at its own rates.
    priced = prices.price("openai", "gpt-audio", usage)  # type: ignore[arg-type]
    assert priced is not None and priced.unpriced == ()
    assert priced.input_usd == pytest.approx((600 * 2.5 + 400 * 32) / 1e6)


def test_overrides_price_every_dimension_and_beat_genai_prices(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."claude-sonnet-4-5"]\ninput = 1\noutput = 2\ncache_write = 1.5\ncache_write_1h = 3\n'
        "input_audio = 10\nweb_search = 20\n"
        '[models."claude-sonnet-4-5".tiers.priority]\ninput = 4\noutput = 8\n'
    )
    (override,) = load_price_file(path)
    prices = PriceBook([override], today=NOON.date(), clock=lambda: NOON.timestamp())
    usage = make_usage(
        1_000_000, 1_000_000, 0, 300_000,
        details={"cache_write_1h_tokens": 100_000, "input_audio_tokens": 100_000, "web_searches": 2},
    )  # fmt: skip
    priced = prices.price("anthropic", "claude-sonnet-4-5", usage)  # type: ignore[arg-type]
    assert priced is not None and priced.unpriced == ()
    assert priced.fees_usd == pytest.approx(0.04)
    # uncached text input: 1,000,000 - 300,000 cache writes (200,000 at 5 minutes, 100,000 at 1 hour)
    # - 100,000 audio = 600,000
    expected_input = (600_000 * 1 + 200_000 * 1.5 + 100_000 * 3 + 100_000 * 10) / 1e6 + 0.04
    assert priced.input_usd == pytest.approx(expected_input)
    assert priced.output_usd == pytest.approx(2.0)
    tiered = make_usage(1_000_000, 1_000_000, service_tier="priority", price_context=(("service_tier", "priority"),))
    priced = prices.price("anthropic", "claude-sonnet-4-5", tiered)  # type: ignore[arg-type]
    assert priced is not None and priced.unpriced == ()
    assert (priced.input_usd, priced.output_usd) == pytest.approx((4.0, 8.0))
    # set_price takes the same keys.
    prices.set_price("gpt-5", input=1, output=2, tiers={"flex": {"input": 0.5, "output": 1}}, file_search=2.5)
    usage = make_usage(1_000_000, 0, details={"storage_searches": 4}, service_tier="flex", price_context=(("service_tier", "flex"),))
    priced = prices.price("openai", "gpt-5", usage)  # type: ignore[arg-type]
    assert priced is not None and priced.unpriced == ()
    assert priced.input_usd == pytest.approx(0.5 + 0.01)


def test_bad_tier_override_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="tier 'flex': 'output' is required"):
        PriceOverride("m", input=1, output=1, tiers={"flex": {"input": 1}})
    with pytest.raises(ValueError, match="unknown key 'speed'"):
        PriceOverride("m", input=1, output=1, tiers={"flex": {"input": 1, "output": 1, "speed": 2}})


def test_make_usage_details() -> None:
    usage = make_usage(100, 10, details={"input_audio_tokens": 5, "web_searches": 0}, service_tier="flex")
    assert usage is not None
    assert usage.details == (("input_audio_tokens", 5),) and usage.service_tier == "flex"
    assert make_usage(100, 10, details={"input_audio_tokens": -1}) is INVALID_USAGE
    total = sum_usages([usage, usage])
    assert total is not None and total.details == (("input_audio_tokens", 10),) and total.service_tier == "flex"


def test_tool_fee_keys() -> None:
    assert TOOL_FEE_KEYS == {"web_searches", "storage_searches"}
