"""Every Grafana panel query, variable query and annotation query runs against a live Prometheus fed
by the demo, and must return data: a panel that would show nothing fails.

Template variables are substituted the way Grafana would with "All" selected (`.*`), except the
service, which is the demo's job. Grafana's built-in intervals get fixed values.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import pytest

from .conftest import DEMO_JOB, REPO, Stack, wait_until

pytestmark = pytest.mark.stack

DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval_ms": "15000",
    "$__interval": "15s",
    "$__range_s": "300",
    "$__range_ms": "300000",
    "$__range": "5m",
    "$service": DEMO_JOB,
    "$provider": ".*",
    "$model": ".*",
    "$agent": ".*",
    "$window": ".*",
}
# How far back range queries look, like a short Grafana time range.
RANGE_SECONDS = 120
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)$", re.S)


@dataclass(frozen=True)
class Query:
    dashboard: str
    where: str
    expr: str
    instant: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.where}"


def substitute(expr: str) -> str:
    # Longest names first, so $__interval does not eat $__interval_ms.
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"unknown template variable left in {expr!r}"
    return expr


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return out


def collect() -> tuple[list[Query], list[Query]]:
    queries, variables = [], []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uid = dashboard["uid"]
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                queries.append(Query(uid, f"{panel['title']}/{target['refId']}", target["expr"],
                                     bool(target.get("instant"))))
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                queries.append(Query(uid, f"annotation {annotation['name']}", annotation["expr"], False))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                text = query["query"] if isinstance(query, dict) else query
                variables.append(Query(uid, f"${variable['name']}", text, True))
    return queries, variables


PANEL_QUERIES, VARIABLE_QUERIES = collect()


@pytest.fixture(scope="module")
def warm_stack(stack: Stack) -> Stack:
    """The stack once the demo has run long enough for 1-minute rates and the budget alerts."""

    def ready() -> bool:
        rates = stack.query(f'sum(rate(otel_tokens_cost_USD_total{{job="{DEMO_JOB}"}}[1m])) > 0')
        history = stack.query(f'count_over_time(up{{job="{DEMO_JOB}"}}[1m]) >= 20')
        alerts = stack.query('count(ALERTS{alertstate="firing", alertname=~"LLMAgentBudget.*"}) >= 2')
        return bool(rates and history and alerts)

    wait_until(ready, "20 s of demo history, spend and both budget alerts", diagnostics=stack.diagnostics)
    return stack


def has_data(result: list[dict]) -> bool:
    values = []
    for series in result:
        if "values" in series:
            values.extend(value for _, value in series["values"])
        else:
            values.append(series["value"][1])
    # NaN is a gap in Grafana; +Inf still draws (e.g. time left when an agent stopped spending).
    return any(not math.isnan(float(value)) for value in values)


def test_dashboards_found() -> None:
    assert len(DASHBOARDS) >= 2
    assert len(PANEL_QUERIES) >= 20


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_returns_data(warm_stack: Stack, query: Query) -> None:
    expr = substitute(query.expr)
    result = warm_stack.query(expr) if query.instant else warm_stack.query_range(expr, RANGE_SECONDS)
    assert has_data(result), f"{query.id} shows nothing:\n{expr}"


@pytest.mark.parametrize("query", VARIABLE_QUERIES, ids=lambda q: q.id)
def test_variable_query_lists_values(warm_stack: Stack, query: Query) -> None:
    match = LABEL_VALUES.match(query.expr.strip())
    assert match, f"{query.id}: only label_values(...) variable queries are supported here: {query.expr}"
    params = {}
    if match["match"]:
        params["match[]"] = substitute(match["match"])
    values = warm_stack.api(f"/api/v1/label/{match['label']}/values", **params)
    assert values, f"{query.id} lists nothing: {query.expr}"
    if match["label"] == "job":
        assert DEMO_JOB in values
    if match["label"] == "gen_ai_agent_name":
        assert {"planner", "researcher", "writer"} <= set(values)


def test_every_dashboard_was_queried() -> None:
    assert {q.dashboard for q in PANEL_QUERIES} == {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
