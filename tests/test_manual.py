"""record_usage() and estimate_cost(): a recorded call is indistinguishable from a patched one with the
same usage, in spans, metrics, totals, budgets and the usage log."""

from __future__ import annotations

import json
import logging
import os

import genai_prices
import pytest

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import reference_cost
from tests.providers.openai_mock import OpenAIMock

# The recorded chat completion's usage (tests/providers/recordings/openai/chat_completion.json).
INPUT, OUTPUT, CACHE_READ = 1250, 42, 1024
RESPONSE_MODEL = "gpt-4o-2024-08-06"
# Attributes only the SDK's request and response carry; record_usage has no such arguments.
# What only the SDK's response says (record_usage() takes no response id, finish reasons or service tier).
SDK_ONLY = {A.GEN_AI_RESPONSE_ID, A.GEN_AI_RESPONSE_FINISH_REASONS, A.GEN_AI_AGENT_NAME,
            A.OPENAI_RESPONSE_SERVICE_TIER, A.OTEL_TOKENS_SERVICE_TIER}


@pytest.fixture
def logged(telemetry, monkeypatch, tmp_path):
    """instrument() with a usage log; yields (runtime, log path)."""
    from otel_tokens._internal.setup.runtime import current_runtime

    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)
    path = tmp_path / "usage.jsonl"
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           usage_log=str(path))
    yield current_runtime(), path
    otel_tokens.uninstrument()


def _span_of(telemetry, agent):
    (span,) = [s for s in telemetry.llm_spans() if s.attributes.get(A.GEN_AI_AGENT_NAME) == agent]
    return span


def _points_of(telemetry, agent):
    """Every metric point of one agent, keyed by metric name and attributes (minus the agent)."""
    found = {}
    data = telemetry.reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != "otel_tokens":
                continue
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    attributes = dict(point.attributes)
                    if attributes.pop(A.GEN_AI_AGENT_NAME, None) != agent:
                        continue
                    attributes.pop(A.OTEL_TOKENS_BUDGET_NAME, None)  # budget gauges also name the agent
                    key = (metric.name, tuple(sorted(attributes.items())))
                    value = (point.count, point.sum) if hasattr(point, "bucket_counts") else point.value
                    found[key] = value
    return found


