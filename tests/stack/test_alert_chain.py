"""The alert chain end to end: demo -> Prometheus rules -> Alertmanager routes -> webhook.

The demo's budgets are set so that researcher passes 90 % (warning) and writer passes 100 % (exceeded)
in its first rounds. Each test waits for that alert at the webhook and prints how long it took from the
first scrape that showed the crossing.
"""

from __future__ import annotations

import pytest

from .conftest import DEMO_JOB, MAX_WAIT_SECONDS, Stack

pytestmark = pytest.mark.stack

BUDGET_ALERTS = [
    # alertname, agent, severity, utilization at which it fires
    pytest.param("LLMAgentBudgetWarning", "researcher", "warning", 0.9, id="researcher-warning"),
    pytest.param("LLMAgentBudgetExceeded", "writer", "critical", 1.0, id="writer-exceeded"),
]


@pytest.mark.parametrize(("alertname", "agent", "severity", "threshold"), BUDGET_ALERTS)
def test_budget_alert_reaches_webhook(stack: Stack, capsys: pytest.CaptureFixture[str], alertname: str,
                                      agent: str, severity: str, threshold: float) -> None:
    def matches(alert: dict) -> bool:
        labels = alert.get("labels", {})
        return (alert.get("status") == "firing" and labels.get("alertname") == alertname
                and labels.get("gen_ai_agent_name") == agent)

    delivery, alert = stack.webhook.wait_for_alert(
        matches, f"{alertname} for {agent}", MAX_WAIT_SECONDS, stack.diagnostics)

    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["severity"] == severity
    assert labels["job"] == DEMO_JOB
    assert labels["otel_tokens_budget_window"]
    assert delivery.payload["receiver"] == "default-webhook"
    assert delivery.payload["status"] == "firing"
    # Templates that hit a missing label or an empty query render "<no value>".
    for text in annotations.values():
        assert "<no value>" not in text, annotations
    assert agent in annotations["summary"]
    assert "USD" in annotations["description"]

    crossed_at = stack.first_sample_at_or_above(
        f'otel_tokens_budget_utilization{{job="{DEMO_JOB}", gen_ai_agent_name="{agent}"}}',
        threshold,
    )
    assert crossed_at is not None, f"the webhook got {alertname} but Prometheus never stored {agent} >= {threshold}"
    latency = delivery.received_at - crossed_at
    with capsys.disabled():
        print(f"\n{alertname} for {agent}: first scrape at >= {threshold:.0%} at {crossed_at:.3f}, "
              f"webhook delivery {latency:.2f}s later ({annotations['summary']})")
    # Scrape 1 s + rule evaluation 1 s + Alertmanager group_wait 0 s: seconds, not minutes.
    assert 0 <= latency <= MAX_WAIT_SECONDS


def test_budget_alerts_carry_the_agent_label(stack: Stack) -> None:
    """Every budget alert Alertmanager delivered names its agent (no alert aggregated the agents away)."""
    stack.webhook.wait_for_alert(
        lambda a: a.get("labels", {}).get("alertname", "").startswith("LLMAgentBudget"),
        "any budget alert", MAX_WAIT_SECONDS, stack.diagnostics)
    for delivery in stack.webhook.deliveries:
        for alert in delivery.payload.get("alerts", []):
            if alert["labels"]["alertname"].startswith("LLMAgentBudget"):
                assert alert["labels"].get("gen_ai_agent_name"), alert
                # Grouped by agent: one agent per notification.
                assert delivery.payload["groupLabels"].get("gen_ai_agent_name") == alert["labels"]["gen_ai_agent_name"]
