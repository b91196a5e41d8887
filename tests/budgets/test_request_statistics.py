"""``with otel_tokens.budget() as b:`` with or without a limit; ``b.statistics()`` counts the calls inside,
sync, async, nested and in threads that copy the context, through the real OpenAI SDK."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import openai
import pytest

pytest.importorskip("openai")

import otel_tokens  # noqa: E402
from tests.providers.openai_mock import OpenAIMock  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

# chat_completion.json: 1,250 prompt tokens (1,024 cached), 42 completion tokens, gpt-4o-2024-08-06.
INPUT, OUTPUT, CACHED = 1250, 42, 1024


def ask(client) -> None:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])


def test_budget_without_a_limit_counts_only_the_calls_inside(instrumented) -> None:
    client = OpenAIMock().client()
    ask(client)  # outside: not in the view
    with otel_tokens.agent("analyst"), otel_tokens.budget() as b:
        assert b.limit_usd is None and b.statistics()["total_calls"] == 0
        ask(client)
        with otel_tokens.agent("writer"):
            ask(client)
    stats = b.statistics()  # after the block: the last use
    process = otel_tokens.get_statistics()
    assert process["total_calls"] == 3
    assert stats["total_calls"] == 2
    assert (stats["input_tokens"], stats["output_tokens"], stats["cache_read_tokens"]) == (
        2 * INPUT, 2 * OUTPUT, 2 * CACHED)
    assert stats["total_tokens"] == 2 * (INPUT + OUTPUT)
    assert stats["total_cost_usd"] == pytest.approx(process["total_cost_usd"] * 2 / 3, rel=1e-9)
    assert stats["total_cost_usd"] == pytest.approx(b.spent_usd, rel=1e-9)
    assert set(stats["by_agent"]) == {"analyst", "writer"}
    assert stats["by_agent"]["writer"]["calls"] == 1
    assert list(stats["by_model"]) == ["gpt-4o-2024-08-06"]
    assert "budgets" not in stats and "budget_store" not in stats
    assert b.remaining_usd == float("inf")


def test_nested_budgets_each_count_their_own_calls(instrumented) -> None:
    client = OpenAIMock().client()
    with otel_tokens.budget(limit_usd=1.0) as outer:
        ask(client)
        with otel_tokens.budget() as inner:
            ask(client)
            assert inner.statistics()["total_calls"] == 1
        assert outer.statistics()["total_calls"] == 2
    assert inner.statistics()["total_calls"] == 1


def test_async_tasks_and_copied_thread_contexts_count_in_their_budget(instrumented) -> None:
    mock = OpenAIMock()

    async def request(n: int) -> dict:
        client = mock.async_client()
        with otel_tokens.budget() as b:
            for _ in range(n):
                await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
                await asyncio.sleep(0)
        return b.statistics()

    async def main() -> list[dict]:
        return await asyncio.gather(request(1), request(3), request(2))

    assert [stats["total_calls"] for stats in asyncio.run(main())] == [1, 3, 2]

    client = mock.client()
    with otel_tokens.budget() as b:
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(ask, client))
        thread.start()
        thread.join()
    assert b.statistics()["total_calls"] == 1


def test_a_refused_call_is_not_counted_and_a_failed_one_is(instrumented) -> None:
    mock = OpenAIMock()
    client = mock.client()
    with otel_tokens.budget(limit_usd=0.0) as b:
        with pytest.raises(otel_tokens.BudgetExceededError):
            ask(client)
    assert b.statistics()["total_calls"] == 0
    mock.reply("error_429.json", status=429)
    with otel_tokens.budget() as b:
        with pytest.raises(openai.RateLimitError):
            ask(client)
    assert b.statistics()["total_calls"] == 1 and b.statistics()["errors"] == 1


def test_decorated_functions_get_a_fresh_view_per_call(instrumented) -> None:
    client = OpenAIMock().client()
    views = []

    @otel_tokens.budget()
    def handle() -> None:
        ask(client)

    handle()
    handle()
    with otel_tokens.budget() as b:
        handle()
    views.append(b.statistics()["total_calls"])
    assert views == [1]
