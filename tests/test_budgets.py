"""Budgets: parsing, thresholds that fire once, blocking before a call is sent, rolling windows, metrics."""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokens import semconv
from otel_tokens._internal.accounting.ledger import Ledger
from otel_tokens._internal.base.instruments import Instruments
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.budgets.manager import (
    OTEL_TOKENS_BUDGET_LIMIT_USD,
    OTEL_TOKENS_BUDGET_SPENT_USD,
    OTEL_TOKENS_BUDGET_UTILIZATION,
    Budget,
    BudgetExceededError,
    BudgetManager,
    BudgetSpecError,
    load_budgets_file,
    parse_budgets,
    window_seconds,
)
from otel_tokens._internal.calls.recorder import Recorder
from otel_tokens._internal.pricing.book import PriceBook

STATUS_KEYS = {"scope", "name", "limit_usd", "spent_usd", "utilization", "status", "window", "action", "blocked_calls"}
CHAT = Request("openai", semconv.OP_CHAT, "m")
# USD per token of model "m" (set as $1 and $2 per million).
INPUT_RATE, OUTPUT_RATE = 1.0 / 1_000_000, 2.0 / 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def price_book() -> PriceBook:
    book = PriceBook()
    book.set_price("m", input=1.0, output=2.0)
    return book


def words(text: str, model: str) -> int:
    return len(text.split())


def manager(**kwargs) -> BudgetManager:
    kwargs.setdefault("price_book", price_book())
    kwargs.setdefault("count_tokens", words)
    return BudgetManager(**kwargs)


def finished(agent: str, cost: float | None, request: Request = CHAT) -> CallRecord:
    return CallRecord(request, Result(usage=Usage(10, 10)), Labels(agent=agent), cost_usd=cost)


def spend(budgets: BudgetManager, agent: str, cost: float | None) -> list:
    reservation = budgets.reserve(CHAT, Labels(agent=agent), None)
    return budgets.settle(reservation, finished(agent, cost))


def with_max_tokens(max_tokens: int, operation: str = semconv.OP_CHAT, model: str = "m") -> Request:
    return Request("openai", operation, model, attributes={semconv.GEN_AI_REQUEST_MAX_TOKENS: max_tokens})


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_budgets_grammar() -> None:
    assert parse_budgets("researcher=0.50,writer=1.00:block") == [
        Budget("researcher", 0.5),
        Budget("writer", 1.0, action="block"),
    ]
    assert parse_budgets(" a = 1 : BLOCK @ 1h , b=2@30d:warn, c=0 ,") == [
        Budget("a", 1.0, action="block", window="1h"),
        Budget("b", 2.0, window="30d"),
        Budget("c", 0.0),
    ]
    assert parse_budgets("") == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("researcher", "expected [scope:]name=limit"),
        ("=1", "expected [scope:]name=limit"),
        ("a=-1", "limit_usd must be a finite number >= 0"),
        ("a=abc", "limit 'abc' is not a number"),
        ("a=inf", "limit_usd must be a finite number"),
        ("a=1:stop", "action must be 'warn' or 'block'"),
        ("a=1@1w", "window '1w' is not"),
        ("a=1@0h", "window '0h' is not"),
        ("a=1:block:warn", "action given twice"),
        ("a=1,b=2,a=3", "agent 'a' has more than one budget"),
    ],
)
def test_parse_budgets_names_the_entry_and_the_problem(spec: str, problem: str) -> None:
    with pytest.raises(BudgetSpecError) as caught:
        parse_budgets(spec)
    assert problem in str(caught.value)
    assert caught.value.entry is not None and caught.value.entry in str(caught.value)


