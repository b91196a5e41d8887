"""Shared fixtures: a real TracerProvider, MeterProvider and LoggerProvider per test, and the real runtime."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Our internal errors fail tests instead of being logged (users never see them either way).
os.environ.setdefault("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "1")
# A price index built for the installed genai-prices (when the shipped one is for another version) is cached
# here for this run and its subprocesses, never in the user's own cache.
if "OTEL_TOKENS_CACHE_DIR" not in os.environ:
    os.environ["OTEL_TOKENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="otel-tokens-test-cache-")
    atexit.register(shutil.rmtree, os.environ["OTEL_TOKENS_CACHE_DIR"], True)
_KEPT_VARIABLES = ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR")


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name_prefix: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        if name_prefix is not None:
            spans = [s for s in spans if s.name.startswith(name_prefix)]
        return spans

    def llm_spans(self) -> list[ReadableSpan]:
        return [
            s for s in self.exporter.get_finished_spans()
            if s.instrumentation_scope.name == "otel_tokens" and not s.name.startswith("invoke_agent")
        ]

    def points(self, metric_name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) for every data point of one metric of scope otel_tokens."""
        data = self.reader.get_metrics_data()
        found = []
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                if scope_metrics.scope.name != "otel_tokens":
                    continue
                for metric in scope_metrics.metrics:
                    if metric.name == metric_name:
                        found += [(dict(p.attributes), p) for p in metric.data.data_points]
        return found

    def sum_of(self, metric_name: str, **match: Any) -> float:
        """Sum of counter values, or of histogram sums, over points whose attributes match."""
        total = 0.0
        for attributes, point in self.points(metric_name):
            if all(attributes.get(k.replace("__", ".")) == v for k, v in match.items()):
                total += getattr(point, "sum", None) if hasattr(point, "bucket_counts") else point.value
        return total


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outgoing connections are refused, so a network fetch fails loudly instead of passing."""

    def refuse(self: socket.socket, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module", params=["index", "genai-prices"])
def both_price_sources(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test of a module that uses this runs over both sources of price data: the price index and
    genai-prices' own catalog."""
    from otel_tokens._internal.pricing import book, index

    with pytest.MonkeyPatch.context() as patch:
        if request.param == "index":
            assert index.load() is not None, "no price index for the installed genai-prices"
        else:
            patch.setattr(book, "_default_catalog", book._GenaiCatalog)
        yield request.param


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(tracer_provider, meter_provider, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@dataclass
class Logs:
    logger_provider: LoggerProvider
    exporter: InMemoryLogRecordExporter

    def records(self) -> list[Any]:
        """The log records otel-tokens emitted (scope otel_tokens)."""
        return [
            item.log_record for item in self.exporter.get_finished_logs()
            if item.instrumentation_scope.name == "otel_tokens"
        ]


@pytest.fixture
def logs() -> Iterator[Logs]:
    exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield Logs(logger_provider, exporter)
    logger_provider.shutdown()


@pytest.fixture
def instrumented(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """otel_tokens.instrument() on this test's providers; yields the runtime; uninstruments after."""
    import otel_tokens
    from otel_tokens._internal.setup.runtime import current_runtime

    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in _KEPT_VARIABLES:
            monkeypatch.delenv(name)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield current_runtime()
    otel_tokens.uninstrument()
