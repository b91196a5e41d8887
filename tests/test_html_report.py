"""The HTML report and the live page, opened in headless Chromium: no console errors, every chart drawn,
a screenshot kept; the live page's charts change after more calls; its API and its limits."""

from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import otel_tokens
from otel_tokens._internal.accounting.usage_log import read_usage_log
from otel_tokens._internal.base.formatting import format_usd
from otel_tokens._internal.outputs.report import render_report, stats_from_usage_lines
from otel_tokens._internal.outputs.serve import LiveServer, serve_usage_log
from tests.browser import Browser, chromium_binary
from tests.providers.openai_mock import OpenAIMock
from tests.test_analytics import LOG, RatesBook, line

CHARTS = ("timeline", "model", "provider", "tokens", "budgets", "cost-per-1k")
# Screenshots are kept here for a person (or CI) to look at.
ARTIFACTS = Path(os.environ.get("OTEL_TOKENS_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))

needs_chromium = pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")

# Per chart: [name, canvas width, height, painted pixels].
DRAWN = """Object.entries(window.otelTokens.charts).map(([name, chart]) => {
  const canvas = chart.canvas, data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i]) painted++;
  return [name, canvas.width, canvas.height, painted];
})"""


@pytest.fixture
def browser(tmp_path):
    browser = Browser(tmp_path / "chromium-profile")
    yield browser
    browser.close()


def _assert_every_chart_drawn(page, expected=CHARTS):
    drawn = {name: (width, height, painted) for name, width, height, painted in page.evaluate(DRAWN)}
    assert set(drawn) == set(expected), drawn
    for name, (width, height, painted) in drawn.items():
        assert width > 100 and height > 100, name
        assert painted > 1_000, (name, painted)  # bars, arcs and axes, not an empty canvas


def _keep(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = page.screenshot(ARTIFACTS / name)
    assert path.stat().st_size > 10_000
    assert path.read_bytes().startswith(b"\x89PNG")
    return path


def _log_stats(tmp_path, rows, budgets="writer=0.03,researcher=0.05,editor=1.00"):
    from otel_tokens._internal.budgets.manager import parse_budgets
    from otel_tokens._internal.outputs.report import budgets_from_usage_lines

    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = read_usage_log(path)[0]
    stats = stats_from_usage_lines(lines)
    stats["budgets"] = budgets_from_usage_lines(lines, parse_budgets(budgets))
    return stats


# -- the static report -------------------------------------------------------------------------------
@needs_chromium
def test_report_draws_every_chart_without_console_errors(browser, tmp_path):
    stats = _log_stats(tmp_path, LOG)
    page_path = tmp_path / "report.html"
    page_path.write_text(render_report(stats, "html", price_book=RatesBook()))
    page = browser.open(page_path.as_uri())
    try:
        assert page.errors() == []
        _assert_every_chart_drawn(page)
        # The charts show the log's numbers.
        assert page.evaluate("window.otelTokens.charts.model.data.labels") == [
            "claude-sonnet-4-6", "gpt-4o", "gpt-4o-mini", "mystery-model"]
        assert page.evaluate("window.otelTokens.charts.budgets.data.datasets[0].data") == pytest.approx(
            [0.0001 / 1.00 * 100, 0.063 / 0.05 * 100, 0.027 / 0.03 * 100])
        assert page.evaluate("window.otelTokens.charts.budgets.data.datasets.map(d => d.label)") == [
            "used %", "90 % (warning)", "100 % (limit)"]
        assert page.evaluate("window.otelTokens.charts.timeline.data.datasets.map(d => d.label)") == [
            "editor", "researcher", "writer"]
        # Amounts read as in the text report.
        amounts = [0, 0.027, 0.00162, 1234.5678, 2.5, 0.0087, 0.000208, 3e-8, -0.25, 0.063]
        assert page.evaluate(f"{amounts}.map(window.otelTokens.usd)") == [format_usd(a) for a in amounts]
        recommendations = page.evaluate(
            "Array.from(document.querySelectorAll('#recommendations li')).map(li => li.textContent)")
        assert "editor: 50 % of calls failed (2 of 4: RateLimitError x2)" in recommendations
        assert any(text.startswith("writer: 3 calls on gpt-4o averaging 400 output tokens") for text in recommendations)
        _keep(page, "html-report.png")
    finally:
        page.close()


def _big_log(calls=10_000):
    rows = []
    rng = random.Random(7)
    models = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4-6", "anthropic"),
              ("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash", "gcp.gemini")]
    for i in range(calls):
        model, provider = models[i % len(models)]
        tokens_in, tokens_out = rng.randint(200, 9_000), rng.randint(20, 900)
        cost = tokens_in * 1e-6 + tokens_out * 4e-6
        rows.append(line(i * 17.3, f"agent-{i % 25:02d}", model, provider, tokens_in, tokens_out, cost,
                         tokens_in * 1e-6, tokens_out * 4e-6, 1.0 + (i % 7) / 10, tool_calls=i % 3,
                         error="RateLimitError" if i % 97 == 0 else None))
        rows[-1]["workflow"], rows[-1]["task"], rows[-1]["user"] = f"wf-{i % 6}", f"task-{i % 40}", f"user-{i % 300}"
    return rows


@needs_chromium
def test_a_10k_call_log_makes_a_page_small_enough_to_email(browser, tmp_path):
    stats = _log_stats(tmp_path, _big_log(), budgets=",".join(f"agent-{i:02d}=0.5" for i in range(25)))
    assert stats["total_calls"] == 10_000
    page_path = tmp_path / "report.html"
    page_path.write_text(render_report(stats, "html", price_book=RatesBook()))
    assert page_path.stat().st_size < 1_000_000, page_path.stat().st_size
    page = browser.open(page_path.as_uri())
    try:
        assert page.errors() == []
        _assert_every_chart_drawn(page)
        assert page.evaluate("window.otelTokens.charts.timeline.data.labels.length") <= 120  # bounded buckets
        _keep(page, "html-report-10k.png")
    finally:
        page.close()


def test_names_are_text_never_markup(tmp_path):
    rows = [line(60, "</script><img src=x onerror=alert(1)>", "gpt-4o", "openai", 10, 5, 1e-5, 6e-6, 4e-6, 1.0)]
    page = render_report(_log_stats(tmp_path, rows, budgets="x=1"), "html")
    assert "</script><img" not in page
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in page


# -- the live page -----------------------------------------------------------------------------------
def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type"), response.read().decode("utf-8")


def _call(agent, model="gpt-4o", output_tokens=333):
    otel_tokens.record_usage(model=model, provider="openai", input_tokens=2_417, output_tokens=output_tokens,
                             duration_s=1.25, agent=agent, tool_calls=1)


@needs_chromium
def test_live_page_charts_change_after_more_calls(instrumented, browser):
    otel_tokens.set_budget("planner", limit_usd=0.05)
    for _ in range(3):
        _call("planner")
    server = otel_tokens.serve(port=0, interval_s=0.3)
    try:
        assert server.host == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
        page = browser.open(server.url)
        try:
            assert page.errors() == []
            _assert_every_chart_drawn(page)
            before = page.evaluate("window.otelTokens.charts.model.canvas.toDataURL()")
            assert page.evaluate("window.otelTokens.charts.model.data.labels") == ["gpt-4o"]
            updates = page.evaluate("window.otelTokens.updates")

            for _ in range(4):
                _call("writer", model="gpt-4o-mini", output_tokens=1_201)
            page.wait_until("window.otelTokens.stats.total_calls === 7", timeout=20)
            page.wait_until(f"window.otelTokens.updates > {updates}")
            assert page.evaluate("window.otelTokens.charts.model.data.labels") == ["gpt-4o", "gpt-4o-mini"]
            assert page.evaluate("window.otelTokens.charts.timeline.data.datasets.map(d => d.label)") == [
                "planner", "writer"]
            assert page.evaluate("window.otelTokens.charts.model.canvas.toDataURL()") != before
            assert page.errors() == []
            _assert_every_chart_drawn(page)
            _keep(page, "live-page.png")
        finally:
            page.close()
    finally:
        server.close()


def test_live_api_answers_statistics_and_reports_without_prompt_text(instrumented):
    client = OpenAIMock().client()
    with otel_tokens.agent("support"):
        client.chat.completions.create(model="gpt-4o",
                                       messages=[{"role": "user", "content": "SECRET-PROMPT-TEXT 4242"}])
    with otel_tokens.serve(port=0) as server:
        status, kind, body = _get(server.url + "api/statistics")
        assert (status, kind) == (200, "application/json")
        statistics = json.loads(body)
        assert statistics["by_agent"]["support"]["input_tokens"] == 1250
        assert statistics["by_agent"]["support"]["avg_cost_per_call_usd"] == pytest.approx(
            otel_tokens.get_statistics()["by_agent"]["support"]["cost_usd"])
        assert "recommendations" in statistics and "timeline" in statistics

        pages = {fmt: _get(f"{server.url}api/report?format={fmt}") for fmt in ("text", "markdown", "json", "csv", "html")}
        assert pages["json"][1] == "application/json" and json.loads(pages["json"][2])["summary"]["calls"] == 1
        assert pages["csv"][1].startswith("text/csv") and pages["html"][1].startswith("text/html")
        assert "Efficiency by agent" in pages["text"][2]
        assert "## By agent" not in _get(f"{server.url}api/report?format=markdown&by=model")[2]
        page = _get(server.url)[2]
        for text in [body, page, *(answer[2] for answer in pages.values())]:
            assert "SECRET-PROMPT-TEXT" not in text
            assert "sk-test-SECRET" not in text

        for path, code in (("api/report?format=yaml", 400), ("api/report?by=colour", 400), ("nope", 404)):
            with pytest.raises(urllib.error.HTTPError) as raised:
                _get(server.url + path)
            assert raised.value.code == code
        request = urllib.request.Request(server.url + "api/statistics", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        assert raised.value.code == 405


def test_serve_arguments_port_in_use_and_close(instrumented):
    for bad in (-1, 70_000, "8080", True, 1.5):
        with pytest.raises(ValueError, match="port must be an integer"):
            otel_tokens.serve(port=bad)
    with pytest.raises(ValueError, match="interval_s"):
        otel_tokens.serve(port=0, interval_s=0)
    with pytest.raises(ValueError, match="host"):
        otel_tokens.serve(port=0, host="")
    server = otel_tokens.serve(port=0)
    try:
        with pytest.raises(OSError, match=f"cannot serve on 127.0.0.1:{server.port}"):
            otel_tokens.serve(port=server.port)
        bound = server._server.socket.getsockname()
        assert bound[0] == "127.0.0.1"  # loopback unless told otherwise
    finally:
        server.close()
    server.close()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    assert "closed" in repr(server)


def test_nothing_is_served_unless_started(instrumented):
    import threading

    otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=1, output_tokens=1)
    assert not [thread for thread in threading.enumerate() if thread.name == "otel-tokens-serve"]


def test_serving_a_usage_log_follows_appends(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in LOG[:3]))
    with serve_usage_log(str(path), port=0, price_book=RatesBook()) as server:
        assert json.loads(_get(server.url + "api/statistics")[2])["total_calls"] == 3
        with path.open("a") as handle:
            for row in LOG[3:]:
                handle.write(json.dumps(row) + "\n")
        os.utime(path, (time.time() + 5, time.time() + 5))  # a new modification time even on coarse clocks
        statistics = json.loads(_get(server.url + "api/statistics")[2])
        assert statistics["total_calls"] == 10
        assert any(item["kind"] == "high_error_rate" for item in statistics["recommendations"])


def test_serve_command_errors(tmp_path, capsys, monkeypatch):
    from otel_tokens._internal.commands.cli import main

    monkeypatch.delenv("OTEL_TOKENS_LOG", raising=False)
    assert main(["serve"]) == 2
    assert "serve needs a usage log" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.jsonl")]) == 2
    assert "usage log not found" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "99999"]) == 2
    holder = LiveServer(lambda: ({}, None), port=0)
    try:
        log = tmp_path / "usage.jsonl"
        log.write_text("")
        assert main(["serve", str(log), "--port", str(holder.port)]) == 2
        assert f"cannot serve on 127.0.0.1:{holder.port}" in capsys.readouterr().err
    finally:
        holder.close()

