"""The price book against genai-prices' own arithmetic, overrides, price files, caching and threads."""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices.types import ModelPrice, Tier, TieredPrices

from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.pricing import rates
from otel_tokens._internal.pricing.book import (
    PROVIDER_IDS,
    SELF_HOSTED_PROVIDERS,
    PriceBook,
    PriceFileError,
    PriceOverride,
    load_price_file,
)
from otel_tokens._internal.pricing.rates import Rates, RateTier

DAY = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# Price lookups and encodings must never touch the network.
pytestmark = pytest.mark.usefixtures("no_network", "both_price_sources")


def test_network_is_blocked() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="network access attempted"):
        sock.connect(("127.0.0.1", 9))


def book_at(moment: datetime, overrides: tuple[PriceOverride, ...] = ()) -> PriceBook:
    return PriceBook(overrides, today=moment.date(), clock=lambda: moment.timestamp())


def genai_cost(provider_id: str | None, model: str, usage: Usage, moment: datetime) -> float:
    genai_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )
    calculation = genai_prices.calc_price(
        genai_usage, model, provider_id=provider_id, genai_request_timestamp=moment
    )
    return float(calculation.total_price)


# -- the sweep: PriceBook.cost == genai_prices.calc_price ---------------------------------------------

SWEEP_MODELS: dict[str, tuple[str, ...]] = {
    "openai": (
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-5",
        "gpt-5-mini",
        "o3",
        "o4-mini",
        "gpt-5.4",  # tier above 272k input tokens
        "text-embedding-3-small",
    ),
    "anthropic": (
        "claude-sonnet-4-5-20250929",  # tier above 200k
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "claude-3-5-haiku-latest",
    ),
    "gcp.gemini": ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash", "gemini-1.5-pro"),
    "gcp.vertex_ai": ("gemini-3-pro-preview", "claude-sonnet-4-5@20250929"),
    "deepseek": ("deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro"),
    # Every Mistral model genai-prices prices per token, by entry and by the names the API uses.
    "mistral_ai": (
        "mistral-large-latest", "mistral-large-2411", "mistral-large-2407", "mistral-large-2512",
        "mistral-medium-latest", "mistral-medium-2505", "mistral-medium-2508", "mistral-medium-2312",
        "mistral-medium-3-5", "mistral-small-latest", "mistral-small-2506", "mistral-small-2603",
        "mistral-small-3.1-24b-instruct", "mistral-small-3.2-24b-instruct", "mistral-small-24b-instruct-2501",
        "mistral-small-24b-instruct-2501:free", "codestral-latest", "codestral-2501", "codestral-2508",
        "codestral-embed", "codestral-embed-2505", "devstral-small-latest", "devstral-small-2505", "devstral-2512",
        "magistral-medium-latest", "magistral-medium-2506", "magistral-small-latest", "ministral-3b",
        "ministral-3b-2512", "ministral-8b-latest", "ministral-8b-2410", "ministral-8b-2512", "ministral-14b-2512",
        "open-mistral-nemo", "open-mistral-7b", "open-mixtral-8x7b", "open-mixtral-8x22b", "mistral-tiny",
        "mistral-saba-latest", "pixtral-12b", "pixtral-large-latest", "pixtral-large-2411", "mistral-embed",
        "mistral-large-4", "voxtral-small-24b-2507", "deepseek-v4-1-flash-1017", "zai-glm-5-3", "zai-glm-5-3-flash",
    ),
    "groq": (
        "llama-3.3-70b-versatile",
        "llama-3.1-8b-instant",
        "openai/gpt-oss-120b",  # cached input priced
        "openai/gpt-oss-20b",
        "qwen/qwen3-32b",
        "moonshotai/kimi-k2-instruct",
        "meta-llama/llama-4-scout-17b-16e-instruct",
    ),
    "x_ai": ("grok-4", "grok-3-mini", "grok-4.20"),  # grok-4.20: tier above 199,999
    "perplexity": ("sonar", "sonar-deep-research"),  # per-request fee; separate reasoning price
    "aws.bedrock": (
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "amazon.nova-pro-v1:0",
        # ids as sent: region / global inference-profile prefixes, versions, an inference-profile ARN
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.amazon.nova-lite-v1:0",
        "amazon.nova-micro-v1:0",
        "amazon.titan-text-express-v1",
        "amazon.titan-embed-text-v2:0",
        "us.meta.llama3-3-70b-instruct-v1:0",
        "us.meta.llama4-maverick-17b-instruct-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "mistral.mistral-7b-instruct-v0:2",
        "mistral.mistral-large-2402-v1:0",
        "us.deepseek.r1-v1:0",
        "openai.gpt-oss-120b-1:0",
        "qwen.qwen3-32b-v1:0",
    ),
    "azure.ai.openai": ("gpt-4o", "gpt-4.1-mini"),
    "openrouter": ("qwen/qwen3.7-flash", "anthropic/claude-sonnet-4.5"),  # qwen: tiers at 32k and 256k
    # Every Cohere model genai-prices has (9 entries), by entry and by dated API name.
    "cohere": (
        "command-a", "command-a-03-2025", "command-r-plus", "command-r-plus-08-2024", "command-r",
        "command-r-08-2024", "command-r7b", "command-r7b-12-2024", "command", "command-light",
        "command-light-nightly", "c4ai-aya-expanse-32b", "c4ai-aya-expanse-8b", "embed-v4.0",
    ),
    "moonshot_ai": ("kimi-k2",),
    "together_ai": ("meta-llama/Llama-3.3-70B-Instruct-Turbo",),
    "fireworks": ("accounts/fireworks/models/deepseek-v3-0324",),
    "my-gateway": ("claude-sonnet-4-5", "gpt-4o-mini"),  # unmapped provider: genai-prices guesses
}

