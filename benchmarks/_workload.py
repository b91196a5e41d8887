"""The benchmark workload that ``overhead.py``, ``peers.py`` and ``startup.py`` share, run in a child process.

The OpenAI SDK (3.x) over its real HTTP stack against an in-process httpx2 MockTransport, so what is
measured is the SDK plus one library's wrapper, not the network. Every library that records gets the same
OpenTelemetry set-up: a TracerProvider with a BatchSpanProcessor to a no-op exporter and a MeterProvider
with an in-memory reader; prompt and completion content capture stays off.

Libraries: ``bare`` (the SDK alone), ``floor`` (``floor.py``: the least code that emits otel-tokens'
telemetry), ``otel-tokens``, ``contrib`` (opentelemetry-instrumentation-openai-v2) and ``openinference``
(openinference-instrumentation-openai). Only the standard library is imported at module level, so a
peer's venv, which has no otel_tokens, can run this file too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time

KINDS = ("sync", "async", "stream", "stream_usage")
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Benchmark prompt"}]

CHAT = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1763900000, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1250, "completion_tokens": 42, "total_tokens": 1292,
              "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
}


def stream_body(chunks: int, include_usage: bool) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1763900000,
            "model": "gpt-4o-mini-2024-07-18"}
    lines = []
    for index in range(chunks):
        chunk = {**base, "choices": [{"index": 0, "delta": {"content": f"w{index} "}, "logprobs": None,
                                      "finish_reason": "stop" if index == chunks - 1 else None}]}
        if include_usage:
            chunk["usage"] = None
        lines.append("data: " + json.dumps(chunk))
    if include_usage:
        lines.append("data: " + json.dumps({**base, "choices": [], "usage": CHAT["usage"]}))
    lines.append("data: [DONE]")
    return ("\n\n".join(lines) + "\n\n").encode()


def write_bytecode() -> None:
    """Let the children cache bytecode, as an installed package has it: with PYTHONDONTWRITEBYTECODE set
    (some shells and containers set it), an editable install would recompile every edited module in every
    process and start-up would measure the compiler, not the library."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def mark(what: str) -> None:
    """A window boundary for ``callgrind_windows`` in the parent: it switches counting (``on``, ``dump``,
    ``off``) while this process waits, so only the calls between marks are counted."""
    print("mark", what, flush=True)
    sys.stdin.readline()


class Harness:
    """One process's clients and OpenTelemetry providers; ``instrument`` applies one library."""

    def __init__(self, library: str, chunks: int = 200) -> None:
        import httpx2
        import openai

        self.library = library
        chat_body = json.dumps(CHAT).encode()
        streams = {flag: stream_body(chunks, flag) for flag in (False, True)}

        def handler(request: httpx2.Request) -> httpx2.Response:
            body = json.loads(request.content)
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return httpx2.Response(200, content=streams[usage], headers={"content-type": "text/event-stream"})
            return httpx2.Response(200, content=chat_body, headers={"content-type": "application/json"})

        async def async_handler(request: httpx2.Request) -> httpx2.Response:
            await request.aread()
            return handler(request)

        self.sync_client = openai.OpenAI(
            api_key="sk-bench", max_retries=0,
            http_client=openai.DefaultHttpx2Client(transport=httpx2.MockTransport(handler)))
        self.async_client = openai.AsyncOpenAI(
            api_key="sk-bench", max_retries=0,
            http_client=openai.DefaultAsyncHttpx2Client(transport=httpx2.MockTransport(async_handler)))
        # Load the SDK's lazily imported resource modules in every library's process alike, so a library
        # that patches them at instrument time is not credited with a faster first call.
        self.sync_client.chat.completions  # noqa: B018
        self.async_client.chat.completions  # noqa: B018
        self.spans = 0
        self.tracer_provider = self.meter_provider = self.reader = None
        if library != "bare":
            self._providers()

    def _providers(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        harness = self

        class Drop(SpanExporter):
            def export(self, spans):  # noqa: ANN001
                harness.spans += len(spans)  # counted, so a library that records nothing is caught
                return SpanExportResult.SUCCESS

        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=65536))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self) -> None:
        """Import and apply the library (what ``import + instrument`` times)."""
        tracer_provider, meter_provider = self.tracer_provider, self.meter_provider
        if self.library == "floor":
            from floor import instrument_floor

            instrument_floor(tracer_provider, meter_provider)
        elif self.library == "otel-tokens":
            import otel_tokens

            otel_tokens.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        elif self.library == "contrib":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        elif self.library == "openinference":
            from openinference.instrumentation import TraceConfig
            from openinference.instrumentation.openai import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(
                tracer_provider=tracer_provider, config=TraceConfig(hide_inputs=True, hide_outputs=True))
        elif self.library != "bare":
            raise ValueError(f"unknown library {self.library!r}")

    def sync_call(self) -> None:
        self.sync_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64)

    def stream_call(self) -> None:
        for _ in self.sync_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass

    def stream_usage_call(self) -> None:
        # The caller asks for usage itself: every library reads the same chunks, so the difference is its own.
        for _ in self.sync_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            pass

    async def _async_calls(self, n: int) -> None:
        for _ in range(n):
            await self.async_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64)

    def timed(self, kind: str, n: int) -> float:
        """Seconds for n calls of one kind."""
        if kind == "async":
            start = time.perf_counter()
            asyncio.run(self._async_calls(n))
            return time.perf_counter() - start
        call = {"stream": self.stream_call, "stream_usage": self.stream_usage_call}.get(kind, self.sync_call)
        start = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - start

    def telemetry(self) -> dict:
        """Spans exported and metric names seen so far: proof that the library recorded."""
        if self.tracer_provider is None:
            return {"spans": 0, "metrics": []}
        self.tracer_provider.force_flush()
        names = set()
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                names.update(metric.name for metric in scope_metrics.metrics)
        return {"spans": self.spans, "metrics": sorted(names)}


