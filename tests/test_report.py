"""The report: statistics from usage-log lines, the four formats, budgets and what-if repricing."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math

import pytest

from otel_tokens._internal.accounting.usage_log import lines_from_records
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.outputs.report import (
    ENTRY_FIELDS,
    FORMATS,
    WhatIf,
    budgets_from_usage_lines,
    format_duration,
    format_usd,
    parse_model_ref,
    render_report,
    reprice,
    stats_from_usage_lines,
)

T0 = 1_794_985_600.0  # 2026-11-18T07:06:40Z


def call(agent, model, provider, input_tokens, output_tokens, cost, end, *, error=None, cache_read=0,
         cache_write=0, reasoning=0, operation="chat", duration=2.0, workflow=None, user=None, task=None,
         estimated=False):
    usage = None
    if input_tokens is not None:
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read,
                      cache_write_tokens=cache_write, reasoning_tokens=reasoning, estimated=estimated)
    return CallRecord(
        request=Request(provider=provider, operation=operation, model=model),
        result=Result(usage=usage) if usage is not None else None,
        labels=Labels(agent=agent, workflow=workflow, user=user, task=task),
        duration_s=duration,
        end_time_unix=end,
        cost_usd=cost,
        cost_source="local" if cost is not None else None,
        error_type=error,
    )


RECORDS = [
    call("planner", "gpt-4o-mini", "openai", 1000, 200, 0.00027, T0 + 10, workflow="triage", user="u1"),
    call("planner", "gpt-4o", "openai", 2000, 500, 0.01, T0 + 20, cache_read=1024, workflow="triage"),
    call("writer", "claude-sonnet-4-6", "anthropic", 3000, 1000, 0.024, T0 + 70, cache_write=2048,
         reasoning=300, duration=4.5),
    call(None, "text-embedding-3-small", "openai", 500, 0, 0.00001, T0 + 80, operation="embeddings"),
    call("writer", "mystery-model", "openai", 100, 10, None, T0 + 90, estimated=True),
    call("writer", "gpt-4o", "openai", None, None, None, T0 + 95, error="RateLimitError", duration=0.25),
    # not a usage operation: never counted (agent spans carry no usage)
    call("writer", None, "openai", 0, 0, None, T0 + 99, operation="invoke_agent"),
]


@pytest.fixture
def stats():
    return stats_from_usage_lines(lines_from_records(RECORDS))


class PerMillionBook:
    """A fake price book: $1 per million input tokens, $4 per million output tokens, one known model."""

    def __init__(self, known=("gpt-4o-mini",)):
        self.known = known
        self.calls = []

    def cost(self, provider, model, usage):
        self.calls.append((provider, model, usage))
        if model not in self.known:
            return None
        return usage.input_tokens * 1e-6 + usage.output_tokens * 4e-6


# -- statistics ------------------------------------------------------------------------------------
def test_totals(stats):
    assert {k: stats[k] for k in (
        "total_calls", "total_tokens", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "reasoning_tokens", "unpriced_calls", "errors", "estimated_calls", "duration_s",
        "first_call_time", "last_call_time",
    )} == {
        "total_calls": 6, "total_tokens": 8310, "input_tokens": 6600, "output_tokens": 1710,
        "cache_read_tokens": 1024, "cache_write_tokens": 2048, "reasoning_tokens": 300,
        "unpriced_calls": 1, "errors": 1, "estimated_calls": 1, "duration_s": 12.75,
        "first_call_time": T0 + 8,  # the first call ended at +10 after 2 s
        "last_call_time": T0 + 95,
    }
    assert stats["total_cost_usd"] == pytest.approx(0.03428, abs=1e-15)
    assert stats["budgets"] == {}


def test_entries_and_none_key(stats):
    assert {key: stats["by_agent"]["writer"][key] for key in ENTRY_FIELDS} == {
        "calls": 3, "input_tokens": 3100, "output_tokens": 1010, "cache_read_tokens": 0,
        "cache_write_tokens": 2048, "reasoning_tokens": 300, "total_tokens": 4110, "cost_usd": 0.024,
        "unpriced_calls": 1, "errors": 1, "duration_s": 6.75,
    }
    assert stats["by_agent"]["(none)"]["calls"] == 1
    assert sorted(stats["by_model"]) == ["claude-sonnet-4-6", "gpt-4o", "gpt-4o-mini", "mystery-model",
                                         "text-embedding-3-small"]
    assert stats["by_model"]["gpt-4o"]["unpriced_calls"] == 0  # the error had no usage to price
    assert stats["by_operation"].keys() == {"chat", "embeddings"}
    assert stats["by_workflow"] == {
        "triage": {**stats["by_workflow"]["triage"], "calls": 2},
        "(none)": {**stats["by_workflow"]["(none)"], "calls": 4},
    }
    assert stats["by_user"]["u1"]["input_tokens"] == 1000
    assert stats["by_task"] == {"(none)": stats["by_task"]["(none)"]}


def test_extras_for_the_report(stats):
    assert stats["by_agent_model"]["planner"]["gpt-4o"]["cost_usd"] == 0.01
    assert [(c["agent"], c["model"], c["cost_usd"]) for c in stats["top_calls"]] == [
        ("writer", "claude-sonnet-4-6", 0.024),
        ("planner", "gpt-4o", 0.01),
        ("planner", "gpt-4o-mini", 0.00027),
        ("(none)", "text-embedding-3-small", 0.00001),
    ]
    assert stats_from_usage_lines(lines_from_records(RECORDS), top_calls=1)["top_calls"][0]["cost_usd"] == 0.024


def test_same_shape_and_numbers_as_the_live_ledger(stats):
    ledger_module = pytest.importorskip("otel_tokens._internal.accounting.ledger")
    ledger = ledger_module.Ledger()
    for record in RECORDS:
        ledger.record(record)
    live = ledger.statistics()

    assert live.keys() <= stats.keys()
    for key, value in live.items():
        if key in ("by_agent_model", "by_workflow_agent", "by_task_agent"):
            for outer, inners in value.items():
                for inner, entry in inners.items():
                    assert {k: stats[key][outer][inner][k] for k in entry} == pytest.approx(entry, abs=1e-12), key
        elif key.startswith("by_"):  # a log's entries also carry the efficiency figures
            for name, entry in value.items():
                assert {k: stats[key][name][k] for k in entry} == pytest.approx(entry, abs=1e-12), (key, name)
        else:
            assert stats[key] == (pytest.approx(value, abs=1e-12) if isinstance(value, float) else value), key


def test_empty_log():
    stats = stats_from_usage_lines([])
    assert (stats["total_calls"], stats["first_call_time"], stats["by_agent"], stats["top_calls"]) == (0, None, {}, [])
    text = render_report(stats)
    assert "No LLM calls recorded." in text
    assert json.loads(render_report(stats, "json"))["summary"]["tokens_per_s"] is None


# -- formatting ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "text"), [
    (None, "n/a"), (0.0, "$0.00"), (1234.5678, "$1,234.57"), (1.0, "$1.00"), (0.5, "$0.50"),
    (0.0123, "$0.0123"), (0.00027, "$0.00027"), (0.000001, "$0.000001"), (3e-08, "<$0.000001"),
    (-0.25, "-$0.25"), (math.inf, "n/a"),
])
def test_format_usd(value, text):
    assert format_usd(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "n/a"), (0.016, "16ms"), (2.0, "2.0s"), (87.0, "1m 27s"), (3725.0, "1h 02m"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_text_report(stats):
    text = render_report(stats, "text")
    lines = text.splitlines()

    assert lines[:11] == [
        "otel-tokens usage report",
        "========================",
        "",
        "Summary",
        "-------",
        "Period         2026-11-18 07:06:48 UTC to 2026-11-18 07:08:15 UTC (1m 27s)",
        "Calls          6 (1 error, 1 unpriced, 1 estimated)",
        "Tokens         8,310 (input 6,600, of which cache read 1,024 and cache write 2,048; output 1,710, "
        "of which reasoning 300)",
        "Cost           $0.03428 (plus 1 unpriced call)",
        "Throughput     95.5 tokens/s, $0.02364/min",  # 8310 tokens / 87 s; $0.03428 / 1.45 min
        "Time in calls  12.8s",
    ]
    by_agent = lines[lines.index("By agent") + 2: lines.index("By agent") + 6]
    assert by_agent[0].split() == ["Agent", "Calls", "Input", "Cache", "read", "Cache", "write", "Output",
                                   "Reasoning", "Total", "Cost", "Share", "Unpriced", "Errors"]
    assert [row.split()[0] for row in by_agent[2:]] == ["writer", "planner"]
    assert by_agent[2].split() == ["writer", "3", "3,100", "0", "2,048", "1,010", "300", "4,110", "$0.024",
                                   "70.0%", "1", "1"]
    mystery = next(line for line in lines if line.startswith("mystery-model"))
    assert mystery.split()[-4:] == ["n/a", "n/a", "1", "0"]  # unpriced: no cost rather than $0
    assert "Most expensive agent x model" in lines and "Most expensive calls" in lines
    assert "What if" not in lines


def test_text_columns_are_aligned(stats):
    lines = render_report(stats, "text").splitlines()
    start = lines.index("By model") + 2
    table = lines[start: start + 7]
    assert len({len(line) for line in table}) == 1  # right-aligned numbers end in one column


def test_markdown_has_tables(stats):
    text = render_report(stats, "markdown", by=("agent", "model"))
    lines = text.splitlines()

    assert lines[0] == "# otel-tokens usage report"
    assert "## By agent" in lines and "## By model" in lines and "## By provider" not in lines
    header = lines.index("## By agent") + 2
    assert lines[header].startswith("| Agent | Calls |")
    assert lines[header + 1] == "|:---|" + "---:|" * 11
    assert lines[header + 2] == "| writer | 3 | 3,100 | 0 | 2,048 | 1,010 | 300 | 4,110 | $0.024 | 70.0% | 1 | 1 |"
    assert "| Calls | 6 (1 error, 1 unpriced, 1 estimated) |" in lines


def test_markdown_escapes_pipes():
    stats = stats_from_usage_lines(lines_from_records([call("a|b", "m", "openai", 1, 1, 0.5, T0)]))
    assert "| a\\|b | 1 |" in render_report(stats, "markdown")


def test_json_report(stats):
    data = json.loads(render_report(stats, "json", by=("provider",), top=2))

    assert data["summary"]["calls"] == 6
    assert data["summary"]["period_s"] == 87.0
    assert data["summary"]["first_call_time"] == "2026-11-18T07:06:48.000000Z"
    assert [(g["name"], g["calls"]) for g in data["groups"]["provider"]] == [("anthropic", 1), ("openai", 5)]
    assert list(data["groups"]) == ["provider"]
    assert len(data["top_calls"]) == 2 and len(data["top_agent_models"]) == 2
    assert data["what_if"] == [] and data["budgets"] == []


def test_csv_report(stats):
    rows = list(csv.DictReader(io.StringIO(render_report(stats, "csv", by=("agent", "operation")))))

    assert [(r["section"], r["name"]) for r in rows] == [
        ("total", "all"), ("agent", "writer"), ("agent", "planner"), ("agent", "(none)"),
        ("operation", "chat"), ("operation", "embeddings"),
    ]
    assert rows[0] == {
        "section": "total", "name": "all", "calls": "6", "input_tokens": "6600", "output_tokens": "1710",
        "cache_read_tokens": "1024", "cache_write_tokens": "2048", "reasoning_tokens": "300",
        "total_tokens": "8310", "cost_usd": "0.03428", "unpriced_calls": "1", "errors": "1",
        "duration_s": "12.750000", "share_pct": "100.00",
    }
    assert rows[1]["cost_usd"] == "0.024" and rows[1]["share_pct"] == "70.01"


def test_unknown_format_and_dimension():
    with pytest.raises(ValueError, match="unknown report format 'yaml'; choose one of text, markdown, json, csv, html"):
        render_report({}, "yaml")
    with pytest.raises(ValueError, match="unknown report dimension.*'colour'.*agent, model, provider"):
        render_report({}, "text", by=("agent", "colour"))
    assert FORMATS == ("text", "markdown", "json", "csv", "html")


def test_by_accepts_a_comma_string(stats):
    data = json.loads(render_report(stats, "json", by="user, workflow"))
    assert list(data["groups"]) == ["user", "workflow"]


def test_live_ledger_stats_without_extras_render(stats):
    live = {k: v for k, v in stats.items() if k not in ("by_agent_model", "top_calls")}
    text = render_report(live)
    assert "Most expensive" not in text
    assert "By agent" in text


# -- budgets ---------------------------------------------------------------------------------------
def test_budget_section(stats):
    stats["budgets"] = {
        "writer": {"limit_usd": 0.02, "spent_usd": 0.024, "utilization": 1.2, "status": "exceeded",
                   "window": "1h", "action": "block", "blocked_calls": 2},
        "free": {"limit_usd": 0.0, "spent_usd": 0.5, "utilization": math.inf, "status": "exceeded",
                 "window": "lifetime", "action": "warn", "blocked_calls": 0},
    }
    lines = render_report(stats).splitlines()
    start = lines.index("Budgets") + 2
    assert lines[start].split() == ["Budget", "Limit", "Spent", "Used", "Status", "Window", "Action", "Blocked"]
    assert lines[start + 2].split() == ["free", "$0.00", "$0.50", "inf", "exceeded", "lifetime", "warn", "0"]
    assert lines[start + 3].split() == ["writer", "$0.02", "$0.024", "120.0%", "exceeded", "1h", "block", "2"]
    data = json.loads(render_report(stats, "json"))
    assert data["budgets"][0]["utilization"] is None  # JSON has no infinity


def test_budgets_from_usage_lines():
    budgets_module = pytest.importorskip("otel_tokens._internal.budgets.manager")
    Budget = budgets_module.Budget
    lines = lines_from_records([
        call("writer", "m", "openai", 10, 10, 0.30, T0),
        call("writer", "m", "openai", 10, 10, 0.50, T0 + 3000),
        call("writer", "m", "openai", 10, 10, 0.40, T0 + 4000),
        call("planner", "m", "openai", 10, 10, 0.10, T0 + 4000),
    ])
    states = budgets_from_usage_lines(lines, [
        Budget("writer", 1.0),  # whole log: 1.20
        Budget("writer-hour", 1.0, window="1h"),
        Budget("planner", 0.11, warn_at=0.9),  # 0.10 >= 0.099
        Budget("all", 2.0, scope="total"),  # every call: 1.30
        Budget("writer", 9.0, scope="workflow"),  # no call carries workflow "writer"
    ])
    hourly = budgets_from_usage_lines(lines, [Budget("writer", 1.0, window="1h", action="block")])

    assert states["writer"] == {"scope": "agent", "name": "writer", "limit_usd": 1.0, "spent_usd": pytest.approx(1.2), "utilization": pytest.approx(1.2),
                                "status": "exceeded", "window": "lifetime", "action": "warn", "blocked_calls": 0}
    assert states["writer-hour"]["spent_usd"] == 0.0
    assert states["total:all"]["spent_usd"] == pytest.approx(1.3) and states["total:all"]["scope"] == "total"
    assert states["workflow:writer"]["spent_usd"] == 0.0
    assert states["planner"]["status"] == "warning"
    # the last hour before the last call (T0+4000) holds the calls at +3000 and +4000
    assert hourly["writer"]["spent_usd"] == pytest.approx(0.9)
    assert (hourly["writer"]["status"], hourly["writer"]["window"]) == ("warning", "1h")


# -- what-if ---------------------------------------------------------------------------------------
def test_parse_model_ref():
    assert parse_model_ref("gpt-4o-mini") == ("gpt-4o-mini", None)
    assert parse_model_ref(" claude-haiku-4-5@anthropic ") == ("claude-haiku-4-5", "anthropic")
    with pytest.raises(ValueError):
        parse_model_ref("gpt@")


def test_what_if_arithmetic(stats):
    book = PerMillionBook()
    result = reprice(stats, "gpt-4o-mini@openai", book)

    # Repriced: gpt-4o (2 calls, one an error without usage), claude (1), gpt-4o-mini (1).
    # Left out: mystery-model (unpriced) and the embedding model.
    # gpt-4o: average (1000 in, 250 out) * 2 calls = 2 * (0.001 + 0.001) = 0.004
    # claude: 3000 in, 1000 out = 0.003 + 0.004 = 0.007; gpt-4o-mini: 0.001 + 0.0008 = 0.0018
    assert result.cost_usd == pytest.approx(0.0128, abs=1e-15)
    assert result.baseline_usd == pytest.approx(0.03427, abs=1e-15)
    assert (result.calls, result.excluded_calls, result.provider) == (4, 2, "openai")
    assert result.change_pct == pytest.approx((0.0128 - 0.03427) / 0.03427 * 100)
    assert result.sentence() == (
        "The same usage on gpt-4o-mini (openai) would cost $0.0128 instead of $0.03427: 63 % less on gpt-4o-mini, "
        "168 % more on the current models, over 4 calls; 2 calls left out.")
    assert result.current_change_pct == pytest.approx((0.03427 - 0.0128) / 0.0128 * 100)
    assert {(provider, model) for provider, model, _usage in book.calls} == {("openai", "gpt-4o-mini")}
    gpt4o_usage = next(u for _p, _m, u in book.calls if u.input_tokens == 1000 and u.output_tokens == 250)
    assert gpt4o_usage.cache_read_tokens == 512  # 1024 over 2 calls


def test_what_if_more_expensive_and_in_every_format(stats):
    class Expensive:
        def cost(self, provider, model, usage):
            return (usage.input_tokens + usage.output_tokens) * 1e-5

    text = render_report(stats, "text", what_if=["big-model"], price_book=Expensive())
    # 2 * 1250 + 4000 + 1200 = 7700 tokens * 1e-5 = $0.077 against $0.03427
    assert "The same usage on big-model would cost $0.077 instead of $0.03427: 125 % more on big-model, " \
           "55 % less on the current models, over 4 calls; 2 calls left out." in text.splitlines()
    markdown = render_report(stats, "markdown", what_if=["big-model"], price_book=Expensive())
    assert "## What if" in markdown
    data = json.loads(render_report(stats, "json", what_if=["big-model"], price_book=Expensive()))
    assert data["what_if"][0]["cost_usd"] == pytest.approx(0.077)
    assert data["what_if"][0]["change_pct"] == pytest.approx((0.077 - 0.03427) / 0.03427 * 100)
    assert data["what_if"][0]["current_change_pct"] == pytest.approx((0.03427 - 0.077) / 0.077 * 100)


def test_what_if_unknown_price(stats):
    result = reprice(stats, "nobody-knows", PerMillionBook())
    assert result.cost_usd is None and result.change_pct is None
    assert result.sentence() == "nobody-knows: no known price, cannot reprice."


def test_what_if_embedding_target_reprices_only_embeddings(stats):
    result = reprice(stats, "text-embedding-3-large", PerMillionBook(known=("text-embedding-3-large",)))
    assert (result.calls, result.excluded_calls) == (1, 5)
    assert result.cost_usd == pytest.approx(0.0005)
    assert result.baseline_usd == pytest.approx(0.00001)


def test_what_if_prices_exact_totals_not_rounded_averages():
    """Three calls of 1, 1 and 2 output tokens: a rounded average (1) priced 3 calls at 3 tokens."""
    class PerToken:
        def cost(self, provider, model, usage):
            return usage.output_tokens * 1.0

    records = [call("a", "m", "openai", 0, out, 0.001, T0 + i) for i, out in enumerate((1, 1, 2))]
    result = reprice(stats_from_usage_lines(lines_from_records(records)), "x", PerToken())
    assert result.cost_usd == pytest.approx(4.0)


def test_what_if_both_ways_as_the_issue_asks():
    result = WhatIf(model="gpt-4o", provider=None, cost_usd=0.00109, baseline_usd=0.00043, calls=4, excluded_calls=0)
    assert result.sentence() == ("The same usage on gpt-4o would cost $0.00109 instead of $0.00043: 153 % more on "
                                 "gpt-4o, 61 % less on the current models, over 4 calls.")


def test_what_if_prices_the_average_call_not_the_total():
    class CliffBook:
        """Doubles every rate once a request has more than 200k input tokens."""

        def cost(self, provider, model, usage):
            rate = 2e-6 if usage.input_tokens > 200_000 else 1e-6
            return usage.input_tokens * rate

    records = [call("a", "m", "openai", 150_000, 0, 0.15, T0 + i) for i in range(4)]
    result = reprice(stats_from_usage_lines(lines_from_records(records)), "cliff", CliffBook())
    assert result.cost_usd == pytest.approx(0.6)  # 4 * 150k at the base rate, not 600k at the doubled one


def test_real_price_book(stats):
    if importlib.util.find_spec("otel_tokens._internal.pricing.book") is None:
        pytest.skip("otel_tokens._internal.pricing.book is not there yet")
    from otel_tokens._internal.pricing.book import PriceBook

    book = PriceBook()
    result = reprice(stats, "gpt-4o-mini@openai", book)
    expected = (
        2 * book.cost("openai", "gpt-4o-mini", Usage(input_tokens=1000, output_tokens=250, cache_read_tokens=512))
        + book.cost("openai", "gpt-4o-mini", Usage(input_tokens=3000, output_tokens=1000, cache_write_tokens=2048,
                                                   reasoning_tokens=300))
        + book.cost("openai", "gpt-4o-mini", Usage(input_tokens=1000, output_tokens=200))
    )
    assert result.cost_usd == pytest.approx(expected, rel=1e-12)
    assert result.cost_usd < result.baseline_usd
    # the default price book is built lazily when none is given
    text = render_report(stats, "text", what_if=["gpt-4o-mini@openai"])
    assert f"would cost {format_usd(expected)}" in text


# -- one money rule, no float noise (issue 7) ------------------------------------------------------
@pytest.mark.parametrize(("value", "text"), [
    (0.018, "$0.018"), (0.0087, "$0.0087"), (0.00020800000000000001, "$0.000208"), (1.875, "$1.875"),
    (12.3456, "$12.35"), (0.99996, "$1.00"), (0.0099996, "$0.01"), (2.5, "$2.50"), (150.0, "$150.00"),
    (0.02396123, "$0.02396"), (1_000_000.0, "$1,000,000.00"), (-0.0087, "-$0.0087"), (math.nan, "n/a"),
    (-math.inf, "n/a"), (7, "$7.00"), (True, "n/a"), ("0.5", "n/a"), (5e-07, "<$0.000001"),
])
def test_format_usd_one_rule(value, text):
    assert format_usd(value) == text


def test_format_usd_is_the_one_in_formatting():
    from otel_tokens._internal.base import formatting

    assert format_usd is formatting.format_usd


def test_budget_error_message_uses_format_usd():
    from otel_tokens import BudgetExceededError

    error = BudgetExceededError("editor", 0.0041999999999999997, 0.005, 0.00020800000000000001)
    assert str(error) == ("budget for agent 'editor' would be exceeded: spent $0.0042 + projected $0.000208 > "
                          "limit $0.005; the call was not sent")


def noisy_stats():
    # 0.1 + 0.2 cents, as float sums give them: 0.0030000000000000005 and friends.
    records = [call("a", "m", "openai", 100, 10, cost, T0 + i) for i, cost in enumerate([0.001, 0.002] * 3)]
    stats = stats_from_usage_lines(lines_from_records(records))
    assert stats["total_cost_usd"] != round(stats["total_cost_usd"], 12)  # the noise is there to remove
    return stats


def test_json_report_is_strict_and_without_float_noise():
    stats = noisy_stats()
    stats["budgets"] = {"zero": {"limit_usd": 0.0, "spent_usd": 0.009, "utilization": math.inf,
                                 "status": "exceeded", "window": "lifetime", "action": "warn", "blocked_calls": 0},
                        "odd": {"limit_usd": 1.0, "spent_usd": math.nan, "utilization": math.nan,
                                "status": "ok", "window": "lifetime", "action": "warn", "blocked_calls": 0}}
    text = render_report(stats, "json")
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))
    assert data["summary"]["cost_usd"] == 0.009
    assert data["groups"]["agent"][0]["cost_usd"] == 0.009
    assert [b["utilization"] for b in data["budgets"]] == [None, None]
    assert "0000000" not in text  # no 0.00900000000000001


def test_csv_report_is_exact_to_twelve_places_without_noise():
    rows = list(csv.DictReader(io.StringIO(render_report(noisy_stats(), "csv"))))
    assert rows[0]["cost_usd"] == "0.009"
    tiny = stats_from_usage_lines(lines_from_records([call("a", "m", "openai", 1, 0, 1.5e-11, T0)]))
    (total, *_groups) = csv.DictReader(io.StringIO(render_report(tiny, "csv")))
    assert total["cost_usd"] == "0.000000000015"  # no exponent, nothing lost above 1e-12


def test_text_and_markdown_show_the_same_amounts():
    stats = noisy_stats()
    for fmt in ("text", "markdown"):
        assert "$0.009" in render_report(stats, fmt)
