"""Labels and per-request budgets follow calls into ThreadPoolExecutor tasks, run_in_executor and
threading.Thread, through the real OpenAI SDK; off with the setting and after uninstrument; composed with
another wrapper of the same methods (opentelemetry-instrumentation-threading's shape) in either order."""

from __future__ import annotations

import asyncio
import os
import threading
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
import wrapt

pytest.importorskip("openai")

import otel_tokens  # noqa: E402
from otel_tokens import semconv  # noqa: E402
from otel_tokens._internal.calls import threads  # noqa: E402
from tests.providers.openai_mock import OpenAIMock  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")


def ask(client) -> None:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])


def agents(telemetry) -> list:
    return sorted(str(span.attributes.get(semconv.GEN_AI_AGENT_NAME)) for span in telemetry.llm_spans())


def run_everywhere(client) -> None:
    """One call each through submit, map, run_in_executor and a Thread, inside agent("analyst")."""
    with otel_tokens.agent("analyst"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(ask, client).result()
            list(pool.map(ask, [client]))

        async def in_executor() -> None:
            await asyncio.get_running_loop().run_in_executor(None, ask, client)

        asyncio.run(in_executor())
        thread = threading.Thread(target=ask, args=(client,))
        thread.start()
        thread.join()


def test_labels_follow_executors_and_threads(instrumented, telemetry) -> None:
    run_everywhere(OpenAIMock().client())
    assert agents(telemetry) == ["analyst"] * 4
    spans = {span.name: span for span in telemetry.spans()}
    agent_span = spans["invoke_agent analyst"]
    assert all(span.parent.span_id == agent_span.context.span_id for span in telemetry.llm_spans())


def test_per_request_budgets_follow_threads(instrumented) -> None:
    client = OpenAIMock().client()
    with otel_tokens.budget() as b:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(ask, [client] * 3))
    assert b.statistics()["total_calls"] == 3


def test_pool_workers_do_not_keep_the_first_submitters_labels(instrumented, telemetry) -> None:
    client = OpenAIMock().client()
    with ThreadPoolExecutor(max_workers=1) as pool:
        with otel_tokens.agent("first"):
            pool.submit(ask, client).result()  # starts the pool's only worker
        pool.submit(ask, client).result()  # outside any scope
    assert agents(telemetry) == ["None", "first"]


def test_a_subclass_overriding_run_is_covered(instrumented, telemetry) -> None:
    client = OpenAIMock().client()

    class Worker(threading.Thread):
        def run(self) -> None:
            ask(client)

    with otel_tokens.agent("analyst"):
        worker = Worker()
        worker.start()
        worker.join()
    assert agents(telemetry) == ["analyst"]


def test_off_with_the_setting(telemetry, monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name != "OTEL_TOKENS_RAISE_INTERNAL_ERRORS":
            monkeypatch.delenv(name)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           thread_context=False)
    try:
        assert not threads.installed()
        run_everywhere(OpenAIMock().client())
    finally:
        otel_tokens.uninstrument()
    assert agents(telemetry) == ["None"] * 4


def test_off_after_uninstrument(telemetry) -> None:
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert threads.installed()
    assert type(threading.Thread.__dict__["start"].__wrapped__) is types.FunctionType  # wrapped once
    otel_tokens.uninstrument()
    assert not threads.installed()
    assert type(threading.Thread.__dict__["start"]) is types.FunctionType
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.uninstrument()
    run_everywhere(OpenAIMock().client())  # uninstrumented: no spans, and nothing breaks
    assert telemetry.llm_spans() == []


def _theirs(wrapped, instance, args, kwargs):
    _theirs.calls += 1
    return wrapped(*args, **kwargs)


@pytest.mark.parametrize("theirs_first", [True, False])
def test_composes_with_another_threading_instrumentation(telemetry, theirs_first) -> None:
    """The shape opentelemetry-instrumentation-threading has: wrapt wrappers on the same two methods."""
    original_start, original_submit = threading.Thread.__dict__["start"], ThreadPoolExecutor.__dict__["submit"]
    _theirs.calls = 0

    def wrap_theirs() -> None:
        wrapt.wrap_function_wrapper(threading.Thread, "start", _theirs)
        wrapt.wrap_function_wrapper(ThreadPoolExecutor, "submit", _theirs)

    try:
        if theirs_first:
            wrap_theirs()
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        if not theirs_first:
            wrap_theirs()
        run_everywhere(OpenAIMock().client())
        assert agents(telemetry) == ["analyst"] * 4
        otel_tokens.uninstrument()
        assert not threads.installed()
        # Theirs is still there, once, over the original methods.
        for owner, name, original in ((threading.Thread, "start", original_start),
                                      (ThreadPoolExecutor, "submit", original_submit)):
            layer = owner.__dict__[name]
            assert layer._self_wrapper is _theirs
            assert layer.__wrapped__ is original
        before = _theirs.calls
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        assert _theirs.calls == before + 1
    finally:
        otel_tokens.uninstrument()
        threading.Thread.start = original_start
        ThreadPoolExecutor.submit = original_submit


def test_composes_with_opentelemetry_instrumentation_threading(telemetry) -> None:
    threading_instrumentation = pytest.importorskip("opentelemetry.instrumentation.threading")
    instrumentor = threading_instrumentation.ThreadingInstrumentor()
    instrumentor.instrument()
    try:
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        run_everywhere(OpenAIMock().client())
        assert agents(telemetry) == ["analyst"] * 4
        otel_tokens.uninstrument()
    finally:
        instrumentor.uninstrument()
    assert type(threading.Thread.__dict__["start"]) is types.FunctionType
