"""Budget scopes and per-request budgets, through the real OpenAI SDK against the fake server."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.budgets.manager import (
    Budget,
    BudgetManager,
    BudgetSpecError,
    load_budgets_file,
    parse_budgets,
)
from otel_tokens._internal.setup.runtime import current_runtime
from tests.budgets.helpers import ask, ask_async, call_cost


@pytest.fixture
def setup(telemetry, clean_env, loopback_only, fake_llm):
    """instrument() on this test's providers; returns (runtime, sync client, async client, cost of ask())."""
    cost = call_cost(fake_llm.openai_base_url)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    client = openai.OpenAI(base_url=fake_llm.openai_base_url, api_key="sk-test", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=fake_llm.openai_base_url, api_key="sk-test", max_retries=0)
    yield current_runtime(), client, aclient, cost
    otel_tokens.uninstrument()


def sent(fake_llm) -> int:
    return fake_llm.request_count("/v1/chat/completions")


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_scopes() -> None:
    assert parse_budgets("workflow:research=5.00:block@1d, total=100:warn@30d, user:u-17=2, agent:total=1") == [
        Budget("research", 5.0, action="block", window="1d", scope="workflow"),
        Budget("total", 100.0, window="30d", scope="total"),
        Budget("u-17", 2.0, scope="user"),
        Budget("total", 1.0, scope="agent"),
    ]
    with pytest.raises(BudgetSpecError, match="scope must be one of agent, workflow, task, user, total"):
        parse_budgets("team:x=1")
    with pytest.raises(BudgetSpecError, match="scope must be one of"):
        parse_budgets("request:x=1")
    with pytest.raises(BudgetSpecError, match="workflow 'w' has more than one budget"):
        parse_budgets("workflow:w=1,workflow:w=2")
    # The same name in two scopes is two budgets.
    assert len(parse_budgets("w=1,workflow:w=2")) == 2


