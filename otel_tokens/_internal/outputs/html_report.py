"""The HTML report: one self-contained page (Chart.js inlined, no CDN) drawn from the statistics dict.

The same page is the live page of ``otel-tokens serve``: there it also fetches ``/api/statistics`` every
few seconds and updates its charts in place. The page builds every chart from the statistics, so the
static file and the live page cannot disagree. Names (agents, models) reach the page only as text
nodes or canvas labels, never as HTML. The statistics carry no prompt or completion text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, Final

CHART_JS: Final = "chart.umd.min.js"


@cache
def _asset(name: str) -> str:
    return resources.files("otel_tokens").joinpath("_data", name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "</" or "<!--" can end or confuse it."""
    from otel_tokens._internal.base.formatting import machine_values

    text = json.dumps(machine_values(value), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(
    stats: Mapping[str, Any],
    *,
    what_if: Sequence[str] = (),
    title: str = "otel-tokens usage report",
    live_interval_s: float | None = None,
) -> str:
    """The page for ``stats``; with ``live_interval_s`` it refreshes from ``/api/statistics``."""
    config = {"live": live_interval_s is not None, "interval_ms": int((live_interval_s or 0) * 1000),
              "what_if": list(what_if)}
    values = {"title": _escape(title), "chart_js": _asset(CHART_JS), "stats": _script_json(stats),
              "config": _script_json(config)}
    # One pass over the template, so nothing substituted (an agent named "{{config}}") is read again.
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], _PAGE)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<meta name="referrer" content="no-referrer">
<title>{{title}}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px; color: #222; }
  h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 0 0 8px; }
  .muted { color: #666; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 8px; margin: 12px 0; }
  .card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
  .card .value { font-size: 18px; font-weight: 600; } .card .label { color: #666; font-size: 12px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
  .panel { border: 1px solid #ddd; border-radius: 6px; padding: 10px; }
  .panel .chart { position: relative; height: 260px; }
  .note { color: #666; font-style: italic; }
  ul.recommendations li { margin-bottom: 4px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { border-bottom: 1px solid #eee; padding: 3px 6px; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
</style>
</head>
<body>
<h1>{{title}}</h1>
<div class="muted" id="period"></div>
<div class="cards" id="cards"></div>
<div class="panel"><h2>Recommendations</h2><ul class="recommendations" id="recommendations"></ul></div>
<div class="grid" style="margin-top:16px">
  <div class="panel"><h2>Spend over time, by agent</h2><div class="chart"><canvas id="chart-timeline"></canvas></div></div>
  <div class="panel"><h2>Spend by model</h2><div class="chart"><canvas id="chart-model"></canvas></div></div>
  <div class="panel"><h2>Spend by provider</h2><div class="chart"><canvas id="chart-provider"></canvas></div></div>
  <div class="panel"><h2>Tokens by type</h2><div class="chart"><canvas id="chart-tokens"></canvas></div></div>
  <div class="panel"><h2>Budget utilisation</h2><div class="chart"><canvas id="chart-budgets"></canvas></div></div>
  <div class="panel"><h2>Cost per 1K tokens, by model</h2><div class="chart"><canvas id="chart-cost-per-1k"></canvas></div></div>
</div>
<div class="panel" style="margin-top:16px"><h2>Efficiency by agent</h2><table id="agents"></table></div>
<p class="muted" id="footer"></p>
<script>{{chart_js}}</script>
<script id="otel-tokens-statistics" type="application/json">{{stats}}</script>
<script id="otel-tokens-config" type="application/json">{{config}}</script>
<script>
"use strict";
(function () {
  var COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                "#9c755f", "#bab0ac"];
  var config = JSON.parse(document.getElementById("otel-tokens-config").textContent);
  var charts = {};
  window.otelTokens = {charts: charts, updates: 0, stats: null, usd: usd};
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  // As formatting.format_usd: four significant digits, never fewer than cents, zeros past the cents dropped.
  function usd(value) {
    if (value === null || value === undefined || !isFinite(value)) return "n/a";
    var amount = Math.abs(value), sign = value < 0 ? "-" : "";
    if (amount === 0) return "$0.00";
    if (amount < 0.000001) return sign + "<$0.000001";
    var decimals = Math.max(2, 3 - Math.floor(Math.log10(amount)));
    var parts = amount.toLocaleString("en-US", {minimumFractionDigits: decimals, maximumFractionDigits: decimals})
      .split(".");
    var fraction = parts[1].slice(0, 2) + parts[1].slice(2).replace(/0+$/, "");
    return sign + "$" + parts[0] + "." + fraction;
  }
  function num(value, digits) {
    if (value === null || value === undefined || !isFinite(value)) return "n/a";
    return Number(value).toLocaleString("en-US", {maximumFractionDigits: digits || 0});
  }
  function pct(value) { return value === null || value === undefined ? "n/a" : (value * 100).toFixed(1) + " %"; }
  function color(i) { return COLORS[i % COLORS.length]; }
  function byCost(table) {
    return Object.keys(table || {}).map(function (name) { return [name, table[name]]; })
      .sort(function (a, b) { return (b[1].cost_usd || 0) - (a[1].cost_usd || 0) || (a[0] < b[0] ? -1 : 1); });
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function text(tag, content, cls) {
    var node = document.createElement(tag); node.textContent = content; if (cls) node.className = cls; return node;
  }

  function timelineData(stats) {
    var timeline = stats.timeline || {}, agents = timeline.agents || {}, names = Object.keys(agents).sort();
    var length = names.length ? agents[names[0]].cost_usd.length : 0, labels = [];
    var withDate = length * (timeline.bucket_s || 0) > 86400;
    for (var i = 0; i < length; i++) {
      var iso = new Date((timeline.start + i * timeline.bucket_s) * 1000).toISOString();
      labels.push(withDate ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 19));
    }
    return {labels: labels, datasets: names.map(function (name, i) {
      return {label: name, data: agents[name].cost_usd, backgroundColor: color(i), stack: "spend"};
    })};
  }
  function spendData(table) {
    var rows = byCost(table);
    return {labels: rows.map(function (r) { return r[0]; }),
            datasets: [{label: "USD", data: rows.map(function (r) { return r[1].cost_usd || 0; }),
                        backgroundColor: rows.map(function (r, i) { return color(i); })}]};
  }
  function tokenData(stats) {
    var uncached = (stats.input_tokens || 0) - (stats.cache_read_tokens || 0) - (stats.cache_write_tokens || 0);
    var visible = (stats.output_tokens || 0) - (stats.reasoning_tokens || 0);
    return {labels: ["uncached input", "cache read", "cache write", "output (visible)", "reasoning"],
            datasets: [{label: "tokens", data: [Math.max(uncached, 0), stats.cache_read_tokens || 0,
                        stats.cache_write_tokens || 0, Math.max(visible, 0), stats.reasoning_tokens || 0],
                        backgroundColor: [color(0), color(3), color(5), color(1), color(6)]}]};
  }
  function budgetData(stats) {
    var budgets = stats.budgets || {}, names = Object.keys(budgets).sort();
    var used = names.map(function (n) { var u = budgets[n].utilization; return u === null ? 100 : u * 100; });
    return {labels: names, datasets: [
      {type: "bar", label: "used %", data: used, order: 2,
       backgroundColor: used.map(function (u) { return u >= 100 ? "#e15759" : u >= 90 ? "#f28e2b" : "#59a14f"; })},
      {type: "line", label: "90 % (warning)", data: names.map(function () { return 90; }), order: 1,
       borderColor: "#f28e2b", borderDash: [6, 4], pointRadius: 0, fill: false},
      {type: "line", label: "100 % (limit)", data: names.map(function () { return 100; }), order: 0,
       borderColor: "#e15759", pointRadius: 0, fill: false}]};
  }
  function costPer1kData(stats) {
    var rows = byCost(stats.by_model).filter(function (r) { return r[1].cost_per_1k_tokens_usd !== null &&
                                                                  r[1].cost_per_1k_tokens_usd !== undefined; });
    rows.sort(function (a, b) { return b[1].cost_per_1k_tokens_usd - a[1].cost_per_1k_tokens_usd; });
    return {labels: rows.map(function (r) { return r[0]; }),
            datasets: [{label: "USD per 1K tokens", data: rows.map(function (r) { return r[1].cost_per_1k_tokens_usd; }),
                        backgroundColor: rows.map(function (r, i) { return color(i); })}]};
  }

  var moneyAxis = {beginAtZero: true, ticks: {callback: function (v) { return usd(v); }}};
  var SPECS = {
    "timeline": {type: "bar", data: timelineData, options: {scales: {x: {stacked: true}, y: Object.assign({stacked: true}, moneyAxis)}}},
    "model": {type: "bar", data: function (s) { return spendData(s.by_model); },
              options: {indexAxis: "y", plugins: {legend: {display: false}}, scales: {x: moneyAxis}}},
    "provider": {type: "doughnut", data: function (s) { return spendData(s.by_provider); }, options: {}},
    "tokens": {type: "bar", data: tokenData, options: {plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true}}}},
    "budgets": {type: "bar", data: budgetData,
                options: {scales: {y: {beginAtZero: true, suggestedMax: 110, ticks: {callback: function (v) { return v + " %"; }}}}}},
    "cost-per-1k": {type: "bar", data: costPer1kData,
                    options: {indexAxis: "y", plugins: {legend: {display: false}}, scales: {x: moneyAxis}}}
  };

  function drawCharts(stats) {
    Object.keys(SPECS).forEach(function (name) {
      var spec = SPECS[name], data = spec.data(stats), canvas = document.getElementById("chart-" + name);
      var empty = !data.labels.length;
      var holder = canvas.parentNode, note = holder.querySelector(".note");
      if (empty && !note) { holder.appendChild(text("p", name === "budgets" ? "No budgets set." : "No data yet.", "note")); }
      if (!empty && note) { holder.removeChild(note); }
      canvas.style.display = empty ? "none" : "";
      if (charts[name]) {
        charts[name].data = data;
        charts[name].update();
      } else if (!empty) {
        charts[name] = new Chart(canvas, {type: spec.type, data: data, options: spec.options});
      }
    });
  }

  function card(label, value) {
    var node = document.createElement("div"); node.className = "card";
    node.appendChild(text("div", value, "value")); node.appendChild(text("div", label, "label"));
    return node;
  }
  function drawText(stats) {
    var cards = document.getElementById("cards"); clear(cards);
    [["calls", num(stats.total_calls)], ["cost", usd(stats.total_cost_usd)], ["tokens", num(stats.total_tokens)],
     ["avg cost per call", usd(stats.avg_cost_per_call_usd)], ["cost per 1K tokens", usd(stats.cost_per_1k_tokens_usd)],
     ["output tokens/s", num(stats.output_tokens_per_second, 1)], ["tool calls", num(stats.tool_calls)],
     ["error rate", pct(stats.error_rate)], ["cost per minute", usd(stats.cost_per_minute_usd)],
     ["projected monthly (at this pace)", usd(stats.projected_monthly_usd)]]
      .concat(stats.server_tool_calls ? [["server-tool fees (" + num(stats.server_tool_calls) + " searches)",
                                          usd(stats.tool_fee_usd)]] : [])
      .concat(stats.cost_incomplete_calls ? [["calls with an unpriced billing dimension",
                                              num(stats.cost_incomplete_calls)]] : [])
      .concat(Object.keys(stats.by_tier || {}).filter(function (tier) { return tier !== "(none)"; }).sort()
        .map(function (tier) { return ["cost at tier " + tier, usd(stats.by_tier[tier].cost_usd)]; }))
      .forEach(function (pair) { cards.appendChild(card(pair[0], pair[1])); });
    var period = document.getElementById("period");
    period.textContent = stats.first_call_time ? "From " + new Date(stats.first_call_time * 1000).toISOString() +
      " to " + new Date(stats.last_call_time * 1000).toISOString() + " (" + num(stats.period_s, 1) + " s)" : "No calls yet.";
    var list = document.getElementById("recommendations"); clear(list);
    var items = (stats.recommendations || []).map(function (r) { return r.text; }).concat(config.what_if || []);
    if (!items.length) list.appendChild(text("li", "Nothing to recommend yet.", "note"));
    items.forEach(function (line) { list.appendChild(text("li", line)); });
    var table = document.getElementById("agents"); clear(table);
    var head = document.createElement("tr");
    ["agent", "calls", "cost", "avg/call", "per 1K tokens", "avg tokens", "output tok/s", "avg duration",
     "input cost", "output cost", "tool calls", "error rate"].forEach(function (h) { head.appendChild(text("th", h)); });
    table.appendChild(head);
    byCost(stats.by_agent).forEach(function (row) {
      var e = row[1], tr = document.createElement("tr");
      [row[0], num(e.calls), usd(e.cost_usd), usd(e.avg_cost_per_call_usd), usd(e.cost_per_1k_tokens_usd),
       num(e.avg_tokens_per_call, 1), num(e.output_tokens_per_second, 1),
       e.avg_duration_s === null ? "n/a" : num(e.avg_duration_s, 3) + " s", usd(e.input_cost_usd),
       usd(e.output_cost_usd), num(e.tool_calls), pct(e.error_rate)].forEach(function (c) { tr.appendChild(text("td", c)); });
      table.appendChild(tr);
    });
    document.getElementById("footer").textContent = (config.live ? "Live: refreshes every " +
      (config.interval_ms / 1000) + " s. " : "") + "Generated by otel-tokens; charts by Chart.js.";
  }

  function draw(stats) {
    window.otelTokens.stats = stats;
    drawText(stats);
    drawCharts(stats);
    window.otelTokens.updates += 1;
    document.body.setAttribute("data-updates", String(window.otelTokens.updates));
  }

  draw(JSON.parse(document.getElementById("otel-tokens-statistics").textContent));
  if (config.live) {
    // A live page opened with ?token= passes it on (the server may require one).
    var token = new URLSearchParams(location.search).get("token");
    setInterval(function () {
      fetch("api/statistics", {cache: "no-store", headers: token ? {"Authorization": "Bearer " + token} : {}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (stats) { if (stats) draw(stats); })
        .catch(function () { document.getElementById("footer").textContent = "Live: the server is not answering."; });
    }, config.interval_ms);
  }
})();
</script>
</body>
</html>
"""

__all__ = ["render_html"]
