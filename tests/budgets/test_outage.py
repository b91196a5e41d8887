"""The store failing: down at start, killed mid-run, and back. Calls keep working, one ERROR per outage,
a counter per failure, local counts reconcile; OTEL_TOKENS_STORE_FAILURE=open|closed."""

from __future__ import annotations

import logging
import math
import threading
import time

import openai
import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.budgets.store import open_store
from otel_tokens._internal.setup.runtime import current_runtime
from tests.budgets.helpers import ask, ask_async, call_cost


@pytest.fixture
def start(telemetry, clean_env, loopback_only, fake_llm):
    """start(**settings) -> (runtime, client, cost): instrument() with these settings."""

    def start(**settings):
        cost = call_cost(fake_llm.openai_base_url)
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               **settings)
        client = openai.OpenAI(base_url=fake_llm.openai_base_url, api_key="sk-test", max_retries=0)
        return current_runtime(), client, cost

    yield start
    otel_tokens.uninstrument()


def outage_errors(caplog) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.ERROR and "is unreachable" in r.getMessage())


def reconcile(runtime) -> None:
    """Wait for the store to answer again (retries are at most once a second) and flush to it."""
    deadline = time.monotonic() + 10
    while not runtime.budgets.flush():
        assert time.monotonic() < deadline, "the store did not come back"
        time.sleep(0.1)


def stored(url: str, key: str) -> float:
    store = open_store(url)
    try:
        return store.settle([], [(key, None)])[key]
    finally:
        store.close()


def test_redis_down_at_start_killed_mid_run_and_back(start, own_redis, telemetry, caplog, fake_llm) -> None:
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    runtime, client, cost = start(store=own_redis.url)  # nothing listens there yet
    otel_tokens.set_budget("all", 100 * cost, action="block", scope="total")
    otel_tokens.set_budget("A", 100 * cost)  # warn-only
    assert outage_errors(caplog) == 1

    with otel_tokens.agent("A"):
        for _ in range(3):
            ask(client)  # open: calls go through on local counts; no exception reaches the app
    assert outage_errors(caplog) == 1  # one ERROR per outage, however many failures
    statistics = otel_tokens.get_statistics()
    assert statistics["budget_store"]["available"] is False
    assert math.isclose(statistics["budgets"]["total:all"]["spent_usd"], 3 * cost, rel_tol=1e-12)
    assert "unreachable now, local counts shown" in otel_tokens.report()

    own_redis.start()
    reconcile(runtime)
    assert abs(stored(own_redis.url, "total:all") - 3 * cost) <= 1e-12
    assert abs(stored(own_redis.url, "agent:A") - 3 * cost) <= 1e-12
    assert any("reachable again" in r.getMessage() for r in caplog.records)

    with otel_tokens.agent("A"):
        ask(client)
        own_redis.kill()  # mid-run
        ask(client)
        ask(client)
    assert outage_errors(caplog) == 2
    own_redis.start()  # append-only file: what Redis acknowledged survived the kill
    reconcile(runtime)
    assert abs(stored(own_redis.url, "total:all") - 6 * cost) <= 1e-12
    assert abs(stored(own_redis.url, "agent:A") - 6 * cost) <= 1e-12
    statistics = otel_tokens.get_statistics()
    assert statistics["budget_store"] == {"kind": "redis", "url": own_redis.url, "available": True,
                                          "pending_settles": 0}
    assert abs(statistics["budgets"]["total:all"]["spent_usd"] - 6 * cost) <= 1e-12
    assert fake_llm.request_count("/v1/chat/completions") == 6 + 1  # and the cost probe
    errors = telemetry.sum_of(semconv.METRIC_STORE_ERRORS, otel_tokens__store__kind="redis")
    assert errors >= 2
    assert "Budgets (spent from the redis store" in otel_tokens.report()


def test_closed_refuses_blocking_calls_while_the_store_is_down(start, own_redis, fake_llm) -> None:
    runtime, client, cost = start(store=own_redis.url, store_failure="closed")
    otel_tokens.set_budget("all", 100 * cost, action="block", scope="total")
    otel_tokens.set_budget("A", 100 * cost, scope="agent")  # warn-only: never refused
    sent = fake_llm.request_count()
    with pytest.raises(otel_tokens.BudgetStoreUnavailableError) as caught:
        ask(client)
    assert isinstance(caught.value, otel_tokens.BudgetExceededError) and caught.value.scope == "total"
    assert "OTEL_TOKENS_STORE_FAILURE=closed" in str(caught.value)
    assert fake_llm.request_count() == sent  # refused before anything was sent
    otel_tokens.remove_budget("all", scope="total")
    with otel_tokens.agent("A"):
        ask(client)
    otel_tokens.set_budget("all", 100 * cost, action="block", scope="total")

    own_redis.start()
    reconcile(runtime)
    ask(client)  # the store answers: allowed again
    assert abs(stored(own_redis.url, "agent:A") - cost) <= 1e-12
    assert abs(stored(own_redis.url, "total:all") - cost) <= 1e-12


