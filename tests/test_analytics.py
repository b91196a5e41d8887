"""Efficiency figures, the spend timeline and recommendations, checked against hand-computed values on a
fixed usage log."""

from __future__ import annotations

import json

import pytest

import otel_tokens
from otel_tokens._internal.accounting.analytics import (
    MINUTES_PER_MONTH,
    Activity,
    add_efficiency,
    candidate_models,
    efficiency,
    recommendations,
)
from otel_tokens._internal.accounting.usage_log import format_time, read_usage_log
from otel_tokens._internal.base.records import Request, Result, Usage
from otel_tokens._internal.budgets.manager import parse_budgets
from otel_tokens._internal.outputs.report import (
    budgets_from_usage_lines,
    render_report,
    stats_from_usage_lines,
)
from otel_tokens._internal.pricing.rates import Rates
from tests.providers.assertions import reference_cost
from tests.providers.openai_mock import OpenAIMock

T0 = 1_794_985_600.0  # 2026-11-18T07:06:40Z, a multiple of 10 s


def line(end, agent, model, provider, input_tokens, output_tokens, cost, input_cost, output_cost, duration, *,
         cache_read=0, tool_calls=0, error=None):
    return {
        "time": format_time(T0 + end), "provider": provider, "model": model, "request_model": model, "agent": agent,
        "workflow": "report" if agent != "editor" else None, "task": None, "user": None, "operation": "chat",
        "input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_tokens": cache_read,
        "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": cost, "cost_source": "local" if cost else None,
        "estimated": False, "usage_invalid": False, "duration_s": duration, "ttfc_s": None, "error": error,
        "input_cost_usd": input_cost, "output_cost_usd": output_cost, "tool_calls": tool_calls,
    }


LOG = [
    line(60, "writer", "gpt-4o", "openai", 1000, 200, 0.0045, 0.0025, 0.002, 2.0, tool_calls=1),
    line(120, "writer", "gpt-4o", "openai", 3000, 600, 0.0135, 0.0075, 0.006, 4.0, tool_calls=2),
    line(180, "writer", "gpt-4o", "openai", 2000, 400, 0.009, 0.005, 0.004, 2.0),
    line(240, "researcher", "claude-sonnet-4-6", "anthropic", 6000, 300, 0.02, 0.0155, 0.0045, 5.0, cache_read=120),
    line(300, "researcher", "claude-sonnet-4-6", "anthropic", 6200, 500, 0.025, 0.0175, 0.0075, 3.0, cache_read=80),
    line(360, "researcher", "claude-sonnet-4-6", "anthropic", 5800, 100, 0.018, 0.0165, 0.0015, 2.0),
    line(400, "editor", "gpt-4o-mini", "openai", 500, 50, 0.0001, 0.00007, 0.00003, 1.0),
    line(410, "editor", "gpt-4o-mini", "openai", None, None, None, None, None, 0.5, error="RateLimitError"),
    line(420, "editor", "mystery-model", "openai", 400, 40, None, None, None, 1.0),
    line(430, "editor", "gpt-4o-mini", "openai", None, None, None, None, None, 0.5, error="RateLimitError"),
]


class RatesBook:
    """A price book with fixed per-million rates: the recommendations' arithmetic is stated by hand."""

    RATES = {
        ("openai", "gpt-4o"): Rates.per_million(input=2.5, output=10.0),
        ("openai", "gpt-4o-mini"): Rates.per_million(input=0.15, output=0.6),
        ("anthropic", "claude-sonnet-4-6"): Rates.per_million(input=3.0, output=15.0, cache_read=0.3),
        ("anthropic", "claude-haiku-4-5"): Rates.per_million(input=1.0, output=5.0, cache_read=0.1),
    }

    def rates(self, provider, model):
        return self.RATES.get((provider, model))

    def cost(self, provider, model, usage):
        rates = self.rates(provider, model)
        return rates.cost(usage) if rates else None


CANDIDATES = {"openai": ("gpt-4o-mini",), "anthropic": ("claude-haiku-4-5",)}


@pytest.fixture
def lines(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in LOG))
    parsed, skipped = read_usage_log(path)
    assert skipped == 0
    return parsed


@pytest.fixture
def stats(lines):
    stats = stats_from_usage_lines(lines)
    stats["budgets"] = budgets_from_usage_lines(lines, parse_budgets("writer=0.03,researcher=1.00"))
    return stats


