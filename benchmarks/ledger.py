"""How long the ledger takes per finished call, in microseconds, and how many calls a second that is.

    python benchmarks/ledger.py

The ledger is fed by the recorder with one CallRecord per call (it is no longer a span processor).
Each figure is the best of five runs, to keep other load on the machine out of it.
"""

from __future__ import annotations

import threading
import time
import timeit

from otel_tokens import semconv
from otel_tokens._internal.accounting.ledger import Ledger
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage

NUMBER = 50_000


def best_microseconds(func, *args) -> float:
    return min(timeit.repeat(lambda: func(*args), number=NUMBER, repeat=5)) / NUMBER * 1e6


def contended_microseconds(ledger: Ledger, record: CallRecord, threads: int) -> float:
    """Wall time per record() while `threads` threads call it at once (the GIL serialises them)."""
    per_thread = NUMBER // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            ledger.record(record)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    return (time.perf_counter() - started) / (per_thread * threads) * 1e6


def main() -> None:
    record = CallRecord(
        Request("openai", semconv.OP_CHAT, "m-small"),
        Result(usage=Usage(1200, 300, cache_read_tokens=1000, reasoning_tokens=100), tool_calls=1),
        Labels(agent="researcher", workflow="report", task="search", user="user-1"),
        duration_s=0.8,
        end_time_unix=time.time(),
        cost_usd=0.0042,
    )
    ledger = Ledger()
    each = best_microseconds(ledger.record, record)
    print(f"record(CallRecord):         {each:6.2f} µs  ({1e6 / each:,.0f} calls/s on one core)")
    print(f"record, 8 threads (wall):   {contended_microseconds(ledger, record, 8):6.2f} µs")
    print(f"record, new user each call: {new_combination_microseconds():6.2f} µs  (each call folds the oldest row)")
    started = time.perf_counter()
    statistics = ledger.statistics()
    elapsed = (time.perf_counter() - started) * 1e6
    print(f"statistics() after {statistics['total_calls']:,} calls: {elapsed:.1f} µs")


def _records(count: int) -> list[CallRecord]:
    request = Request("openai", semconv.OP_CHAT, "m-small")
    result = Result(usage=Usage(1200, 300))
    return [CallRecord(request, result, Labels(agent="a", user=f"user-{n}"), cost_usd=0.001) for n in range(count)]


def new_combination_microseconds() -> float:
    records = _records(NUMBER)
    ledger = Ledger(max_keys=NUMBER)
    started = time.perf_counter()
    for record in records:
        ledger.record(record)
    return (time.perf_counter() - started) / NUMBER * 1e6


if __name__ == "__main__":
    main()