def test_budgets_file_scopes(tmp_path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(
        '[budgets.research]\nscope = "workflow"\nlimit_usd = 5\naction = "block"\nwindow = "1d"\n\n'
        '[budgets.monthly]\nscope = "total"\nlimit_usd = 100\nwindow = "30d"\n\n'
        '[budgets.research-agent]\nname = "research"\nlimit_usd = 1\n'
    )
    assert load_budgets_file(path) == [
        Budget("research", 5, action="block", window="1d", scope="workflow"),
        Budget("monthly", 100, window="30d", scope="total"),
        Budget("research", 1),
    ]
    path.write_text('[budgets.x]\nscope = "team"\nlimit_usd = 1\n')
    with pytest.raises(BudgetSpecError, match=r"budget 'x': scope must be one of"):
        load_budgets_file(path)


def test_set_budget_rejects_unknown_scopes() -> None:
    budgets = BudgetManager()
    with pytest.raises(ValueError, match="scope must be one of"):
        budgets.set_budget("x", 1, scope="request")
    with pytest.raises(ValueError, match="scope must be one of"):
        budgets.set_budget("x", 1, scope="team")


# -- scopes ----------------------------------------------------------------------------------------


def test_a_call_counts_in_every_scope_it_carries(setup, telemetry) -> None:
    runtime, client, _aclient, cost = setup
    otel_tokens.set_budget("W", 1.0, scope="workflow")
    otel_tokens.set_budget("A", 1.0)
    otel_tokens.set_budget("U", 1.0, scope="user")
    otel_tokens.set_budget("T", 1.0, scope="task")
    otel_tokens.set_budget("all", 1.0, scope="total")
    otel_tokens.set_budget("other", 1.0, scope="workflow")
    # An outer agent scope used to see $0 while the agents inside it spent; a workflow budget sees it all.
    with otel_tokens.workflow("W"), otel_tokens.user("U"), otel_tokens.agent("A"):
        ask(client)
        with otel_tokens.agent("B"):
            ask(client)
    ask(client)  # no labels: only the total

    status = otel_tokens.get_statistics()["budgets"]
    assert set(status) == {"A", "workflow:W", "user:U", "task:T", "total:all", "workflow:other"}
    assert math.isclose(status["workflow:W"]["spent_usd"], 2 * cost, rel_tol=1e-12)
    assert math.isclose(status["user:U"]["spent_usd"], 2 * cost, rel_tol=1e-12)
    assert math.isclose(status["A"]["spent_usd"], cost, rel_tol=1e-12)
    assert math.isclose(status["total:all"]["spent_usd"], 3 * cost, rel_tol=1e-12)
    assert status["task:T"]["spent_usd"] == 0.0 and status["workflow:other"]["spent_usd"] == 0.0
    assert (status["workflow:W"]["scope"], status["workflow:W"]["name"]) == ("workflow", "W")

    # Gauges: every budget says its scope; agent budgets keep gen_ai.agent.name (the alert rules use it).
    spent = {(p[0][semconv.OTEL_TOKENS_BUDGET_SCOPE], p[0][semconv.OTEL_TOKENS_BUDGET_NAME]): p
             for p in telemetry.points(semconv.METRIC_BUDGET_SPENT)}
    assert set(spent) == {("agent", "A"), ("workflow", "W"), ("user", "U"), ("task", "T"), ("total", "all"),
                          ("workflow", "other")}
    assert spent[("agent", "A")][0][semconv.GEN_AI_AGENT_NAME] == "A"
    assert semconv.GEN_AI_AGENT_NAME not in spent[("workflow", "W")][0]
    assert math.isclose(spent[("total", "all")][1].value, 3 * cost, rel_tol=1e-12)

    text = otel_tokens.report()
    assert "workflow:W" in text and "total:all" in text


@pytest.mark.parametrize("tight", ["workflow", "agent", "user", "total"])
def test_blocked_by_whichever_would_pass_its_limit(setup, fake_llm, tight: str) -> None:
    _runtime, client, _aclient, cost = setup
    names = {"workflow": "W", "agent": "A", "user": "U", "total": "all"}
    for scope, name in names.items():
        # The tight budget holds one call and a half: the second call's projection does not fit.
        otel_tokens.set_budget(name, 1.5 * cost if scope == tight else 1.0, action="block", scope=scope)
    with otel_tokens.workflow("W"), otel_tokens.user("U"), otel_tokens.agent("A"):
        ask(client)
        before = sent(fake_llm)
        with pytest.raises(otel_tokens.BudgetExceededError) as caught:
            ask(client)
    assert sent(fake_llm) == before  # refused before anything was sent
    assert (caught.value.scope, caught.value.name) == (tight, names[tight])
    assert caught.value.to_dict()["limit_usd"] == 1.5 * cost
    statuses = otel_tokens.get_statistics()["budgets"]
    blocked = {key: state["blocked_calls"] for key, state in statuses.items()}
    tight_key = names[tight] if tight == "agent" else f"{tight}:{names[tight]}"
    assert blocked.pop(tight_key) == 1 and set(blocked.values()) == {0}
    # The refused call reserved nothing: every budget counts the one call that was sent.
    assert all(math.isclose(state["spent_usd"], cost, rel_tol=1e-12) for state in statuses.values())


def test_budget_events_carry_the_scope(setup, telemetry) -> None:
    _runtime, client, _aclient, cost = setup
    seen = []
    otel_tokens.set_budget("W", 1.5 * cost, warn_at=0.5, scope="workflow", on_warning=seen.append,
                           on_exceeded=seen.append)
    with otel_tokens.workflow("W"):
        ask(client)
        ask(client)
    events = [event for span in telemetry.llm_spans() for event in span.events]
    assert [event.name for event in events] == [semconv.EVENT_BUDGET_WARNING, semconv.EVENT_BUDGET_EXCEEDED]
    assert events[0].attributes[semconv.OTEL_TOKENS_BUDGET_SCOPE] == "workflow"
    assert events[0].attributes[semconv.OTEL_TOKENS_BUDGET_NAME] == "W"
    assert semconv.GEN_AI_AGENT_NAME not in events[0].attributes
    assert [(s["scope"], s["name"], s["status"]) for s in seen] == [("workflow", "W", "warning"),
                                                                   ("workflow", "W", "exceeded")]


# -- per-request budgets ---------------------------------------------------------------------------


def test_request_budget_blocks_and_reports_spend(setup, fake_llm) -> None:
    _runtime, client, _aclient, cost = setup
    with otel_tokens.budget(limit_usd=1.5 * cost) as b:
        ask(client)
        assert math.isclose(b.spent_usd, cost, rel_tol=1e-12)
        assert math.isclose(b.remaining_usd, 0.5 * cost, rel_tol=1e-9)
        before = sent(fake_llm)
        with pytest.raises(otel_tokens.BudgetExceededError) as caught:
            ask(client)
        assert sent(fake_llm) == before
    assert caught.value.scope == "request" and caught.value.limit_usd == 1.5 * cost
    assert math.isclose(b.spent_usd, cost, rel_tol=1e-12)  # still readable after the block
    ask(client)  # outside: no limit
    # Per-request budgets are not process budgets: nothing in statistics or gauges.
    assert otel_tokens.get_statistics()["budgets"] == {}


def test_request_budgets_nest(setup) -> None:
    _runtime, client, _aclient, cost = setup
    with otel_tokens.budget(limit_usd=2.5 * cost) as outer:
        ask(client)
        with otel_tokens.budget(limit_usd=10 * cost) as inner:
            ask(client)
            # The inner one has room, the outer one does not: the outer one blocks.
            with pytest.raises(otel_tokens.BudgetExceededError) as caught:
                ask(client)
        assert caught.value.limit_usd == 2.5 * cost
        assert math.isclose(inner.spent_usd, cost, rel_tol=1e-12)
        assert math.isclose(outer.spent_usd, 2 * cost, rel_tol=1e-12)
    with otel_tokens.budget(limit_usd=10 * cost, action="warn") as outer, otel_tokens.budget(limit_usd=0.5 * cost):
        with pytest.raises(otel_tokens.BudgetExceededError):
            ask(client)
    assert outer.spent_usd == 0.0


def test_request_budget_follows_tasks_and_copied_context_threads(setup) -> None:
    _runtime, client, aclient, cost = setup

    async def fan_out() -> None:
        await asyncio.gather(*(ask_async(aclient) for _ in range(3)))

    with otel_tokens.budget(limit_usd=100 * cost) as b:
        asyncio.run(fan_out())
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(contextvars.copy_context().run, ask, client) for _ in range(2)]
            [future.result() for future in futures]
        with ThreadPoolExecutor(1) as pool:
            pool.submit(ask, client).result()  # no copied context: instrumented submit carries it (#20)
    assert math.isclose(b.spent_usd, 6 * cost, rel_tol=1e-12)