# -- efficiency figures ------------------------------------------------------------------------------
def test_totals(stats):
    cost = 0.0045 + 0.0135 + 0.009 + 0.02 + 0.025 + 0.018 + 0.0001
    assert stats["total_calls"] == 10
    assert stats["total_cost_usd"] == pytest.approx(cost, abs=1e-15)
    # mystery-model is unpriced: 9 calls have a known cost, over 27,090 - 440 tokens
    assert stats["avg_cost_per_call_usd"] == pytest.approx(cost / 9, abs=1e-15)
    assert stats["priced_tokens"] == 26_650
    assert stats["cost_per_1k_tokens_usd"] == pytest.approx(cost / 26_650 * 1000, abs=1e-15)
    assert stats["avg_tokens_per_call"] == 2_709.0
    assert stats["output_tokens_per_second"] == pytest.approx(2_190 / 21.0, abs=1e-12)
    assert stats["avg_duration_s"] == pytest.approx(2.1, abs=1e-12)
    assert stats["input_cost_usd"] == pytest.approx(0.06457, abs=1e-15)
    assert stats["output_cost_usd"] == pytest.approx(0.02553, abs=1e-15)
    assert stats["input_cost_usd"] + stats["output_cost_usd"] == pytest.approx(cost, abs=1e-15)
    assert stats["tool_calls"] == 3
    assert stats["error_rate"] == 0.2
    # the first call started at T0 + 58 (ended at +60 after 2 s); the last ended at T0 + 430
    assert stats["period_s"] == pytest.approx(372.0, abs=1e-6)
    assert stats["cost_per_minute_usd"] == pytest.approx(cost / (372.0 / 60), rel=1e-9)
    assert stats["projected_monthly_usd"] is None  # 6 minutes: too short to project to a month
    assert MINUTES_PER_MONTH == 43_200


def test_projection_only_from_ten_minutes() -> None:
    for period, projected in ((0.3, None), (599.0, None), (600.0, 0.01 / 10 * MINUTES_PER_MONTH)):
        stats = add_efficiency({"total_calls": 2, "total_cost_usd": 0.01, "first_call_time": T0,
                                "last_call_time": T0 + period})
        assert stats["projected_monthly_usd"] == (pytest.approx(projected) if projected else None)
        text = render_report(stats, "text", price_book=RatesBook())
        if projected:
            assert "$43.20 per 30-day month" in text
        else:
            assert "Projection" in text and "too short to project" in text and "per 30-day month" not in text


def test_every_group_entry(stats):
    writer = stats["by_agent"]["writer"]
    assert (writer["calls"], writer["tool_calls"], writer["priced_tokens"]) == (3, 3, 7_200)
    assert writer["avg_cost_per_call_usd"] == pytest.approx(0.009, abs=1e-15)
    assert writer["cost_per_1k_tokens_usd"] == pytest.approx(0.00375, abs=1e-15)
    assert writer["avg_tokens_per_call"] == 2_400.0
    assert writer["output_tokens_per_second"] == 150.0
    assert writer["avg_duration_s"] == pytest.approx(8.0 / 3, abs=1e-12)
    assert (writer["input_cost_usd"], writer["output_cost_usd"]) == (pytest.approx(0.015), pytest.approx(0.012))
    assert writer["error_rate"] == 0.0

    editor = stats["by_agent"]["editor"]
    assert editor["avg_cost_per_call_usd"] == pytest.approx(0.0001 / 3, abs=1e-15)  # 4 calls, 1 unpriced
    assert editor["cost_per_1k_tokens_usd"] == pytest.approx(0.0001 / 550 * 1000, abs=1e-15)
    assert editor["avg_tokens_per_call"] == 247.5
    assert editor["output_tokens_per_second"] == 30.0
    assert editor["error_rate"] == 0.5

    mystery = stats["by_model"]["mystery-model"]
    assert (mystery["avg_cost_per_call_usd"], mystery["cost_per_1k_tokens_usd"]) == (None, None)  # unknown, not $0
    assert stats["by_model"]["claude-sonnet-4-6"]["cost_per_1k_tokens_usd"] == pytest.approx(
        0.063 / 18_900 * 1000, abs=1e-15)
    assert stats["by_provider"]["anthropic"]["output_tokens_per_second"] == 90.0
    # the pair tables carry the same figures
    assert stats["by_workflow_agent"]["report"]["writer"]["cost_per_1k_tokens_usd"] == pytest.approx(0.00375)
    assert stats["by_workflow_agent"]["(none)"]["editor"]["error_rate"] == 0.5
    assert stats["by_task_agent"]["(none)"]["researcher"]["calls"] == 3
    assert stats["by_agent_model"]["editor"]["gpt-4o-mini"]["errors"] == 2


