"""The ledger: exact totals from spans and from call records, under sampling, threads and asyncio."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased

from otel_tokens import semconv
from otel_tokens._internal.accounting.ledger import NONE_KEY, OTHER_KEY, TOP_CALLS_KEPT, Ledger
from otel_tokens._internal.base.instruments import Instruments
from otel_tokens._internal.base.records import NO_LABELS, CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.recorder import Recorder
from otel_tokens._internal.pricing.book import PriceBook

# USD per million tokens: small binary-friendly numbers keep expected sums easy to state.
INPUT_PER_M, OUTPUT_PER_M = 2.0, 8.0

TOTAL_KEYS = {
    "total_calls", "total_tokens", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_cost_usd", "unpriced_calls", "errors", "estimated_calls", "duration_s",
    "usage_invalid_calls", "usage_unknown_calls",
    "first_call_time", "last_call_time", "by_agent", "by_model", "by_provider", "by_operation", "by_workflow",
    "by_task", "by_user", "by_agent_model", "top_calls", "budgets",
    "tool_calls", "input_cost_usd", "output_cost_usd", "priced_tokens", "by_workflow_agent", "by_task_agent",
    "by_tier", "tool_fee_usd", "server_tool_calls", "cost_incomplete_calls",
}
ENTRY_KEYS = {
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "total_tokens", "cost_usd", "unpriced_calls", "errors", "duration_s",
    "tool_calls", "input_cost_usd", "output_cost_usd", "priced_tokens",
    "tool_fee_usd", "server_tool_calls", "cost_incomplete_calls",
}
PAIR_TABLES = ("by_agent_model", "by_workflow_agent", "by_task_agent")


class SeededIds(IdGenerator):
    """Deterministic ids, so which calls a ratio sampler keeps is the same on every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def generate_span_id(self) -> int:
        with self._lock:
            return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        with self._lock:
            return self._random.getrandbits(128) or 1


class Stack:
    """A real tracer provider, exporter, meter and recorder around one ledger."""

    def __init__(self, *, sampler=None, max_keys: int = 1000, export: bool = True) -> None:
        self.provider = TracerProvider(sampler=sampler, id_generator=SeededIds(7), shutdown_on_exit=False)
        self.exporter = InMemorySpanExporter()
        if export:
            self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.ledger = Ledger(max_keys=max_keys)
        self.reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[self.reader]).get_meter(semconv.SCOPE_NAME)
        self.prices = PriceBook()
        self.prices.set_price("m-small", input=INPUT_PER_M, output=OUTPUT_PER_M)
        self.prices.set_price("m-large", input=INPUT_PER_M * 4, output=OUTPUT_PER_M * 4)
        self.tracer = self.provider.get_tracer(semconv.SCOPE_NAME)
        self.recorder = Recorder(self.tracer, Instruments.create(meter), self.prices, Settings(), ledger=self.ledger)

    def call(
        self,
        usage: Usage | None = None,
        *,
        model: str = "m-small",
        response_model: str | None = None,
        provider: str = "openai",
        operation: str = semconv.OP_CHAT,
        labels: Labels = NO_LABELS,
        error: BaseException | None = None,
    ) -> None:
        invocation = self.recorder.start(Request(provider, operation, model), labels)
        result = None if error is not None else Result(usage=usage, response_model=response_model)
        self.recorder.finish(invocation, result, error)


def cost(usage: Usage, scale: float = 1.0) -> float:
    return (usage.input_tokens * INPUT_PER_M + usage.output_tokens * OUTPUT_PER_M) * scale / 1_000_000


def test_statistics_has_the_documented_shape_when_empty() -> None:
    statistics = Ledger().statistics()
    assert set(statistics) == TOTAL_KEYS
    assert statistics["total_calls"] == 0
    assert statistics["total_cost_usd"] == 0.0
    assert statistics["first_call_time"] is None and statistics["last_call_time"] is None
    assert statistics["by_agent"] == {} and statistics["budgets"] == {}
    assert statistics["by_agent_model"] == {} and statistics["top_calls"] == []


