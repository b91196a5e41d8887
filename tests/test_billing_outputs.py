"""What a call's billing dimensions look like downstream: statistics (by_tier, tool fees, incomplete
costs), the usage log, the export and the report, from the ledger and from a usage log alike."""

from __future__ import annotations

import json

import pytest

from otel_tokens._internal.accounting.export import COLUMNS, render_export
from otel_tokens._internal.accounting.ledger import Ledger
from otel_tokens._internal.accounting.usage_log import parse_line, record_to_line
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, make_usage
from otel_tokens._internal.outputs.report import render_report, stats_from_usage_lines

END = 1_763_449_600.25


def record(tier: str | None, cost: float, *, fees: float = 0.0, searches: int = 0, unpriced: tuple = ()) -> CallRecord:
    usage = make_usage(
        1000, 100, details={"web_searches": searches} if searches else None, service_tier=tier,
        price_context=(("service_tier", tier),) if tier not in (None, "default") else (),
    )  # fmt: skip
    return CallRecord(
        request=Request(provider="openai", operation="chat", model="gpt-5"),
        result=Result(usage=usage, response_model="gpt-5-2025-08-07"),
        labels=Labels(agent="planner"),
        duration_s=0.5,
        end_time_unix=END,
        cost_usd=cost,
        cost_source="local",
        input_cost_usd=cost - 0.001,
        output_cost_usd=0.001,
        tool_fee_usd=fees,
        unpriced_dimensions=unpriced,
    )


RECORDS = [
    record("flex", 0.002),
    record("flex", 0.003, fees=0.02, searches=2),
    record("priority", 0.010, unpriced=("service_tier",)),
    record(None, 0.004),
]


def check_statistics(stats: dict) -> None:
    assert set(stats["by_tier"]) == {"flex", "priority", "(none)"}
    assert stats["by_tier"]["flex"]["calls"] == 2
    assert stats["by_tier"]["flex"]["cost_usd"] == pytest.approx(0.005)
    assert stats["by_tier"]["flex"]["tool_fee_usd"] == pytest.approx(0.02)
    assert stats["by_tier"]["priority"]["cost_incomplete_calls"] == 1
    assert stats["tool_fee_usd"] == pytest.approx(0.02)
    assert stats["server_tool_calls"] == 2
    assert stats["cost_incomplete_calls"] == 1
    assert stats["total_cost_usd"] == pytest.approx(0.019)


def test_ledger_counts_tiers_tool_fees_and_incomplete_costs() -> None:
    ledger = Ledger()
    for call in RECORDS:
        ledger.record(call)
    check_statistics(ledger.statistics())


def test_usage_log_lines_carry_the_billing_dimensions_and_read_back_the_same() -> None:
    lines = [record_to_line(call) for call in RECORDS]
    second = json.loads(lines[1])
    assert second["tier"] == "flex"
    assert second["tool_fee_usd"] == 0.02
    assert second["server_tool_calls"] == 2
    assert json.loads(lines[2])["unpriced_dimensions"] == ["service_tier"]
    parsed = [parse_line(line) for line in lines]
    assert all(line is not None for line in parsed)
    check_statistics(stats_from_usage_lines(parsed))  # type: ignore[arg-type]
    # A line written before these keys existed still reads.
    old = json.loads(lines[0])
    for key in ("tier", "tool_fee_usd", "server_tool_calls", "unpriced_dimensions"):
        del old[key]
    assert parse_line(json.dumps(old)) is not None


def test_export_has_tier_fee_and_unpriced_columns() -> None:
    assert COLUMNS[-4:] == ("tier", "tool_fee_usd", "server_tool_calls", "unpriced_dimensions")
    parsed = [parse_line(record_to_line(call)) for call in RECORDS]
    rows = [json.loads(line) for line in render_export(parsed, "jsonl").splitlines()]  # type: ignore[arg-type]
    assert [row["tier"] for row in rows] == ["flex", "flex", "priority", None]
    assert rows[1]["tool_fee_usd"] == 0.02 and rows[1]["server_tool_calls"] == 2
    assert rows[2]["unpriced_dimensions"] == "service_tier"
    csv_text = render_export(parsed, "csv")  # type: ignore[arg-type]
    assert "tier,tool_fee_usd,server_tool_calls,unpriced_dimensions" in csv_text
    assert ",flex,0.02,2," in csv_text


def test_report_has_tier_and_tool_fee_lines() -> None:
    ledger = Ledger()
    for call in RECORDS:
        ledger.record(call)
    text = render_report(ledger.statistics(), "text")
    billing = next(line for line in text.splitlines() if "Billing" in line)
    assert "by service tier: priority" in billing and "flex" in billing
    assert "server-tool fees" in billing and "2 web/file searches" in billing
    assert "1 call with a billing dimension no price covers" in billing
    by_tier = render_report(ledger.statistics(), "text", by="tier")
    assert "By service tier" in by_tier
