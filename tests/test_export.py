"""otel-tokens export: one row per call of a usage log, as spreadsheet-ready CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json

import pytest

from otel_tokens._internal.accounting.export import COLUMNS, render_export
from otel_tokens._internal.commands.cli import main
from tests.test_analytics import LOG, line


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "usage.jsonl"
    rows = [*LOG, line(440, "=HYPERLINK(\"x\")", "gpt-4o", "openai", 7, 3, 2.5e-07, 1.75e-07, 7.5e-08, 0.25)]
    path.write_text("".join(json.dumps(item) + "\n" for item in rows) + "not a line\n")
    return path


def test_csv_opens_in_a_spreadsheet_as_is(log_path, tmp_path, capsys):
    out = tmp_path / "calls.csv"
    assert main(["export", str(log_path), "--format", "csv", "--output", str(out)]) == 0
    assert "skipped 1 corrupted line(s)" in capsys.readouterr().err
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheets read the file as UTF-8
    assert b"\r\n" in data
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 11
    first = rows[0]
    assert first["time_utc"] == "2026-11-18 07:07:40.000000"
    assert (first["agent"], first["model"], first["provider"], first["workflow"]) == ("writer", "gpt-4o", "openai",
                                                                                      "report")
    assert (first["input_tokens"], first["output_tokens"], first["total_tokens"]) == ("1000", "200", "1200")
    assert (first["cost_usd"], first["input_cost_usd"], first["output_cost_usd"]) == ("0.0045", "0.0025", "0.002")
    assert (first["cost_source"], first["estimated"], first["tool_calls"], first["duration_s"]) == (
        "local", "FALSE", "1", "2")
    failed = rows[7]
    assert (failed["input_tokens"], failed["cost_usd"], failed["error"]) == ("", "", "RateLimitError")
    tiny = rows[10]
    assert tiny["cost_usd"] == "0.00000025"  # never 2.5e-07
    assert tiny["agent"] == "'=HYPERLINK(\"x\")"  # never run as a formula


def test_jsonl_keeps_exact_values(log_path, capsys):
    assert main(["export", str(log_path), "--format", "jsonl"]) == 0
    rows = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert len(rows) == 11
    assert list(rows[0]) == list(COLUMNS)
    assert rows[3]["cache_read_tokens"] == 120 and rows[3]["cost_usd"] == 0.02
    assert rows[7]["total_tokens"] is None and rows[7]["error"] == "RateLimitError"
    assert rows[10]["cost_usd"] == 2.5e-07


def test_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.jsonl")]) == 2
    assert "usage log not found" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.jsonl"), "--format", "xlsx"]) == 2
    with pytest.raises(ValueError, match="unknown export format"):
        render_export([], "xml")


def test_html_report_command(log_path, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(log_path), "--format", "html", "--output", str(out), "--budgets", "writer=0.03"]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Chart.js v4" in page
    assert 'src="http' not in page and 'href="http' not in page  # self-contained: nothing to fetch
    data = json.loads(page.split('<script id="otel-tokens-statistics" type="application/json">')[1].split("</script>")[0])
    assert data["total_calls"] == 11
    assert data["budgets"]["writer"]["status"] == "warning"
    assert any(item["kind"] == "high_error_rate" for item in data["recommendations"])
