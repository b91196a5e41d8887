"""The bundled collector config on a real collector: it validates, and OTLP sent by an OpenTelemetry SDK
process goes through it intact, metrics to the Prometheus exporter and spans to the Tempo exporter.

The collector is a core build from Debian's Go sources (.ci/build-otelcol.sh), or OTELCOL_BIN. The
exporters point at loopback receivers written here in Python, through the config's own environment
overrides.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from .conftest import REPO, Process, free_port, wait_until

pytestmark = pytest.mark.stack

COLLECTOR_CONFIG = REPO / "collector_config" / "otelcol.yaml"
BUILD_SCRIPT = REPO / ".ci" / "build-otelcol.sh"
SERVICE_NAME = "otel-tokens-collector-test"


# The build is explicit: a plain `pytest` never starts it (it takes minutes and GBs); .ci/run sets this.
BUILD_SWITCH = "OTEL_TOKENS_TEST_COLLECTOR"


@pytest.fixture(scope="module")
def otelcol_bin(pytestconfig: pytest.Config) -> str:
    explicit = os.environ.get("OTELCOL_BIN")
    if explicit:
        return explicit
    if os.environ.get(BUILD_SWITCH) != "1":
        pytest.skip(f"needs a collector: set {BUILD_SWITCH}=1 to build one from Debian's Go sources "
                    f"(.ci/build-otelcol.sh: minutes the first time, ~3 GB under /var/tmp), or OTELCOL_BIN")
    # First build: a few minutes (downloads ~300 MB of Debian packages); afterwards the cached binary.
    code, stdout, stderr = _run_showing_progress(pytestconfig, ["bash", str(BUILD_SCRIPT)])
    if code != 0:
        reasons = [line for line in stderr.splitlines() if line.startswith("build-otelcol:")]
        pytest.skip("the collector could not be built: " + " | ".join(reasons[-3:] or [stderr[-500:]]))
    binary = stdout.strip().splitlines()[-1]
    assert Path(binary).is_file(), stdout
    return binary


def _run_showing_progress(config: pytest.Config, args: list[str]) -> tuple[int, str, str]:
    """Run ``args``; each stderr line is also shown on the terminal as it comes, past pytest's capture."""
    capture = config.pluginmanager.getplugin("capturemanager")
    lines: list[str] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None and process.stdout is not None
        for line in process.stderr:  # the script prints only the binary's path on stdout
            lines.append(line)
            with capture.global_and_fixture_disabled():
                sys.stderr.write(f"\n[collector build] {line.rstrip()}")
                sys.stderr.flush()
        stdout = process.stdout.read()
        code = process.wait(timeout=3600)
    return code, stdout, "".join(lines)


def clean_env() -> dict[str, str]:
    """The environment without our overrides, so the config's defaults are what gets validated."""
    overrides = {"OTELCOL_OTLP_GRPC_ENDPOINT", "OTELCOL_OTLP_HTTP_ENDPOINT", "PROMETHEUS_OTLP_ENDPOINT",
                 "TEMPO_OTLP_GRPC_ENDPOINT", "TEMPO_OTLP_INSECURE", "OTELCOL_LOG_LEVEL"}
    return {k: v for k, v in os.environ.items() if k not in overrides}


def test_config_validates(otelcol_bin: str) -> None:
    result = subprocess.run([otelcol_bin, "validate", f"--config={COLLECTOR_CONFIG}"], capture_output=True,
                            text=True, timeout=60, env=clean_env())
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_refuses_a_bad_override(otelcol_bin: str) -> None:
    """The ${env:...} overrides really reach the config (a bad value is rejected, not ignored)."""
    env = {**clean_env(), "OTELCOL_LOG_LEVEL": "not-a-level"}
    result = subprocess.run([otelcol_bin, "validate", f"--config={COLLECTOR_CONFIG}"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode != 0 and "not-a-level" in result.stdout + result.stderr


# -- loopback receivers standing in for Prometheus and Tempo ---------------------------------------


class OtlpHttpSink:
    """Accepts OTLP/HTTP protobuf metrics the way Prometheus' /api/v1/otlp/v1/metrics does."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, metrics_service_pb2.ExportMetricsServiceRequest]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                sink.requests.append((self.path, request))
                reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def metrics(self) -> dict[str, tuple[Any, Any]]:
        """Metric name -> (metric, resource) over everything received."""
        out = {}
        for _, request in self.requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        out[metric.name] = (metric, resource_metrics.resource)
        return out


class TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP gRPC trace receiver, as Tempo's distributor is to the collector."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's naming
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> dict[str, tuple[Any, Any]]:
        out = {}
        for request in self.requests:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out[span.name] = (span, resource_spans.resource)
        return out


def attributes(items: Any) -> dict[str, Any]:
    out = {}
    for item in items:
        value = item.value
        out[item.key] = getattr(value, value.WhichOneof("value"))
    return out


# An OpenTelemetry SDK process: spans over OTLP/HTTP, metrics over OTLP/gRPC, so both receivers are used.
SENDER = """
import sys
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otel_tokens import semconv as s

grpc_port, http_port, service = sys.argv[1], sys.argv[2], sys.argv[3]
resource = Resource.create({"service.name": service})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")))
reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True),
                                       export_interval_millis=60000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader], views=[
    View(instrument_name=s.METRIC_TOKEN_USAGE, aggregation=ExplicitBucketHistogramAggregation(s.TOKEN_USAGE_BUCKETS))])