def test_totals_by_every_dimension_from_spans() -> None:
    stack = Stack()
    a = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=300, reasoning_tokens=50)
    b = Usage(input_tokens=40, output_tokens=10, cache_write_tokens=20, estimated=True)
    c = Usage(input_tokens=7, output_tokens=3)
    stack.call(a, labels=Labels(agent="researcher", workflow="report", task="search", user="u1"))
    stack.call(b, model="m-large", labels=Labels(agent="writer", workflow="report", user="u2"))
    # Unpriced model, served under another name than requested.
    stack.call(c, model="mystery", response_model="mystery-0613", provider="acme", labels=Labels(agent="writer"))
    stack.call(error=TimeoutError("slow"), labels=Labels(agent="researcher"))
    stack.call(Usage(input_tokens=5), operation=semconv.OP_EMBEDDINGS)

    statistics = stack.ledger.statistics()
    assert len(stack.exporter.get_finished_spans()) == 5
    assert set(statistics) == TOTAL_KEYS
    expected_cost = cost(a) + cost(b, 4) + cost(Usage(input_tokens=5))
    assert statistics["total_calls"] == 5
    assert statistics["input_tokens"] == 1000 + 40 + 7 + 5
    assert statistics["output_tokens"] == 200 + 10 + 3
    assert statistics["total_tokens"] == 1052 + 213
    assert statistics["cache_read_tokens"] == 300
    assert statistics["cache_write_tokens"] == 20
    assert statistics["reasoning_tokens"] == 50
    assert math.isclose(statistics["total_cost_usd"], expected_cost, abs_tol=1e-9)
    assert statistics["unpriced_calls"] == 1
    assert statistics["errors"] == 1
    assert statistics["estimated_calls"] == 1

    by_agent = statistics["by_agent"]
    assert set(by_agent) == {"researcher", "writer", NONE_KEY}
    assert all(set(entry) == ENTRY_KEYS for entry in by_agent.values())
    assert by_agent["researcher"]["calls"] == 2
    assert by_agent["researcher"]["errors"] == 1
    assert by_agent["researcher"]["cache_read_tokens"] == 300
    assert by_agent["researcher"]["reasoning_tokens"] == 50
    assert by_agent["researcher"]["total_tokens"] == 1200
    assert math.isclose(by_agent["researcher"]["cost_usd"], cost(a), abs_tol=1e-12)
    assert by_agent["writer"]["calls"] == 2
    assert by_agent["writer"]["unpriced_calls"] == 1
    assert by_agent["writer"]["cache_write_tokens"] == 20
    assert math.isclose(by_agent["writer"]["cost_usd"], cost(b, 4), abs_tol=1e-12)
    assert by_agent[NONE_KEY]["calls"] == 1

    # The response model wins over the requested one.
    assert set(statistics["by_model"]) == {"m-small", "m-large", "mystery-0613"}
    assert statistics["by_model"]["m-small"]["calls"] == 3
    assert {k: v["calls"] for k, v in statistics["by_provider"].items()} == {"openai": 4, "acme": 1}
    assert {k: v["calls"] for k, v in statistics["by_operation"].items()} == {"chat": 4, "embeddings": 1}
    assert {k: v["calls"] for k, v in statistics["by_workflow"].items()} == {"report": 2, NONE_KEY: 3}
    assert {k: v["calls"] for k, v in statistics["by_task"].items()} == {"search": 1, NONE_KEY: 4}
    assert {k: v["calls"] for k, v in statistics["by_user"].items()} == {"u1": 1, "u2": 1, NONE_KEY: 3}


def test_duration_and_call_times_are_the_calls_own() -> None:
    stack = Stack()
    before = time.time()
    stack.call(Usage(input_tokens=1, output_tokens=1))
    stack.call(Usage(input_tokens=1, output_tokens=1))
    after = time.time()
    statistics = stack.ledger.statistics()
    metric_duration = sum(
        point.sum for metric in _metrics(stack.reader) if metric.name == semconv.METRIC_OPERATION_DURATION
        for point in metric.data.data_points
    )
    assert math.isclose(statistics["duration_s"], metric_duration, abs_tol=1e-9)
    assert before <= statistics["first_call_time"] <= statistics["last_call_time"] <= after


