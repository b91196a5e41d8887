"""GenAISpanProcessor: inference spans of other instrumentations, in the shapes each source emits
(docs/span-processor.md), are counted once with exact tokens and the price book's cost, attributed to the
agent of their nearest ``invoke_agent`` ancestor, and reach totals, metrics, budgets and the usage log."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import reference_cost
from tests.providers.openai_mock import OpenAIMock

# instrumentation scope names as the sources use them
CONTRIB_OPENAI = "opentelemetry.instrumentation.openai_v2"
OPENINFERENCE_OPENAI = "openinference.instrumentation.openai"
OPENINFERENCE_SMOLAGENTS = "openinference.instrumentation.smolagents"
PYDANTIC_AI = "pydantic-ai"
GOOGLE_ADK = "gcp.vertex.agent"
STRANDS = "strands.telemetry.tracer"
SEMANTIC_KERNEL = "semantic_kernel.utils.telemetry.model_diagnostics.decorators"
UTIL_GENAI = "opentelemetry.util.genai"

# The recorded OpenAI chat completion (tests/providers/recordings/openai/chat_completion.json).
RESPONSE_ID = "chatcmpl-AXq9bKxT4YhQ1vN2c3d4e5f6g7h8"
STREAM_RESPONSE_ID = "chatcmpl-StReAm0a1b2c3d4e5f6g7h8i9j0k"


@pytest.fixture
def processed(instrumented, telemetry):
    """instrument() on this test's providers plus a GenAISpanProcessor on its tracer provider."""
    telemetry.tracer_provider.add_span_processor(otel_tokens.GenAISpanProcessor())
    return instrumented


def _tracer(telemetry, scope):
    return telemetry.tracer_provider.get_tracer(scope)


def _span(telemetry, scope, name, attributes, *, end_attributes=None, kind=trace.SpanKind.CLIENT, error=None):
    """One span of another source: attributes at start, usage at end, as they set them."""
    with _tracer(telemetry, scope).start_as_current_span(name, kind=kind, attributes=attributes) as span:
        if end_attributes:
            span.set_attributes(end_attributes)
        if error:
            span.set_attribute(A.ERROR_TYPE, error)
            span.set_status(Status(StatusCode.ERROR, "boom"))


def _by(dimension, key):
    return otel_tokens.get_statistics()[f"by_{dimension}"][key]


def _cost(model, provider_id, input, output, cache_read=0, cache_write=0):
    return reference_cost(model, Usage(input, output, cache_read, cache_write), provider_id)


# -- each source's shape -------------------------------------------------------------------------------
def test_contrib_openai_v2_chat_span(processed, telemetry):
    _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
        A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.SERVER_ADDRESS: "api.openai.com", A.SERVER_PORT: 443,
    }, end_attributes={
        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06", A.GEN_AI_RESPONSE_ID: "chatcmpl-1",
        A.GEN_AI_USAGE_INPUT_TOKENS: 1250, A.GEN_AI_USAGE_OUTPUT_TOKENS: 42,
        A.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    })
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 1
    entry = _by("model", "gpt-4o-2024-08-06")
    assert (entry["input_tokens"], entry["output_tokens"]) == (1250, 42)
    assert entry["cost_usd"] == pytest.approx(_cost("gpt-4o-2024-08-06", "openai", 1250, 42), abs=1e-12)
    assert _by("provider", "openai")["calls"] == 1
    # No second span: the source's span is the call's span.
    assert [s.name for s in telemetry.spans()] == ["chat gpt-4o"]


def test_util_genai_span_with_cache_and_reasoning(processed, telemetry):
    _span(telemetry, UTIL_GENAI, "chat claude-sonnet-4-5", {
        A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "anthropic",
        A.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
    }, end_attributes={
        A.GEN_AI_USAGE_INPUT_TOKENS: 3000, A.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
        A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 2000, A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 600,
        A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 200,
    })
    entry = _by("provider", "anthropic")
    assert (entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"], entry["cache_write_tokens"],
            entry["reasoning_tokens"]) == (3000, 500, 2000, 600, 200)
    assert entry["cost_usd"] == pytest.approx(
        _cost("claude-sonnet-4-5", "anthropic", 3000, 500, 2000, 600), abs=1e-12)


