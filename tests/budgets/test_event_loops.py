"""Async budgets on every event loop: the real ``openai.AsyncOpenAI`` over its own HTTP stack (recorded
responses) under asyncio, uvloop and trio, with a blocking budget counted here or on a SQLite store.

Each call is counted, its spend reaches the budget, a call over the limit is refused before it is sent,
and the store's round trips never run on the loop's thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import Labels, Request, Usage
from otel_tokens._internal.budgets.manager import BudgetManager
from otel_tokens._internal.budgets.store import open_store
from otel_tokens._internal.pricing.book import PriceBook
from otel_tokens._internal.pricing.tokenizer import count_tokens
from otel_tokens._internal.setup.runtime import current_runtime
from tests.providers.assertions import reference_cost
from tests.providers.openai_mock import OpenAIMock

LOOPS = ["asyncio", "uvloop", "trio"]
# The recorded chat completion (tests/providers/recordings/openai/chat_completion.json).
COST = reference_cost("gpt-4o-2024-08-06", Usage(input_tokens=1250, output_tokens=42, cache_read_tokens=1024),
                      "openai")


def run(loop: str, main: Callable[[], Awaitable[Any]]) -> Any:
    if loop == "trio":
        import trio

        return trio.run(main)
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(main())
    return asyncio.run(main())


async def ask(client: Any, max_tokens: int = 100) -> Any:
    # Projected at about $0.001 (100 output tokens of gpt-4o): under the call's actual cost, COST.
    return await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=max_tokens
    )


@pytest.fixture
def mock() -> OpenAIMock:
    return OpenAIMock()


@pytest.fixture
def start(telemetry, clean_env, monkeypatch, tmp_path):
    """start(store) -> runtime: instrument() with OTEL_TOKENS_STORE a SQLite file ("sqlite") or unset."""

    def start(store: str | None) -> Any:
        if store == "sqlite":
            monkeypatch.setenv("OTEL_TOKENS_STORE", f"sqlite:///{tmp_path / 'spend.db'}")
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        return current_runtime()

    yield start
    otel_tokens.uninstrument()


def spy_threads(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads the store's reserve and settle run on."""
    threads: list[int] = []
    for name in ("reserve", "settle"):
        original = getattr(store, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            threads.append(threading.get_ident())
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, spy)
    return threads


def stored_spent(runtime: Any, key: str) -> float:
    assert runtime.budgets.flush()
    return runtime.budgets.store.settle([], [(key, None)])[key]


@pytest.mark.parametrize("store", ["sqlite", None])
@pytest.mark.parametrize("loop", LOOPS)
def test_async_calls_are_counted_and_blocked_on_every_loop(loop, store, start, mock, telemetry,
                                                           monkeypatch) -> None:
    runtime = start(store)
    otel_tokens.set_budget("all", COST, action="block", scope="total")  # room for one call
    threads = spy_threads(runtime.budgets.store, monkeypatch) if store else []

    async def main() -> tuple[int, list[int]]:
        client = mock.async_client()
        response = await ask(client)
        assert response.usage.prompt_tokens == 1250
        with pytest.raises(otel_tokens.BudgetExceededError) as caught:
            await ask(client)
        assert caught.value.scope == "total" and caught.value.limit_usd == COST
        return threading.get_ident(), list(threads)

    loop_thread, store_threads = run(loop, main)

    assert len(mock.requests) == 1  # the second call was refused before it was sent
    statistics = otel_tokens.get_statistics()
    assert statistics["total_calls"] == 1 and statistics["errors"] == 0
    assert math.isclose(statistics["total_cost_usd"], COST, rel_tol=1e-9)
    status = statistics["budgets"]["total:all"]
    assert math.isclose(status["spent_usd"], COST, rel_tol=1e-9)
    assert status["blocked_calls"] == 1
    assert len(telemetry.llm_spans()) == 1
    if store:
        assert store_threads and loop_thread not in store_threads
        assert math.isclose(stored_spent(runtime, "total:all"), COST, rel_tol=1e-9)


