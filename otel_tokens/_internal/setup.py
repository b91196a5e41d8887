"""Provider set-up for ``import otel_tokens.auto`` and the demo.

If the application already set global tracer and meter providers, they are used as they are.
Otherwise providers are built from the standard ``OTEL_*`` variables, exporting only when an exporter or
an endpoint is configured, so an app with no collector gets no stream of connection errors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace

_logger = logging.getLogger("otel_tokens")


def _wants(env: Mapping[str, str], signal: str) -> str | None:
    """The exporter to use for a signal (``otlp``, ``console``, ``prometheus``) or None."""
    chosen = env.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    if chosen in ("none",):
        return None
    if chosen:
        return chosen.split(",")[0].strip()
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    return "otlp" if endpoint else None


def _otlp_http(env: Mapping[str, str]) -> bool:
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
    return protocol != "grpc"


def configure_providers(
    env: Mapping[str, str] | None = None,
    *,
    otlp_endpoint: str | None = None,
    prometheus_port: int | None = None,
    service_name: str | None = None,
    force: bool = False,
) -> tuple[Any, Any]:
    """Return (tracer_provider, meter_provider), setting them globally when none were set."""
    env = os.environ if env is None else env
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current_tp = trace.get_tracer_provider()
    current_mp = metrics.get_meter_provider()
    tp_set = not isinstance(current_tp, trace.ProxyTracerProvider)
    mp_set = type(current_mp).__name__ != "_ProxyMeterProvider"

    attributes = {"service.name": service_name} if service_name else {}
    resource = Resource.create(attributes)

    if tp_set and not force:
        tracer_provider = current_tp
    else:
        tracer_provider = TracerProvider(resource=resource)
        exporter = _span_exporter(env, otlp_endpoint)
        if exporter is not None:
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)

    if mp_set and not force:
        meter_provider = current_mp
    else:
        readers = _metric_readers(env, otlp_endpoint, prometheus_port)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def _span_exporter(env: Mapping[str, str], otlp_endpoint: str | None) -> Any:
    kind = "otlp" if otlp_endpoint else _wants(env, "traces")
    if kind == "otlp":
        if otlp_endpoint or _otlp_http(env):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = f"{otlp_endpoint.rstrip('/')}/v1/traces" if otlp_endpoint else None
            return OTLPSpanExporter(endpoint=endpoint)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind is not None:
        _logger.warning("otel_tokens: OTEL_TRACES_EXPORTER=%r is not supported here; spans are not exported", kind)
    return None


def _metric_readers(env: Mapping[str, str], otlp_endpoint: str | None, prometheus_port: int | None) -> list[Any]:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    readers: list[Any] = []
    if prometheus_port is not None:
        readers.append(_prometheus_reader("127.0.0.1", prometheus_port))
    kind = "otlp" if otlp_endpoint else _wants(env, "metrics")
    if kind == "otlp":
        if otlp_endpoint or _otlp_http(env):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            endpoint = f"{otlp_endpoint.rstrip('/')}/v1/metrics" if otlp_endpoint else None
            exporter: Any = OTLPMetricExporter(endpoint=endpoint)
        else:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

            exporter = Grpc()
        interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=float(interval) if interval else None))
    elif kind == "prometheus" and prometheus_port is None:
        host = env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
        port = int(env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
        readers.append(_prometheus_reader(host, port))
    elif kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif kind is not None:
        _logger.warning("otel_tokens: OTEL_METRICS_EXPORTER=%r is not supported here; metrics are not exported", kind)
    return readers


def _prometheus_reader(host: str, port: int) -> Any:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise RuntimeError(
            "Prometheus export needs opentelemetry-exporter-prometheus: pip install 'otel-tokens[prometheus]'"
        ) from exc
    start_http_server(port, addr=host)
    return PrometheusMetricReader()