def test_a_group_without_calls_or_time_has_no_figures():
    assert efficiency({"calls": 0}) == {
        "avg_cost_per_call_usd": None, "cost_per_1k_tokens_usd": None, "avg_tokens_per_call": None,
        "output_tokens_per_second": None, "avg_duration_s": None, "input_cost_usd": 0.0, "output_cost_usd": 0.0,
        "tool_calls": 0, "error_rate": None,
    }
    empty = stats_from_usage_lines([])
    assert (empty["period_s"], empty["cost_per_minute_usd"], empty["projected_monthly_usd"]) == (None, None, None)


# -- timeline and error types ------------------------------------------------------------------------
def test_timeline_buckets_spend_by_agent(stats):
    timeline = stats["timeline"]
    # 370 s of calls at 1 s a bucket need 371 buckets; widened twice to 4 s they fit in 120
    assert (timeline["bucket_s"], timeline["start"]) == (4.0, T0 + 60)
    writer = timeline["agents"]["writer"]["cost_usd"]
    assert len(writer) == 93  # T0+60 .. T0+430
    assert {i: v for i, v in enumerate(writer) if v} == {0: 0.0045, 15: 0.0135, 30: 0.009}
    editor = timeline["agents"]["editor"]["calls"]
    assert {i: n for i, n in enumerate(editor) if n} == {85: 1, 87: 1, 90: 1, 92: 1}
    assert sum(sum(agent["cost_usd"]) for agent in timeline["agents"].values()) == pytest.approx(
        stats["total_cost_usd"], abs=1e-15)
    assert stats["error_types"] == {"editor": {"RateLimitError": 2}}
    assert stats["model_providers"]["claude-sonnet-4-6"] == "anthropic"


def test_timeline_widens_its_buckets_and_stays_bounded():
    activity = Activity(bucket_s=10.0, max_buckets=4)
    for second in (0, 15, 35, 41, 79, 80):  # 80 s at 10 s a bucket needs 9 buckets: widen twice to 40 s
        activity.add(T0 + second, "a", 1.0, None)
    activity.add(T0 - 5, "b", 0.5, "Timeout")  # earlier than the first bucket
    timeline = activity.snapshot()["timeline"]
    assert timeline["bucket_s"] == 40.0
    assert timeline["start"] == T0 - 40
    assert timeline["agents"]["a"]["cost_usd"] == [0.0, 3.0, 2.0, 1.0]
    assert timeline["agents"]["b"]["cost_usd"] == [0.5, 0.0, 0.0, 0.0]
    assert activity.snapshot()["error_types"] == {"b": {"Timeout": 1}}


def test_activity_caps_agents_and_error_types():
    activity = Activity(max_agents=2, max_error_types=1)
    for agent in ("a", "b", "c", "d"):
        activity.add(T0, agent, 0.25, "E1" if agent != "d" else "E2")
    snapshot = activity.snapshot()
    assert sorted(snapshot["timeline"]["agents"]) == ["(other)", "a", "b"]
    assert snapshot["timeline"]["agents"]["(other)"]["cost_usd"] == [0.5]
    assert snapshot["error_types"]["(other)"] == {"E1": 1, "(other)": 1}
    with pytest.raises(ValueError):
        Activity(bucket_s=0)