def _metrics(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    return [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def test_agent_spans_and_other_scopes_are_not_counted() -> None:
    stack = Stack()
    usage_attributes = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 10,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
    }
    stack.tracer.start_span(
        "invoke_agent researcher",
        attributes={**usage_attributes, semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT},
    ).end()
    stack.provider.get_tracer("some.other.instrumentation").start_span("chat", attributes=usage_attributes).end()
    stack.tracer.start_span("untyped").end()
    assert len(stack.exporter.get_finished_spans()) == 3
    assert stack.ledger.statistics()["total_calls"] == 0


def test_unsampled_calls_are_counted_exactly_through_records() -> None:
    stack = Stack(sampler=TraceIdRatioBased(0.01))
    rng = random.Random(3)
    expected = {"calls": 0, "input": 0, "output": 0, "costs": [], "by_agent": {}}
    for i in range(1000):
        usage = Usage(input_tokens=rng.randrange(1, 5000), output_tokens=rng.randrange(0, 2000))
        agent = f"agent-{i % 3}"
        stack.call(usage, labels=Labels(agent=agent))
        expected["calls"] += 1
        expected["input"] += usage.input_tokens
        expected["output"] += usage.output_tokens
        expected["costs"].append(cost(usage))
        expected["by_agent"][agent] = expected["by_agent"].get(agent, 0) + 1

    sampled = len(stack.exporter.get_finished_spans())
    assert 0 < sampled < 100  # both paths were used
    statistics = stack.ledger.statistics()
    assert statistics["total_calls"] == 1000
    assert statistics["input_tokens"] == expected["input"]
    assert statistics["output_tokens"] == expected["output"]
    assert abs(statistics["total_cost_usd"] - math.fsum(expected["costs"])) < 1e-9
    assert {k: v["calls"] for k, v in statistics["by_agent"].items()} == expected["by_agent"]
    assert statistics["unpriced_calls"] == 0


def test_records_and_spans_give_the_same_totals() -> None:
    def drive(stack: Stack) -> dict:
        stack.call(Usage(100, 20, cache_read_tokens=10, reasoning_tokens=5), labels=Labels("a", "w", "t", "u"))
        stack.call(Usage(3, 4, estimated=True), model="nope", labels=Labels(agent="b"))
        stack.call(error=ValueError("bad"), labels=Labels(agent="a"))
        statistics = stack.ledger.statistics()
        for key in ("duration_s", "first_call_time", "last_call_time"):
            statistics.pop(key)
        for table in (v for k, v in statistics.items() if k.startswith("by_") and k not in PAIR_TABLES):
            for entry in table.values():
                entry.pop("duration_s")
        for pair_table in PAIR_TABLES:
            for inners in statistics[pair_table].values():
                for entry in inners.values():
                    entry.pop("duration_s")
        for call in statistics["top_calls"]:
            call.pop("duration_s")
            call.pop("time")
        return statistics

    from_spans = drive(Stack())
    from_records = drive(Stack(sampler=ALWAYS_OFF))
    assert from_spans == from_records
    assert from_spans["total_calls"] == 3
    assert [call["agent"] for call in from_spans["top_calls"]] == ["a"]  # the unpriced and failed calls are not


def test_record_ignores_operations_without_usage() -> None:
    ledger = Ledger()
    ledger.record(CallRecord(Request("openai", semconv.OP_INVOKE_AGENT, None), None))
    ledger.record(CallRecord(Request("openai", semconv.OP_CHAT, "m"), Result(usage=Usage(2, 3)), cost_usd=0.5))
    statistics = ledger.statistics()
    assert statistics["total_calls"] == 1
    assert statistics["total_cost_usd"] == 0.5
    assert statistics["unpriced_calls"] == 0


def test_threads_give_exact_totals() -> None:
    stack = Stack(export=False)
    threads, calls = 16, 300
    barrier = threading.Barrier(threads)

    def worker(index: int) -> None:
        barrier.wait()
        for i in range(calls):
            stack.call(Usage(input_tokens=index + 1, output_tokens=i), labels=Labels(agent=f"agent-{index % 4}"))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    statistics = stack.ledger.statistics()
    assert statistics["total_calls"] == threads * calls
    assert statistics["input_tokens"] == calls * sum(range(1, threads + 1))
    assert statistics["output_tokens"] == threads * sum(range(calls))
    expected = math.fsum(cost(Usage(n + 1, i)) for n in range(threads) for i in range(calls))
    assert abs(statistics["total_cost_usd"] - expected) < 1e-9
    assert {k: v["calls"] for k, v in statistics["by_agent"].items()} == {
        f"agent-{n}": threads // 4 * calls for n in range(4)
    }


async def test_asyncio_tasks_give_exact_totals() -> None:
    stack = Stack(export=False)

    async def task(index: int) -> None:
        for i in range(50):
            invocation = stack.recorder.start(Request("openai", semconv.OP_CHAT, "m-small"), Labels(agent="a"))
            await asyncio.sleep(0)  # interleave the open calls of all tasks
            stack.recorder.finish(invocation, Result(usage=Usage(index, i)))

    await asyncio.gather(*(task(n) for n in range(100)))
    statistics = stack.ledger.statistics()
    assert statistics["total_calls"] == 5000
    assert statistics["input_tokens"] == 50 * sum(range(100))
    assert statistics["output_tokens"] == 100 * sum(range(50))


def test_keys_beyond_max_keys_fold_into_other(caplog: pytest.LogCaptureFixture) -> None:
    stack = Stack(max_keys=3)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        for n in range(6):
            stack.call(Usage(10, 1), labels=Labels(agent=f"agent-{n}", user=f"user-{n}"))
        stack.call(Usage(10, 1))  # no labels: "(none)" does not take one of the three places
        stack.call(Usage(10, 1), labels=Labels(agent="agent-0"))  # a kept key stays exact
    statistics = stack.ledger.statistics()
    by_agent = statistics["by_agent"]
    assert {k: v["calls"] for k, v in by_agent.items()} == {
        "agent-0": 2, "agent-1": 1, "agent-2": 1, OTHER_KEY: 3, NONE_KEY: 1,
    }
    assert by_agent[OTHER_KEY]["input_tokens"] == 30
    assert statistics["by_user"][OTHER_KEY]["calls"] == 3
    assert statistics["total_calls"] == 8
    overflow_logs = [r for r in caplog.records if OTHER_KEY in r.getMessage()]
    assert len(overflow_logs) == 2  # one per dimension that overflowed: agent and user
    assert all(r.levelno == logging.WARNING for r in overflow_logs)


def test_many_label_combinations_stay_exact() -> None:
    # More combinations than the ledger keeps as rows, so old rows are folded while calls continue.
    ledger = Ledger(max_keys=5000)
    request = Request("openai", semconv.OP_CHAT, "m")
    expected_users: dict[str, int] = {}
    for n in range(6000):
        user = f"user-{n % 2500}"
        agent = f"agent-{n % 3}"
        ledger.record(CallRecord(request, Result(usage=Usage(n, 1)), Labels(agent=agent, user=user), cost_usd=0.25))
        expected_users[user] = expected_users.get(user, 0) + n
    statistics = ledger.statistics()
    assert statistics["total_calls"] == 6000
    assert statistics["input_tokens"] == sum(range(6000))
    assert statistics["total_cost_usd"] == 1500.0
    assert {k: v["input_tokens"] for k, v in statistics["by_user"].items()} == expected_users
    assert {k: v["calls"] for k, v in statistics["by_agent"].items()} == {f"agent-{n}": 2000 for n in range(3)}
    assert statistics["by_model"]["m"]["cost_usd"] == 1500.0


def test_by_agent_model_crosses_agent_and_model() -> None:
    stack = Stack()
    a, b, c = Usage(100, 20, cache_read_tokens=40), Usage(10, 5), Usage(7, 3)
    stack.call(a, labels=Labels(agent="planner"))
    stack.call(a, labels=Labels(agent="planner"))
    stack.call(b, model="m-large", labels=Labels(agent="planner"))
    stack.call(c, model="mystery", labels=Labels(agent="writer"))
    stack.call(c)
    stack.call(error=TimeoutError("slow"), labels=Labels(agent="writer"))

    statistics = stack.ledger.statistics()
    nested = statistics["by_agent_model"]
    assert {agent: set(models) for agent, models in nested.items()} == {
        "planner": {"m-small", "m-large"}, "writer": {"mystery", "m-small"}, NONE_KEY: {"m-small"},
    }
    small = nested["planner"]["m-small"]
    assert set(small) == ENTRY_KEYS
    assert (small["calls"], small["input_tokens"], small["cache_read_tokens"]) == (2, 200, 80)
    assert math.isclose(small["cost_usd"], 2 * cost(a), abs_tol=1e-12)
    assert math.isclose(nested["planner"]["m-large"]["cost_usd"], cost(b, 4), abs_tol=1e-12)
    assert nested["writer"]["mystery"]["unpriced_calls"] == 1
    assert nested["writer"]["m-small"]["errors"] == 1
    # Each agent's models add up to its row in by_agent.
    for agent, models in nested.items():
        assert sum(entry["calls"] for entry in models.values()) == statistics["by_agent"][agent]["calls"]


def test_by_agent_model_survives_folded_rows_and_overflow() -> None:
    # More label combinations than rows kept, and more agents than max_keys.
    ledger = Ledger(max_keys=4)
    request = Request("openai", semconv.OP_CHAT, "m")
    for n in range(3000):
        labels = Labels(agent=f"agent-{n % 6}", user=f"user-{n}")
        ledger.record(CallRecord(request, Result(usage=Usage(1, 1)), labels, cost_usd=0.5))
    nested = ledger.statistics()["by_agent_model"]
    assert {agent: models["m"]["calls"] for agent, models in nested.items()} == {
        "agent-0": 500, "agent-1": 500, "agent-2": 500, "agent-3": 500, OTHER_KEY: 1000,
    }
    assert nested["agent-0"]["m"]["cost_usd"] == 250.0


def test_top_calls_are_the_most_expensive_priced_calls_in_order() -> None:
    stack = Stack(sampler=TraceIdRatioBased(0.5))  # both paths: spans and records
    rng = random.Random(5)
    sizes = [rng.randrange(1, 10_000) for _ in range(300)]
    for n, size in enumerate(sizes):
        stack.call(Usage(size, 10), labels=Labels(agent=f"agent-{n % 3}"))
    stack.call(Usage(10**9, 10), model="mystery", labels=Labels(agent="big"))  # unpriced: not a top call
    stack.call(error=TimeoutError("slow"), labels=Labels(agent="big"))

    top = stack.ledger.statistics()["top_calls"]
    assert len(top) == TOP_CALLS_KEPT
    expected = sorted(sizes, reverse=True)[:TOP_CALLS_KEPT]
    assert [call["input_tokens"] for call in top] == expected
    for call in top:
        assert math.isclose(call["cost_usd"], cost(Usage(call["input_tokens"], 10)), abs_tol=1e-12)
    first = top[0]
    assert set(first) == {
        "time", "agent", "model", "provider", "operation", "input_tokens", "output_tokens", "total_tokens",
        "cost_usd", "duration_s", "error",
    }
    assert (first["model"], first["provider"], first["operation"]) == ("m-small", "openai", "chat")
    assert first["agent"] == f"agent-{sizes.index(expected[0]) % 3}"
    assert first["total_tokens"] == expected[0] + 10 and first["error"] is None
    assert first["time"].endswith("Z") and first["duration_s"] >= 0


def test_top_calls_keep_the_earliest_of_equal_calls() -> None:
    ledger = Ledger()
    request = Request("openai", semconv.OP_CHAT, "m")
    for n in range(TOP_CALLS_KEPT + 10):
        labels = Labels(agent="a", user=f"user-{n}")
        result = Result(usage=Usage(5, 5))
        ledger.record(CallRecord(request, result, labels, end_time_unix=1000.0 + n, cost_usd=0.25))
    times = [call["time"] for call in ledger.statistics()["top_calls"]]
    assert len(times) == TOP_CALLS_KEPT
    assert times == sorted(times) and times[0] == "1970-01-01T00:16:40.000000Z"


def test_reset_forgets_totals() -> None:
    stack = Stack()
    stack.call(Usage(5, 5), labels=Labels(agent="a"))
    stack.ledger.reset()
    assert stack.ledger.statistics() == Ledger().statistics()
    stack.call(Usage(5, 5))
    assert stack.ledger.statistics()["total_calls"] == 1


def test_span_attribute_limits_do_not_change_totals() -> None:
    """Totals come from the call record, not from what survives the span's attribute limit."""
    from opentelemetry.sdk.trace import SpanLimits

    stack = Stack()
    limited = Stack()
    limited.provider._span_limits = SpanLimits(max_span_attributes=2)
    for each in (stack, limited):
        each.call(Usage(10, 20), labels=Labels(agent="a", workflow="w", task="t", user="u"))
    full, cut = stack.ledger.statistics(), limited.ledger.statistics()
    for dimension in ("agent", "workflow", "task", "user"):
        assert {k: v["calls"] for k, v in cut[f"by_{dimension}"].items()} == {
            k: v["calls"] for k, v in full[f"by_{dimension}"].items()
        }
    assert cut["by_user"]["u"]["input_tokens"] == 10 and cut["total_cost_usd"] == full["total_cost_usd"] > 0


def test_record_after_reset_counts_again() -> None:
    ledger = Ledger()
    ledger.record(CallRecord(Request("openai", semconv.OP_CHAT, "m"), Result(usage=Usage(1, 1))))
    assert ledger.statistics()["total_calls"] == 1  # readable after shutdown, for the exit report
    with pytest.raises(ValueError, match="max_keys"):
        Ledger(max_keys=0)
