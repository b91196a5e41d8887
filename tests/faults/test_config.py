"""Configuration: bad environment values, strict code arguments, the bound on exit, the launcher.

The environment never stops the application (a WARNING naming the variable, then the documented
default); code arguments are strict (``otel_tokens.ConfigError`` naming the setting); shutting down the
providers ``import otel_tokens.auto`` built adds at most ``OTEL_TOKENS_SHUTDOWN_TIMEOUT`` to exit.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import genai_prices
import openai
import pytest
import wrapt

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.settings import ContentCapture, Settings
from otel_tokens._internal.budgets.manager import BudgetSpecError
from otel_tokens._internal.pricing.book import PriceFileError
from otel_tokens._internal.setup import telemetry as setup
from otel_tokens._internal.setup.runtime import current_runtime
from tests.providers.openai_mock import OpenAIMock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- the environment: a WARNING naming the variable, and the documented default -------------------
SETTINGS_ENV = [
    # (variable, bad value, field, default)
    ("OTEL_TOKENS_STREAM_USAGE", "maybe", "stream_usage", True),
    ("OTEL_TOKENS_ESTIMATE", "2", "estimate", True),
    ("OTEL_TOKENS_ANTHROPIC_SDK_SPANS", "yes please", "anthropic_sdk_spans", False),
    ("OTEL_TOKENS_MAX_KEYS", "abc", "max_keys", 1000),
    ("OTEL_TOKENS_MAX_KEYS", "-3", "max_keys", 1000),
    ("OTEL_TOKENS_MAX_KEYS", "1e3", "max_keys", 1000),
    ("OTEL_TOKENS_MAX_KEYS", "9" * 5000, "max_keys", 1000),  # int() refuses digits this long
    ("OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS", "0", "default_max_output_tokens", 1024),
    ("OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS", "12.5", "default_max_output_tokens", 1024),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "loud", "capture_content", ContentCapture.NO_CONTENT),
]


@pytest.mark.parametrize("variable, raw, field, default", SETTINGS_ENV)
def test_bad_settings_variable_is_logged_and_defaulted(caplog, variable, raw, field, default):
    settings = Settings.from_env({variable: raw})
    assert getattr(settings, field) == default
    (warning,) = warnings_of(caplog)
    assert variable in warning


@pytest.mark.parametrize("variable", ["OTEL_TOKENS_PRICES", "OTEL_TOKENS_BUDGETS", "OTEL_TOKENS_LOG",
                                      "OTEL_TOKENS_REPORT", "OTEL_TOKENS_BUDGETS_FILE"])
def test_blank_file_and_spec_variables_mean_unset(caplog, variable):
    assert Settings.from_env({variable: "   "}) == Settings()
    assert warnings_of(caplog) == []


SETUP_ENV = [
    # (variable, bad value, what the set-up then uses)
    ("OTEL_METRIC_EXPORT_INTERVAL", "abc", 60_000.0),
    ("OTEL_METRIC_EXPORT_INTERVAL", "-5", 60_000.0),
    ("OTEL_METRIC_EXPORT_INTERVAL", "nan", 60_000.0),
    ("OTEL_METRIC_EXPORT_INTERVAL", "inf", 60_000.0),
    ("OTEL_TOKENS_SHUTDOWN_TIMEOUT", "abc", 3.0),
    ("OTEL_TOKENS_SHUTDOWN_TIMEOUT", "0", 3.0),
]


@pytest.mark.parametrize("variable, raw, default", SETUP_ENV)
def test_bad_setup_number_is_logged_and_defaulted(caplog, variable, raw, default):
    from otel_tokens._internal.base.settings import env_number

    assert env_number({variable: raw}, variable, default, float, "a positive number") == default
    (warning,) = warnings_of(caplog)
    assert variable in warning and repr(raw) in warning


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-1", "80.5"])
def test_bad_prometheus_port_falls_back_to_9464(caplog, monkeypatch, raw):
    started = []
    monkeypatch.setattr(setup, "_prometheus_reader", lambda host, port: started.append((host, port)) or "reader")
    readers = setup._metric_readers({"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": raw}, None)
    assert readers == ["reader"] and started == [("localhost", 9464)]
    (warning,) = warnings_of(caplog)
    assert "OTEL_EXPORTER_PROMETHEUS_PORT" in warning


@pytest.mark.parametrize("raw, interval", [("abc", 60_000.0), ("1500", 1500.0), ("0.5", 0.5)])
def test_metric_export_interval_from_the_environment(raw, interval):
    (reader,) = setup._metric_readers({"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": raw}, None)
    reader.shutdown()
    assert reader._export_interval_millis == interval


@pytest.mark.parametrize("env, expected", [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": " GRPC "}, False),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, True),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, True),
    ({}, True),
])
def test_otlp_protocol_signal_variable_wins(caplog, env, expected):
    assert setup._otlp_http(env, "traces") is expected
    assert warnings_of(caplog) == []


def test_unknown_otlp_protocol_is_logged_and_defaulted(caplog):
    assert setup._otlp_http({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, "traces") is True
    (warning,) = warnings_of(caplog)
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in warning


@pytest.mark.parametrize("value, expected", [
    ("console", ["console"]), ("otlp, console", ["otlp", "console"]), ("none", []), ("console,none", []),
    ("", []), ("CONSOLE,console", ["console"]),
])
def test_exporter_lists(value, expected):
    assert setup._exporters({"OTEL_TRACES_EXPORTER": value}, "traces") == expected


def test_unsupported_exporter_is_logged_and_left_out(caplog):
    assert setup._span_exporters({"OTEL_TRACES_EXPORTER": "zipkin"}, None) == []
    (warning,) = warnings_of(caplog)
    assert "OTEL_TRACES_EXPORTER='zipkin'" in warning


def test_exporter_that_cannot_be_built_is_logged_and_left_out(caplog, monkeypatch):
    def port_in_use(host: str, port: int) -> Any:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(setup, "_prometheus_reader", port_in_use)
    assert setup._metric_readers({"OTEL_METRICS_EXPORTER": "prometheus"}, None) == []
    (warning,) = warnings_of(caplog)
    assert "Prometheus exporter on localhost:9464" in warning and "Address already in use" in warning


def test_span_processor_the_sdk_rejects_is_left_out(caplog, monkeypatch):
    from opentelemetry.sdk.resources import Resource

    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1")
    provider = setup._tracer_provider({"OTEL_TRACES_EXPORTER": "console"}, Resource.create({}), None)
    assert provider._active_span_processor._span_processors == ()
    assert [w for w in warnings_of(caplog) if "max_export_batch_size" in w] != []


# -- code arguments are strict -----------------------------------------------------------------------
BAD_ARGUMENTS = [
    # (setting, value, also a TypeError)
    ("stream_usage", "false", True),
    ("stream_usage", 0, True),
    ("estimate", None.__class__, True),
    ("anthropic_sdk_spans", "true", True),
    ("capture_content", "loud", False),
    ("capture_content", 1, True),
    ("budgets", 123, True),
    ("budgets", {"researcher": 1.0}, True),
    ("budgets", " ", False),
    ("budgets_file", 42, True),
    ("prices_file", b"prices.toml", True),
    ("usage_log", ["log.jsonl"], True),
    ("report", 1, True),
    ("max_keys", "1000", True),
    ("max_keys", 0, False),
    ("max_keys", True, True),
    ("max_keys", 10.5, True),
    ("default_max_output_tokens", -1, False),
    ("default_max_output_tokens", "4096", True),
    ("latest_semconv", "gen_ai_latest_experimental", True),
    ("stream_usgae", False, True),  # a misspelt setting
]


@pytest.mark.parametrize("name, value, type_error", BAD_ARGUMENTS)
def test_bad_setting_argument_is_a_config_error_naming_it(telemetry, name, value, type_error):
    otel_tokens.uninstrument()  # from a clean start, whatever an earlier test module left behind
    original = openai.resources.chat.completions.Completions.__dict__["create"]
    with pytest.raises(otel_tokens.ConfigError, match=name) as raised:
        otel_tokens.instrument(telemetry.tracer_provider, telemetry.meter_provider, **{name: value})
    assert isinstance(raised.value, TypeError) is type_error
    assert isinstance(raised.value, ValueError)
    # Nothing was set up: no runtime, the SDK untouched.
    assert current_runtime() is None
    assert openai.resources.chat.completions.Completions.__dict__["create"] is original


def test_bad_argument_is_an_error_even_when_already_instrumented(instrumented, telemetry):
    with pytest.raises(TypeError, match="stream_usage"):
        otel_tokens.instrument(telemetry.tracer_provider, telemetry.meter_provider, stream_usage="false")
    assert current_runtime() is instrumented
    assert isinstance(openai.resources.chat.completions.Completions.__dict__["create"], wrapt.FunctionWrapper)


@pytest.mark.parametrize("name", ["tracer_provider", "meter_provider", "logger_provider"])
def test_providers_of_the_wrong_type_are_config_errors(name):
    with pytest.raises(otel_tokens.ConfigError, match=name) as raised:
        otel_tokens.instrument(**{name: "http://collector:4318"})
    assert isinstance(raised.value, TypeError)
    assert current_runtime() is None


def test_good_arguments_are_taken(telemetry, clean_env, tmp_path):
    otel_tokens.instrument(
        telemetry.tracer_provider, telemetry.meter_provider, stream_usage=False, estimate=False,
        capture_content="span_only", max_keys=7, usage_log=tmp_path / "usage.jsonl", budgets="researcher=0.5",
    )
    try:
        settings = current_runtime().settings
        assert (settings.stream_usage, settings.estimate, settings.max_keys) == (False, False, 7)
        assert settings.capture_content is ContentCapture.SPAN_ONLY
        assert settings.usage_log == str(tmp_path / "usage.jsonl")
        assert list(otel_tokens.get_statistics()["budgets"]) == ["researcher"]
        # stream_usage=False: no include_usage is injected into the request.
        mock = OpenAIMock()
        chunks = list(mock.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user",
                                                           "content": "x"}], stream=True))
        assert chunks
        assert "stream_options" not in mock.requests[-1][1]
    finally:
        otel_tokens.uninstrument()


def test_settings_constructed_directly_are_checked_too():
    with pytest.raises(otel_tokens.ConfigError, match="max_keys"):
        Settings(max_keys=0)
    with pytest.raises(TypeError, match="estimate"):
        Settings(estimate="no")


# -- every bad-config error is a ConfigError, with its message kept ------------------------------------
def test_budget_spec_error_is_a_config_error(telemetry, clean_env, monkeypatch):
    monkeypatch.setenv("OTEL_TOKENS_BUDGETS", "researcher=0.5,writer=lots")
    with pytest.raises(otel_tokens.ConfigError) as raised:
        otel_tokens.instrument(telemetry.tracer_provider, telemetry.meter_provider)
    assert isinstance(raised.value, BudgetSpecError)
    assert raised.value.entry == "writer=lots"
    assert str(raised.value) == "budget 'writer=lots': limit 'lots' is not a number"
    assert current_runtime() is None


def test_budgets_file_error_is_a_config_error(telemetry, clean_env, monkeypatch, tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text('[budgets.researcher]\nlimit_usd = "a lot"\n')
    monkeypatch.setenv("OTEL_TOKENS_BUDGETS_FILE", str(path))
    with pytest.raises(otel_tokens.ConfigError, match=f"{path}: budget 'researcher': limit_usd 'a lot'"):
        otel_tokens.instrument(telemetry.tracer_provider, telemetry.meter_provider)


def test_price_file_error_is_a_config_error(telemetry, clean_env, tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text('[models."my-model"]\ninput = 1.0\noutput = -2.0\n')
    with pytest.raises(otel_tokens.ConfigError) as raised:
        otel_tokens.instrument(telemetry.tracer_provider, telemetry.meter_provider, prices_file=str(path))
    assert isinstance(raised.value, PriceFileError)
    assert str(path) in str(raised.value) and "my-model" in str(raised.value) and "output" in str(raised.value)


@pytest.mark.parametrize("call, match", [
    (lambda: otel_tokens.set_budget("researcher", limit_usd=-1), "limit_usd"),
    (lambda: otel_tokens.set_budget("researcher", limit_usd="1"), "limit_usd"),
    (lambda: otel_tokens.set_budget("researcher", 1.0, action="stop"), "action"),
    (lambda: otel_tokens.set_budget("researcher", 1.0, window="soon"), "window"),
    (lambda: otel_tokens.set_budget("researcher", 1.0, on_warning="print"), "on_warning"),
    (lambda: otel_tokens.set_price("my-model", input="1", output=2.0), "input"),
    (lambda: otel_tokens.set_price("my-model", input=1.0, output=float("nan")), "output"),
    (lambda: otel_tokens.set_price("", input=1.0, output=2.0), "model"),
])
def test_set_budget_and_set_price_raise_config_errors(clean_env, call, match):
    try:
        with pytest.raises(otel_tokens.ConfigError, match=match):
            call()
    finally:
        otel_tokens.uninstrument()


@pytest.mark.parametrize("kwargs, type_error", [
    ({"prometheus_port": "9464"}, True), ({"prometheus_port": 0}, False), ({"prometheus_port": 70000}, False),
    ({"shutdown_timeout": "3"}, True), ({"shutdown_timeout": 0}, False), ({"shutdown_timeout": float("inf")}, False),
    ({"otlp_endpoint": 4318}, True), ({"service_name": b"svc"}, True),
])
def test_configure_providers_arguments_are_strict(kwargs, type_error):
    (name,) = kwargs
    with pytest.raises(otel_tokens.ConfigError, match=name) as raised:
        setup.configure_providers({}, **kwargs)
    assert isinstance(raised.value, TypeError) is type_error


# -- in a real process -----------------------------------------------------------------------------------
def run_python(code: str, env: dict[str, str] | None = None, args: list[str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(args or [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


AUTO_APP = """
import json, time
import prometheus_client
from opentelemetry.sdk.metrics import export
# Spies, so the test sees what the set-up chose without binding a port.
ports, intervals = [], []
prometheus_client.start_http_server = lambda port, addr="0.0.0.0", **kw: ports.append((addr, port))
reader_init = export.PeriodicExportingMetricReader.__init__
def spy(self, exporter, export_interval_millis=None, **kwargs):
    intervals.append(export_interval_millis)
    reader_init(self, exporter, export_interval_millis, **kwargs)