def test_load_budgets_file(tmp_path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(
        '[budgets.researcher]\nlimit_usd = 0.5\nwarn_at = 0.8\naction = "block"\nwindow = "1d"\n\n'
        "[budgets.writer]\nlimit_usd = 2\n"
    )
    assert load_budgets_file(path) == [
        Budget("researcher", 0.5, warn_at=0.8, action="block", window="1d"),
        Budget("writer", 2, warn_at=0.9, action="warn", window=None),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[budgets.a]\nlimit_usd = -0.5\n", "limit_usd must be a finite number >= 0"),
        ("[budgets.a]\nlimit_usd = 1\nwarn_at = 1.5\n", "warn_at must be in (0, 1]"),
        ("[budgets.a]\nlimit_usd = 1\nwarn_at = 0\n", "warn_at must be in (0, 1]"),
        ('[budgets.a]\nlimit_usd = 1\naction = "stop"\n', "action must be 'warn' or 'block'"),
        ('[budgets.a]\nlimit_usd = 1\nwindow = "1 hour"\n', "window '1 hour' is not"),
        ('[budgets.a]\nlimit_usd = "0.5"\n', "limit_usd '0.5' is not a number"),
        ("[budgets.a]\nlimit_usd = true\n", "limit_usd True is not a number"),
        ("[budgets.a]\nlimit_usd = 1\nlimit = 2\n", "unknown key(s) limit; allowed: action, limit_usd"),
        ("[budgets.a]\nwarn_at = 0.5\n", "limit_usd is required"),
        ("[budgets]\na = 1\n", "must be a table"),
    ],
)
def test_budgets_file_errors_name_file_entry_and_problem(tmp_path, text: str, problem: str) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(BudgetSpecError) as caught:
        load_budgets_file(path)
    message = str(caught.value)
    assert problem in message
    assert str(path) in message and "budget 'a'" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[budget.a]\nlimit_usd = 1\n", "unknown top-level key(s) budget"),
        ("[budgets.a\nlimit_usd = 1\n", "not valid TOML"),
        (None, "cannot read the budgets file"),
    ],
)
def test_unusable_budgets_files_name_the_file(tmp_path, text: str | None, problem: str) -> None:
    path = tmp_path / "budgets.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BudgetSpecError) as caught:
        load_budgets_file(path)
    assert problem in str(caught.value) and str(path) in str(caught.value)


def test_window_seconds() -> None:
    assert [window_seconds(w) for w in (None, "30s", "15m", "1h", "1d", "30d")] == [
        None, 30, 900, 3600, 86400, 2_592_000,
    ]
    for bad in ("", "1", "h", "-1h", "1.5h", "1w", "01h"):
        with pytest.raises(ValueError, match="window"):
            window_seconds(bad)


def test_set_budget_validates() -> None:
    budgets = BudgetManager()
    with pytest.raises(ValueError, match="limit_usd must be a finite number >= 0"):
        budgets.set_budget("a", -1)
    with pytest.raises(ValueError, match=r"warn_at must be in \(0, 1\]"):
        budgets.set_budget("a", 1, warn_at=0)
    with pytest.raises(ValueError, match="action must be"):
        budgets.set_budget("a", 1, action="deny")
    with pytest.raises(ValueError, match="window"):
        budgets.set_budget("a", 1, window="forever")
    with pytest.raises(ValueError, match="on_warning must be callable"):
        budgets.set_budget("a", 1, on_warning="print")
    with pytest.raises(ValueError, match="agent must be a non-empty string"):
        budgets.set_budget("", 1)
    with pytest.raises(ValueError, match="default_max_output_tokens"):
        BudgetManager(default_max_output_tokens=-1)
    assert budgets.status() == {}


# -- thresholds ------------------------------------------------------------------------------------