def test_open_blocks_on_local_counts_while_the_store_is_down(start, own_redis, fake_llm) -> None:
    runtime, client, cost = start(store=own_redis.url)
    own_redis.start()
    otel_tokens.set_budget("all", 2.5 * cost, action="block", scope="total")
    ask(client)
    own_redis.kill()
    ask(client)  # local: 1 stored + 0 pending + projection fits
    with pytest.raises(otel_tokens.BudgetExceededError) as caught:
        ask(client)  # local: 1 stored + 1 pending + projection does not
    assert not isinstance(caught.value, otel_tokens.BudgetStoreUnavailableError)
    own_redis.start()
    reconcile(runtime)
    assert abs(stored(own_redis.url, "total:all") - 2 * cost) <= 1e-12


def test_sqlite_unavailable_at_start_then_back(start, tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="otel_tokens")
    directory = tmp_path / "later"
    url = f"sqlite:///{directory / 'spend.db'}"
    runtime, client, cost = start(store=url)
    otel_tokens.set_budget("W", 100 * cost, action="block", scope="workflow")
    with otel_tokens.workflow("W"):
        ask(client)
        ask(client)
    assert outage_errors(caplog) == 1
    directory.mkdir()
    reconcile(runtime)
    assert abs(stored(url, "workflow:W") - 2 * cost) <= 1e-12


# -- nothing on the caller's thread or loop --------------------------------------------------------


def test_warn_only_budgets_add_no_round_trip_to_a_call(start, redis_url, monkeypatch) -> None:
    runtime, client, cost = start(store=redis_url)
    otel_tokens.set_budget("A", 1.0)
    otel_tokens.set_budget("all", 1.0, scope="total")
    store = runtime.budgets.store
    callers = []
    for name in ("reserve", "settle"):
        original = getattr(store, name)

        def spy(*args, _original=original, **kwargs):
            callers.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, spy)
    with otel_tokens.agent("A"):
        for _ in range(5):
            ask(client)
    assert threading.current_thread().name not in callers
    assert runtime.budgets.flush()
    assert abs(stored(redis_url, "agent:A") - 5 * cost) <= 1e-12
    assert abs(stored(redis_url, "total:all") - 5 * cost) <= 1e-12


async def test_async_calls_never_wait_on_the_store_in_the_event_loop(start, redis_url, monkeypatch,
                                                                      fake_llm) -> None:
    runtime, _client, cost = start(store=redis_url)
    otel_tokens.set_budget("all", 1.5 * cost, action="block", scope="total")
    store = runtime.budgets.store
    loop_thread = threading.get_ident()
    threads = []
    for name in ("reserve", "settle"):
        original = getattr(store, name)

        def spy(*args, _original=original, **kwargs):
            threads.append(threading.get_ident())
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, spy)
    aclient = openai.AsyncOpenAI(base_url=fake_llm.openai_base_url, api_key="sk-test", max_retries=0)
    await ask_async(aclient)
    with pytest.raises(otel_tokens.BudgetExceededError):
        await ask_async(aclient)
    assert threads and loop_thread not in threads
    assert runtime.budgets.flush()
    assert abs(stored(redis_url, "total:all") - cost) <= 1e-12


def test_a_slow_store_does_not_stall_calls(start, make_redis, caplog) -> None:
    """Redis stops answering (DEBUG SLEEP): calls go on after the 1 s timeout, on local counts."""
    caplog.set_level(logging.ERROR, logger="otel_tokens")
    server = make_redis("--enable-debug-command", "yes")
    runtime, client, cost = start(store=server.url)
    otel_tokens.set_budget("all", 100 * cost, action="block", scope="total")
    ask(client)
    sleeper = threading.Thread(target=lambda: server.client().execute_command("DEBUG", "SLEEP", "3"))
    sleeper.start()
    time.sleep(0.2)
    began = time.monotonic()
    ask(client)  # the reserve times out, the call goes through (open), the settle is queued
    ask(client)  # the store is marked down: no wait at all
    assert time.monotonic() - began < 2.5
    assert outage_errors(caplog) == 1
    sleeper.join()
    reconcile(runtime)
    assert abs(stored(server.url, "total:all") - 3 * cost) <= 1e-12
