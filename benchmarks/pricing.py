"""Timing of the price book: cold resolution and warm ``cost()`` per call, medians.

Run from the repository root: ``python -m benchmarks.pricing`` (a few seconds).
"""

from __future__ import annotations

import statistics
import time
import timeit
from datetime import UTC, datetime

from otel_tokens._internal.pricing import PROVIDER_IDS, PriceBook
from otel_tokens._internal.records import Usage

MODELS = [
    ("openai", "gpt-4o"),  # flat
    ("openai", "gpt-4o-2024-08-06"),  # dated name
    ("anthropic", "claude-sonnet-4-5-20250929"),  # one tier
    ("gcp.gemini", "gemini-2.5-pro"),  # one tier
    ("openrouter", "qwen/qwen3.7-flash"),  # two tiers
    ("deepseek", "deepseek-chat"),  # time-of-day schedule
    ("perplexity", "sonar"),  # per-request fee
    ("mistral_ai", "mistral-large-latest"),
]
USAGE = Usage(input_tokens=12_000, cache_read_tokens=4_000, cache_write_tokens=1_000, output_tokens=800)
CALLS = 100_000


def main() -> None:
    started = time.perf_counter()
    PriceBook().rates("openai", "gpt-4o")
    first = time.perf_counter() - started
    print(
        f"first resolution in this process (imports genai-prices, loads its snapshot): {first * 1e3:.0f} ms"
    )

    cold: list[float] = []
    for _ in range(5):
        for provider, model in MODELS:
            book = PriceBook()  # a fresh book has empty caches of its own
            started = time.perf_counter()
            book.rates(provider, model)
            cold.append(time.perf_counter() - started)
    print(f"cold resolution, median over {len(cold)}: {statistics.median(cold) * 1e3:.3f} ms")

    book = PriceBook()
    print(f"\nwarm cost(), median of 5 runs of {CALLS:,} calls:")
    for provider, model in MODELS:
        assert book.cost(provider, model, USAGE) is not None
        runs = timeit.repeat(lambda p=provider, m=model: book.cost(p, m, USAGE), number=CALLS, repeat=5)
        print(f"  {provider + '/' + model:45s} {statistics.median(runs) / CALLS * 1e6:.3f} µs")

    rates = book.rates("anthropic", "claude-sonnet-4-5-20250929")
    runs = timeit.repeat(lambda: rates.cost(USAGE), number=CALLS, repeat=5)
    print(f"  {'Rates.cost alone (claude-sonnet-4-5)':45s} {statistics.median(runs) / CALLS * 1e6:.3f} µs")

    import genai_prices

    genai_usage = genai_prices.Usage(
        input_tokens=USAGE.input_tokens,
        cache_read_tokens=USAGE.cache_read_tokens,
        cache_write_tokens=USAGE.cache_write_tokens,
        output_tokens=USAGE.output_tokens,
    )
    now = datetime.now(UTC)
    provider_id = PROVIDER_IDS["anthropic"]
    runs = timeit.repeat(
        lambda: genai_prices.calc_price(
            genai_usage, "claude-sonnet-4-5-20250929", provider_id=provider_id, genai_request_timestamp=now
        ),
        number=2_000,
        repeat=5,
    )
    print(f"  {'genai_prices.calc_price, for comparison':45s} {statistics.median(runs) / 2_000 * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