@pytest.mark.parametrize("loop", LOOPS)
def test_request_budgets_follow_tasks_on_every_loop(loop, start, mock) -> None:
    start("sqlite")
    otel_tokens.set_budget("all", 100 * COST, action="block", scope="total")  # a store round trip per call

    async def main() -> float:
        client = mock.async_client()
        async with otel_tokens.budget(limit_usd=1.5 * COST) as b:
            await ask(client)
            with pytest.raises(otel_tokens.BudgetExceededError) as caught:
                await ask(client, max_tokens=1000)  # projected at $0.01: past the 0.5 * COST left
            assert caught.value.scope == "request"
        return b.spent_usd

    assert math.isclose(run(loop, main), COST, rel_tol=1e-9)
    assert len(mock.requests) == 1
    assert otel_tokens.get_statistics()["total_calls"] == 1


def test_a_cancelled_call_releases_what_its_store_round_trip_reserved(start, mock, monkeypatch) -> None:
    runtime = start("sqlite")
    # Room for one projection of about $0.0015, not two: a leaked reservation would block the next call.
    otel_tokens.set_budget("all", COST, action="block", scope="total")
    store = runtime.budgets.store
    entered, proceed = threading.Event(), threading.Event()
    reserve = store.reserve

    def slow_reserve(*args: Any) -> Any:
        entered.set()
        proceed.wait(10)
        return reserve(*args)

    monkeypatch.setattr(store, "reserve", slow_reserve)
    account = runtime.budgets._accounts["total:all"]

    async def main() -> None:
        client = mock.async_client()
        call = asyncio.create_task(ask(client, max_tokens=150))
        await asyncio.to_thread(entered.wait, 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        monkeypatch.setattr(store, "reserve", reserve)
        proceed.set()  # the round trip finishes after the caller has gone
        deadline = time.monotonic() + 10
        while account.in_flight:
            assert time.monotonic() < deadline, "the reservation was not released"
            await asyncio.sleep(0.01)
        await asyncio.to_thread(runtime.budgets.flush)  # the release reaches the store
        await ask(client, max_tokens=150)

    asyncio.run(main())
    assert len(mock.requests) == 1
    assert account.reserved == 0.0
    assert math.isclose(stored_spent(runtime, "total:all"), COST, rel_tol=1e-9)


def test_a_call_cancelled_on_trio_before_its_round_trip_releases_its_reservation(start, mock) -> None:
    import trio

    runtime = start("sqlite")
    otel_tokens.set_budget("all", COST, action="block", scope="total")
    account = runtime.budgets._accounts["total:all"]

    async def main() -> None:
        client = mock.async_client()
        with trio.CancelScope() as scope:
            scope.cancel()  # the round trip's first checkpoint raises Cancelled: its thread never starts
            await ask(client)
        assert scope.cancelled_caught
        assert (account.in_flight, account.reserved) == (0, 0.0)
        await ask(client)

    trio.run(main)
    assert len(mock.requests) == 1
    assert otel_tokens.get_statistics()["total_calls"] == 1


def test_under_an_unknown_loop_the_round_trip_runs_in_place(tmp_path) -> None:
    """No asyncio or trio loop runs here (another library's loop, say): blocking, but counted and enforced."""
    manager = BudgetManager(price_book=PriceBook(), count_tokens=count_tokens,
                            store=open_store(f"sqlite:///{tmp_path / 'spend.db'}"))
    try:
        manager.set_budget("all", 0.002, action="block", scope="total")
        call = Request("openai", semconv.OP_CHAT, "gpt-4o", attributes={semconv.GEN_AI_REQUEST_MAX_TOKENS: 100})

        def drive(coroutine: Any) -> Any:
            with pytest.raises(StopIteration) as done:  # finishes without ever suspending
                coroutine.send(None)
            return done.value.value

        reservation = drive(manager.reserve_async(call, Labels(), lambda: "Capital of France?"))
        assert reservation is not None and reservation.reservation_id is not None
        manager.set_budget("all", 0.0015, action="block", scope="total")  # the first projection holds $0.001
        with pytest.raises(otel_tokens.BudgetExceededError):
            drive(manager.reserve_async(call, Labels(), lambda: "Capital of France?"))
    finally:
        manager.close()