def test_older_cache_write_spelling_counts(processed, telemetry):
    _span(telemetry, "opentelemetry.instrumentation.anthropic", "chat claude-sonnet-4-5", {
        A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "anthropic", A.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
        A.GEN_AI_USAGE_INPUT_TOKENS: 1000, A.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
        "gen_ai.usage.cache_creation.input_tokens": 400,
    })
    assert _by("provider", "anthropic")["cache_write_tokens"] == 400


def test_openinference_llm_span(processed, telemetry):
    _span(telemetry, OPENINFERENCE_OPENAI, "ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.system": "openai", "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.token_count.prompt": 2100, "llm.token_count.completion": 8, "llm.token_count.total": 2108,
        "llm.token_count.prompt_details.cache_read": 1920,
        "llm.token_count.completion_details.reasoning": 0,
    }, kind=trace.SpanKind.INTERNAL)
    entry = _by("model", "gpt-4o-mini-2024-07-18")
    assert (entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"]) == (2100, 8, 1920)
    assert entry["cost_usd"] == pytest.approx(_cost("gpt-4o-mini-2024-07-18", "openai", 2100, 8, 1920), abs=1e-12)
    assert _by("provider", "openai")["calls"] == 1


def test_smolagents_agent_spans_repeat_usage_and_are_not_counted(processed, telemetry):
    tracer = _tracer(telemetry, OPENINFERENCE_SMOLAGENTS)
    with tracer.start_as_current_span("CodeAgent.run", attributes={
            "openinference.span.kind": "AGENT", "agent.name": "coder", "llm.token_count.prompt": 300,
            "llm.token_count.completion": 30}):
        with tracer.start_as_current_span("Step 1", attributes={
                "openinference.span.kind": "CHAIN", "llm.token_count.prompt": 300, "llm.token_count.completion": 30}):
            _span(telemetry, OPENINFERENCE_SMOLAGENTS, "OpenAIServerModel.generate", {
                "openinference.span.kind": "LLM", "llm.provider": "openai", "llm.model_name": "gpt-4o",
                "llm.token_count.prompt": 300, "llm.token_count.completion": 30,
            })
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 1 and stats["input_tokens"] == 300
    assert _by("agent", "coder")["calls"] == 1


def test_pydantic_ai_chat_and_aggregate_agent_span(processed, telemetry):
    tracer = _tracer(telemetry, PYDANTIC_AI)
    with tracer.start_as_current_span("invoke_agent support", attributes={
            A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "support"}) as agent_span:
        for _ in range(2):
            _span(telemetry, PYDANTIC_AI, "chat gpt-4o", {
                A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai", "gen_ai.system": "openai",
                A.GEN_AI_REQUEST_MODEL: "gpt-4o", A.GEN_AI_AGENT_NAME: "support",
            }, end_attributes={
                A.GEN_AI_USAGE_INPUT_TOKENS: 500, A.GEN_AI_USAGE_OUTPUT_TOKENS: 50,
                A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 256, "gen_ai.usage.details.cached_tokens": 256,
            })
        agent_span.set_attributes({"gen_ai.aggregated_usage.input_tokens": 1000,
                                   "gen_ai.aggregated_usage.output_tokens": 100,
                                   A.GEN_AI_USAGE_INPUT_TOKENS: 1000, A.GEN_AI_USAGE_OUTPUT_TOKENS: 100})
    entry = _by("agent", "support")
    assert (entry["calls"], entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"]) == (
        2, 1000, 100, 512)
    assert entry["cost_usd"] == pytest.approx(2 * _cost("gpt-4o", "openai", 500, 50, 256), abs=1e-12)


def test_google_adk_span_with_a_pseudo_provider(processed, telemetry):
    tracer = _tracer(telemetry, GOOGLE_ADK)
    with tracer.start_as_current_span("invoke_agent weather", attributes={
            A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "weather", "gen_ai.system": "gcp.vertex.agent"}):
        _span(telemetry, GOOGLE_ADK, "call_llm", {
            A.GEN_AI_OPERATION_NAME: "generate_content", "gen_ai.system": "gcp.vertex.agent",
            A.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
        }, end_attributes={
            A.GEN_AI_USAGE_INPUT_TOKENS: 1200, A.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
            "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.reasoning.output_tokens": 100,
        }, kind=trace.SpanKind.INTERNAL)
    entry = _by("agent", "weather")
    assert (entry["calls"], entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"],
            entry["reasoning_tokens"]) == (1, 1200, 300, 1000, 100)
    # ADK's own name for itself is not a provider: the model says Google.
    assert list(otel_tokens.get_statistics()["by_provider"]) == ["gcp.gemini"]
    assert entry["cost_usd"] == pytest.approx(_cost("gemini-2.5-flash", "google", 1200, 300, 1000), abs=1e-12)


def test_strands_spans_exclusive_cache_counts_and_repeated_agent_usage(processed, telemetry):
    tracer = _tracer(telemetry, STRANDS)
    common = {"gen_ai.system": "strands-agents"}
    model = "claude-sonnet-4-5"
    with tracer.start_as_current_span("invoke_agent planner", attributes={
            **common, A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "planner",
            A.GEN_AI_REQUEST_MODEL: model}) as agent_span:
        with tracer.start_as_current_span("execute_event_loop_cycle"):
            # Bedrock-style counts: inputTokens excludes the cache; the total includes it.
            _span(telemetry, STRANDS, "chat", {**common, A.GEN_AI_OPERATION_NAME: "chat",
                                               A.GEN_AI_REQUEST_MODEL: model}, end_attributes={
                "gen_ai.usage.prompt_tokens": 100, A.GEN_AI_USAGE_INPUT_TOKENS: 100,
                "gen_ai.usage.completion_tokens": 20, A.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                "gen_ai.usage.total_tokens": 1120, "gen_ai.usage.cache_read_input_tokens": 800,
                "gen_ai.usage.cache_write_input_tokens": 200,
            }, kind=trace.SpanKind.INTERNAL)
        agent_span.set_attributes({A.GEN_AI_USAGE_INPUT_TOKENS: 100, A.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                                   "gen_ai.usage.total_tokens": 1120, "gen_ai.usage.cache_read_input_tokens": 800})
    entry = _by("agent", "planner")
    assert (entry["calls"], entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"],
            entry["cache_write_tokens"]) == (1, 1100, 20, 800, 200)
    assert list(otel_tokens.get_statistics()["by_provider"]) == ["anthropic"]
    assert entry["cost_usd"] == pytest.approx(_cost(model, "anthropic", 1100, 20, 800, 200), abs=1e-12)


def test_semantic_kernel_operation_names(processed, telemetry):
    _span(telemetry, SEMANTIC_KERNEL, "chat.completions gpt-4o-mini", {
        A.GEN_AI_OPERATION_NAME: "chat.completions", "gen_ai.system": "openai",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    }, end_attributes={A.GEN_AI_USAGE_INPUT_TOKENS: 90, A.GEN_AI_USAGE_OUTPUT_TOKENS: 12,
                       "gen_ai.response.finish_reason": "stop"})
    entry = _by("operation", "chat")
    assert (entry["calls"], entry["input_tokens"], entry["output_tokens"]) == (1, 90, 12)
    assert entry["cost_usd"] == pytest.approx(_cost("gpt-4o-mini", "openai", 90, 12), abs=1e-12)


def test_cost_on_the_span_is_used_as_given(processed, telemetry):
    _span(telemetry, "openrouter.gateway", "chat some/model", {
        A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openrouter", A.GEN_AI_REQUEST_MODEL: "some/model",
        A.GEN_AI_USAGE_INPUT_TOKENS: 10, A.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        A.GEN_AI_USAGE_COST_AMOUNT: 0.0123, A.GEN_AI_USAGE_COST_CURRENCY: "USD",
        A.GEN_AI_USAGE_COST_SOURCE: "provider",
    })
    assert otel_tokens.get_statistics()["total_cost_usd"] == pytest.approx(0.0123)


def test_failed_call_is_counted_as_an_error(processed, telemetry):
    _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
        A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o"},
        error="RateLimitError")
    entry = _by("model", "gpt-4o")
    assert entry["calls"] == 1 and entry["errors"] == 1
    assert telemetry.sum_of(A.METRIC_OPERATION_DURATION, error__type="RateLimitError") >= 0
    assert [attrs[A.ERROR_TYPE] for attrs, _ in telemetry.points(A.METRIC_OPERATION_DURATION)] == ["RateLimitError"]