SWEEP_USAGES: tuple[Usage, ...] = (
    Usage(),
    Usage(input_tokens=1_000, output_tokens=200),
    Usage(input_tokens=5_000, cache_read_tokens=3_000, output_tokens=100),
    Usage(input_tokens=5_000, cache_write_tokens=2_000, output_tokens=100),
    Usage(
        input_tokens=12_000,
        cache_read_tokens=4_000,
        cache_write_tokens=3_000,
        output_tokens=800,
        reasoning_tokens=500,
    ),
    Usage(input_tokens=100, output_tokens=3_000, reasoning_tokens=2_500),
    Usage(input_tokens=32_000, cache_read_tokens=10_000, output_tokens=1_000),
    Usage(input_tokens=32_001, cache_read_tokens=10_000, output_tokens=1_000),
    Usage(input_tokens=199_999, cache_read_tokens=50_000, cache_write_tokens=10_000, output_tokens=4_000),
    Usage(input_tokens=200_000, cache_read_tokens=50_000, output_tokens=4_000, reasoning_tokens=1_000),
    Usage(input_tokens=200_001, cache_read_tokens=50_000, cache_write_tokens=10_000, output_tokens=4_000),
    Usage(input_tokens=256_001, output_tokens=2_000, reasoning_tokens=1_500),
    Usage(input_tokens=272_001, cache_read_tokens=200_000, output_tokens=9_000, reasoning_tokens=3_000),
    Usage(input_tokens=900_000, cache_read_tokens=300_000, cache_write_tokens=100_000, output_tokens=20_000),
)

SWEEP_CASES = [
    pytest.param(provider, model, usage, id=f"{provider}/{model}/{index}")
    for provider, models in SWEEP_MODELS.items()
    for model in models
    for index, usage in enumerate(SWEEP_USAGES)
]


def test_sweep_is_wide_enough() -> None:
    providers = {PROVIDER_IDS.get(provider) for provider in SWEEP_MODELS} - {None}
    models = {(provider, model) for provider, models in SWEEP_MODELS.items() for model in models}
    assert len(SWEEP_CASES) >= 200
    assert len(models) >= 20
    assert len(providers) >= 5


