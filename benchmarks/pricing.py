"""Timing of the price book: loading its data (the shipped index against genai-prices' own), cold
resolution and warm ``cost()`` per call, medians.

Run from the repository root: ``python -m benchmarks.pricing`` (about half a minute).

Loading is measured in fresh processes (``LOAD_ROUNDS`` of each source, interleaved) with byte-code
caches written first, as an installed package has them: import of the price book's module, loading the
data (``preload()``), the first resolution after it, and the resident memory the load added.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from datetime import UTC, datetime

from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.pricing.book import PROVIDER_IDS, PriceBook

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
LOAD_ROUNDS = 9

# One fresh process: times in ms, RSS growth in MB, and what the load imported.
_LOAD = """
import json, sys, time
def rss():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * 4096 / 1e6
started = time.perf_counter()
from otel_tokens._internal.pricing import book as pricing
imported = time.perf_counter()
if sys.argv[1] == "genai-prices":
    pricing._default_catalog = pricing._GenaiCatalog
book = pricing.PriceBook()
before = rss()
loading = time.perf_counter()
book.preload()
loaded = time.perf_counter()
after = rss()
book.rates("anthropic", "claude-sonnet-4-5-20250929")
resolved = time.perf_counter()
book.rates("deepseek", "deepseek-chat")
print(json.dumps({
    "import": (imported - started) * 1e3, "load": (loaded - loading) * 1e3,
    "first": (resolved - loaded) * 1e3, "rss": after - before,
    "index": type(book._catalog).__name__ == "IndexCatalog",
    "modules": sorted(name for name in ("genai_prices", "pydantic") if name in sys.modules),
}))
"""


def load_times() -> None:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    runs: dict[str, list[dict]] = {"index": [], "genai-prices": []}
    for round_ in range(LOAD_ROUNDS + 1):
        for source, results in runs.items():
            done = subprocess.run(
                [sys.executable, "-c", _LOAD, source], capture_output=True, text=True, env=environment, check=True
            )
            if round_:  # the first round writes the byte-code caches
                results.append(json.loads(done.stdout))
    print(f"loading the price data, fresh processes, median of {LOAD_ROUNDS} [min..max]:")
    print(f"  {'source':14s} {'import pricing':>20s} {'load (preload)':>22s} {'first resolution':>20s} {'RSS growth':>11s}  imports")
    for source, results in runs.items():
        assert all(result["index"] is (source == "index") for result in results), source

        cells = [_cell([result[key] for result in results]) for key in ("import", "load", "first")]
        rss = statistics.median(result["rss"] for result in results)
        modules = ", ".join(results[0]["modules"]) or "neither genai_prices nor pydantic"
        print(f"  {source:14s} {cells[0]:>20s} {cells[1]:>22s} {cells[2]:>20s} {rss:8.1f} MB  {modules}")


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.1f}..{max(values):.1f}] ms"


def main() -> None:
    load_times()

    cold: list[float] = []
    for _ in range(5):
        for provider, model in MODELS:
            book = PriceBook()  # a fresh book has empty caches of its own
            started = time.perf_counter()
            book.rates(provider, model)
            cold.append(time.perf_counter() - started)
    print(f"\ncold resolution (index), median over {len(cold)}: {statistics.median(cold) * 1e3:.3f} ms")

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
