"""``otel_tokens.budget(action="warn")`` warns like every other budget: once at ``warn_at`` and once past
the limit, with the log line, the span event and the callbacks, and never stops a call. The real OpenAI SDK
over its own HTTP stack, answered with recorded responses."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import reference_cost
from tests.providers.openai_mock import OpenAIMock

# The recorded chat completion (tests/providers/recordings/openai/chat_completion.json).
COST = reference_cost("gpt-4o-2024-08-06", Usage(input_tokens=1250, output_tokens=42, cache_read_tokens=1024),
                      "openai")
# The first call reaches 95% (past warn_at=0.9), the second passes the limit.
LIMIT = COST / 0.95


@pytest.fixture
def mock() -> OpenAIMock:
    return OpenAIMock()


def ask(client: Any) -> Any:
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=100
    )


async def ask_async(client: Any) -> Any:
    return await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=100
    )


class Callbacks:
    def __init__(self) -> None:
        self.warnings: list[dict[str, Any]] = []
        self.exceeded: list[dict[str, Any]] = []

    def kwargs(self) -> dict[str, Any]:
        return {"on_warning": self.warnings.append, "on_exceeded": self.exceeded.append}


def budget_events(span: Any) -> list[str]:
    return [event.name for event in span.events if event.name.startswith("otel_tokens.budget.")]


def budget_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(record.levelno, record.getMessage()) for record in caplog.records
            if "request 'request'" in record.getMessage()]


def assert_warned_then_exceeded(telemetry: Any, caplog: pytest.LogCaptureFixture, callbacks: Callbacks) -> None:
    """Three calls: the first crossed warn_at, the second the limit, the third nothing new."""
    first, second, third = sorted(telemetry.llm_spans(), key=lambda span: span.start_time)
    assert budget_events(first) == [semconv.EVENT_BUDGET_WARNING]
    assert budget_events(second) == [semconv.EVENT_BUDGET_EXCEEDED]
    assert budget_events(third) == []
    (event,) = [e for e in first.events if e.name == semconv.EVENT_BUDGET_WARNING]
    assert event.attributes[semconv.OTEL_TOKENS_BUDGET_SCOPE] == "request"
    assert event.attributes[semconv.OTEL_TOKENS_BUDGET_NAME] == "request"
    assert math.isclose(event.attributes[semconv.OTEL_TOKENS_BUDGET_SPENT_USD], COST, rel_tol=1e-9)
    assert event.attributes[semconv.OTEL_TOKENS_BUDGET_LIMIT_USD] == LIMIT

    (warning, error) = budget_logs(caplog)
    assert warning[0] == logging.WARNING and "request 'request' has spent" in warning[1] and "(95%)" in warning[1]
    assert error[0] == logging.ERROR and "request 'request' has exceeded" in error[1]

    (warned,) = callbacks.warnings
    (exceeded,) = callbacks.exceeded
    assert warned["scope"] == "request" and warned["status"] == "warning" and warned["action"] == "warn"
    assert math.isclose(warned["spent_usd"], COST, rel_tol=1e-9) and warned["limit_usd"] == LIMIT
    assert exceeded["status"] == "exceeded" and math.isclose(exceeded["spent_usd"], 2 * COST, rel_tol=1e-9)


def test_warn_budget_warns_once_at_warn_at_and_once_past_the_limit(instrumented, telemetry, mock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    callbacks = Callbacks()
    client = mock.client()
    with otel_tokens.budget(limit_usd=LIMIT, action="warn", warn_at=0.9, **callbacks.kwargs()) as b:
        for _ in range(3):
            ask(client)  # never raises: a warn budget only warns
    assert len(mock.requests) == 3
    assert math.isclose(b.spent_usd, 3 * COST, rel_tol=1e-9)
    assert_warned_then_exceeded(telemetry, caplog, callbacks)


async def test_warn_budget_warns_in_async_with(instrumented, telemetry, mock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    callbacks = Callbacks()
    client = mock.async_client()
    async with otel_tokens.budget(limit_usd=LIMIT, action="warn", **callbacks.kwargs()):
        for _ in range(3):
            await ask_async(client)
    assert len(mock.requests) == 3
    assert_warned_then_exceeded(telemetry, caplog, callbacks)


def test_a_decorated_warn_budget_warns_afresh_on_each_use(instrumented, telemetry, mock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    callbacks = Callbacks()
    client = mock.client()

    @otel_tokens.budget(limit_usd=LIMIT, action="warn", **callbacks.kwargs())
    def handler() -> None:
        ask(client)

    handler()
    handler()  # a fresh budget: 95% again, never past the limit
    assert [w["spent_usd"] for w in callbacks.warnings] == pytest.approx([COST, COST], rel=1e-9)
    assert callbacks.exceeded == []
    assert [budget_events(span) for span in telemetry.llm_spans()] == [[semconv.EVENT_BUDGET_WARNING]] * 2
    assert [level for level, _message in budget_logs(caplog)] == [logging.WARNING] * 2


def test_a_raising_callback_is_logged_and_the_call_returns(instrumented, mock, caplog) -> None:
    def broken(status: dict[str, Any]) -> None:
        raise RuntimeError("callback bug")

    client = mock.client()
    with otel_tokens.budget(limit_usd=LIMIT, action="warn", on_warning=broken):
        response = ask(client)
    assert response.choices[0].message.content == "The capital of France is Paris."
    assert any("on_warning callback for request 'request' raised" in r.getMessage() for r in caplog.records)


def test_a_block_budget_stays_quiet_but_calls_its_callbacks(instrumented, telemetry, mock, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="otel_tokens")
    callbacks = Callbacks()
    client = mock.client()
    with otel_tokens.budget(limit_usd=LIMIT, **callbacks.kwargs()):
        ask(client)
        with pytest.raises(otel_tokens.BudgetExceededError):
            ask(client)
    assert len(mock.requests) == 1
    (warned,) = callbacks.warnings
    assert warned["action"] == "block" and math.isclose(warned["spent_usd"], COST, rel_tol=1e-9)
    assert callbacks.exceeded == []
    assert [level for level, _message in budget_logs(caplog) if level >= logging.WARNING] == []
    assert [budget_events(span) for span in telemetry.llm_spans()] == [[]]


def test_callbacks_must_be_callable() -> None:
    with pytest.raises(ValueError, match="on_warning must be callable"):
        otel_tokens.budget(limit_usd=1, action="warn", on_warning="print")
    with pytest.raises(ValueError, match="on_exceeded must be callable"):
        otel_tokens.budget(limit_usd=1, on_exceeded=1)