def test_non_inference_spans_are_ignored(processed, telemetry):
    for attributes in ({A.GEN_AI_OPERATION_NAME: "execute_tool", A.GEN_AI_USAGE_INPUT_TOKENS: 5},
                       {A.GEN_AI_OPERATION_NAME: "invoke_workflow", A.GEN_AI_USAGE_INPUT_TOKENS: 5},
                       {"http.request.method": "POST"}, {}):
        _span(telemetry, "someone", "work", attributes)
    assert otel_tokens.get_statistics()["total_calls"] == 0


# -- where a call came from ----------------------------------------------------------------------------
def test_the_source_marks_metrics_and_the_usage_log(telemetry, monkeypatch, tmp_path):
    path = tmp_path / "usage.jsonl"
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           usage_log=str(path), span_processor=True)
    try:
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
            A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_USAGE_INPUT_TOKENS: 7, A.GEN_AI_USAGE_OUTPUT_TOKENS: 3})
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [line["source"] for line in lines] == [CONTRIB_OPENAI, None]
        sources = {attrs.get(A.OTEL_TOKENS_SOURCE) for attrs, _ in telemetry.points(A.METRIC_OPERATION_DURATION)}
        assert sources == {CONTRIB_OPENAI, None}
        assert otel_tokens.get_statistics()["total_calls"] == 2
    finally:
        otel_tokens.uninstrument()


