"""examples/fastapi_budget.py: FastAPI's TestClient against the fake server; 402 past the limit."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import openai
import pytest

import otel_tokens
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import reference_cost

fastapi_testclient = pytest.importorskip("fastapi.testclient")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_budget.py"


@pytest.fixture
def example(telemetry, clean_env, loopback_only, fake_llm):
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    spec = importlib.util.spec_from_file_location("fastapi_budget_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its own instrument() finds us instrumented already
    client = openai.AsyncOpenAI(base_url=fake_llm.openai_base_url, api_key="sk-test", max_retries=0)
    yield module, client
    otel_tokens.uninstrument()


def costs(fake_llm) -> list[float]:
    """The exact cost of every chat call the fake server answered, by genai-prices."""
    found = []
    for received in fake_llm.requests:
        if received.path == "/v1/chat/completions":
            usage = received.usage
            found.append(reference_cost("gpt-4o-mini", Usage(usage["prompt_tokens"], usage["completion_tokens"]),
                                        "openai"))
    return found


def test_within_the_limit_answers_with_the_spend(example, fake_llm) -> None:
    module, client = example
    with fastapi_testclient.TestClient(module.create_app(client, limit_usd=0.10)) as http:
        reply = http.post("/research", json={"question": "Why is the sky blue?", "steps": 2})
    assert reply.status_code == 200
    body = reply.json()
    spent = costs(fake_llm)
    assert len(spent) == 3  # planner + two writer steps
    assert math.isclose(body["spent_usd"], sum(spent), rel_tol=1e-12)
    assert math.isclose(body["remaining_usd"], 0.10 - sum(spent), rel_tol=1e-9)
    assert otel_tokens.get_statistics()["by_workflow"]["research"]["calls"] == 3


def test_past_the_limit_answers_402_with_the_details(example, fake_llm) -> None:
    module, client = example
    limit = 0.0001  # the planner and a writer step fit; the projection of a third call does not
    with fastapi_testclient.TestClient(module.create_app(client, limit_usd=limit)) as http:
        reply = http.post("/research", json={"question": "Why is the sky blue?", "steps": 5})
        first = costs(fake_llm)
        again = http.post("/research", json={"question": "Why is the sky blue?", "steps": 1})
    assert reply.status_code == 402
    body = reply.json()
    assert body["error"] == "llm_budget_exceeded" and body["scope"] == "request"
    assert body["limit_usd"] == limit and body["projected_usd"] > 0
    assert body["spent_usd"] + body["projected_usd"] > limit
    assert 2 <= len(first) < 6  # refused mid-workflow, before all five writer steps went out
    assert math.isclose(body["spent_usd"], sum(first), rel_tol=1e-12)  # nothing else was in flight
    # The next request has a budget of its own: the first one's spend does not count against it.
    assert again.status_code == 200
    assert len(costs(fake_llm)) == len(first) + 2