# -- recommendations ---------------------------------------------------------------------------------
def test_recommendations_with_their_numbers(stats):
    found = recommendations(stats, RatesBook(), candidates=CANDIDATES)
    by_kind = {}
    for item in found:
        by_kind.setdefault(item["kind"], []).append(item)

    researcher, writer = by_kind["cheaper_model"]  # largest saving first: $0.0407, then $0.0254
    # writer: 3 calls averaging 2,000 input and 400 output tokens on gpt-4o-mini ($0.15 / $0.60 per M)
    assert writer["candidate_cost_usd"] == pytest.approx(3 * (2_000 * 0.15e-6 + 400 * 0.6e-6), abs=1e-15)
    assert writer["cost_usd"] == pytest.approx(0.027, abs=1e-15)
    assert writer["saving_pct"] == pytest.approx((0.027 - 0.00162) / 0.027 * 100, abs=1e-9)
    assert writer["text"] == ("writer: 3 calls on gpt-4o averaging 400 output tokens; the same usage on "
                              "gpt-4o-mini would cost $0.00162 instead of $0.027 (94 % less)")
    # researcher: average 6,000 input (66.67 cached) and 300 output on claude-haiku-4-5 ($1 / $0.10 / $5 per M)
    per_call = (6_000 - 200 / 3) * 1e-6 + (200 / 3) * 0.1e-6 + 300 * 5e-6
    assert researcher["candidate_cost_usd"] == pytest.approx(3 * per_call, abs=1e-15)
    assert researcher["text"].endswith("would cost $0.02232 instead of $0.063 (65 % less)")
    # editor already uses the candidate; mystery-model has no price: neither is repriced

    low_cache = {item["agent"]: item for item in by_kind["low_cache_hit"]}
    assert set(low_cache) == {"researcher", "writer"}  # editor's prompts average 225 tokens: too small to cache
    assert low_cache["researcher"]["cache_hit_ratio"] == pytest.approx(200 / 18_000, abs=1e-15)
    assert low_cache["researcher"]["avg_input_tokens"] == 6_000
    assert low_cache["researcher"]["text"].startswith("researcher: cache hit ratio 1 % over 3 calls averaging 6,000")

    (errors,) = by_kind["high_error_rate"]
    assert (errors["agent"], errors["errors"], errors["calls"], errors["error_rate"]) == ("editor", 2, 4, 0.5)
    assert errors["text"] == "editor: 50 % of calls failed (2 of 4: RateLimitError x2)"

    (unpriced,) = by_kind["unpriced_models"]
    assert unpriced["models"] == {"mystery-model": 1}
    assert unpriced["text"].startswith("1 call to unpriced models (mystery-model x1): set a price")

    (budget,) = by_kind["budget"]  # writer spent $0.027 of $0.03: its 90 % warning level
    assert (budget["agent"], budget["status"]) == ("writer", "warning")
    assert budget["utilization"] == pytest.approx(0.9, abs=1e-12)
    assert budget["text"] == "writer: spent $0.027, 90 % of its $0.03 budget (lifetime)"


def test_candidates_are_never_invented(stats):
    # A candidate the price book does not price is skipped, not priced at $0.
    found = recommendations(stats, RatesBook(), candidates={"openai": ("gpt-9-nano",)})
    assert [item for item in found if item["kind"] == "cheaper_model"] == []
    # Without a price book there is nothing to reprice with.
    assert "cheaper_model" not in {item["kind"] for item in recommendations(stats, None)}


def test_default_candidates_on_the_real_price_book(stats):
    import genai_prices

    from otel_tokens._internal.pricing.book import PriceBook

    found = [item for item in recommendations(stats, PriceBook()) if item["kind"] == "cheaper_model"]
    writer = next(item for item in found if item["agent"] == "writer")
    assert writer["candidate"] == "gpt-4o-mini"
    reference = genai_prices.calc_price(genai_prices.Usage(input_tokens=2_000, output_tokens=400), "gpt-4o-mini",
                                        provider_id="openai").total_price
    assert writer["candidate_cost_usd"] == pytest.approx(3 * float(reference), abs=1e-12)


def test_candidate_models_setting():
    assert candidate_models("gpt-4o-mini@openai, claude-haiku-4-5@anthropic,gpt-4.1-nano@openai") == {
        "openai": ("gpt-4o-mini", "gpt-4.1-nano"), "anthropic": ("claude-haiku-4-5",)}
    assert candidate_models("") is None
    with pytest.raises(ValueError, match="MODEL@PROVIDER"):
        candidate_models("gpt-4o-mini")


# -- the report --------------------------------------------------------------------------------------
def test_text_and_markdown_reports_show_figures_and_recommendations(stats):
    text = render_report(stats, "text", price_book=RatesBook())
    assert "Efficiency by agent" in text
    assert "too short to project (6m 12s; shown from 10 minutes)" in text and "per 30-day month" not in text
    assert "Recommendations" in text
    assert "- editor: 50 % of calls failed (2 of 4: RateLimitError x2)" in text
    markdown = render_report(stats, "markdown", by="workflow", price_book=RatesBook())
    assert "## Efficiency by workflow" in markdown and "## By agent" not in markdown
    model = json.loads(render_report(stats, "json", price_book=RatesBook()))
    assert model["summary"]["projected_monthly_usd"] is None
    assert model["groups"]["agent"][0]["name"] == "researcher"
    assert model["groups"]["agent"][0]["avg_cost_per_call_usd"] == pytest.approx(0.021)


