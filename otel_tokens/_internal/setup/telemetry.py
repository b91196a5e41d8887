"""Provider set-up for ``import otel_tokens.auto`` and the demo.

If the application already set global tracer and meter providers, they are used as they are.
Otherwise providers are built from the standard ``OTEL_*`` variables, exporting only when an exporter or
an endpoint is configured, so an app with no collector gets no stream of connection errors.

The environment never stops the application: a malformed value is logged (a WARNING naming the
variable) and replaced by its default, and an exporter that cannot be built is logged and left out.
Code arguments (the demo's) are strict. The providers built here are shut down at exit within
``OTEL_TOKENS_SHUTDOWN_TIMEOUT`` seconds, so an unreachable collector cannot hold the exit up for the
exporters' own retry deadlines; what is not exported by then is dropped.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics, trace

from otel_tokens._internal.base.errors import ConfigError, ConfigTypeError
from otel_tokens._internal.base.settings import (
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
    OTEL_TOKENS_SHUTDOWN_TIMEOUT,
    ContentCapture,
    env_number,
)

_logger = logging.getLogger("otel_tokens")

DEFAULT_SHUTDOWN_TIMEOUT_S = 3.0
DEFAULT_METRIC_EXPORT_INTERVAL_MS = 60_000.0
DEFAULT_PROMETHEUS_HOST = "localhost"
DEFAULT_PROMETHEUS_PORT = 9464
_PROTOCOLS = ("http/protobuf", "grpc")

# Providers built here and not shut down yet: (tracer, meter, logger provider, each or None; timeout).
_built: list[tuple[Any, Any, Any, float]] = []
_built_lock = threading.Lock()


class _Standby:
    """A daemon thread started with the providers, to shut them down at exit within a bound: Python 3.12
    starts no new thread once the interpreter is shutting down. A forked child starts its own on demand."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._pid: int | None = None

    def start(self) -> None:
        if self._pid != os.getpid():
            threading.Thread(target=self._serve, name="otel_tokens-shutdown", daemon=True).start()
            self._pid = os.getpid()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()

    def run(self, job: Callable[[], None], timeout_s: float) -> bool:
        """Run ``job`` on the standby thread; True if it ended within ``timeout_s``."""
        done = threading.Event()

        def run_job() -> None:
            try:
                job()
            finally:
                done.set()

        try:
            self.start()
        except RuntimeError:  # no thread can start now (a forked child at exit): here, unbounded
            run_job()
            return True
        self._jobs.put(run_job)
        return done.wait(timeout_s)


_standby = _Standby()


def _exporters(env: Mapping[str, str], signal: str) -> list[str]:
    """The exporters asked for a signal (``otlp``, ``console``, ``prometheus``), in order."""
    chosen = [part.strip() for part in env.get(f"OTEL_{signal.upper()}_EXPORTER", "").lower().split(",")]
    chosen = [part for part in chosen if part]
    if chosen:
        return [part for part in dict.fromkeys(chosen) if part != "none"] if "none" not in chosen else []
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    return ["otlp"] if endpoint else []


