"""Scale: memory with ever-new model names, and re-instrumentation cycles.

    python benchmarks/scale.py [--calls 100000] [--cycles 100]

1. ``--calls`` calls through the real runtime (recorder, ledger, price book, metrics, a real SDK
   TracerProvider with a batch processor to a no-op exporter), each to a model name never seen before
   (all unpriced). Prints RSS after the first 10% and at the end; the goal is growth under 10 MB.
2. ``--cycles`` instrument()/uninstrument() cycles on the same providers, timing an OpenAI call
   (real SDK over a mock transport) before and after, and counting span processors.
"""

from __future__ import annotations

import argparse
import gc
import logging
import resource
import statistics
import time
from typing import Any

import httpx2
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import otel_tokens
from otel_tokens._internal.base.records import Labels, Request, Result, Usage
from otel_tokens._internal.setup.runtime import current_runtime

BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":'
    b'[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1250,"completion_tokens":42,"total_tokens":1292}}'
)


class NoExport(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def providers() -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NoExport()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def distinct_models(calls: int) -> None:
    tracer_provider, meter_provider = providers()
    otel_tokens.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    recorder = current_runtime().recorder
    usage = Usage(input_tokens=1200, output_tokens=40)
    warm = max(calls // 10, 1)
    start = time.perf_counter()
    for index in range(calls):
        request = Request("openai", "chat", f"fine-tuned-model-{index}")
        invocation = recorder.start(request, Labels(agent=f"agent-{index % 7}"))
        recorder.finish(invocation, Result(usage=usage))
        if index + 1 == warm:
            gc.collect()
            after_warm_up = rss_mb()
    gc.collect()
    elapsed = time.perf_counter() - start
    end = rss_mb()
    print(f"{calls} calls, each to a new model name: {elapsed / calls * 1e6:.1f} µs per call")
    print(f"RSS after {warm} calls: {after_warm_up:.1f} MB; after {calls}: {end:.1f} MB; "
          f"growth {end - after_warm_up:+.1f} MB (goal < 10 MB)")
    statistics_ = otel_tokens.get_statistics()
    print(f"counted {statistics_['total_calls']} calls, {statistics_['unpriced_calls']} unpriced, "
          f"{len(statistics_['by_model'])} model keys kept (the rest under '(other)')")
    otel_tokens.uninstrument()


def call_time(client: Any, rounds: int = 300) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def cycles(count: int) -> None:
    tracer_provider, meter_provider = providers()
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=BODY, headers={"content-type": "application/json"})
    )
    client = openai.OpenAI(api_key="sk-bench", max_retries=0,
                           http_client=openai.DefaultHttpx2Client(transport=transport))
    processors = len(tracer_provider._active_span_processor._span_processors)
    otel_tokens.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    call_time(client, 100)  # warm-up
    before = call_time(client)
    for _ in range(count):
        otel_tokens.uninstrument()
        otel_tokens.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    after = call_time(client)
    added = len(tracer_provider._active_span_processor._span_processors) - processors
    print(f"{count} instrument/uninstrument cycles: per call {before:.0f} µs before, {after:.0f} µs after; "
          f"span processors added by otel-tokens: {added}")
    otel_tokens.uninstrument()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("otel_tokens").setLevel(logging.ERROR)  # 100k "no price" warnings are the point
    distinct_models(args.calls)
    cycles(args.cycles)


if __name__ == "__main__":
    main()