def per_call(library: str, kind: str, calls: int, chunks: int, count_only: bool = False,
             marks: bool = False) -> dict:
    """Median microseconds per call over 10 batches, after a warm-up (imports, prices, connections).
    With ``marks``, the calls run once between two marks instead, ended by a flush so the batch
    processor's export of their spans falls inside the window."""
    harness = Harness(library, chunks)
    harness.instrument()
    harness.timed(kind, max(50, calls // 10))
    if marks:
        mark("on")
        harness.timed(kind, calls)
        if harness.tracer_provider is not None:
            harness.tracer_provider.force_flush()
        mark("off")
        return {"kind": kind, "library": library, "calls": calls, **harness.telemetry()}
    if count_only:
        harness.timed(kind, calls)  # under callgrind: the instruction count is what is measured
        return {"kind": kind, "library": library}
    batch = max(10, calls // 10)
    batches = [harness.timed(kind, batch) / batch * 1e6 for _ in range(10)]
    calls_made = max(50, calls // 10) + 10 * batch
    return {"kind": kind, "library": library, "us_per_call": statistics.median(batches), "calls": calls_made,
            **harness.telemetry()}


def startup(library: str, marks: bool = False) -> dict:
    """Milliseconds to import and instrument the library, and for the first call after it, in a process
    that has already imported the SDK and built its clients and OpenTelemetry providers. With ``marks``,
    the two are callgrind windows."""
    harness = Harness(library)
    if marks:
        mark("on")
    start = time.perf_counter()
    harness.instrument()
    import_instrument = time.perf_counter() - start
    if marks:
        mark("dump")
    start = time.perf_counter()
    harness.sync_call()
    first_call = time.perf_counter() - start
    if marks:
        mark("off")
    return {"library": library, "import_instrument_ms": import_instrument * 1e3, "first_call_ms": first_call * 1e3,
            **harness.telemetry()}


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so RSS shows what is kept, not what the allocator
    happens to hold on to: without it, RSS growth over 20k calls varied by ±5 MB between identical runs."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(library: str, calls: int) -> dict:
    """Resident memory growth over ``calls`` sync calls after a warm-up, spans flushed and garbage collected
    at both ends, so only what the library keeps (tables, caches, leaks) remains."""
    harness = Harness(library)
    harness.instrument()
    harness.timed("sync", 500)

    def settled() -> int:
        if harness.tracer_provider is not None:
            harness.tracer_provider.force_flush()
        gc.collect()
        _release_free_memory()
        return _rss_bytes()

    before = settled()
    harness.timed("sync", calls)
    after = settled()
    return {"library": library, "rss_growth_mb": (after - before) / 1e6, **harness.telemetry()}