meter = meter_provider.get_meter(s.SCOPE_NAME)
call = {s.GEN_AI_PROVIDER_NAME: "openai", s.GEN_AI_OPERATION_NAME: s.OP_CHAT, s.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        s.GEN_AI_AGENT_NAME: "researcher"}
tracer = tracer_provider.get_tracer(s.SCOPE_NAME)
with tracer.start_as_current_span("invoke_agent researcher", attributes={s.GEN_AI_AGENT_NAME: "researcher"}):
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={**call, s.GEN_AI_USAGE_INPUT_TOKENS: 1234,
                                      s.GEN_AI_USAGE_OUTPUT_TOKENS: 56, s.GEN_AI_USAGE_COST_AMOUNT: 0.0123}):
        meter.create_histogram(s.METRIC_TOKEN_USAGE, unit=s.UNIT_TOKEN).record(1234, {**call, s.GEN_AI_TOKEN_TYPE: "input"})
        meter.create_counter(s.METRIC_COST_USD, unit=s.UNIT_USD).add(0.0123, call)
        meter.create_gauge(s.METRIC_BUDGET_UTILIZATION, unit=s.UNIT_RATIO).set(
            0.92, {s.GEN_AI_AGENT_NAME: "researcher", s.OTEL_TOKENS_BUDGET_WINDOW: "lifetime"})
meter_provider.shutdown()
tracer_provider.shutdown()
"""


@pytest.fixture
def collector(otelcol_bin: str, tmp_path: Path) -> Iterator[tuple[int, int, OtlpHttpSink, TraceSink, Process]]:
    metrics_sink, trace_sink = OtlpHttpSink(), TraceSink()
    grpc_port, http_port = free_port(), free_port()
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    # The collector's own metrics would take port 8888; not needed here.
    config["service"]["telemetry"]["metrics"] = {"level": "none"}
    test_config = tmp_path / "otelcol.yaml"
    test_config.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **clean_env(),
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "PROMETHEUS_OTLP_ENDPOINT": f"http://127.0.0.1:{metrics_sink.port}/api/v1/otlp",
        "TEMPO_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{trace_sink.port}",
    }
    process = Process("otelcol", [otelcol_bin, f"--config={test_config}"], tmp_path, env=env)

    def listening() -> bool:
        process.assert_running()
        with socket.create_connection(("127.0.0.1", http_port), timeout=1):
            return True

    try:
        wait_until(listening, "the collector's OTLP receiver", diagnostics=process.log_tail)
        yield grpc_port, http_port, metrics_sink, trace_sink, process
    finally:
        process.stop()
        metrics_sink.server.shutdown()
        trace_sink.server.stop(grace=None)


def test_otlp_passes_through_intact(collector: tuple[int, int, OtlpHttpSink, TraceSink, Process]) -> None:
    from otel_tokens import semconv as s

    grpc_port, http_port, metrics_sink, trace_sink, process = collector
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    sent = subprocess.run([sys.executable, "-c", SENDER, str(grpc_port), str(http_port), SERVICE_NAME],
                          capture_output=True, text=True, timeout=60, env=env)
    assert sent.returncode == 0, sent.stderr

    wanted_metrics = {s.METRIC_TOKEN_USAGE, s.METRIC_COST_USD, s.METRIC_BUDGET_UTILIZATION}
    wait_until(lambda: wanted_metrics <= set(metrics_sink.metrics()) and len(trace_sink.spans()) >= 2,
               "metrics at the Prometheus stand-in and spans at the Tempo stand-in", timeout=30,
               diagnostics=process.log_tail)

    assert {path for path, _ in metrics_sink.requests} == {"/api/v1/otlp/v1/metrics"}
    metrics = metrics_sink.metrics()
    tokens, resource = metrics[s.METRIC_TOKEN_USAGE]
    assert attributes(resource.attributes)["service.name"] == SERVICE_NAME
    assert tokens.unit == s.UNIT_TOKEN
    (point,) = tokens.histogram.data_points
    assert (point.count, point.sum) == (1, 1234)
    assert list(point.explicit_bounds) == [float(b) for b in s.TOKEN_USAGE_BUCKETS]
    assert attributes(point.attributes) == {s.GEN_AI_PROVIDER_NAME: "openai", s.GEN_AI_OPERATION_NAME: s.OP_CHAT,
                                            s.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", s.GEN_AI_AGENT_NAME: "researcher",
                                            s.GEN_AI_TOKEN_TYPE: "input"}
    cost, _ = metrics[s.METRIC_COST_USD]
    assert cost.unit == s.UNIT_USD and cost.sum.is_monotonic
    # Cumulative, as Prometheus needs it.
    assert cost.sum.aggregation_temporality == 2
    assert cost.sum.data_points[0].as_double == pytest.approx(0.0123)
    utilization, _ = metrics[s.METRIC_BUDGET_UTILIZATION]
    assert utilization.gauge.data_points[0].as_double == pytest.approx(0.92)
    assert attributes(utilization.gauge.data_points[0].attributes)[s.OTEL_TOKENS_BUDGET_WINDOW] == "lifetime"

    spans = trace_sink.spans()
    chat, resource = spans["chat gpt-4o-mini"]
    agent, _ = spans["invoke_agent researcher"]
    assert attributes(resource.attributes)["service.name"] == SERVICE_NAME
    assert chat.trace_id == agent.trace_id and chat.parent_span_id == agent.span_id
    chat_attributes = attributes(chat.attributes)
    assert chat_attributes[s.GEN_AI_USAGE_INPUT_TOKENS] == 1234
    assert chat_attributes[s.GEN_AI_USAGE_OUTPUT_TOKENS] == 56
    assert chat_attributes[s.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.0123)
    assert chat_attributes[s.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