@pytest.fixture(scope="module")
def noon_book() -> PriceBook:
    return book_at(NOON)


@pytest.mark.parametrize(("provider", "model", "usage"), SWEEP_CASES)
def test_cost_matches_genai_prices(noon_book: PriceBook, provider: str, model: str, usage: Usage) -> None:
    expected = genai_cost(PROVIDER_IDS.get(provider), model, usage, NOON)
    actual = noon_book.cost(provider, model, usage)
    assert actual is not None
    assert actual == pytest.approx(expected, rel=0, abs=1e-9)
    assert noon_book.rates(provider, model).source == "genai-prices"


# Gemini (google): both sides of the long-context tiers (128k for 1.5, 200k for 2.5 and 3 Pro), thoughts
# tokens billed as output, cache reads, and the per-request usages the google-genai tests send.
GOOGLE_SWEEP_MODELS: tuple[tuple[str, str], ...] = (
    ("gcp.gemini", "gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.5-flash"),
    ("gcp.gemini", "gemini-2.5-flash-lite"),
    ("gcp.gemini", "gemini-2.0-flash"),
    ("gcp.gemini", "gemini-2.0-flash-lite"),
    ("gcp.gemini", "gemini-1.5-pro"),
    ("gcp.gemini", "gemini-1.5-flash"),
    ("gcp.gemini", "gemini-flash-1.5-8b"),
    ("gcp.gemini", "gemini-3.1-pro-preview"),
    ("gcp.gemini", "gemini-3.5-flash"),
    ("gcp.vertex_ai", "gemini-3-pro-preview"),
    ("gcp.vertex_ai", "gemini-3-flash-preview"),
)
GOOGLE_SWEEP_USAGES: tuple[Usage, ...] = (
    Usage(input_tokens=1_287, cache_read_tokens=1_024, output_tokens=430, reasoning_tokens=367),
    Usage(input_tokens=38, output_tokens=144, reasoning_tokens=121),
    Usage(input_tokens=567, output_tokens=319, reasoning_tokens=231),
    Usage(input_tokens=127_999, cache_read_tokens=65_536, output_tokens=2_048, reasoning_tokens=1_536),
    Usage(input_tokens=128_000, output_tokens=3_001, reasoning_tokens=2_999),
    Usage(input_tokens=128_001, cache_read_tokens=32_768, output_tokens=4_097, reasoning_tokens=4_000),
    Usage(input_tokens=199_999, cache_read_tokens=131_072, output_tokens=8_191, reasoning_tokens=6_143),
    Usage(input_tokens=200_000, output_tokens=1_234, reasoning_tokens=1_000),
    Usage(input_tokens=200_001, cache_read_tokens=150_000, output_tokens=9_876, reasoning_tokens=9_000),
    Usage(input_tokens=151_337, cache_read_tokens=98_304, output_tokens=540, reasoning_tokens=517),
    Usage(input_tokens=302_756, cache_read_tokens=245_760, output_tokens=784, reasoning_tokens=720),
    Usage(input_tokens=1_048_575, cache_read_tokens=524_288, output_tokens=65_535, reasoning_tokens=32_768),
)
GOOGLE_SWEEP_CASES = [
    pytest.param(provider, model, usage, id=f"google/{provider}/{model}/{index}")
    for provider, model in GOOGLE_SWEEP_MODELS
    for index, usage in enumerate(GOOGLE_SWEEP_USAGES)
]


def test_google_sweep_is_wide_enough(noon_book: PriceBook) -> None:
    assert len(GOOGLE_SWEEP_CASES) >= 100
    tiered = {model for provider, model in GOOGLE_SWEEP_MODELS if noon_book.rates(provider, model).tiers}
    assert {"gemini-2.5-pro", "gemini-1.5-pro", "gemini-3-pro-preview"} <= tiered