def test_record_usage_is_indistinguishable_from_a_patched_call(logged, telemetry):
    runtime, log_path = logged
    for agent in ("patched", "manual"):
        otel_tokens.set_budget(agent, limit_usd=0.002, warn_at=0.5)
    client = OpenAIMock().client()
    with otel_tokens.agent("patched"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    duration_s = otel_tokens.get_statistics()["by_agent"]["patched"]["duration_s"]

    cost = otel_tokens.record_usage(
        model="gpt-4o", provider="openai", input_tokens=INPUT, output_tokens=OUTPUT, cache_read_tokens=CACHE_READ,
        duration_s=duration_s, agent="manual", response_model=RESPONSE_MODEL, server_address="api.openai.com",
        server_port=443,
    )

    expected_cost = reference_cost(RESPONSE_MODEL, Usage(INPUT, OUTPUT, CACHE_READ), "openai")
    assert cost == pytest.approx(expected_cost, abs=1e-12)
    patched, manual = _span_of(telemetry, "patched"), _span_of(telemetry, "manual")
    assert manual.name == patched.name == "chat gpt-4o"
    assert manual.kind == patched.kind
    assert {k: v for k, v in manual.attributes.items() if k not in SDK_ONLY} == {
        k: v for k, v in patched.attributes.items() if k not in SDK_ONLY}
    assert manual.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert manual.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected_cost, abs=1e-12)
    # The span covers the call's duration, ending now.
    assert (manual.end_time - manual.start_time) / 1e9 == pytest.approx(duration_s, abs=0.05)
    # Both crossed their budget's warning and limit with the same events.
    def events(span):
        names = (A.GEN_AI_AGENT_NAME, A.OTEL_TOKENS_BUDGET_NAME)  # each side's own agent budget
        return [(e.name, {k: v for k, v in e.attributes.items() if k not in names}) for e in span.events]

    assert events(manual) == events(patched)
    assert [e.name for e in manual.events] == [A.EVENT_BUDGET_WARNING, A.EVENT_BUDGET_EXCEEDED]

    manual_points, patched_points = _points_of(telemetry, "manual"), _points_of(telemetry, "patched")
    assert manual_points.keys() == patched_points.keys()
    for key, value in patched_points.items():
        if key[0] == A.METRIC_OPERATION_DURATION:
            assert manual_points[key][0] == value[0] == 1
            assert manual_points[key][1] == pytest.approx(value[1], abs=0.05)
        else:
            assert manual_points[key] == pytest.approx(value, abs=1e-12), key

    stats = otel_tokens.get_statistics()
    patched_entry, manual_entry = stats["by_agent"]["patched"], stats["by_agent"]["manual"]
    assert manual_entry.keys() == patched_entry.keys()
    for key, value in patched_entry.items():
        if "duration" in key:  # plus the moment record_usage itself takes
            assert manual_entry[key] == pytest.approx(value, abs=0.05), key
        elif key == "output_tokens_per_second":
            assert manual_entry[key] == pytest.approx(OUTPUT / manual_entry["duration_s"], rel=1e-9)
        else:
            assert manual_entry[key] == pytest.approx(value, abs=1e-12), key
    assert manual_entry["calls"] == 1 and manual_entry["input_tokens"] == INPUT
    assert ({k: v for k, v in stats["budgets"]["manual"].items() if k != "name"}
            == {k: v for k, v in stats["budgets"]["patched"].items() if k != "name"})
    assert stats["budgets"]["manual"]["spent_usd"] == pytest.approx(expected_cost, abs=1e-12)

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["agent"] for line in lines] == ["patched", "manual"]
    volatile = {"time", "agent", "duration_s", "tier"}  # the tier is the response's, as on the span
    assert {k: v for k, v in lines[1].items() if k not in volatile} == {
        k: v for k, v in lines[0].items() if k not in volatile}
    assert lines[1]["duration_s"] == pytest.approx(duration_s, abs=0.05)


def test_labels_come_from_the_enclosing_scopes(instrumented, telemetry):
    with otel_tokens.workflow("triage"), otel_tokens.agent("planner"), otel_tokens.user("u-7"):
        otel_tokens.record_usage(model="gpt-4o-mini", provider="openai", input_tokens=311, output_tokens=29,
                                 task="route")
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.GEN_AI_AGENT_NAME] == "planner"
    assert span.attributes[A.GEN_AI_WORKFLOW_NAME] == "triage"
    assert span.attributes[A.OTEL_TOKENS_TASK_NAME] == "route"
    assert span.attributes[A.USER_ID] == "u-7"
    stats = otel_tokens.get_statistics()
    assert stats["by_workflow_agent"]["triage"]["planner"]["calls"] == 1
    assert stats["by_task_agent"]["route"]["planner"]["input_tokens"] == 311


def test_a_blocking_budget_counts_a_recorded_call_instead_of_raising(instrumented, telemetry):
    otel_tokens.set_budget("writer", limit_usd=0.000001, action="block")
    first = otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=5000, output_tokens=700,
                                     agent="writer")
    second = otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=5000, output_tokens=700,
                                      agent="writer")
    assert first == second > 0
    state = otel_tokens.get_statistics()["budgets"]["writer"]
    assert state["spent_usd"] == pytest.approx(first * 2, abs=1e-12)
    assert state["status"] == "exceeded"
    assert len(telemetry.llm_spans()) == 2


def test_unknown_model_is_flagged_not_free_and_absent_usage_is_not_zero(instrumented, telemetry):
    assert otel_tokens.record_usage(model="in-house-llm-v3", provider="acme", input_tokens=1500,
                                    output_tokens=61) is None
    assert otel_tokens.record_usage(model="gpt-4o", provider="openai") is None
    unpriced, no_usage = telemetry.llm_spans()
    assert unpriced.attributes[A.OTEL_TOKENS_PRICE_UNKNOWN] is True
    assert A.GEN_AI_USAGE_COST_AMOUNT not in unpriced.attributes
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in no_usage.attributes
    stats = otel_tokens.get_statistics()
    assert (stats["total_calls"], stats["unpriced_calls"], stats["input_tokens"]) == (2, 1, 1500)