export.PeriodicExportingMetricReader.__init__ = spy
import otel_tokens.auto, otel_tokens
from tests.providers.openai_mock import OpenAIMock
OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
settings = otel_tokens._internal.setup.runtime.current_runtime().settings
print(json.dumps({"calls": otel_tokens.get_statistics()["total_calls"], "prometheus": ports,
                  "intervals": intervals, "max_keys": settings.max_keys, "stream_usage": settings.stream_usage}))
print(time.monotonic())
"""

@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections are refused at once, and nobody takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


EVERYTHING_BAD = {
    "OTEL_METRICS_EXPORTER": "prometheus,console",
    "OTEL_EXPORTER_PROMETHEUS_PORT": "abc",
    "OTEL_METRIC_EXPORT_INTERVAL": "abc",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "smoke-signals",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_TOKENS_SHUTDOWN_TIMEOUT": "soon",
    "OTEL_TOKENS_MAX_KEYS": "lots",
    "OTEL_TOKENS_STREAM_USAGE": "perhaps",
    "OTEL_TOKENS_ESTIMATE": "-",
    "OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS": "4k",
    "OTEL_TOKENS_ANTHROPIC_SDK_SPANS": "2",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "loud",
}


SDK_REJECTS = {
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "abc",  # fails the SDK's own import of opentelemetry.sdk.trace
    "OTEL_METRICS_EXEMPLAR_FILTER": "bogus",
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_METRICS_EXPORTER": "console",
}


def test_auto_import_survives_values_the_sdk_itself_rejects():
    done = run_python(AUTO_APP, env=SDK_REJECTS)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["calls"] == 1
    assert "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT must be a non-negative integer" in done.stderr
    assert "Unknown exemplar filter 'bogus'" in done.stderr
    assert "Traceback" not in done.stderr


def test_auto_import_survives_every_bad_variable_at_once(closed_port):
    # Spans go to a collector that is down, so the default exit bound (3 s) is exercised too.
    endpoint = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{closed_port}/v1/traces"}
    done = run_python(AUTO_APP, env={**EVERYTHING_BAD, **endpoint})
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[0])
    assert result == {"calls": 1, "prometheus": [["localhost", 9464]], "intervals": [60000.0],
                      "max_keys": 1000, "stream_usage": True}
    assert "Traceback" not in done.stderr
    named = {name for name in EVERYTHING_BAD if name in done.stderr}
    # Every malformed variable is named in a warning (the exporter lists are valid).
    assert named == set(EVERYTHING_BAD) - {"OTEL_METRICS_EXPORTER", "OTEL_TRACES_EXPORTER"}
    assert "not exported within 3.0s of exit" in done.stderr
    assert exited - float(done.stdout.splitlines()[1]) < 3 + 6


# Before the bound, exit took about 10 s here (15 s in the issue): the exporters' retry deadlines.
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_exit_with_the_collector_down_is_bounded(closed_port, protocol):
    timeout_s = 1
    done = run_python(AUTO_APP, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_TOKENS_SHUTDOWN_TIMEOUT": str(timeout_s),
    })
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["calls"] == 1
    exit_s = exited - float(done.stdout.splitlines()[1])
    # Generous: the bound plus interpreter teardown on a busy machine, well under the retry deadlines.
    assert exit_s < timeout_s + 7, done.stderr
    assert "not exported within 1.0s of exit" in done.stderr
    assert "Traceback" not in done.stderr


class _Collector(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_exit_with_the_collector_up_still_exports_everything():
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = run_python(AUTO_APP, env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"})
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert sorted(set(_Collector.received)) == ["/v1/metrics", "/v1/traces"]
    assert "not exported" not in done.stderr and "Traceback" not in done.stderr


def test_app_that_shuts_the_providers_down_itself_gets_no_warning_at_exit():
    done = run_python(AUTO_APP + textwrap.dedent("""
        from opentelemetry import metrics, trace
        trace.get_tracer_provider().shutdown()
        metrics.get_meter_provider().shutdown()
        """), env={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"})
    assert done.returncode == 0, done.stderr
    assert '"name": "chat gpt-4o"' in done.stdout
    assert done.stderr == ""


# -- the launcher, as a first-time user runs it -----------------------------------------------------------
LAUNCHED_APP = """
import json, openai
from otel_tokens._internal.commands.fake_server import FakeLLMServer
with FakeLLMServer() as server:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="fake", max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Count the tokens of this launcher test"}])
print(json.dumps({"input": reply.usage.prompt_tokens, "output": reply.usage.completion_tokens}))
"""


def json_objects(text: str) -> list[Any]:
    """Every JSON value printed on stdout (the console exporter prints indented objects)."""
    decoder, found, index = json.JSONDecoder(), [], 0
    while (index := text.find("{", index)) != -1:
        value, index = decoder.raw_decode(text, index)
        found.append(value)
    return found


def test_opentelemetry_instrument_with_the_console_exporter_prints_the_span(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(LAUNCHED_APP))
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    done = run_python("", env={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none",
                               "OTEL_LOGS_EXPORTER": "none"},
                      args=[str(launcher), sys.executable, str(script)])
    assert done.returncode == 0, done.stderr
    reply, *spans = json_objects(done.stdout)
    (span,) = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    attributes = span["attributes"]
    assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == reply["input"]
    assert attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == reply["output"]
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=reply["input"], output_tokens=reply["output"]), "gpt-4o-mini",
        provider_id="openai")
    assert attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(float(expected.total_price), rel=1e-9)
    assert attributes[A.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert "Traceback" not in done.stderr


def test_candidate_models_is_an_instrument_setting_checked_like_the_others(telemetry, clean_env) -> None:
    from otel_tokens._internal.base.errors import ConfigError, ConfigTypeError

    try:
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               candidate_models="gpt-4o-mini@openai,claude-haiku-4-5@anthropic")
        assert current_runtime().candidates == {"openai": ("gpt-4o-mini",), "anthropic": ("claude-haiku-4-5",)}
        otel_tokens.uninstrument()
        with pytest.raises(ConfigTypeError, match="candidate_models"):
            otel_tokens.instrument(candidate_models=["gpt-4o-mini@openai"])
        with pytest.raises(ConfigError, match=r"candidate_models / OTEL_TOKENS_CANDIDATE_MODELS: .*'gpt-4o-mini'"):
            otel_tokens.instrument(candidate_models="gpt-4o-mini")
    finally:
        otel_tokens.uninstrument()