@pytest.mark.parametrize(("provider", "model", "usage"), GOOGLE_SWEEP_CASES)
def test_google_cost_matches_genai_prices(noon_book: PriceBook, provider: str, model: str, usage: Usage) -> None:
    expected = genai_cost(PROVIDER_IDS[provider], model, usage, NOON)
    actual = noon_book.cost(provider, model, usage)
    assert actual is not None and expected > 0
    assert actual == pytest.approx(expected, rel=0, abs=1e-9)


@pytest.mark.parametrize("hour", [0, 1, 3, 5, 7, 12, 17, 23])
@pytest.mark.parametrize(
    "model", ["deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro"]
)
def test_time_of_day_prices_follow_the_clock(model: str, hour: int) -> None:
    moment = datetime(2026, 11, 20, hour, 15, tzinfo=UTC)
    usage = Usage(input_tokens=50_000, cache_read_tokens=20_000, output_tokens=3_000)
    assert book_at(moment).cost("deepseek", model, usage) == pytest.approx(
        genai_cost("deepseek", model, usage, moment), rel=0, abs=1e-9
    )


def test_one_book_switches_time_of_day_segments() -> None:
    now = [datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()]
    book = PriceBook(today=DAY, clock=lambda: now[0])
    usage = Usage(input_tokens=1_000_000)
    peak = book.cost("deepseek", "deepseek-chat", usage)
    now[0] = datetime(2026, 11, 20, 20, 0, tzinfo=UTC).timestamp()
    off_peak = book.cost("deepseek", "deepseek-chat", usage)
    assert (peak, off_peak) == (pytest.approx(0.27, abs=1e-12), pytest.approx(0.135, abs=1e-12))


# -- exact numbers ---------------------------------------------------------------------------------


def test_billed_buckets_exact_numbers(noon_book: PriceBook) -> None:
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million.
    usage = Usage(input_tokens=1_000, cache_read_tokens=400, output_tokens=200, reasoning_tokens=50)
    assert noon_book.cost("openai", "gpt-4o", usage) == pytest.approx(0.004, rel=0, abs=1e-15)
    # claude-sonnet-4-5: $3 input, $0.30 read, $3.75 write, $15 output.
    usage = Usage(input_tokens=10_000, cache_read_tokens=6_000, cache_write_tokens=2_000, output_tokens=1_000)
    expected = 2_000 * 3e-6 + 6_000 * 0.3e-6 + 2_000 * 3.75e-6 + 1_000 * 15e-6
    assert noon_book.cost("anthropic", "claude-sonnet-4-5-20250929", usage) == pytest.approx(
        expected, abs=1e-15
    )