def test_warning_then_exceeded_fire_once_each(caplog: pytest.LogCaptureFixture) -> None:
    warnings, exceeded = [], []
    budgets = manager()
    budgets.set_budget("researcher", 1.0, warn_at=0.5, on_warning=warnings.append, on_exceeded=exceeded.append)
    with caplog.at_level(logging.INFO, logger="otel_tokens"):
        assert spend(budgets, "researcher", 0.25) == []
        events = spend(budgets, "researcher", 0.375)  # 0.625: crosses warn_at
        assert spend(budgets, "researcher", 0.125) == []  # 0.75: already warned
        over = spend(budgets, "researcher", 0.5)  # 1.25: over the limit
        assert spend(budgets, "researcher", 0.5) == []

    assert events == [
        (
            semconv.EVENT_BUDGET_WARNING,
            {
                semconv.GEN_AI_AGENT_NAME: "researcher",
                semconv.OTEL_TOKENS_BUDGET_SCOPE: "agent",
                semconv.OTEL_TOKENS_BUDGET_NAME: "researcher",
                OTEL_TOKENS_BUDGET_SPENT_USD: 0.625,
                OTEL_TOKENS_BUDGET_LIMIT_USD: 1.0,
                OTEL_TOKENS_BUDGET_UTILIZATION: 0.625,
                semconv.OTEL_TOKENS_BUDGET_WINDOW: "lifetime",
            },
        )
    ]
    assert [name for name, _ in over] == [semconv.EVENT_BUDGET_EXCEEDED]
    assert over[0][1][OTEL_TOKENS_BUDGET_SPENT_USD] == 1.25

    records = [r for r in caplog.records if r.name == "otel_tokens"]
    assert [r.levelname for r in records] == ["WARNING", "ERROR"]
    assert records[0].getMessage() == "agent 'researcher' has spent $0.625 of its $1.00 budget (62%)"
    assert "'researcher'" in records[1].getMessage() and "spent $1.25 " in records[1].getMessage()
    assert "125%" in records[1].getMessage()

    assert warnings == [
        {"agent": "researcher", "scope": "agent", "name": "researcher", "limit_usd": 1.0, "spent_usd": 0.625, "utilization": 0.625, "status": "warning",
         "window": "lifetime", "action": "warn", "blocked_calls": 0},
    ]
    assert len(exceeded) == 1 and exceeded[0]["status"] == "exceeded" and exceeded[0]["spent_usd"] == 1.25
    assert budgets.status()["researcher"]["status"] == "exceeded"


def test_one_call_crossing_both_thresholds_fires_both(caplog: pytest.LogCaptureFixture) -> None:
    budgets = manager()
    budgets.set_budget("a", 1.0)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        events = spend(budgets, "a", 2.0)
    assert [name for name, _ in events] == [semconv.EVENT_BUDGET_WARNING, semconv.EVENT_BUDGET_EXCEEDED]
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]


def test_a_raising_callback_is_logged_not_propagated(caplog: pytest.LogCaptureFixture) -> None:
    def broken(status: dict) -> None:
        raise RuntimeError("pager down")

    budgets = manager()
    budgets.set_budget("a", 1.0, on_warning=broken, on_exceeded=broken)
    with caplog.at_level(logging.ERROR, logger="otel_tokens"):
        events = spend(budgets, "a", 2.0)
    assert len(events) == 2
    failures = [r for r in caplog.records if "callback" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info[0] is RuntimeError for r in failures)


def test_unpriced_calls_add_nothing() -> None:
    budgets = manager()
    budgets.set_budget("a", 1.0)
    assert spend(budgets, "a", None) == []
    assert budgets.status()["a"] == {
        "scope": "agent", "name": "a", "limit_usd": 1.0, "spent_usd": 0.0, "utilization": 0.0, "status": "ok", "window": "lifetime",
        "action": "warn", "blocked_calls": 0,
    }


def test_status_shape_and_zero_limit() -> None:
    budgets = manager()
    budgets.set_budget("frozen", 0.0, action="block", window="1h")
    assert set(budgets.status()["frozen"]) == STATUS_KEYS
    assert budgets.status()["frozen"]["utilization"] == 0.0
    assert budgets.status()["frozen"]["window"] == "1h"
    # Unknown price: projects nothing, so a zero budget lets it through; its cost (if any) counts.
    reservation = budgets.reserve(Request("openai", semconv.OP_CHAT, "unknown-model"), Labels(agent="frozen"), None)
    budgets.settle(reservation, finished("frozen", 0.5))
    assert budgets.status()["frozen"]["utilization"] == math.inf
    assert budgets.status()["frozen"]["status"] == "exceeded"
    assert budgets.budgets() == budgets.status()


# -- rolling windows -------------------------------------------------------------------------------


