"""Projections from the fleet's history: with a store (SQLite, the real redis-server), finished calls' output
tokens are kept there, 64 per model and per model and agent, and a process projecting a model it has not
seen yet reads them once instead of assuming the default.

The calls are the Gemini workflow of issue #20 through the real google-genai SDK over recorded replies, in
this process or in a worker process (``tests/budgets/worker.py gemini``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.budgets.manager import BudgetManager
from otel_tokens._internal.budgets.projection import DEFAULT_OUTPUT_TOKENS, history_key
from otel_tokens._internal.budgets.store import HISTORY_SAMPLES, HISTORY_TTL_S, SQLiteStore, open_store
from otel_tokens._internal.pricing.book import PriceBook
from otel_tokens._internal.setup.runtime import current_runtime
from tests.budgets.conftest import free_port
from tests.budgets.helpers import (
    GEMINI_MODEL,
    STEPS,
    ask_step,
    first_step_projection,
    run_workflow,
    worker,
    workflow_cost,
    workflow_usages,
)

pytest.importorskip("google.genai")

GEMINI = "gcp.gemini"
MODEL_KEY = history_key(GEMINI, GEMINI_MODEL)
AGENT_KEY = history_key(GEMINI, GEMINI_MODEL, "analyst")
# What the workflow's calls produce (answer and thinking), in order.
OUTPUTS = [usage.output_tokens for usage in workflow_usages()]


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spend.db'}"
    return request.getfixturevalue("redis_url")


@pytest.fixture
def start(telemetry, clean_env):
    """start(store=None) -> runtime: a fresh instrument() (an empty ring) on this test's providers."""

    def start(**settings: Any) -> Any:
        otel_tokens.uninstrument()
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               **settings)
        return current_runtime()

    yield start
    otel_tokens.uninstrument()


def output_cost(tokens: int) -> float:
    rates = PriceBook().rates(GEMINI, GEMINI_MODEL)
    return rates.cost(Usage(output_tokens=tokens))


def stored_history(url: str, *keys: str) -> list[list[int]]:
    store = open_store(url)
    try:
        return store.history(list(keys))
    finally:
        store.close()


# -- the store ---------------------------------------------------------------------------------------------


def test_the_store_keeps_the_last_64_counts_of_each_key_oldest_first(store_url) -> None:
    store = open_store(store_url)
    try:
        assert store.history(["a", "b"]) == [[], []]
        store.settle([], [], [("a", n) for n in range(100)])
        store.settle([], [], [("b", 7), ("a", 100)])
        assert store.history(["a", "b", "c"]) == [list(range(37, 101)), [7], []]
        assert HISTORY_SAMPLES == 64
    finally:
        store.close()


def test_sqlite_history_leaves_30_days_after_its_keys_last_count(tmp_path) -> None:
    now = [1_800_000_000.0]
    store = SQLiteStore(str(tmp_path / "spend.db"), clock=lambda: now[0])
    store.settle([], [], [("old", 5), ("kept", 6)])
    now[0] += HISTORY_TTL_S / 2
    store.settle([], [], [("kept", 7)])
    now[0] += HISTORY_TTL_S / 2 + 1
    store.settle([], [], [("new", 8)])  # "old" had no count for longer than the TTL
    assert store.history(["old", "kept", "new"]) == [[], [6, 7], [8]]
    store.close()


def test_redis_history_lists_expire(redis_server, redis_url) -> None:
    store = open_store(redis_url)
    store.settle([], [], [("a", 1)])
    store.close()
    assert 0 < redis_server.client().ttl("otel_tokens:outputs:a") <= HISTORY_TTL_S


# -- a new process, and a fresh instrument() -------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_a_fresh_runtime_projects_its_first_call_from_the_stored_history(start, store_url) -> None:
    start()
    default = first_step_projection()  # no store: the default for a model never seen
    start(store=store_url)
    assert first_step_projection() == pytest.approx(default, rel=1e-12)  # the store has no history yet
    assert run_workflow(None)[0] == []  # process A's calls; their counts reach the store
    otel_tokens.reset()  # totals and spend go; the projection history stays
    from_ring = first_step_projection()
    assert from_ring == pytest.approx(default - output_cost(DEFAULT_OUTPUT_TOKENS - max(OUTPUTS)), rel=1e-9)

    start(store=store_url)  # uninstrument() forgot the ring: this runtime reads the store's history
    assert stored_history(store_url, MODEL_KEY, AGENT_KEY) == [OUTPUTS, OUTPUTS]
    assert first_step_projection() == pytest.approx(from_ring, rel=1e-12)


@pytest.mark.usefixtures("loopback_only")
def test_the_issues_workflow_under_a_tight_budget_in_a_new_process(start, store_url) -> None:
    """1.2 times the run's cost: under the default's first projection ($0.0026), so a process that knows
    nothing refuses every step (a refused call teaches nothing); with the fleet's history, none."""
    limit = 1.2 * workflow_cost()
    start(store=store_url)
    assert run_workflow(limit) == (list(range(1, len(STEPS) + 1)), 0.0)
    assert run_workflow(None)[0] == []
    start(store=store_url)
    refused, spent = run_workflow(limit)
    assert refused == []
    assert spent == pytest.approx(workflow_cost(), rel=1e-9)


