"""One budget across processes: the fleet on Redis, and restarts after kill -9 on SQLite and Redis.

Workers are real processes (``tests/budgets/worker.py``) running the real OpenAI SDK against the fake
server; Redis is the real redis-server.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import Labels, Request, Usage
from otel_tokens._internal.budgets.manager import BudgetManager
from otel_tokens._internal.budgets.store import open_store
from otel_tokens._internal.commands.fake_server import FakeLLMServer
from otel_tokens._internal.pricing.book import PriceBook
from otel_tokens._internal.pricing.tokenizer import count_chat_tokens, count_tokens
from tests.budgets.helpers import MAX_TOKENS, MODEL, PROMPT, call_cost, worker

FLEET_KEY = ("total:fleet", None)


def stored_spent(url: str, key: tuple[str, int | None] = FLEET_KEY) -> float:
    store = open_store(url)
    try:
        return store.settle([], [key])[key[0]]
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_fleet_of_four_processes_shares_one_blocking_budget(kind: str, tmp_path, request) -> None:
    """Redis: a fleet. SQLite: the processes of one host sharing one file."""
    if kind == "redis":
        store_url = request.getfixturevalue("redis_url")
    else:
        store_url = f"sqlite:///{tmp_path / 'spend.db'}"
    with FakeLLMServer(latency_s=0.02, allow_retries=False) as fake:
        cost = call_cost(fake.openai_base_url)
        probes = fake.request_count()
        limit = 20.5 * cost
        workers = [worker("fleet", fake.openai_base_url, "8", "6", store=store_url,
                          budgets=f"total:fleet={limit!r}:block") for _ in range(4)]
        results = []
        for process in workers:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
        reached = fake.request_count() - probes

    sent = sum(result["sent"] for result in results)
    assert sent == reached
    # Overshoot at most one call across the fleet; the projection (about 1.3 calls) fits 20 times.
    assert 20 <= reached <= 21
    assert all(result["calls"] == result["sent"] for result in results)
    settled = sum(result["cost"] for result in results)
    assert math.isclose(settled, reached * cost, rel_tol=1e-9)
    assert abs(stored_spent(store_url) - settled) <= 1e-9
    assert sum(result["blocked"] for result in results) > 0


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_restart_after_kill_continues_from_stored_spend(kind: str, tmp_path, request) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'spend.db'}?reservation_ttl=6"
    else:
        url = request.getfixturevalue("redis_url") + "?reservation_ttl=6"
    with FakeLLMServer(allow_retries=False) as fake, FakeLLMServer(latency_s=600, allow_retries=False) as slow:
        cost = call_cost(fake.openai_base_url)
        probes = fake.request_count()
        # Room for 5 calls and a projection: with the dead worker's reservation held, a sixth does not fit.
        # The worker projects its chat (prompt in the chat format, MAX_TOKENS out); this process the text.
        rates = PriceBook().rates("openai", MODEL)
        worker_projection = rates.cost(Usage(count_chat_tokens([{"role": "user", "content": PROMPT}], None, MODEL),
                                             MAX_TOKENS))
        here_projection = rates.cost(Usage(count_tokens(PROMPT, MODEL), MAX_TOKENS))
        limit = 5 * cost + worker_projection + here_projection / 2
        budgets = f"total:fleet={limit!r}:block"
        first = worker("restart", fake.openai_base_url, slow.openai_base_url, "5", store=url, budgets=budgets)
        settled = []
        for line in first.stdout:
            if line.startswith("settled "):
                settled.append(float(line.split()[1]))
            if line.strip() == "hanging":
                break
        # The hanging call reserved before it was sent; wait until it reaches the slow server.
        deadline = time.monotonic() + 30
        while slow.request_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slow.request_count() == 1
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert len(settled) == 5 and fake.request_count() - probes == 5

        # The next process continues from the stored spend: everything settled before the kill, once.
        assert abs(stored_spent(url.split("?")[0]) - sum(settled)) <= 1e-12
        manager = BudgetManager(price_book=PriceBook(), count_tokens=count_tokens, store=open_store(url))
        try:
            manager.set_budget("fleet", limit, action="block", scope="total")
            assert abs(manager.status()["total:fleet"]["spent_usd"] - sum(settled)) <= 1e-12
            call = Request("openai", semconv.OP_CHAT, MODEL,
                           attributes={semconv.GEN_AI_REQUEST_MAX_TOKENS: MAX_TOKENS})
            # The dead worker's reservation still holds the headroom...
            with pytest.raises(otel_tokens.BudgetExceededError):
                manager.reserve(call, Labels(), lambda: PROMPT)
            # ...until it expires (reservation_ttl=6 here; 300 s by default).
            deadline = time.monotonic() + 20
            reservation = None
            while reservation is None and time.monotonic() < deadline:
                time.sleep(0.25)
                try:
                    reservation = manager.reserve(call, Labels(), lambda: PROMPT)
                except otel_tokens.BudgetExceededError:
                    pass
            assert reservation is not None
            manager.settle(reservation, None)
        finally:
            manager.close()
