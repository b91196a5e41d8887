"""Projections from what calls really produce: the 95th percentile of a model's recent output tokens,
capped by the request's maximum, a default only for a model never seen; the guarantees that stay."""

from __future__ import annotations

import threading
import time

import pytest

from otel_tokens import semconv
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.budgets.manager import BudgetExceededError, BudgetManager
from otel_tokens._internal.budgets.projection import SAMPLES, OutputHistory
from otel_tokens._internal.pricing.book import PriceBook
from tests.budgets.helpers import STEPS, run_workflow, workflow_cost

INPUT_RATE, OUTPUT_RATE = 1.0 / 1_000_000, 2.0 / 1_000_000


def manager(**kwargs) -> BudgetManager:
    book = PriceBook()
    book.set_price("m", input=1.0, output=2.0)
    return BudgetManager(price_book=book, count_tokens=lambda text, model: len(text.split()), **kwargs)


def request(max_tokens: int | None = None) -> Request:
    attributes = {semconv.GEN_AI_REQUEST_MAX_TOKENS: max_tokens} if max_tokens else {}
    return Request("openai", semconv.OP_CHAT, "m", attributes=attributes)


def seen(budgets: BudgetManager, *outputs: int, agent: str | None = None) -> None:
    for output in outputs:
        budgets.observe(CallRecord(request(), Result(usage=Usage(10, output)), Labels(agent=agent)))


def projected_output(budgets: BudgetManager, max_tokens: int | None = None, agent: str | None = None) -> float:
    """Output tokens the projection assumed, read back from a reservation (the prompt is empty)."""
    budgets.set_budget("probe", 1_000.0, action="block")
    reservation = budgets.reserve(request(max_tokens), Labels(agent="probe"), None)
    budgets.settle(reservation, None)
    budgets.remove_budget("probe")
    return reservation.projected / OUTPUT_RATE


# -- the rule ----------------------------------------------------------------------------------------


def test_never_seen_model_projects_the_default_then_the_95th_percentile_of_what_it_produced() -> None:
    budgets = manager(default_max_output_tokens=1024)
    assert projected_output(budgets) == pytest.approx(1024)
    seen(budgets, 80)
    assert projected_output(budgets) == pytest.approx(80)  # fewer than 20 calls: the largest seen
    seen(budgets, *range(1, 101))  # 101 calls; the ring keeps the last 64: 37..100
    assert projected_output(budgets) == pytest.approx(97)  # nearest rank: ceil(0.95 * 64) = 61st of 64
    assert SAMPLES == 64


def test_the_requests_own_maximum_caps_the_estimate_and_bounds_it_below() -> None:
    budgets = manager()
    seen(budgets, 300)
    assert projected_output(budgets, max_tokens=100) == pytest.approx(100)  # capped
    # Above the estimate, a stated maximum is still a floor on its own (the prompt is empty here).
    assert projected_output(budgets, max_tokens=2000) == pytest.approx(2000)
    never_seen = manager(default_max_output_tokens=1024)
    assert projected_output(never_seen, max_tokens=50) == pytest.approx(50)


def test_an_agents_own_history_wins_over_the_models() -> None:
    budgets = manager()
    seen(budgets, 40, agent="terse")
    seen(budgets, 900, agent="verbose")
    budgets.set_budget("terse", 1.0, action="block")
    reservation = budgets.reserve(request(), Labels(agent="terse"), None)
    assert reservation.projected / OUTPUT_RATE == pytest.approx(40)
    budgets.settle(reservation, None)
    assert projected_output(budgets) == pytest.approx(900)  # an agent never seen: the model's history


def test_history_is_bounded() -> None:
    history = OutputHistory()
    for index in range(5000):
        history.add("openai", f"m{index}", None, 10)
    assert len(history._rings) == 4096 and history._keys == 4096
    assert history.estimate("openai", "m4999", None) is None