def test_cliff_tier_applies_to_all_tokens_above_threshold(noon_book: PriceBook) -> None:
    rates = noon_book.rates("anthropic", "claude-sonnet-4-5")
    assert rates is not None
    assert [tier.above_input_tokens for tier in rates.tiers] == [200_000]
    at_threshold = noon_book.cost(
        "anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_000, output_tokens=1_000)
    )
    above = noon_book.cost("anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_001, output_tokens=1_000))
    assert at_threshold == pytest.approx(200_000 * 3e-6 + 1_000 * 15e-6, abs=1e-12)
    assert above == pytest.approx(200_001 * 6e-6 + 1_000 * 22.5e-6, abs=1e-12)


def test_multi_tier_rates_pick_the_highest_exceeded_tier() -> None:
    rates = Rates(
        input=1e-6,
        output=2e-6,
        cache_read=0.5e-6,
        cache_write=1e-6,
        tiers=(
            RateTier(above_input_tokens=1_000, input=3e-6, output=4e-6, cache_read=1e-6, cache_write=2e-6),
            RateTier(above_input_tokens=100, input=2e-6, output=3e-6, cache_read=0.7e-6, cache_write=1.5e-6),
        ),
    )
    assert rates.cost(Usage(input_tokens=100, output_tokens=10)) == pytest.approx(100e-6 + 20e-6)
    assert rates.cost(Usage(input_tokens=101, output_tokens=10)) == pytest.approx(202e-6 + 30e-6)
    assert rates.cost(Usage(input_tokens=1_001, cache_read_tokens=1, output_tokens=10)) == pytest.approx(
        1_000 * 3e-6 + 1e-6 + 40e-6
    )


def test_per_request_fee_and_reasoning_rate(noon_book: PriceBook) -> None:
    assert noon_book.cost("perplexity", "sonar", Usage()) == pytest.approx(0.012, abs=1e-15)
    usage = Usage(input_tokens=1_000, output_tokens=1_000, reasoning_tokens=400)
    # sonar-deep-research: $2 input, $8 output, $3 reasoning per million.
    expected = 1_000 * 2e-6 + 600 * 8e-6 + 400 * 3e-6
    assert noon_book.cost("perplexity", "sonar-deep-research", usage) == pytest.approx(expected, abs=1e-15)


def test_missing_cache_prices_fall_back_to_input_rate(noon_book: PriceBook) -> None:
    rates = noon_book.rates("mistral_ai", "mistral-large-latest")
    assert rates is not None
    assert rates.cache_read == rates.input == rates.cache_write


def test_bad_counts_never_raise(noon_book: PriceBook, monkeypatch: pytest.MonkeyPatch) -> None:
    # Cache counts above input: uncached input is billed as zero (genai-prices would raise).
    usage = Usage(input_tokens=100, cache_read_tokens=300, output_tokens=0)
    assert noon_book.cost("openai", "gpt-4o", usage) == pytest.approx(300 * 1.25e-6, abs=1e-15)
    broken = Usage(input_tokens=None)  # type: ignore[arg-type]
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "1")
    with pytest.raises(TypeError):
        noon_book.cost("openai", "gpt-4o", broken)
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")
    assert noon_book.cost("openai", "gpt-4o", broken) is None


def test_free_models_cost_zero(noon_book: PriceBook) -> None:
    assert (
        noon_book.cost("openrouter", "agentica-org/deepcoder-14b-preview:free", Usage(input_tokens=9)) == 0.0
    )


# -- unknown models ----------------------------------------------------------------------------------


def test_unknown_model_is_none(noon_book: PriceBook) -> None:
    assert noon_book.rates("openai", "no-such-model-xyz") is None
    assert noon_book.cost("openai", "no-such-model-xyz", Usage(input_tokens=1)) is None
    assert not noon_book.is_known("openai", "no-such-model-xyz")
    assert noon_book.cost("openai", None, Usage(input_tokens=1)) is None
    assert noon_book.cost("openai", "", Usage(input_tokens=1)) is None


@pytest.mark.parametrize(
    "model",
    ["cohere.command-r-v1:0", "cohere.embed-english-v3", "ai21.jamba-1-5-large-v1:0", "anthropic.claude-v2:1"],
)
def test_bedrock_models_genai_prices_lacks_are_unknown(noon_book: PriceBook, model: str) -> None:
    usage = Usage(input_tokens=1_000, output_tokens=200)
    with pytest.raises(LookupError):
        genai_cost("aws", model, usage, NOON)
    assert noon_book.cost("aws.bedrock", model, usage) is None  # unknown, never $0 or another cloud's price


def test_mapped_provider_does_not_guess_across_providers(noon_book: PriceBook) -> None:
    # groq has no claude; a guess by name would bill Anthropic's price for a call that never went there.
    assert noon_book.rates("groq", "claude-sonnet-4-5") is None
    assert noon_book.rates("my-gateway", "claude-sonnet-4-5") is not None


def test_self_hosted_model_costs_zero_and_says_so_until_priced() -> None:
    book = book_at(NOON)
    assert "ollama" in SELF_HOSTED_PROVIDERS
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    # Not guessed as the cloud model of the same name (gpt-oss-120b has a price on Groq and others).
    assert book.cost_with_source("ollama", "gpt-oss:120b", usage) == (0.0, "self_hosted")
    assert book.rates("ollama", "gpt-oss:120b").source == "self-hosted"
    assert book.is_known("ollama", "llama3.2:3b")
    book.set_price("gpt-oss:120b", input=0.05, output=0.25, provider="ollama")
    assert book.cost_with_source("ollama", "gpt-oss:120b", usage) == (pytest.approx(0.30), "local")
    assert book.cost_with_source("ollama", "llama3.2:3b", usage) == (0.0, "self_hosted")
    assert book.cost_with_source("openai", "gpt-4o-mini", usage)[1] == "local"