def test_span_processor_setting_adds_one_processor_per_provider(telemetry, monkeypatch):
    monkeypatch.setenv("OTEL_TOKENS_SPAN_PROCESSOR", "true")
    for _ in range(2):  # re-instrumenting does not add a second processor
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
                A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
                A.GEN_AI_USAGE_INPUT_TOKENS: 7, A.GEN_AI_USAGE_OUTPUT_TOKENS: 3})
            assert otel_tokens.get_statistics()["total_calls"] == 1
        finally:
            otel_tokens.uninstrument()


# -- attribution --------------------------------------------------------------------------------------
def test_agent_of_the_nearest_invoke_agent_ancestor_across_threads(processed, telemetry):
    tracer = _tracer(telemetry, "agents.framework")
    chat = {A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_USAGE_INPUT_TOKENS: 10, A.GEN_AI_USAGE_OUTPUT_TOKENS: 1}
    with tracer.start_as_current_span("invoke_agent outer", attributes={
            A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "outer"}) as outer:
        inner = tracer.start_span("invoke_agent inner", attributes={
            A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "inner"})
        inner_context = trace.set_span_in_context(inner)
        outer_context = trace.set_span_in_context(outer)

        def worker(context, count):
            # A thread with no copied context: the span's parent is given explicitly, as frameworks do.
            for _ in range(count):
                with tracer.start_as_current_span("step", context=context):
                    _span(telemetry, "llm.client", "chat gpt-4o", chat)

        threads = [threading.Thread(target=worker, args=(inner_context, 3)),
                   threading.Thread(target=worker, args=(outer_context, 2))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        inner.end()
    stats = otel_tokens.get_statistics()
    assert stats["by_agent"]["inner"]["calls"] == 3
    assert stats["by_agent"]["outer"]["calls"] == 2
    assert stats["total_calls"] == 5


def test_otel_tokens_labels_apply_to_foreign_spans(processed, telemetry):
    with otel_tokens.workflow("triage"), otel_tokens.user("u-1"), otel_tokens.agent("router"):
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
            A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_USAGE_INPUT_TOKENS: 7, A.GEN_AI_USAGE_OUTPUT_TOKENS: 3})
    stats = otel_tokens.get_statistics()
    assert stats["by_agent"]["router"]["calls"] == 1
    assert stats["by_workflow"]["triage"]["calls"] == 1
    assert stats["by_user"]["u-1"]["calls"] == 1