def test_stored_counts_go_before_the_processes_own() -> None:
    history = OutputHistory()
    history.seed("openai", "m", None, [], [])
    assert not history.seen("openai", "m")  # nothing stored: still a model never seen
    history.add("openai", "m", None, 500)
    history.seed("openai", "m", "a", [10] * 70, [20])
    # The ring keeps its own count (the newest) and the 63 newest stored ones.
    assert sorted(history._rings[("openai", "m")].values) == [10] * 63 + [500]
    assert history.estimate("openai", "m", None) == 10  # 61st of 64
    assert history.estimate("openai", "m", "a") == 20
    history.add("openai", "m", "a", 30)
    assert history.estimate("openai", "m", "a") == 30


# -- the guarantees ------------------------------------------------------------------------------------


def test_a_call_whose_prompt_alone_passes_what_is_left_is_refused() -> None:
    budgets = manager()
    seen(budgets, 1)
    budgets.set_budget("a", 0.0001, action="block")  # 100 input tokens' worth
    prompt = " ".join(["w"] * 150)
    with pytest.raises(BudgetExceededError) as refused:
        budgets.reserve(request(), Labels(agent="a"), lambda: prompt)
    assert refused.value.projected_usd == pytest.approx(150 * INPUT_RATE + OUTPUT_RATE)
    assert budgets.status()["a"]["blocked_calls"] == 1


@pytest.mark.parametrize("outputs", [(300, 400), (300, 500)])
def test_threads_overshoot_only_by_what_calls_in_flight_produce_beyond_their_projection(outputs) -> None:
    """Projected at 400 output tokens (the 95th percentile seen). Calls that produce no more than that never
    pass the limit together; calls that produce more pass it by at most their excess, in flight at once."""
    budgets = manager()
    seen(budgets, *([400] * 20))
    limit = 0.05
    budgets.set_budget("a", limit, action="block")
    excess = 4 * INPUT_RATE + max(outputs) * OUTPUT_RATE - (4 * INPUT_RATE + 400 * OUTPUT_RATE)
    threads_count = 16
    allowed, blocked = [0] * threads_count, [0] * threads_count
    barrier = threading.Barrier(threads_count)

    def worker(index: int) -> None:
        barrier.wait()
        for n in range(100):
            try:
                reservation = budgets.reserve(request(), Labels(agent="a"), lambda: "w w w w")
            except BudgetExceededError:
                blocked[index] += 1
                continue
            time.sleep(0)
            output = outputs[n % 2]
            cost = 4 * INPUT_RATE + output * OUTPUT_RATE
            budgets.settle(reservation, CallRecord(request(), Result(usage=Usage(4, output)), Labels(agent="a"),
                                                   cost_usd=cost))
            allowed[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status = budgets.status()["a"]
    assert sum(blocked) > 0 and sum(allowed) > 0
    assert status["spent_usd"] <= limit + threads_count * max(excess, 0.0) + 1e-12
    assert budgets._accounts["a"].reserved == 0.0


# -- the Gemini workflow, through the real SDK -----------------------------------------------------------


@pytest.mark.usefixtures("no_network")
def test_gemini_workflow_fits_a_budget_of_twice_its_cost_first_call_included(instrumented) -> None:
    pytest.importorskip("google.genai")
    cost = workflow_cost()
    assert 0.0015 < cost < 0.0025  # the run: about $0.002 for eight calls
    refused, spent = run_workflow(2 * cost)
    assert refused == []
    assert spent == pytest.approx(cost, rel=1e-9)


@pytest.mark.usefixtures("no_network")
def test_gemini_workflow_under_the_old_assumption_is_refused(monkeypatch, telemetry) -> None:
    """The old assumption (4,096 output tokens for a call with no maximum) as the default for a model never
    seen: the first step is refused, so nothing is ever seen, and every step is refused."""
    pytest.importorskip("google.genai")
    import otel_tokens

    for name in ("OTEL_TOKENS_BUDGETS", "OTEL_TOKENS_BUDGETS_FILE", "OTEL_TOKENS_STORE"):
        monkeypatch.delenv(name, raising=False)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           default_max_output_tokens=4096)
    try:
        refused, spent = run_workflow(2 * workflow_cost())
    finally:
        otel_tokens.uninstrument()
    assert refused == list(range(1, len(STEPS) + 1))
    assert spent == 0.0