def _otlp_http(env: Mapping[str, str], signal: str) -> bool:
    """True for OTLP over HTTP (the default), False for gRPC; the signal's own variable wins."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if raw.lower() in _PROTOCOLS:
            return raw.lower() != "grpc"
        _logger.warning("%s=%r is not one of %s; using http/protobuf", name, raw, ", ".join(_PROTOCOLS))
        return True
    return True


def configure_providers(
    env: Mapping[str, str] | None = None,
    *,
    otlp_endpoint: str | None = None,
    prometheus_port: int | None = None,
    service_name: str | None = None,
    force: bool = False,
    shutdown_timeout: float | None = None,
) -> tuple[Any, Any]:
    """Return (tracer_provider, meter_provider), setting them globally when none were set.

    ``shutdown_timeout`` (seconds, default ``OTEL_TOKENS_SHUTDOWN_TIMEOUT`` or 3) bounds what shutting
    the providers built here adds to process exit (see :func:`shutdown_providers`).
    """
    env = os.environ if env is None else env
    _check_arguments(otlp_endpoint, prometheus_port, service_name, shutdown_timeout)
    if shutdown_timeout is None:
        shutdown_timeout = env_number(env, OTEL_TOKENS_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT_S, float,
                                      "a positive number of seconds")
    # The demo's Prometheus port is a code argument: a port in use is its error to report.
    prometheus = _prometheus_reader("127.0.0.1", prometheus_port) if prometheus_port is not None else None

    current_tp = trace.get_tracer_provider()
    current_mp = metrics.get_meter_provider()
    tp_set = not isinstance(current_tp, trace.ProxyTracerProvider)
    mp_set = type(current_mp).__name__ != "_ProxyMeterProvider"
    resource = _resource(service_name)

    if tp_set and not force:
        tracer_provider, built_tp = current_tp, None
    else:
        tracer_provider = built_tp = _from_env("spans", lambda: _tracer_provider(env, resource, otlp_endpoint))
        if built_tp is not None:
            trace.set_tracer_provider(built_tp)

    if mp_set and not force:
        meter_provider, built_mp = current_mp, None
    else:
        meter_provider = built_mp = _from_env(
            "metrics", lambda: _meter_provider(env, resource, otlp_endpoint, prometheus))
        if built_mp is not None:
            metrics.set_meter_provider(built_mp)

    if built_tp is not None or built_mp is not None:
        _shut_down_at_exit(built_tp, built_mp, None, shutdown_timeout)
    return tracer_provider, meter_provider


def configure_logger_provider(env: Mapping[str, str] | None = None) -> Any:
    """The logger provider for the content event: None (the global one, also one the app sets later) unless
    none is set, content capture asks for events and an exporter is configured for logs; then one is
    built from the ``OTEL_*`` variables, set globally and returned. Nothing else of ours logs through it."""
    from opentelemetry import _logs

    env = os.environ if env is None else env
    capture = env.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, "").strip().upper()
    if capture not in (ContentCapture.EVENT_ONLY.value, ContentCapture.SPAN_AND_EVENT.value):
        return None
    if type(_logs.get_logger_provider()).__name__ != "ProxyLoggerProvider" or not _exporters(env, "logs"):
        return None
    provider = _from_env("logs", lambda: _logger_provider(env, _resource(None)))
    if provider is None:
        return None
    _logs.set_logger_provider(provider)
    timeout = env_number(env, OTEL_TOKENS_SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT_S, float,
                         "a positive number of seconds")
    _shut_down_at_exit(None, None, provider, timeout)
    return provider


def _shut_down_at_exit(tracer_provider: Any, meter_provider: Any, logger_provider: Any, timeout_s: float) -> None:
    with _built_lock:
        if not _built:
            _standby.start()
            atexit.register(shutdown_providers)
        _built.append((tracer_provider, meter_provider, logger_provider, timeout_s))


def _resource(service_name: str | None) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes = {"service.name": service_name} if service_name else {}
    return _from_env("the resource", lambda: Resource.create(attributes)) or Resource(attributes)


def _tracer_provider(env: Mapping[str, str], resource: Any, otlp_endpoint: str | None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Shut down by shutdown_providers(), within the bound, instead of the SDK's unbounded atexit.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for exporter in _span_exporters(env, otlp_endpoint):
        processor = _optional(f"the span processor for {type(exporter).__name__}", BatchSpanProcessor, exporter)
        if processor is not None:
            provider.add_span_processor(processor)
    return provider


def _meter_provider(env: Mapping[str, str], resource: Any, otlp_endpoint: str | None, prometheus: Any) -> Any:
    """``prometheus``: the demo's reader, which replaces one the environment asks for."""
    from opentelemetry.sdk.metrics import MeterProvider

    # A value the SDK rejects (OTEL_METRICS_EXEMPLAR_FILTER) fails here, before any reader starts.
    MeterProvider(resource=resource, shutdown_on_exit=False)
    readers = _metric_readers(env, otlp_endpoint, with_prometheus=prometheus is None)
    readers += [prometheus] if prometheus is not None else []
    return MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)


def _logger_provider(env: Mapping[str, str], resource: Any) -> Any:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for exporter in _log_exporters(env):
        processor = _optional(f"the log processor for {type(exporter).__name__}", BatchLogRecordProcessor, exporter)
        if processor is not None:
            provider.add_log_record_processor(processor)
    return provider


def _from_env(what: str, build: Callable[[], Any]) -> Any:
    """What the OpenTelemetry SDK builds from the environment, or None (logged) when it rejects it."""
    try:
        return build()
    except Exception as error:  # e.g. OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=abc fails the SDK's own import
        _logger.warning("the OpenTelemetry SDK rejected the environment for %s (%s); "
                        "%s are not exported", what, error, what)
        return None


def shutdown_providers() -> bool:
    """Shut down (once) the providers built here, each set within its timeout; True if all finished.

    The SDK's shutdown exports what is buffered and retries an unreachable collector until the
    exporter's own timeout; here it runs on a daemon thread (started with the providers) that is waited for
    only so long.
    """
    with _built_lock:
        pending, _built[:] = list(_built), []
    finished = True
    for tracer_provider, meter_provider, logger_provider, timeout_s in pending:
        finished = _within(timeout_s, tracer_provider, meter_provider, logger_provider) and finished
    return finished


def _within(timeout_s: float, tracer_provider: Any, meter_provider: Any, logger_provider: Any = None) -> bool:
    def shut_down() -> None:
        try:
            if tracer_provider is not None:
                tracer_provider.shutdown()
            if logger_provider is not None:
                logger_provider.shutdown()
            # An app that shut the meter provider down itself would get the SDK's "only once" warning.
            if meter_provider is not None and not getattr(meter_provider, "_shutdown", False):
                meter_provider.shutdown(timeout_millis=timeout_s * 1000)
        except Exception:  # the SDK's own failure; the application is exiting either way
            _logger.warning("shutting down the telemetry providers failed", exc_info=True)

    if not _standby.run(shut_down, timeout_s):
        _logger.warning(
            "telemetry not exported within %ss of exit (is the collector reachable?); "
            "dropping the rest. %s sets this bound", timeout_s, OTEL_TOKENS_SHUTDOWN_TIMEOUT,
        )
        return False
    return True


