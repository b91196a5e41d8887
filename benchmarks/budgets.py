"""What a budget adds to each LLM call: the reserve before it and the settle after it.

    python benchmarks/budgets.py                      # starts its own redis-server on a free port
    python benchmarks/budgets.py --redis-url redis://127.0.0.1:6379/0 --calls 2000 --rounds 5

Each configuration runs the budget manager's per-call work exactly as the recorder drives it
(``reserve(request, labels, prompt)``, then ``observe(record)`` and ``settle(reservation, record)``), single-threaded, with a
short chat prompt (a blocking budget tokenizes it to project the call's cost). Reported: median
microseconds per call over the rounds, and what that adds over no budget at all.

Configurations: no budget; a blocking budget in memory, on SQLite (a file in a temporary directory,
WAL) and on loopback Redis (one reserve and one settle round trip); warn-only budgets in memory and on
Redis (settled in the background, batched: no round trip on the call path).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server, or pass --redis-url")
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", directory],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise SystemExit("redis-server did not start")


def _manager(store_url: str | None, action: str):
    from otel_tokens._internal.budgets.manager import BudgetManager
    from otel_tokens._internal.budgets.store import open_store
    from otel_tokens._internal.pricing.book import PriceBook
    from otel_tokens._internal.pricing.tokenizer import count_tokens

    store = open_store(store_url) if store_url else None
    manager = BudgetManager(price_book=PriceBook(), count_tokens=count_tokens, store=store)
    if action:
        # Large enough never to block: every call pays the full check.
        manager.set_budget("bench", 1e9, action=action, scope="total")
        manager.set_budget("researcher", 1e9, action=action)
    return manager


def _time_calls(manager, calls: int) -> float:
    from otel_tokens import semconv
    from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage

    request = Request("openai", semconv.OP_CHAT, "gpt-4o-mini",
                      attributes={semconv.GEN_AI_REQUEST_MAX_TOKENS: 256})
    labels = Labels(agent="researcher", workflow="report")
    prompt = "Summarise the quarterly figures for the northern region in three short bullet points."
    record = CallRecord(request, Result(usage=Usage(1250, 42)), labels, cost_usd=0.000213)

    def prompt_text() -> str:
        return prompt

    start = time.perf_counter()
    for _ in range(calls):
        reservation = manager.reserve(request, labels, prompt_text)
        manager.observe(record)  # as the recorder does: the output count, for projections (and the store's)
        manager.settle(reservation, record)
    return (time.perf_counter() - start) / calls * 1e6


def _ping_us(url: str, calls: int) -> float:
    """One loopback round trip, for scale: a blocking budget on Redis costs about two."""
    import redis

    client = redis.Redis.from_url(url)
    client.ping()
    start = time.perf_counter()
    for _ in range(calls):
        client.ping()
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", help="an existing Redis (default: start redis-server on a free port)")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="otel-tokens-bench-")
    redis_process = None
    redis_url = args.redis_url
    if redis_url is None:
        redis_process, redis_url = _start_redis(directory)
    sqlite_url = f"sqlite:///{directory}/spend.db"
    configurations = [
        ("no budget", None, ""),
        ("blocking, in memory", None, "block"),
        ("blocking, SQLite", sqlite_url, "block"),
        ("blocking, Redis (loopback)", redis_url, "block"),
        ("warn-only, in memory", None, "warn"),
        ("warn-only, Redis (loopback)", redis_url, "warn"),
    ]
    try:
        managers = {name: _manager(url, action) for name, url, action in configurations}
        for manager in managers.values():
            _time_calls(manager, max(args.calls // 10, 50))  # warm up: connections, tokenizer, statements
        samples: dict[str, list[float]] = {name: [] for name in managers}
        for _ in range(args.rounds):
            for name, manager in managers.items():
                samples[name].append(_time_calls(manager, args.calls))
        for manager in managers.values():
            manager.close()
        ping = _ping_us(redis_url, args.calls)
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)

    base = statistics.median(samples["no budget"])
    print(f"{'configuration':<30} {'per call':>10} {'added':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        added = "" if name == "no budget" else f"{median - base:>8.1f}us"
        print(f"{name:<30} {median:>8.1f}us {added:>10}")
    print(f"{'(a Redis PING round trip)':<30} {ping:>8.1f}us")


if __name__ == "__main__":
    main()
