"""Re-instrumenting on the same providers: metrics follow the new runtime, nothing accumulates."""

from __future__ import annotations

import json

import httpx2
import openai

import otel_tokens
from otel_tokens import semconv as A
from tests.faults.test_sdk_faults import JSON, FaultServer, _dumps, openai_chat_body, openai_sync


def _budget_points(telemetry, metric: str) -> dict[str, float]:
    return {attributes[A.GEN_AI_AGENT_NAME]: point.value for attributes, point in telemetry.points(metric)}


def test_counters_and_gauges_follow_the_new_runtime(telemetry) -> None:
    server = FaultServer(_dumps(openai_chat_body({})), JSON)
    processors_before = len(telemetry.tracer_provider._active_span_processor._span_processors)
    try:
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        otel_tokens.set_budget("old", limit_usd=1.0)
        openai_sync(server)
        for _ in range(3):
            otel_tokens.uninstrument()
            otel_tokens.instrument(
                tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
            )
        otel_tokens.set_budget("new", limit_usd=2.0)
        before = telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="input")
        openai_sync(server)
        # The cumulative counter moves by the new call's 1,250 input tokens (it was stuck at 0).
        assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="input") - before == 1250
        assert _budget_points(telemetry, A.METRIC_BUDGET_LIMIT) == {"new": 2.0}
        # otel-tokens adds no span processor, however often it is instrumented.
        assert len(telemetry.tracer_provider._active_span_processor._span_processors) == processors_before
        assert otel_tokens.get_statistics()["total_calls"] == 1  # the new runtime's own totals
    finally:
        otel_tokens.uninstrument()


def test_instrument_uninstrument_cycles_leave_the_sdk_as_it_was(telemetry) -> None:
    original = openai.resources.chat.completions.Completions.create
    for _ in range(20):
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        otel_tokens.uninstrument()
    assert openai.resources.chat.completions.Completions.create is original
    server = FaultServer(_dumps(openai_chat_body({})), JSON)
    client = openai.OpenAI(
        api_key="sk-test", max_retries=0,
        http_client=openai.DefaultHttpx2Client(transport=httpx2.MockTransport(server.handler)),
    )
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert telemetry.llm_spans() == []
    json.dumps(otel_tokens.get_statistics(), allow_nan=False)
