"""Budgets, ledger, usage log and report through the real OpenAI SDK, end to end."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.accounting.usage_log import read_usage_log
from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.outputs.report import stats_from_usage_lines
from tests.providers.openai_mock import OpenAIMock

ROOT = Path(__file__).resolve().parent.parent
# One recorded gpt-4o call: 1250 input tokens (1024 cached), 42 output.
CALL_USAGE = Usage(input_tokens=1250, output_tokens=42, cache_read_tokens=1024)


def _chat(client, **kwargs):
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=100, **kwargs
    )


def test_blocked_call_never_reaches_the_transport(instrumented, telemetry):
    call_cost = instrumented.price_book.cost("openai", "gpt-4o-2024-08-06", CALL_USAGE)
    rates = instrumented.price_book.rates("openai", "gpt-4o")
    # Prompt "x" in the chat format (1 + role 1 + wrapper 3 + priming 3) and the 42 output tokens seen,
    # capped by max_tokens=100; but the stated maximum alone (100 output tokens) is the floor.
    projection = max(rates.cost(Usage(input_tokens=8, output_tokens=42)), rates.cost(Usage(output_tokens=100)))
    # Room for exactly two calls plus one projection, not three.
    limit = 2 * call_cost + projection - 1e-9
    otel_tokens.set_budget("writer", limit_usd=limit, action="block")
    mock = OpenAIMock()
    client = mock.client()
    with otel_tokens.agent("writer"):
        _chat(client)
        _chat(client)
        with pytest.raises(otel_tokens.BudgetExceededError) as raised:
            _chat(client)
    assert len(mock.requests) == 2  # the third call was never sent
    error = raised.value
    assert error.agent == "writer"
    assert error.limit_usd == limit
    assert error.spent_usd == pytest.approx(2 * call_cost, abs=1e-12)
    assert error.projected_usd == pytest.approx(projection, abs=1e-12)
    assert len(telemetry.llm_spans()) == 2
    budget = otel_tokens.get_statistics()["budgets"]["writer"]
    assert budget["blocked_calls"] == 1
    assert budget["spent_usd"] == pytest.approx(2 * call_cost, abs=1e-12)


def test_warning_and_exceeded_fire_once_each_at_their_crossings(instrumented, telemetry, caplog):
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    call_cost = instrumented.price_book.cost("openai", "gpt-4o-2024-08-06", CALL_USAGE)
    # 90 % of the limit is 4.0 calls: crossed by the fourth; the limit (4.44 calls) by the fifth.
    limit = call_cost * 4 / 0.9 - 1e-9
    warned, exceeded = [], []
    otel_tokens.set_budget("researcher", limit_usd=limit, on_warning=warned.append, on_exceeded=exceeded.append)
    client = OpenAIMock().client()
    with otel_tokens.agent("researcher"):
        for _ in range(6):
            _chat(client)
    spans = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    events = [[e.name for e in s.events] for s in spans]
    assert events == [[], [], [], [A.EVENT_BUDGET_WARNING], [A.EVENT_BUDGET_EXCEEDED], []]
    warning_event = spans[3].events[0]
    assert warning_event.attributes[A.OTEL_TOKENS_BUDGET_LIMIT_USD] == limit
    assert warning_event.attributes[A.OTEL_TOKENS_BUDGET_SPENT_USD] == pytest.approx(4 * call_cost, abs=1e-12)
    records = [r for r in caplog.records if "budget" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR]
    assert "'researcher'" in records[0].getMessage() and "90%" in records[0].getMessage()
    assert len(warned) == 1 and len(exceeded) == 1
    assert otel_tokens.get_statistics()["budgets"]["researcher"]["status"] == "exceeded"


def test_budget_gauges_reach_the_meter(instrumented, telemetry):
    otel_tokens.set_budget("planner", limit_usd=1.0)
    with otel_tokens.agent("planner"):
        _chat(OpenAIMock().client())
    call_cost = instrumented.price_book.cost("openai", "gpt-4o-2024-08-06", CALL_USAGE)
    ((attributes, point),) = telemetry.points(A.METRIC_BUDGET_UTILIZATION)
    assert attributes == {A.GEN_AI_AGENT_NAME: "planner", A.OTEL_TOKENS_BUDGET_WINDOW: "lifetime",
                          A.OTEL_TOKENS_BUDGET_SCOPE: "agent", A.OTEL_TOKENS_BUDGET_NAME: "planner"}
    assert point.value == pytest.approx(call_cost, abs=1e-12)


def test_usage_log_report_equals_the_live_ledger(telemetry, tmp_path, monkeypatch):
    log = tmp_path / "usage.jsonl"
    monkeypatch.setenv("OTEL_TOKENS_LOG", str(log))
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock = OpenAIMock()
        client = mock.client()
        with otel_tokens.workflow("nightly"):
            with otel_tokens.agent("a"):
                _chat(client)
                list(client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
                ))
            with otel_tokens.agent("b"):
                mock.reply("chat_reasoning.json")
                _chat(client)
                client.embeddings.create(model="text-embedding-3-small", input="e")
        live = otel_tokens.get_statistics()
    finally:
        otel_tokens.uninstrument()
    lines, skipped = read_usage_log(log)
    assert skipped == 0 and len(lines) == 4
    from_log = stats_from_usage_lines(lines)
    for key in ("total_calls", "total_tokens", "input_tokens", "output_tokens", "cache_read_tokens",
                "reasoning_tokens", "unpriced_calls", "errors"):
        assert from_log[key] == live[key], key
    assert from_log["total_cost_usd"] == pytest.approx(live["total_cost_usd"], abs=1e-12)
    for dimension in ("by_agent", "by_model", "by_provider", "by_operation", "by_workflow"):
        assert set(from_log[dimension]) == set(live[dimension]), dimension
        for key, entry in live[dimension].items():
            assert from_log[dimension][key]["calls"] == entry["calls"]
            assert from_log[dimension][key]["cost_usd"] == pytest.approx(entry["cost_usd"], abs=1e-12)
    assert live["by_workflow"]["nightly"]["calls"] == 4
    assert lines[0]["agent"] == "a" and lines[0]["workflow"] == "nightly"


def test_report_from_code_shows_agents(instrumented):
    client = OpenAIMock().client()
    with otel_tokens.agent("planner"):
        _chat(client)
    with otel_tokens.agent("writer"):
        _chat(client)
    text = otel_tokens.report()
    assert "planner" in text and "writer" in text
    data = json.loads(otel_tokens.report("json"))
    assert data["summary"]["calls"] == 2
    assert sorted(row["key"] if "key" in row else row["name"] for row in data["groups"]["agent"]) == ["planner", "writer"]
    otel_tokens.reset()
    assert otel_tokens.get_statistics()["total_calls"] == 0


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=full_env, cwd=ROOT)


CALL_TWICE = """
import otel_tokens
otel_tokens.instrument()
from tests.providers.openai_mock import OpenAIMock
client = OpenAIMock().client()
with otel_tokens.agent("exit-agent"):
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
"""


def test_report_is_written_at_exit(tmp_path):
    out = tmp_path / "report.txt"
    done = _run(CALL_TWICE, {"OTEL_TOKENS_REPORT": str(out)})
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "exit-agent" in text
    done = _run(CALL_TWICE, {"OTEL_TOKENS_REPORT": "stderr"})
    assert done.returncode == 0 and "exit-agent" in done.stderr


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"OTEL_TOKENS_BUDGETS": "researcher=abc"}, "researcher=abc"),
        ({"OTEL_TOKENS_BUDGETS": "writer=1.00:explode"}, "explode"),
        ({"OTEL_TOKENS_BUDGETS": "writer=-1"}, "writer=-1"),
    ],
)
def test_bad_budget_spec_stops_start_up_naming_the_entry(env, fragment, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError) as raised:
        otel_tokens.instrument()
    otel_tokens.uninstrument()
    assert fragment in str(raised.value)


def test_bad_price_file_stops_start_up_naming_file_and_entry(tmp_path, monkeypatch):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."acme"]\ninput = 1.0\noutput = -2\n')
    monkeypatch.setenv("OTEL_TOKENS_PRICES", str(prices))
    with pytest.raises(ValueError) as raised:
        otel_tokens.instrument()
    otel_tokens.uninstrument()
    message = str(raised.value)
    assert str(prices) in message and "acme" in message and "output" in message


def test_price_file_and_set_price_override_the_database(telemetry, tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"acme-llm-7b": {"input": 1.0, "output": 2.0, "cache_read": 0.5}}}))
    monkeypatch.setenv("OTEL_TOKENS_PRICES", str(prices))
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock = OpenAIMock()
        client = mock.client(base_url="https://llm.internal.example/v1")
        mock.reply("chat_unknown_model.json")
        client.chat.completions.create(model="acme-llm-7b", messages=[{"role": "user", "content": "x"}])
        otel_tokens.set_price("gpt-4o", input=10.0, output=20.0)
        _chat(mock.client())
    finally:
        otel_tokens.uninstrument()
    acme, gpt = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    # 226 uncached at $1/M + 1024 cached at $0.50/M + 42 output at $2/M
    assert acme.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx((226 * 1.0 + 1024 * 0.5 + 42 * 2.0) / 1e6, abs=1e-15)
    # set_price without a cache price bills cache reads at its input price
    assert gpt.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx((1250 * 10.0 + 42 * 20.0) / 1e6, abs=1e-15)


def test_budget_set_before_instrument_keeps_and_providers_are_still_chosen(telemetry):
    otel_tokens.set_budget("early", limit_usd=1.0)  # creates the runtime before instrument()
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        with otel_tokens.agent("early"):
            _chat(OpenAIMock().client())
        stats = otel_tokens.get_statistics()
    finally:
        otel_tokens.uninstrument()
    assert len(telemetry.llm_spans()) == 1  # on the providers instrument() was given
    assert stats["budgets"]["early"]["spent_usd"] > 0
    assert telemetry.sum_of(A.METRIC_BUDGET_LIMIT) == 1.0