def test_rolling_window_expires_spend_and_warns_again(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    budgets = manager(clock=clock)
    budgets.set_budget("a", 1.0, warn_at=0.5, window="1m")
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        assert len(spend(budgets, "a", 0.625)) == 1  # t=0: warning
        clock.advance(30)
        assert spend(budgets, "a", 0.125) == []  # t=30: 0.75, still the same crossing
        clock.advance(29)
        assert budgets.status()["a"]["spent_usd"] == 0.75  # t=59: both inside the minute
        clock.advance(1)
        assert budgets.status()["a"]["spent_usd"] == 0.125  # t=60: the first call left the window
        assert budgets.status()["a"]["status"] == "ok"
        clock.advance(1)
        assert [n for n, _ in spend(budgets, "a", 0.5)] == [semconv.EVENT_BUDGET_WARNING]  # t=61: crosses again
        clock.advance(29)
        assert budgets.status()["a"]["spent_usd"] == 0.5  # t=90
        clock.advance(31)
        assert budgets.status()["a"]["spent_usd"] == 0.0  # t=121: nothing left in the window
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("for the last 1m" in r.getMessage() for r in warnings)


def test_rolling_window_memory_is_bounded_and_never_expires_early() -> None:
    clock = FakeClock()
    budgets = manager(clock=clock)
    budgets.set_budget("a", 1e9, window="1h")
    costs = []
    for n in range(10_000):  # one call a second for 2.8 hours
        spend(budgets, "a", 0.001 * (n % 7 + 1))
        costs.append((clock.now, 0.001 * (n % 7 + 1)))
        clock.advance(1)
    spent = budgets.status()["a"]["spent_usd"]
    exact = sum(c for t, c in costs if clock.now - t < 3600)
    late = sum(c for t, c in costs if clock.now - t < 3600 + 3600 / 1024 + 1)
    assert exact - 1e-9 <= spent <= late + 1e-9
    assert len(budgets._accounts["a"].buckets) <= 1025


def test_replacing_a_budget_keeps_spend() -> None:
    clock = FakeClock()
    budgets = manager(clock=clock)
    budgets.set_budget("a", 1.0)
    spend(budgets, "a", 0.5)
    budgets.set_budget("a", 2.0, window="1h")  # lifetime spend now counts as spent at this moment
    assert budgets.status()["a"]["spent_usd"] == 0.5
    assert budgets.status()["a"]["utilization"] == 0.25
    clock.advance(3600)
    assert budgets.status()["a"]["spent_usd"] == 0.0


# -- blocking --------------------------------------------------------------------------------------


def test_block_projects_prompt_and_max_tokens(caplog: pytest.LogCaptureFixture) -> None:
    budgets = manager()
    budgets.set_budget("a", 0.005, action="block")
    request = with_max_tokens(1000)
    projected = 3 * INPUT_RATE + 1000 * OUTPUT_RATE  # "one two three" is 3 tokens
    first = budgets.reserve(request, Labels(agent="a"), lambda: "one two three")
    second = budgets.reserve(request, Labels(agent="a"), lambda: "one two three")
    assert first.projected == second.projected == pytest.approx(projected, abs=1e-15)
    with caplog.at_level(logging.ERROR, logger="otel_tokens"):
        with pytest.raises(BudgetExceededError) as caught:
            budgets.reserve(request, Labels(agent="a"), lambda: "one two three")
        with pytest.raises(BudgetExceededError):
            budgets.reserve(request, Labels(agent="a"), lambda: "one two three")
    error = caught.value
    assert error.agent == "a" and error.limit_usd == 0.005
    assert error.projected_usd == pytest.approx(projected, abs=1e-15)
    assert error.spent_usd == pytest.approx(2 * projected, abs=1e-15)  # both calls in flight
    assert "'a'" in str(error) and "not sent" in str(error)
    assert budgets.status()["a"]["blocked_calls"] == 2
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # the first block only

    budgets.settle(first, finished("a", 0.001))  # the actual cost replaces the projection
    with pytest.raises(BudgetExceededError):  # 0.001 + 0.002003 + 0.002003 > 0.005
        budgets.reserve(request, Labels(agent="a"), lambda: "one two three")
    budgets.settle(second, None)  # never sent: released
    third = budgets.reserve(request, Labels(agent="a"), lambda: "one two three")
    assert third is not None
    assert budgets.status()["a"]["spent_usd"] == 0.001
    assert budgets.status()["a"]["blocked_calls"] == 3


def test_block_projection_defaults() -> None:
    budgets = manager(default_max_output_tokens=100)
    budgets.set_budget("a", 1.0, action="block")
    labels = Labels(agent="a")
    assert budgets.reserve(CHAT, labels, None).projected == pytest.approx(100 * OUTPUT_RATE, abs=1e-15)
    assert budgets.reserve(CHAT, labels, lambda: "a b").projected == pytest.approx(
        2 * INPUT_RATE + 100 * OUTPUT_RATE, abs=1e-15
    )
    embeddings = with_max_tokens(50, operation=semconv.OP_EMBEDDINGS)
    assert budgets.reserve(embeddings, labels, lambda: "a b c d").projected == pytest.approx(4 * INPUT_RATE, abs=1e-15)
    unknown = with_max_tokens(1000, model="no-such-model")
    assert budgets.reserve(unknown, labels, lambda: "a b").projected == 0.0
    assert manager(price_book=None).reserve(CHAT, labels, None) is None  # no budget for "a" there
    no_prices = BudgetManager()
    no_prices.set_budget("a", 1.0, action="block")
    assert no_prices.reserve(CHAT, labels, lambda: "a b").projected == 0.0


def test_unknown_price_is_blocked_only_once_spend_is_over() -> None:
    budgets = manager()
    budgets.set_budget("a", 1.0, action="block")
    unknown = Request("openai", semconv.OP_CHAT, "no-such-model")
    reservation = budgets.reserve(unknown, Labels(agent="a"), lambda: "text")
    budgets.settle(reservation, finished("a", 1.0, unknown))  # exactly at the limit: still allowed
    reservation = budgets.reserve(unknown, Labels(agent="a"), None)
    budgets.settle(reservation, finished("a", 0.25, unknown))
    with pytest.raises(BudgetExceededError):
        budgets.reserve(unknown, Labels(agent="a"), None)


def test_warn_budgets_never_tokenize_and_other_agents_pass() -> None:
    def must_not_run() -> str:
        raise AssertionError("a warn budget tokenized the prompt")

    budgets = manager()
    budgets.set_budget("a", 0.0)
    assert budgets.reserve(CHAT, Labels(agent="a"), must_not_run) is not None
    assert budgets.reserve(CHAT, Labels(agent="b"), must_not_run) is None
    assert budgets.reserve(CHAT, Labels(), must_not_run) is None


def test_settle_is_idempotent_and_survives_remove_and_reset() -> None:
    budgets = manager()
    budgets.set_budget("a", 1.0, action="block")
    reservation = budgets.reserve(with_max_tokens(100), Labels(agent="a"), None)
    assert budgets.settle(reservation, finished("a", 0.25)) == []
    assert budgets.settle(reservation, finished("a", 0.25)) == []
    assert budgets.status()["a"]["spent_usd"] == 0.25
    assert budgets.settle(None, finished("a", 0.25)) == []

    in_flight = budgets.reserve(with_max_tokens(100), Labels(agent="a"), None)
    budgets.reset()
    assert budgets.status()["a"]["spent_usd"] == 0.0
    budgets.settle(in_flight, finished("a", 0.125))  # finished after the reset: its cost counts
    assert budgets.status()["a"]["spent_usd"] == 0.125
    assert budgets._accounts["a"].reserved == 0.0

    in_flight = budgets.reserve(with_max_tokens(100), Labels(agent="a"), None)
    assert budgets.remove_budget("a") is True
    assert budgets.remove_budget("a") is False
    assert budgets.settle(in_flight, finished("a", 0.125)) == []
    assert budgets.status() == {}
    assert budgets.reserve(CHAT, Labels(agent="a"), None) is None


def test_sixteen_threads_overshoot_at_most_one_call() -> None:
    budgets = manager()
    limit = 0.05
    budgets.set_budget("a", limit, action="block")
    request = with_max_tokens(500)
    call_cost = 4 * INPUT_RATE + 500 * OUTPUT_RATE  # the projection; actual costs are at most this
    allowed, blocked = [0] * 16, [0] * 16
    barrier = threading.Barrier(16)

    def worker(index: int) -> None:
        barrier.wait()
        for n in range(100):
            try:
                reservation = budgets.reserve(request, Labels(agent="a"), lambda: "w w w w")
            except BudgetExceededError:
                blocked[index] += 1
                continue
            time.sleep(0)  # let other threads reserve while this call is in flight
            actual = call_cost if n % 2 else (4 * INPUT_RATE + 250 * OUTPUT_RATE)
            budgets.settle(reservation, finished("a", actual))
            allowed[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    status = budgets.status()["a"]
    assert sum(allowed) + sum(blocked) == 1600
    assert status["blocked_calls"] == sum(blocked) > 0
    assert status["spent_usd"] <= limit + call_cost
    assert status["spent_usd"] <= limit + 1e-12  # projections are never below actual costs here
    assert limit - status["spent_usd"] < call_cost  # and the headroom was used up
    assert budgets._accounts["a"].reserved == 0.0


# -- with the recorder -----------------------------------------------------------------------------


class Stack:
    def __init__(self, budgets: BudgetManager) -> None:
        provider = TracerProvider(shutdown_on_exit=False)
        self.exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.ledger = Ledger()
        meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter(semconv.SCOPE_NAME)
        self.recorder = Recorder(
            provider.get_tracer(semconv.SCOPE_NAME), Instruments.create(meter), price_book(), Settings(),
            ledger=self.ledger, budgets=budgets,
        )

    def call(self, agent: str, usage: Usage, max_tokens: int = 1000) -> None:
        invocation = self.recorder.start(with_max_tokens(max_tokens), Labels(agent=agent), lambda: "a b c")
        self.recorder.finish(invocation, Result(usage=usage))


def test_recorder_blocks_before_the_call_and_puts_events_on_spans() -> None:
    budgets = manager()
    budgets.set_budget("a", 0.01, warn_at=0.5, action="block")
    stack = Stack(budgets)
    stack.call("a", Usage(1000, 1000))  # $0.003
    stack.call("a", Usage(1000, 1000))  # $0.006: crosses 50%
    with pytest.raises(BudgetExceededError):
        # Seen: 1,000 output tokens; but the stated maximum alone (2,500 at $2/M: $0.005) passes what is left.
        stack.call("a", Usage(1000, 1000), max_tokens=2500)
    spans = stack.exporter.get_finished_spans()
    assert len(spans) == 2  # the blocked call opened no span
    assert [e.name for e in spans[0].events] == []
    assert [e.name for e in spans[1].events] == [semconv.EVENT_BUDGET_WARNING]
    assert spans[1].events[0].attributes[OTEL_TOKENS_BUDGET_SPENT_USD] == pytest.approx(0.006, abs=1e-12)
    assert stack.ledger.statistics()["total_calls"] == 2
    status = budgets.status()["a"]
    assert status["spent_usd"] == pytest.approx(0.006, abs=1e-12)
    assert status["blocked_calls"] == 1 and status["status"] == "warning"
    assert budgets._accounts["a"].reserved == 0.0


# -- metrics ---------------------------------------------------------------------------------------


def test_budget_gauges() -> None:
    clock = FakeClock()
    budgets = manager(clock=clock)
    reader = InMemoryMetricReader()
    budgets.register_metrics(MeterProvider(metric_readers=[reader]).get_meter(semconv.SCOPE_NAME))
    budgets.set_budget("researcher", 0.5)
    budgets.set_budget("writer", 2.0, window="1h", action="block")
    spend(budgets, "researcher", 0.125)
    spend(budgets, "writer", 0.5)

    def points() -> dict:
        found = {}
        for resource_metrics in reader.get_metrics_data().resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes)
                        found[(metric.name, metric.unit, attributes[semconv.GEN_AI_AGENT_NAME])] = (
                            point.value, attributes[semconv.OTEL_TOKENS_BUDGET_WINDOW],
                        )
        return found

    usd, ratio = semconv.UNIT_USD, semconv.UNIT_RATIO
    assert points() == {
        (semconv.METRIC_BUDGET_LIMIT, usd, "researcher"): (0.5, "lifetime"),
        (semconv.METRIC_BUDGET_SPENT, usd, "researcher"): (0.125, "lifetime"),
        (semconv.METRIC_BUDGET_UTILIZATION, ratio, "researcher"): (0.25, "lifetime"),
        (semconv.METRIC_BUDGET_LIMIT, usd, "writer"): (2.0, "1h"),
        (semconv.METRIC_BUDGET_SPENT, usd, "writer"): (0.5, "1h"),
        (semconv.METRIC_BUDGET_UTILIZATION, ratio, "writer"): (0.25, "1h"),
    }
    clock.advance(3600)
    after = points()
    assert after[(semconv.METRIC_BUDGET_SPENT, usd, "writer")] == (0.0, "1h")
    assert after[(semconv.METRIC_BUDGET_SPENT, usd, "researcher")] == (0.125, "lifetime")