def test_state_is_dropped_when_spans_end(processed, telemetry):
    (processor,) = [p for p in telemetry.tracer_provider._active_span_processor._span_processors
                    if isinstance(p, otel_tokens.GenAISpanProcessor)]
    tracer = _tracer(telemetry, "agents.framework")
    for _ in range(50):
        with tracer.start_as_current_span("invoke_agent a", attributes={
                A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "a"}):
            with tracer.start_as_current_span("step"):
                _span(telemetry, "llm.client", "chat gpt-4o", {
                    A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai",
                    A.GEN_AI_REQUEST_MODEL: "gpt-4o", A.GEN_AI_USAGE_INPUT_TOKENS: 1, A.GEN_AI_USAGE_OUTPUT_TOKENS: 1})
    assert processor._open == {} and processor._pending == {} and processor._ours_open == {}
    assert processor.force_flush(100) is True
    processor.shutdown()


def test_hooks_never_raise(processed, telemetry, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")
    (processor,) = [p for p in telemetry.tracer_provider._active_span_processor._span_processors
                    if isinstance(p, otel_tokens.GenAISpanProcessor)]

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(processor, "_read", broken)
    monkeypatch.setattr(processor, "_started", broken)
    with caplog.at_level(logging.ERROR, logger="otel_tokens"):
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
            A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o"})
    assert "internal error" in caplog.text
    assert [s.name for s in telemetry.spans()] == ["chat gpt-4o"]


# -- each call counted once ------------------------------------------------------------------------------
def _contrib_span_for(telemetry, response_id, input_tokens, output_tokens, model="gpt-4o"):
    return {
        A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: model,
        A.GEN_AI_RESPONSE_ID: response_id, A.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
    }


def test_twin_span_ending_after_ours_is_skipped(processed, telemetry):
    tracer = _tracer(telemetry, "app")
    with tracer.start_as_current_span("request"):
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", _contrib_span_for(telemetry, RESPONSE_ID, 1250, 42))
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 1 and stats["input_tokens"] == 1250


def test_twin_span_ending_before_ours_is_skipped(processed, telemetry):
    tracer = _tracer(telemetry, "app")
    with tracer.start_as_current_span("request"):
        stream = OpenAIMock().client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
        # The other instrumentation's stream wrapper ends its span first; ours is still open.
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o-mini",
              _contrib_span_for(telemetry, STREAM_RESPONSE_ID, 2100, 8, "gpt-4o-mini"))
        assert otel_tokens.get_statistics()["total_calls"] == 0  # waiting for ours
        for _chunk in stream:
            pass
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 1 and stats["input_tokens"] == 2100


def test_a_different_call_waiting_for_ours_is_recorded_when_ours_ends(processed, telemetry):
    tracer = _tracer(telemetry, "app")
    with tracer.start_as_current_span("request"):
        stream = OpenAIMock().client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", _contrib_span_for(telemetry, "chatcmpl-other", 10, 2))
        for _chunk in stream:
            pass
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 2 and stats["input_tokens"] == 2110


def test_twin_without_response_id_matches_on_counts(processed, telemetry):
    tracer = _tracer(telemetry, "app")
    with tracer.start_as_current_span("request"):
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        _span(telemetry, OPENINFERENCE_OPENAI, "ChatCompletion", {
            "openinference.span.kind": "LLM", "llm.system": "openai", "llm.model_name": "gpt-4o-2024-08-06",
            "llm.token_count.prompt": 1250, "llm.token_count.completion": 42})
    assert otel_tokens.get_statistics()["total_calls"] == 1