def test_provider_cost_error_and_tool_calls(instrumented, telemetry):
    error = RuntimeError("upstream 503")
    assert otel_tokens.record_usage(model="some/model", provider="openrouter", input_tokens=900, output_tokens=77,
                                    cost_usd=0.00123, tool_calls=2, error=error) == 0.00123
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.GEN_AI_USAGE_COST_SOURCE] == "provider"
    assert span.attributes[A.ERROR_TYPE] == "RuntimeError"
    stats = otel_tokens.get_statistics()
    assert (stats["errors"], stats["error_rate"]) == (1, 1.0)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"model": "", "provider": "openai"}, "model must be a non-empty string"),
    ({"model": "gpt-4o", "provider": None}, "provider must be a non-empty string"),
    ({"model": "gpt-4o", "provider": "openai", "duration_s": -1}, "duration_s"),
    ({"model": "gpt-4o", "provider": "openai", "duration_s": float("nan")}, "duration_s"),
    ({"model": "gpt-4o", "provider": "openai", "tool_calls": -2}, "tool_calls"),
    ({"model": "gpt-4o", "provider": "openai", "cost_usd": -0.5}, "cost_usd"),
    ({"model": "gpt-4o", "provider": "openai", "agent": 7}, "agent"),
    ({"model": "gpt-4o", "provider": "openai", "server_port": 70000}, "server_port"),
    ({"model": "gpt-4o", "provider": "openai", "error": "boom"}, "error must be an exception"),
])
def test_bad_arguments_raise_value_error_and_record_nothing(instrumented, telemetry, arguments, message):
    with pytest.raises(ValueError, match=message):
        otel_tokens.record_usage(**arguments)
    assert telemetry.llm_spans() == []


def test_invalid_counts_are_flagged_like_a_providers(instrumented, telemetry, caplog):
    otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=-5, output_tokens=12)
    (span,) = telemetry.llm_spans()
    assert span.attributes.get(A.GEN_AI_USAGE_INPUT_TOKENS, 0) == 0
    assert otel_tokens.get_statistics()["input_tokens"] == 0


# -- estimate_cost -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "provider", "counts"), [
    ("gpt-4o", "openai", {"input_tokens": 12_345, "output_tokens": 678, "cache_read_tokens": 4_096}),
    ("claude-sonnet-4-6", "anthropic", {"input_tokens": 30_011, "output_tokens": 2_017, "cache_write_tokens": 9_001}),
    ("gpt-4o-mini", None, {"input_tokens": 731, "output_tokens": 97}),
])
def test_estimate_cost_is_genai_prices(model, provider, counts, no_network):
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=counts["input_tokens"], output_tokens=counts["output_tokens"],
                           cache_read_tokens=counts.get("cache_read_tokens"),
                           cache_write_tokens=counts.get("cache_write_tokens")),
        model, provider_id=provider).total_price
    assert otel_tokens.estimate_cost(model, provider, **counts) == pytest.approx(float(expected), abs=1e-12)


def test_estimate_cost_unknown_model_overrides_and_bad_counts(instrumented):
    assert otel_tokens.estimate_cost("no-such-model-xyz", input_tokens=10, output_tokens=10) is None
    otel_tokens.set_price("no-such-model-xyz", input=3.0, output=15.0)
    assert otel_tokens.estimate_cost("no-such-model-xyz", input_tokens=1_000, output_tokens=200) == pytest.approx(
        1_000 * 3e-6 + 200 * 15e-6, abs=1e-15)
    with pytest.raises(ValueError, match="token counts"):
        otel_tokens.estimate_cost("gpt-4o", input_tokens=-1, output_tokens=3)
    with pytest.raises(ValueError, match="model"):
        otel_tokens.estimate_cost("", input_tokens=1, output_tokens=3)


def test_an_internal_error_is_logged_not_raised(instrumented, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")
    monkeypatch.setattr(instrumented.recorder, "finish", lambda *a, **k: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="otel_tokens"):
        assert otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=1, output_tokens=1) is None
    assert "internal error while recording a call" in caplog.text