@pytest.mark.usefixtures("loopback_only")
def test_a_new_worker_process_projects_from_what_another_process_stored(start, store_url) -> None:
    """Process A (a worker) runs the workflow 9 times (72 calls): the store keeps its last 64 counts per key.
    Process B (this one) has never seen the model: its first call projects from A's history."""
    runs = 9
    process = worker("gemini", str(runs), store=store_url, budgets="")
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    assert json.loads(out.strip().splitlines()[-1])["calls"] == runs * len(STEPS)
    last_64 = (OUTPUTS * runs)[-HISTORY_SAMPLES:]
    assert stored_history(store_url, MODEL_KEY, AGENT_KEY) == [last_64, last_64]

    start()
    default = first_step_projection()
    start(store=store_url)
    # 95th percentile of 64 counts: the 61st smallest, here the largest output of the workflow.
    assert sorted(last_64)[60] == max(OUTPUTS)
    assert first_step_projection() == pytest.approx(default - output_cost(DEFAULT_OUTPUT_TOKENS - max(OUTPUTS)),
                                                    rel=1e-9)


@pytest.mark.usefixtures("loopback_only")
def test_a_live_process_counts_reach_the_store_with_the_background_flush(start, store_url) -> None:
    start(store=store_url)  # no budget at all: nothing settles, the flush carries the counts
    run_workflow(None)
    deadline = time.monotonic() + 5
    while stored_history(store_url, MODEL_KEY) != [OUTPUTS]:
        assert time.monotonic() < deadline, "the counts did not reach the store"
        time.sleep(0.05)
    assert stored_history(store_url, AGENT_KEY) == [OUTPUTS]


def test_a_calls_own_settle_carries_the_counts_once_16_wait(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'spend.db'}"
    manager = BudgetManager(price_book=PriceBook(), store=open_store(url), flush_interval_s=3600)
    sent: list[int] = []
    settle = manager.store.settle
    monkeypatch.setattr(manager.store, "settle", lambda entries, keys, samples=(): sent.append(len(samples))
                        or settle(entries, keys, samples))
    try:
        manager.set_budget("all", 1.0, action="block", scope="total")
        request = Request("openai", semconv.OP_CHAT, "gpt-4o-mini")
        for output in range(1, 17):
            reservation = manager.reserve(request, Labels(), None)
            record = CallRecord(request, Result(usage=Usage(10, output)), Labels(), cost_usd=1e-6)
            manager.observe(record)
            manager.settle(reservation, record)
        # 15 settles went alone; the 16th carried the 16 counts, in the same transaction.
        assert sent[-16:] == [0] * 15 + [16]
        assert stored_history(url, history_key("openai", "gpt-4o-mini")) == [list(range(1, 17))]
    finally:
        manager.close()


def test_an_async_call_reads_the_history_off_the_event_loop(start, store_url, monkeypatch) -> None:
    from tests.providers.gemini_mock import GeminiMock

    start(store=store_url)
    run_workflow(None)
    runtime = start(store=store_url)
    store, reads = runtime.budgets.store, []
    history = store.history

    def spy(keys: list[str]) -> list[list[int]]:
        reads.append(threading.get_ident())
        return history(keys)

    monkeypatch.setattr(store, "history", spy)

    async def main() -> tuple[int, float]:
        with otel_tokens.agent("analyst"), otel_tokens.budget(limit_usd=0.0):
            try:
                await ask_step(GeminiMock().client().aio, 1)
            except otel_tokens.BudgetExceededError as refused:
                return threading.get_ident(), refused.projected_usd
        raise AssertionError("a call was sent under a limit of $0")

    loop_thread, projected = asyncio.run(main())
    assert len(reads) == 1 and reads[0] != loop_thread
    start()
    assert projected == pytest.approx(first_step_projection() - output_cost(DEFAULT_OUTPUT_TOKENS - max(OUTPUTS)),
                                      rel=1e-9)


@pytest.mark.usefixtures("loopback_only")
def test_history_is_read_once_per_model_and_only_for_calls_a_blocking_budget_checks(start, store_url,
                                                                                 monkeypatch) -> None:
    start(store=store_url)
    run_workflow(None)
    runtime = start(store=store_url)
    store, reads = runtime.budgets.store, []
    history = store.history
    monkeypatch.setattr(store, "history", lambda keys: reads.append(keys) or history(keys))
    run_workflow(None)  # no limit: nothing is projected, nothing read
    assert reads == []
    run_workflow(1.0)
    assert reads == []  # the unlimited run's own calls taught this process the model
    runtime = start(store=store_url)
    store = runtime.budgets.store
    history = store.history
    monkeypatch.setattr(store, "history", lambda keys: reads.append(keys) or history(keys))
    assert run_workflow(1.0)[0] == []
    assert reads == [[MODEL_KEY, AGENT_KEY]]


# -- failures and bounds ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("loopback_only")
def test_with_the_store_down_the_first_call_projects_the_default_and_the_error_is_counted(
    start, telemetry, caplog
) -> None:
    start()
    default = first_step_projection()
    start(store=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert first_step_projection() == pytest.approx(default, rel=1e-12)
    assert run_workflow(1.0)[0] == []  # calls go on
    errors = telemetry.sum_of(semconv.METRIC_STORE_ERRORS, otel_tokens__store__kind="redis",
                              otel_tokens__store__operation="history")
    assert errors >= 1
    assert "is unreachable" in caplog.text


def test_a_process_writes_at_most_max_keys_histories(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'spend.db'}"
    manager = BudgetManager(price_book=PriceBook(), store=open_store(url), max_history_keys=3)
    try:
        for model in ("m1", "m2", "m3"):
            request = Request("openai", semconv.OP_CHAT, model)
            manager.observe(CallRecord(request, Result(usage=Usage(10, 20)), Labels(agent="a")))
        assert manager.flush()
    finally:
        manager.close()
    keys = [history_key("openai", "m1"), history_key("openai", "m1", "a"), history_key("openai", "m2"),
            history_key("openai", "m2", "a"), history_key("openai", "m3")]
    assert stored_history(url, *keys) == [[20], [20], [20], [], []]