def test_live_statistics_carry_the_figures(instrumented, monkeypatch):
    otel_tokens.set_budget("planner", limit_usd=10.0)
    for output_tokens in (250, 350, 400):
        otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=2_000, output_tokens=output_tokens,
                                 cache_read_tokens=1_024, duration_s=2.5, agent="planner", tool_calls=1)
    stats = otel_tokens.get_statistics()
    planner = stats["by_agent"]["planner"]
    assert planner["tool_calls"] == stats["tool_calls"] == 3
    assert planner["output_tokens_per_second"] == pytest.approx(1_000 / planner["duration_s"])
    assert planner["duration_s"] == pytest.approx(7.5, abs=0.05)
    assert planner["input_cost_usd"] + planner["output_cost_usd"] == pytest.approx(planner["cost_usd"], abs=1e-15)
    assert planner["input_cost_usd"] == pytest.approx(3 * (976 * 2.5e-6 + 1_024 * 1.25e-6), abs=1e-15)
    assert planner["output_cost_usd"] == pytest.approx(1_000 * 10e-6, abs=1e-15)
    assert sum(stats["timeline"]["agents"]["planner"]["calls"]) == 3
    kinds = {item["kind"] for item in stats["recommendations"]}
    assert "cheaper_model" in kinds and "low_cache_hit" not in kinds  # half of the input is cached
    text = otel_tokens.report(by=["agent"])
    assert "Efficiency by agent" in text and "By model" not in text
    otel_tokens.reset()
    assert otel_tokens.get_statistics()["timeline"]["agents"] == {}


def test_each_kind_lists_the_largest_impact_first_and_at_most_five():
    stats = {"by_agent": {f"agent-{i}": {"calls": 20, "errors": i + 1, "input_tokens": 100} for i in range(8)}}
    found = recommendations(stats)
    assert [item["agent"] for item in found] == ["agent-7", "agent-6", "agent-5", "agent-4", "agent-3"]
    assert [item["errors"] for item in found] == [8, 7, 6, 5, 4]


def test_tool_calls_and_cost_split_of_patched_calls(instrumented):
    mock = OpenAIMock().reply("chat_tool_call.json").reply("chat_tool_call.json")
    client = mock.client()
    with otel_tokens.agent("router"):
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}])
    stats = otel_tokens.get_statistics()
    router = stats["by_agent"]["router"]
    assert router["tool_calls"] == stats["tool_calls"] == 2  # one tool call in each response
    expected = 2 * reference_cost("gpt-4o-mini-2024-07-18", Usage(82, 17), "openai")
    assert router["cost_usd"] == pytest.approx(expected, abs=1e-12)
    assert router["input_cost_usd"] == pytest.approx(2 * 82 * 0.15e-6, abs=1e-12)
    assert router["output_cost_usd"] == pytest.approx(2 * 17 * 0.6e-6, abs=1e-12)


def test_a_call_of_several_requests_splits_its_cost_per_request(instrumented):
    # Gemini 2.5 Pro's price rises above 200k input tokens per request: two 150k requests stay below it.
    hops = (Usage(150_000, 1_000), Usage(150_000, 2_000))
    total = Usage(300_000, 3_000)
    recorder = instrumented.recorder
    record = recorder.finish(recorder.start(Request(provider="gcp.gemini", operation="chat", model="gemini-2.5-pro")),
                             Result(usage=total, hop_usages=hops))
    rates = instrumented.price_book.rates("gcp.gemini", "gemini-2.5-pro")
    parts = [rates.split(hop) for hop in hops]
    assert record.input_cost_usd == pytest.approx(parts[0][0] + parts[1][0], abs=1e-12)
    assert record.output_cost_usd == pytest.approx(parts[0][1] + parts[1][1], abs=1e-12)
    assert record.cost_usd == pytest.approx(record.input_cost_usd + record.output_cost_usd, abs=1e-12)
    assert record.cost_usd < rates.cost(total)  # the whole at once would be priced in the upper tier
