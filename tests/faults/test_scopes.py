"""Scopes (agent/workflow/task/user) on generators, across threads and contexts, and misused.

Every case checks three things: nothing of ours reaches the app (no exception, no unraisable or thread
exception), each LLM call is attributed to the scope whose code made it, and nothing is logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import otel_tokens
from otel_tokens import semconv as A
from tests.providers.openai_mock import OpenAIMock

MESSAGES = [{"role": "user", "content": "x"}]


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """What the application would see of us: log records, unraisable and thread exceptions."""
    seen: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(f"unraisable: {u.exc_value!r}"))
    monkeypatch.setattr(threading, "excepthook", lambda a: seen.append(f"thread: {a.exc_value!r}"))
    caplog.set_level(logging.DEBUG)
    yield seen
    gc.collect()
    # Nothing of a scope is left in force in the test's context: no labels, no current span.
    assert label_now() == label_now().__class__()
    assert not trace.get_current_span().get_span_context().is_valid
    seen += [f"log {r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert seen == []


@pytest.fixture
def client(instrumented: Any) -> openai.OpenAI:
    return OpenAIMock().client()


@pytest.fixture
def aclient(instrumented: Any) -> openai.AsyncOpenAI:
    return OpenAIMock().async_client()


def call(client: openai.OpenAI, model: str = "gpt-4o") -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES)


async def acall(client: openai.AsyncOpenAI, model: str = "gpt-4o") -> Any:
    return await client.chat.completions.create(model=model, messages=MESSAGES)


def agents(telemetry: Any) -> list[str | None]:
    """The agent of each LLM call, in call order."""
    spans = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    return [s.attributes.get(A.GEN_AI_AGENT_NAME) for s in spans]


def labels_of(telemetry: Any, attribute: str) -> list[Any]:
    spans = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    return [s.attributes.get(attribute) for s in spans]


def agent_spans(telemetry: Any) -> list[Any]:
    return telemetry.spans("invoke_agent")


def label_now() -> Any:
    from otel_tokens._internal.calls.context import current_labels

    return current_labels()


# -- generators: the label is set only while the generator's own frame runs ------------------------
def test_caller_holding_a_started_generator_is_not_attributed_to_it(app, client, telemetry):
    @otel_tokens.agent("producer")
    def producer():
        call(client)
        yield 1
        call(client)
        yield 2

    g = producer()
    assert next(g) == 1
    call(client)  # the caller's own call, between two steps of the generator
    assert label_now().agent is None
    assert next(g) == 2
    call(client)
    assert list(g) == []
    assert agents(telemetry) == ["producer", None, "producer", None]
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 4
    assert stats["by_agent"]["producer"]["calls"] == 2


def test_generator_steps_nest_inside_whatever_scope_resumes_them(app, client, telemetry):
    @otel_tokens.agent("producer")
    def producer():
        while True:
            call(client)
            yield

    g = producer()
    with otel_tokens.agent("caller"), otel_tokens.workflow("etl"):
        next(g)
        call(client)
    next(g)
    g.close()
    assert agents(telemetry) == ["producer", "caller", "producer"]
    # The workflow was in force while the first step ran, and only then.
    assert labels_of(telemetry, A.GEN_AI_WORKFLOW_NAME) == ["etl", "etl", None]
    assert label_now() == label_now().__class__()


@pytest.mark.parametrize("scope, attribute", [
    (otel_tokens.workflow, A.GEN_AI_WORKFLOW_NAME),
    (otel_tokens.task, A.OTEL_TOKENS_TASK_NAME),
    (otel_tokens.user, A.USER_ID),
])
def test_every_scope_kind_on_a_generator_labels_only_its_own_steps(app, client, telemetry, scope, attribute):
    @scope("gen-label")
    def producer():
        call(client)
        yield

    g = producer()
    next(g)
    call(client)
    assert list(g) == []
    assert labels_of(telemetry, attribute) == ["gen-label", None]


def test_generator_send_throw_and_return_value_are_delegated(app, client, telemetry):
    def plain():
        total = 0
        while True:
            try:
                total += yield total
            except KeyError:
                total = -1
            if total > 10:
                return f"done at {total}"

    decorated = otel_tokens.agent("adder")(plain)
    assert inspect.isgeneratorfunction(decorated) and decorated.__name__ == "plain"

    def drive(factory):
        g = factory()
        out = [next(g), g.send(3), g.throw(KeyError("k")), g.send(5)]
        with pytest.raises(StopIteration) as stop:
            g.send(20)
        return out, stop.value.value

    assert drive(decorated) == drive(plain) == ([0, 3, -1, 4], "done at 24")

    def outer():
        return (yield from decorated())

    g = outer()
    next(g)
    with pytest.raises(StopIteration) as stop:
        g.send(11)
    assert stop.value.value == "done at 11"
    assert isinstance(decorated(), type(plain()))


def test_generator_exception_passes_through_and_marks_its_span(app, client, telemetry):
    failure = RuntimeError("boom")

    @otel_tokens.agent("fragile")
    def fragile():
        call(client)
        yield 1
        raise failure

    g = fragile()
    next(g)
    with pytest.raises(RuntimeError) as raised:
        next(g)
    assert raised.value is failure
    call(client)
    assert agents(telemetry) == ["fragile", None]
    (span,) = agent_spans(telemetry)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "RuntimeError"


def test_generator_span_lasts_from_first_resume_to_close_and_is_current_only_in_its_frame(
    app, client, telemetry
):
    @otel_tokens.agent("producer")
    def producer():
        call(client)
        yield trace.get_current_span()
        call(client)
        yield trace.get_current_span()

    never_started = producer()
    del never_started
    g = producer()
    assert agent_spans(telemetry) == []  # nothing happens until the first resume
    inside_first = next(g)
    outside = trace.get_current_span()
    assert outside is not inside_first and not outside.get_span_context().is_valid
    call(client)
    inside_second = next(g)
    assert inside_first is inside_second
    assert agent_spans(telemetry) == []  # still running
    g.close()
    (span,) = agent_spans(telemetry)
    assert span.context.span_id == inside_first.get_span_context().span_id
    assert span.status.status_code is StatusCode.UNSET  # closing is not a failure
    first, between, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.parent.span_id == second.parent.span_id == span.context.span_id
    assert between.parent is None
    assert span.start_time <= first.start_time and span.end_time >= second.end_time


def test_nested_decorated_generators_attribute_each_step_to_its_own_agent(app, client, telemetry):
    @otel_tokens.agent("reader")
    def reader():
        for n in range(2):
            call(client)
            yield n

    @otel_tokens.agent("mapper")
    def mapper(source):
        for item in source:
            call(client)
            yield item * 10

    assert list(mapper(reader())) == [0, 10]
    assert agents(telemetry) == ["reader", "mapper", "reader", "mapper"]
    spans = {s.name: s for s in agent_spans(telemetry)}
    # The reader is first resumed from the mapper's frame, so its span is the mapper's child.
    assert spans["invoke_agent reader"].parent.span_id == spans["invoke_agent mapper"].context.span_id


# -- generators closed or finalised elsewhere ---------------------------------------------------------
def in_thread(target: Any, *args: Any) -> None:
    worker = threading.Thread(target=target, args=args)
    worker.start()
    worker.join()


@pytest.mark.parametrize("how", ["close", "drop the last reference"])
def test_generator_closed_or_finalised_in_another_thread(app, client, telemetry, how):
    closed = []

    @otel_tokens.agent("producer")
    def producer():
        try:
            call(client)
            yield 1
            yield 2
        finally:
            closed.append(label_now().agent)

    holder = [producer()]
    next(holder[0])
    in_thread(holder[0].close if how == "close" else holder.clear)
    gc.collect()
    assert closed == ["producer"]  # its finally ran with its own label, in the other thread
    call(client)
    assert agents(telemetry) == ["producer", None]
    assert len(agent_spans(telemetry)) == 1


def test_generator_resumed_from_different_threads_and_contexts(app, client, telemetry):
    @otel_tokens.agent("producer")
    def producer():
        for _ in range(4):
            call(client)
            yield label_now().agent

    g = producer()
    seen = [next(g)]
    in_thread(lambda: seen.append(next(g)))
    in_thread(contextvars.copy_context().run, lambda: seen.append(next(g)))
    seen.append(contextvars.Context().run(next, g))
    g.close()
    call(client)
    assert seen == ["producer"] * 4
    assert agents(telemetry) == ["producer"] * 4 + [None]


def test_undecorated_generator_with_a_scope_across_its_yield_leaves_no_label_behind(app, client, telemetry):
    # The app's own ``with`` spans a yield, so its label leaks between steps (Python semantics);
    # what must hold is that no label outlives both scopes, however their exits interleave.
    def producer():
        with otel_tokens.agent("inner"):
            yield 1
        yield 2

    g = producer()
    next(g)
    with otel_tokens.workflow("outer"):
        next(g)  # the generator leaves its scope inside the caller's
        call(client)
    call(client)
    assert agents(telemetry) == [None, None]
    assert labels_of(telemetry, A.GEN_AI_WORKFLOW_NAME) == ["outer", None]
    assert label_now() == label_now().__class__()


# -- async generators -------------------------------------------------------------------------------
async def test_async_generator_label_only_while_its_frame_runs(app, aclient, telemetry):
    @otel_tokens.agent("streamer")
    async def streamer():
        for n in range(2):
            await acall(aclient)
            yield n

    assert inspect.isasyncgenfunction(streamer)
    agen = streamer()
    assert await agen.__anext__() == 0
    await acall(aclient)
    assert label_now().agent is None
    assert [n async for n in agen] == [1]
    await acall(aclient)
    assert agents(telemetry) == ["streamer", None, "streamer", None]
    assert len(agent_spans(telemetry)) == 1


async def test_async_generator_asend_athrow_are_delegated(app, aclient, telemetry):
    @otel_tokens.agent("echo")
    async def echo():
        received = None
        while True:
            try:
                received = yield received
            except ValueError:
                received = "caught"
            await acall(aclient)

    agen = echo()
    assert await agen.asend(None) is None
    assert await agen.asend("a") == "a"
    assert await agen.athrow(ValueError("v")) == "caught"
    await agen.aclose()
    await acall(aclient)
    assert agents(telemetry) == ["echo", "echo", None]


async def test_async_generator_exception_passes_through(app, aclient, telemetry):
    failure = LookupError("gone")

    @otel_tokens.agent("fragile")
    async def fragile():
        await acall(aclient)
        yield 1
        raise failure

    with pytest.raises(LookupError) as raised:
        async for _ in fragile():
            pass
    assert raised.value is failure
    (span,) = agent_spans(telemetry)
    assert span.status.status_code is StatusCode.ERROR


def test_async_generator_abandoned_with_break_is_finalised_quietly(app, instrumented, telemetry):
    errors: list[dict] = []
    finalised: list[Any] = []
    client = OpenAIMock().async_client()

    @otel_tokens.agent("streamer")
    async def streamer():
        try:
            for n in range(5):
                await acall(client)
                yield n
        finally:
            finalised.append(label_now().agent)

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        async for n in streamer():
            if n == 1:
                break  # abandoned: asyncio finalises it later, in a task of its own
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
        await acall(client)
        return label_now()

    after = asyncio.run(main())
    gc.collect()
    assert errors == []
    assert finalised == ["streamer"]
    assert after.agent is None
    assert agents(telemetry) == ["streamer", "streamer", None]
    (span,) = agent_spans(telemetry)
    assert span.status.status_code is StatusCode.UNSET


def test_async_generator_left_open_is_closed_by_asyncio_run_quietly(app, instrumented, telemetry):
    errors: list[dict] = []
    client = OpenAIMock().async_client()

    @otel_tokens.agent("streamer")
    async def streamer():
        while True:
            await acall(client)
            yield

    kept = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        agen = streamer()
        kept.append(agen)  # still referenced when the loop shuts down its async generators
        await agen.__anext__()

    asyncio.run(main())
    assert errors == []
    assert agents(telemetry) == ["streamer"]
    assert len(agent_spans(telemetry)) == 1


async def test_async_generator_closed_from_another_task(app, aclient, telemetry):
    @otel_tokens.agent("streamer")
    async def streamer():
        while True:
            await acall(aclient)
            yield

    agen = streamer()
    await agen.__anext__()
    await asyncio.create_task(agen.aclose())
    await acall(aclient)
    assert agents(telemetry) == ["streamer", None]


async def test_async_generators_consumed_by_concurrent_tasks(app, aclient, telemetry):
    @otel_tokens.agent("a")
    async def first():
        for _ in range(3):
            await acall(aclient, "gpt-4o")
            await asyncio.sleep(0)
            yield

    @otel_tokens.agent("b")
    async def second():
        for _ in range(3):
            await acall(aclient, "gpt-4o-mini")
            await asyncio.sleep(0)
            yield

    async def drain(agen):
        return [x async for x in agen]

    await asyncio.gather(drain(first()), drain(second()))
    by_model = {(s.attributes[A.GEN_AI_REQUEST_MODEL], s.attributes.get(A.GEN_AI_AGENT_NAME))
                for s in telemetry.llm_spans()}
    assert by_model == {("gpt-4o", "a"), ("gpt-4o-mini", "b")}


# -- coroutines -----------------------------------------------------------------------------------
def test_coroutine_closed_from_another_thread_does_not_raise(app, client, telemetry):
    @types.coroutine
    def suspend():
        yield

    @otel_tokens.agent("worker")
    async def worker():
        call(client)
        await suspend()

    coro = worker()
    coro.send(None)  # runs up to its first suspension, as an event loop would
    in_thread(coro.close)
    call(client)  # this context entered the scope: it is settled here, on its next call
    assert not trace.get_current_span().get_span_context().is_valid
    assert agents(telemetry) == ["worker", None]
    (span,) = agent_spans(telemetry)
    assert span.status.status_code is StatusCode.UNSET


# -- context managers used wrongly ----------------------------------------------------------------------
def test_exit_twice_does_nothing(app, client, telemetry):
    scope = otel_tokens.agent("once")
    scope.__enter__()
    call(client)
    scope.__exit__(None, None, None)
    scope.__exit__(None, None, None)
    call(client)
    assert agents(telemetry) == ["once", None]
    assert len(agent_spans(telemetry)) == 1


def test_exit_in_another_thread_does_not_raise_or_keep_the_label(app, client, telemetry):
    scope = otel_tokens.agent("roaming")
    scope.__enter__()
    call(client)
    in_thread(scope.__exit__, None, None, None)
    call(client)  # this context entered the scope and never saw its exit: settled here
    assert not trace.get_current_span().get_span_context().is_valid
    assert agents(telemetry) == ["roaming", None]
    assert len(agent_spans(telemetry)) == 1


@pytest.mark.parametrize("second_scope, during", [
    (otel_tokens.workflow, {"agent": None, "workflow": "second"}),
    (otel_tokens.agent, {"agent": "second", "workflow": None}),
])
def test_exits_out_of_order_keep_the_open_scope_and_then_leave_nothing(
    app, client, telemetry, second_scope, during
):
    first, second = otel_tokens.agent("first"), second_scope("second")
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    call(client)
    second.__exit__(None, None, None)
    call(client)
    assert agents(telemetry) == [during["agent"], None]
    assert labels_of(telemetry, A.GEN_AI_WORKFLOW_NAME) == [during["workflow"], None]
    assert label_now() == label_now().__class__()
    assert not trace.get_current_span().get_span_context().is_valid  # no ended agent span left current
    first_call, second_call = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert second_call.parent is None


async def test_task_started_inside_a_scope_keeps_its_label_after_the_scope_exits(app, aclient, telemetry):
    gate = asyncio.Event()

    async def background():
        await gate.wait()
        await acall(aclient)

    with otel_tokens.agent("spawner"):
        task = asyncio.create_task(background())
    await acall(aclient)
    gate.set()
    await task  # a copied context keeps the labels it was started with
    assert agents(telemetry) == [None, "spawner"]


def test_thread_started_inside_a_scope_keeps_its_label_when_the_scope_exits_elsewhere(app, client, telemetry):
    scope = otel_tokens.agent("spawner")
    started, finish = threading.Event(), threading.Event()

    def background():
        started.set()
        finish.wait()
        call(client)

    scope.__enter__()
    worker = threading.Thread(target=contextvars.copy_context().run, args=(background,))
    worker.start()
    started.wait()
    in_thread(scope.__exit__, None, None, None)
    call(client)  # the entering context: no longer labelled
    finish.set()
    worker.join()  # the copy: still labelled
    assert agents(telemetry) == [None, "spawner"]


async def test_async_with_exited_in_another_task(app, aclient, telemetry):
    scope = otel_tokens.agent("handover")
    await scope.__aenter__()
    await acall(aclient)
    await asyncio.create_task(scope.__aexit__(None, None, None))
    await acall(aclient)
    assert agents(telemetry) == ["handover", None]


def test_one_scope_object_shared_by_threads(app, client, telemetry):
    shared = otel_tokens.agent("shared")
    barrier = threading.Barrier(4)

    def work():
        with shared:
            barrier.wait()
            call(client)
        call(client, "gpt-4o-mini")

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    pairs = sorted((s.attributes[A.GEN_AI_REQUEST_MODEL], s.attributes.get(A.GEN_AI_AGENT_NAME) or "")
                   for s in telemetry.llm_spans())
    assert pairs == [("gpt-4o", "shared")] * 4 + [("gpt-4o-mini", "")] * 4
    assert len(agent_spans(telemetry)) == 4


def test_shared_scope_object_under_thread_churn(app):
    shared = otel_tokens.workflow("churn")
    seen: list[Any] = []

    def work():
        for _ in range(200):
            with shared:
                seen.append(label_now().workflow)
            seen.append(label_now().workflow)

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen.count("churn") == seen.count(None) == 8 * 200
    assert shared._entered == []


async def test_shared_scope_object_in_interleaved_tasks(app, aclient, telemetry):
    shared = otel_tokens.agent("shared")

    async def work(model):
        async with shared:
            await asyncio.sleep(0)
            await acall(aclient, model)
            await asyncio.sleep(0)
        await acall(aclient, model)

    await asyncio.gather(*(work(m) for m in ("gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini")))
    labelled = sorted((s.attributes.get(A.GEN_AI_AGENT_NAME) or "") for s in telemetry.llm_spans())
    assert labelled == [""] * 4 + ["shared"] * 4
    assert len(agent_spans(telemetry)) == 4


def test_recursive_decorated_function_restores_each_level(app, client, telemetry):
    @otel_tokens.agent("recursive")
    def descend(depth):
        call(client)
        if depth:
            descend(depth - 1)
        return label_now().agent

    assert descend(2) == "recursive"
    call(client)
    assert agents(telemetry) == ["recursive"] * 3 + [None]
    assert len(agent_spans(telemetry)) == 3


@pytest.mark.parametrize("bad, error", [("", ValueError), ("   ", ValueError), (None, TypeError), (3, TypeError)])
def test_bad_scope_names_are_config_errors(bad, error):
    with pytest.raises(otel_tokens.ConfigError, match="agent name") as raised:
        otel_tokens.agent(bad)
    assert isinstance(raised.value, error)


def test_agent_span_that_cannot_start_still_labels_calls(client, telemetry, instrumented, monkeypatch, caplog):
    monkeypatch.delenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer bug")

    monkeypatch.setattr(otel_tokens.agent, "_open_span", broken)
    with otel_tokens.agent("survivor"):
        call(client)
    call(client)
    assert "tracer bug" in caplog.text  # our bug, logged; the app runs on
    assert agents(telemetry) == ["survivor", None]
    assert agent_spans(telemetry) == []