def _check_arguments(otlp_endpoint: Any, prometheus_port: Any, service_name: Any, shutdown_timeout: Any) -> None:
    for name, value in (("otlp_endpoint", otlp_endpoint), ("service_name", service_name)):
        if value is not None and not isinstance(value, str):
            raise ConfigTypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    if prometheus_port is not None:
        if isinstance(prometheus_port, bool) or not isinstance(prometheus_port, int):
            raise ConfigTypeError(f"prometheus_port must be an integer, got {type(prometheus_port).__name__} "
                                  f"{prometheus_port!r}")
        if not 0 < prometheus_port < 65536:
            raise ConfigError(f"prometheus_port must be in 1-65535, got {prometheus_port!r}")
    if shutdown_timeout is not None:
        if isinstance(shutdown_timeout, bool) or not isinstance(shutdown_timeout, int | float):
            raise ConfigTypeError(f"shutdown_timeout must be a number of seconds, got "
                                  f"{type(shutdown_timeout).__name__} {shutdown_timeout!r}")
        if not 0 < shutdown_timeout < float("inf"):
            raise ConfigError(f"shutdown_timeout must be a positive number of seconds, got {shutdown_timeout!r}")


def _optional(what: str, build: Callable[..., Any], *args: Any) -> Any:
    """An exporter the environment asked for, or None (logged) when it cannot be built."""
    try:
        return build(*args)
    except Exception as error:  # a missing package, a port in use: telemetry is lost, the app runs on
        _logger.warning("could not set up %s (%s); it is left out", what, error)
        return None


def _span_exporters(env: Mapping[str, str], otlp_endpoint: str | None) -> list[Any]:
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return [OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")]
    return _signal_exporters(env, "traces", "span", _otlp_span_exporter, _console_span_exporter)


def _log_exporters(env: Mapping[str, str]) -> list[Any]:
    return _signal_exporters(env, "logs", "log record", _otlp_log_exporter, _console_log_exporter)


def _signal_exporters(
    env: Mapping[str, str], signal: str, what: str, otlp: Callable[[Mapping[str, str]], Any], console: Callable[[], Any]
) -> list[Any]:
    """The exporters ``OTEL_{signal}_EXPORTER`` (or an OTLP endpoint) asks for; one that cannot be built
    is logged and left out."""
    exporters = []
    for kind in _exporters(env, signal):
        if kind == "otlp":
            exporters.append(_optional(f"the OTLP {what} exporter", otlp, env))
        elif kind == "console":
            exporters.append(console())
        else:
            _logger.warning("OTEL_%s_EXPORTER=%r is not supported here; %ss are not exported to it",
                            signal.upper(), kind, what)
    return [exporter for exporter in exporters if exporter is not None]


def _otlp_span_exporter(env: Mapping[str, str]) -> Any:
    if _otlp_http(env, "traces"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def _otlp_log_exporter(env: Mapping[str, str]) -> Any:
    if _otlp_http(env, "logs"):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        return OTLPLogExporter()
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

    return GrpcExporter()


def _console_span_exporter() -> Any:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def _console_log_exporter() -> Any:
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

    return ConsoleLogRecordExporter()


def _metric_readers(env: Mapping[str, str], otlp_endpoint: str | None, with_prometheus: bool = True) -> list[Any]:
    """Readers the environment asks for; only the OTLP one when ``otlp_endpoint`` is given."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    readers: list[Any] = []
    interval = env_number(env, "OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_METRIC_EXPORT_INTERVAL_MS, float,
                          "a positive number of milliseconds")
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/metrics")
        return [PeriodicExportingMetricReader(exporter, export_interval_millis=interval)]
    for kind in _exporters(env, "metrics"):
        if kind == "otlp":
            exporter = _optional("the OTLP metric exporter", _otlp_metric_exporter, env)
            if exporter is not None:
                readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval))
        elif kind == "prometheus":
            if with_prometheus:
                host = env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "").strip() or DEFAULT_PROMETHEUS_HOST
                port = env_number(env, "OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT, int,
                                  "a port number (1-65535)", high=65535)
                reader = _optional(f"the Prometheus exporter on {host}:{port}", _prometheus_reader, host, port)
                if reader is not None:
                    readers.append(reader)
        elif kind == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval))
        else:
            _logger.warning("OTEL_METRICS_EXPORTER=%r is not supported here; metrics are not "
                            "exported to it", kind)
    return readers


def _otlp_metric_exporter(env: Mapping[str, str]) -> Any:
    if _otlp_http(env, "metrics"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

    return Grpc()


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