def test_non_token_prices_are_unknown_with_debug_reason(caplog: pytest.LogCaptureFixture) -> None:
    book = book_at(NOON)
    with caplog.at_level(logging.DEBUG, logger="otel_tokens._internal.pricing"):
        assert book.rates("openai", "whisper-1") is None
    assert (
        "no price for openai/whisper-1: priced per audio_hours, input_audio_hours, not per token"
        in caplog.text
    )


def test_rates_that_disagree_with_genai_prices_are_rejected() -> None:
    price = ModelPrice(input_mtok=TieredPrices(base=Decimal(1), tiers=[Tier(start=10, price=Decimal(2))]))
    flat = Rates(input=1e-6, output=0.0, cache_read=1e-6, cache_write=1e-6)
    assert rates._probe(price, flat, [10]) == "input tokens 11: genai-prices 2.2e-05, rates 1.1e-05"
    assert isinstance(rates._convert(price), Rates)


def test_every_semconv_provider_maps_to_a_snapshot_provider() -> None:
    snapshot_ids = {provider.id for provider in genai_prices.data_snapshot.get_snapshot().providers}
    for name in (
        "openai", "anthropic", "azure.ai.openai", "azure.ai.inference", "aws.bedrock", "gcp.gemini",
        "gcp.vertex_ai", "gcp.gen_ai", "deepseek", "groq", "x_ai", "mistral_ai", "cohere", "perplexity",
        "moonshot_ai", "openrouter", "together_ai", "fireworks",
    ):  # fmt: skip
        assert PROVIDER_IDS[name] in snapshot_ids, name


# -- overrides and the cache ----------------------------------------------------------------------


def test_set_price_wins_over_the_database_and_invalidates_the_cache() -> None:
    book = book_at(NOON)
    million = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    before = book.rates("openai", "gpt-4o")
    assert before is not None and before.source == "genai-prices"
    assert book.rates("openai", "gpt-4o") is before  # cached
    assert book.cost("openai", "gpt-4o", million) == pytest.approx(12.5)

    book.set_price("gpt-4o", input=1.0, output=2.0)
    after = book.rates("openai", "gpt-4o")
    assert after == Rates(
        input=1e-6, output=2e-6, cache_read=1e-6, cache_write=1e-6, source="override",
        implied=("cache_read_tokens", "cache_write_tokens"),  # no cache prices of its own
    )
    assert book.cost("openai", "gpt-4o", million) == pytest.approx(3.0)
    # Names genai-prices resolves to the same model entry follow the override.
    assert book.cost("openai", "gpt-4o-2024-08-06", million) == pytest.approx(3.0)
    assert book.cost("azure.ai.openai", "gpt-4o", million) == pytest.approx(3.0)  # same name, any provider
    assert book.cost("azure.ai.openai", "gpt-4o-2024-08-06", million) == pytest.approx(
        3.0
    )  # falls back to openai's
    assert book.cost("openrouter", "openai/gpt-4o", million) == pytest.approx(12.5)  # openrouter's own entry
    assert book.cost("openai", "gpt-4o-mini", million) == pytest.approx(0.75)  # a different model