async def test_request_budget_async_with_and_decorator(setup) -> None:
    _runtime, client, aclient, cost = setup
    async with otel_tokens.budget(limit_usd=1.5 * cost) as b:
        await ask_async(aclient)
        assert math.isclose(b.spent_usd, cost, rel_tol=1e-12)
        with pytest.raises(otel_tokens.BudgetExceededError):
            await ask_async(aclient)

    spends = []

    @otel_tokens.budget(limit_usd=1.5 * cost)
    def handler() -> None:
        ask(client)
        try:
            ask(client)
        except otel_tokens.BudgetExceededError as error:
            spends.append(error.spent_usd)

    handler()
    handler()  # a fresh budget per call, so the first call passes again
    assert len(spends) == 2 and all(math.isclose(s, cost, rel_tol=1e-12) for s in spends)


def test_request_budget_validates() -> None:
    with pytest.raises(ValueError, match="limit_usd"):
        otel_tokens.budget(limit_usd=-1)
    with pytest.raises(ValueError, match="action"):
        otel_tokens.budget(limit_usd=1, action="deny")


# -- what never enters a total ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.01])
def test_non_finite_or_negative_costs_never_enter_a_budget(bad: float, caplog) -> None:
    budgets = BudgetManager()
    budgets.set_budget("a", 1.0)
    budgets.set_budget("all", 1.0, scope="total", action="block")
    labels = Labels(agent="a")
    request = Request("openai", semconv.OP_CHAT, "m")
    good = CallRecord(request, Result(usage=Usage(1, 1)), labels, cost_usd=0.25)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        budgets.settle(budgets.reserve(request, labels, None), good)
        budgets.settle(budgets.reserve(request, labels, None), CallRecord(request, None, labels, cost_usd=bad))
    status = budgets.status()
    assert status["a"]["spent_usd"] == 0.25 and status["total:all"]["spent_usd"] == 0.25
    assert "not a finite number >= 0" in caplog.text