def test_framework_model_span_around_our_call_is_skipped(processed, telemetry):
    # pydantic-ai's chat span (current) around the openai SDK call otel-tokens instruments.
    with _tracer(telemetry, PYDANTIC_AI).start_as_current_span("chat gpt-4o", attributes={
            A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o"}) as span:
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        span.set_attributes({A.GEN_AI_USAGE_INPUT_TOKENS: 1000, A.GEN_AI_USAGE_OUTPUT_TOKENS: 40})
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 1 and stats["input_tokens"] == 1250


def test_our_own_spans_are_never_read(processed, telemetry):
    with otel_tokens.agent("mine"):
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=5, output_tokens=1)
    assert otel_tokens.get_statistics()["total_calls"] == 2


# -- budgets ------------------------------------------------------------------------------------------
def test_warn_budget_announces_from_foreign_spans(processed, telemetry, caplog):
    warnings = []
    otel_tokens.set_budget("support", limit_usd=0.001, warn_at=0.5, on_warning=lambda status: warnings.append(status))
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        _span(telemetry, PYDANTIC_AI, "chat gpt-4o", {
            A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_AGENT_NAME: "support", A.GEN_AI_USAGE_INPUT_TOKENS: 300, A.GEN_AI_USAGE_OUTPUT_TOKENS: 10})
    assert len(warnings) == 1
    assert "support" in caplog.text
    assert otel_tokens.get_statistics()["budgets"]["support"]["spent_usd"] == pytest.approx(
        _cost("gpt-4o", "openai", 300, 10), abs=1e-12)


def test_blocking_budget_pushed_over_by_foreign_spans_blocks_our_next_call(processed, telemetry):
    otel_tokens.set_budget("support", limit_usd=0.001, action="block")
    # A foreign span's call already happened: counted, never stopped, even past the limit.
    _span(telemetry, PYDANTIC_AI, "chat gpt-4o", {
        A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.GEN_AI_AGENT_NAME: "support", A.GEN_AI_USAGE_INPUT_TOKENS: 1000, A.GEN_AI_USAGE_OUTPUT_TOKENS: 100})
    assert otel_tokens.get_statistics()["budgets"]["support"]["spent_usd"] > 0.001
    mock = OpenAIMock()
    with otel_tokens.agent("support"), pytest.raises(otel_tokens.BudgetExceededError):
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert mock.requests == []  # never sent



# -- the launcher ---------------------------------------------------------------------------------------
LAUNCHED_APP = """
import json, otel_tokens
from opentelemetry import trace
from tests.providers.openai_mock import OpenAIMock
with trace.get_tracer("opentelemetry.util.genai.handler").start_as_current_span("chat gpt-4o", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3}):
    pass
OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
stats = otel_tokens.get_statistics()
print(json.dumps({"calls": stats["total_calls"], "input_tokens": stats["input_tokens"]}))
"""


def test_the_launcher_adds_the_processor_from_the_environment(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "app.py"
    script.write_text(LAUNCHED_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"PYTHONPATH": str(root), "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none", "OTEL_TOKENS_SPAN_PROCESSOR": "true",
                "OTEL_TOKENS_RAISE_INTERNAL_ERRORS": "1"})
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    done = subprocess.run([str(launcher), sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    # The other source's call and otel-tokens' own, each once.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"calls": 2, "input_tokens": 1257}


def test_span_processor_argument_after_set_budget_is_honoured(telemetry, monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)
    otel_tokens.set_budget("a", limit_usd=1.0)  # builds the runtime before instrument()
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           span_processor=True)
    try:
        _span(telemetry, CONTRIB_OPENAI, "chat gpt-4o", {
            A.GEN_AI_OPERATION_NAME: "chat", "gen_ai.system": "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_USAGE_INPUT_TOKENS: 7, A.GEN_AI_USAGE_OUTPUT_TOKENS: 3})
        assert otel_tokens.get_statistics()["total_calls"] == 1
    finally:
        otel_tokens.uninstrument()