def test_provider_scoped_override_and_cache_prices() -> None:
    book = book_at(NOON)
    book.set_price(
        "GPT-4o", input=2.0, output=8.0, cache_read=0.5, cache_write=3.0, provider="azure.ai.openai"
    )
    usage = Usage(
        input_tokens=1_000_000, cache_read_tokens=400_000, cache_write_tokens=100_000, output_tokens=10
    )
    assert book.cost("azure.ai.openai", "gpt-4o", usage) == pytest.approx(1.0 + 0.2 + 0.3 + 80e-6)
    assert book.rates("openai", "gpt-4o").source == "genai-prices"
    book.set_price("gpt-4o", input=9.0, output=9.0)  # the provider-scoped one still wins for azure
    assert book.cost("azure.ai.openai", "gpt-4o", usage) == pytest.approx(1.0 + 0.2 + 0.3 + 80e-6)
    assert book.cost("openai", "gpt-4o", Usage(input_tokens=1_000_000)) == pytest.approx(9.0)


def test_custom_model_override() -> None:
    book = PriceBook([PriceOverride("my-finetune", input=1.5, output=6.0)], today=DAY)
    assert book.cost("openai", "my-finetune", Usage(input_tokens=2_000, output_tokens=500)) == pytest.approx(
        0.006
    )
    assert book.overrides() == (PriceOverride("my-finetune", input=1.5, output=6.0),)


def test_misses_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    book = book_at(NOON)
    calls: list[str] = []
    real_find = PriceBook._find_listing

    def counting_find(self: PriceBook, provider: str | None, model: str) -> object:
        calls.append(model)
        return real_find(self, provider, model)

    monkeypatch.setattr(PriceBook, "_find_listing", counting_find)
    for _ in range(3):
        assert book.rates("openai", "no-such-model") is None
        assert book.rates("openai", "gpt-4o") is not None
    assert calls == ["no-such-model", "gpt-4o"]


def test_set_price_validates_loudly() -> None:
    book = book_at(NOON)
    with pytest.raises(
        ValueError, match=r"price override for 'gpt-4o': 'input' must not be negative, got -1"
    ):
        book.set_price("gpt-4o", input=-1, output=1)
    with pytest.raises(ValueError, match=r"'output' must be a number \(USD per million tokens\), got '2'"):
        book.set_price("gpt-4o", input=1, output="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'cache_read' must be finite, got nan"):
        book.set_price("gpt-4o", input=1, output=1, cache_read=float("nan"))
    assert book.overrides() == ()


def test_prices_follow_the_date() -> None:
    # deepseek-v4-flash: $0.22 input from 2026-08-17, $0.15 from 2026-09-10 (outside off-peak hours).
    now = [datetime(2026, 8, 20, 12, 0, tzinfo=UTC).timestamp()]
    book = PriceBook(clock=lambda: now[0])
    usage = Usage(input_tokens=1_000_000)
    assert book.cost("deepseek", "deepseek-v4-flash", usage) == pytest.approx(0.22, abs=1e-12)
    now[0] = datetime(2026, 9, 11, 12, 0, tzinfo=UTC).timestamp()
    assert book.cost("deepseek", "deepseek-v4-flash", usage) == pytest.approx(0.15, abs=1e-12)
    pinned = PriceBook(today=date(2026, 8, 20), clock=lambda: now[0])
    assert pinned.cost("deepseek", "deepseek-v4-flash", usage) == pytest.approx(0.22, abs=1e-12)


def test_set_price_against_cost_under_threads() -> None:
    book = book_at(NOON)
    usage = Usage(input_tokens=1_000_000)
    database = 2.5
    allowed = {database} | {float(i) for i in range(1, 51)}
    seen: set[float | None] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.add(book.cost("openai", "gpt-4o", usage))
                seen.add(book.cost("openai", "gpt-4o-2024-08-06", usage))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for price in range(1, 51):
            book.set_price("gpt-4o", input=float(price), output=0.0)
            # Once set_price returns, every new call sees the new price.
            assert book.cost("openai", "gpt-4o", usage) == pytest.approx(float(price))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert {round(value, 9) for value in seen if value is not None} <= allowed
    assert None not in seen
    assert book.cost("openai", "gpt-4o-2024-08-06", usage) == pytest.approx(50.0)


# -- price files -----------------------------------------------------------------------------------


