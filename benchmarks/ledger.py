"""How long the ledger takes per ended span (on_end) and per call record, in microseconds.

    python benchmarks/ledger.py

The spans are real ReadableSpans written by the recorder, so on_end reads the same attributes as in
production. Each figure is the best of five runs, to keep other load on the machine out of it.
"""

from __future__ import annotations

import threading
import time
import timeit

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokens import semconv
from otel_tokens._internal.instruments import Instruments
from otel_tokens._internal.ledger import Ledger
from otel_tokens._internal.pricing import PriceBook
from otel_tokens._internal.recorder import Recorder
from otel_tokens._internal.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.settings import Settings

NUMBER = 50_000


def recorded_spans() -> list:
    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    prices = PriceBook()
    prices.set_price("m-small", input=2.0, output=8.0)
    meter = MeterProvider().get_meter(semconv.SCOPE_NAME)
    recorder = Recorder(provider.get_tracer(semconv.SCOPE_NAME), Instruments.create(meter), prices, Settings())
    labels = Labels(agent="researcher", workflow="report", task="search", user="user-1")
    invocation = recorder.start(Request("openai", semconv.OP_CHAT, "m-small", "api.openai.com", 443), labels)
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000, reasoning_tokens=100)
    recorder.finish(invocation, Result(usage=usage, response_model="m-small", response_id="r1", finish_reasons=("stop",)))
    provider.get_tracer("some.other.library").start_span("GET /").end()
    return list(exporter.get_finished_spans())


def best_microseconds(func, *args) -> float:
    return min(timeit.repeat(lambda: func(*args), number=NUMBER, repeat=5)) / NUMBER * 1e6


def contended_microseconds(ledger: Ledger, span, threads: int) -> float:
    """Wall time per on_end while `threads` threads call it at once (the GIL serialises them)."""
    per_thread = NUMBER // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            ledger.on_end(span)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    return (time.perf_counter() - started) / (per_thread * threads) * 1e6


def main() -> None:
    llm_span, foreign_span = recorded_spans()
    record = CallRecord(
        Request("openai", semconv.OP_CHAT, "m-small"),
        Result(usage=Usage(1200, 300, cache_read_tokens=1000, reasoning_tokens=100)),
        Labels(agent="researcher", workflow="report", task="search", user="user-1"),
        duration_s=0.8,
        end_time_unix=time.time(),
        cost_usd=0.0042,
    )
    ledger = Ledger()
    print(f"on_end, LLM span:         {best_microseconds(ledger.on_end, llm_span):6.2f} µs")
    print(f"on_end, other scope:      {best_microseconds(ledger.on_end, foreign_span):6.2f} µs")
    print(f"record(CallRecord):       {best_microseconds(ledger.record, record):6.2f} µs")
    print(f"on_end, 8 threads (wall): {contended_microseconds(ledger, llm_span, 8):6.2f} µs")
    print(f"record, new user each call: {new_combination_microseconds():4.2f} µs  (each call folds the oldest row)")
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