def test_load_toml_and_json(tmp_path) -> None:
    toml_file = tmp_path / "prices.toml"
    toml_file.write_text(
        '[models."my-model"]\ninput = 1\noutput = 2.5\ncache_read = 0.1\n\n'
        '[models."gpt-4o"]\ninput = 2\noutput = 8\ncache_write = 3\nprovider = "azure.ai.openai"\n'
    )
    assert load_price_file(toml_file) == [
        PriceOverride("my-model", input=1.0, output=2.5, cache_read=0.1),
        PriceOverride("gpt-4o", input=2.0, output=8.0, cache_write=3.0, provider="azure.ai.openai"),
    ]
    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"models": {"my-model": {"input": 1, "output": 2.5}}}))
    assert load_price_file(str(json_file)) == [PriceOverride("my-model", input=1.0, output=2.5)]

    book = PriceBook(load_price_file(toml_file), today=DAY)
    assert book.cost("anything", "my-model", Usage(input_tokens=1_000_000, cache_read_tokens=500_000)) == (
        pytest.approx(0.5 + 0.05)
    )


def _json_error(text: str) -> str:
    """The message for invalid JSON, in the words and position this Python's json module gives (3.13
    words a trailing comma differently from 3.11)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
    raise AssertionError(f"{text!r} is valid JSON")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.toml", '[models."m"]\noutput = 1\n', "models.\"m\": missing required key 'input'"),
        ("p.toml", '[models."m"]\ninput = 1\n', "models.\"m\": missing required key 'output'"),
        (
            "p.toml",
            '[models."m"]\ninput = -1\noutput = 1\n',
            "models.\"m\": 'input' must not be negative, got -1",
        ),
        (
            "p.toml",
            '[models."m"]\ninput = "1.0"\noutput = 1\n',
            "models.\"m\": 'input' must be a number (USD per million tokens), got '1.0'",
        ),
        (
            "p.toml",
            '[models."m"]\ninput = 1\noutput = true\n',
            "models.\"m\": 'output' must be a number (USD per million tokens), got True",
        ),
        (
            "p.toml",
            '[models."m"]\ninput = 1\noutput = nan\n',
            "models.\"m\": 'output' must be finite, got nan",
        ),
        (
            "p.toml",
            '[models."m"]\ninput = 1\noutput = 1\ncached = 1\n',
            "models.\"m\": unknown key 'cached' (allowed: cache_audio_read, cache_read, cache_write, cache_write_1h, file_search, input, input_audio, input_image, input_video, output, output_audio, output_image, output_video, provider, tiers, web_search)",
        ),
        (
            "p.toml",
            '[models."m"]\ninput = 1\noutput = 1\nprovider = ""\n',
            "models.\"m\": 'provider' must be a non-empty string, got ''",
        ),
        ("p.toml", "[models]\nm = 3\n", 'models."m": must be a table of prices, got int'),
        ("p.toml", "[prices]\n", "unknown top-level key 'prices' (allowed: models)"),
        ("p.toml", "", "missing top-level 'models' table"),
        ("p.toml", '[models."m"]\ninput = \n', "invalid TOML: Invalid value (at line 2, column 9)"),
        ("p.json", '{"models": {"m": {"input": 1,}}}', _json_error('{"models": {"m": {"input": 1,}}}')),
        ("p.json", "[1]", "top level must be an object, got array"),
        ("p.json", '{"models": []}', "'models' must be an object, got array"),
        (
            "p.json",
            '{"models": {"m": {"input": 1, "output": null}}}',
            "models.\"m\": 'output' must be a number (USD per million tokens), got None",
        ),
        ("p.yaml", "models: {}", "unsupported price file extension '.yaml' (use .toml or .json)"),
    ],
)
def test_bad_price_files(tmp_path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PriceFileError) as caught:
        load_price_file(path)
    assert str(caught.value) == f"{path}: {message}"


def test_missing_price_file(tmp_path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PriceFileError) as caught:
        load_price_file(path)
    assert str(caught.value) == f"{path}: cannot read price file (No such file or directory)"
    assert caught.value.path == str(path) and caught.value.entry is None
