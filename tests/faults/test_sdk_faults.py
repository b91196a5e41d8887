"""The fault matrix: the real openai 3.x and anthropic 2.x SDKs over their own HTTP stack, answered with
recorded responses that a fault has been written into (bad usage numbers, broken streams, errors).

Every case asserts the promises the README makes: nothing of ours reaches the app (the test suite
re-raises our internal errors, so any would fail the case), the caller gets exactly what the
uninstrumented SDK returns, the call is counted once, every total, metric point and budget stays
finite and non-negative, a bad count is flagged (and estimated, marked) rather than recorded, and
no traceback is logged for an expected condition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

import otel_tokens
from otel_tokens import semconv as A

# model_dump() of a response holding a NaN count warns; comparing dumps is the point here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

RECORDINGS = Path(__file__).parent.parent / "providers" / "recordings"
OPENAI_KEY = "sk-test-FAULT-key-0123456789"
ANTHROPIC_KEY = "sk-ant-api03-FAULT-key-0123456789"


# -- a fault-injecting server ----------------------------------------------------------------------
class FaultServer:
    """Answers every request with one prepared body (JSON or SSE), or raises mid-body."""

    def __init__(self, body: bytes, content_type: str, status: int = 200, cut_after: int | None = None) -> None:
        self.body = body
        self.content_type = content_type
        self.status = status
        self.cut_after = cut_after
        self.requests = 0

    def _stream(self) -> Iterator[bytes]:
        yield self.body[: self.cut_after]
        raise httpx2.ReadError("connection reset by peer")

    async def _async_stream(self) -> Any:
        yield self.body[: self.cut_after]
        raise httpx2.ReadError("connection reset by peer")

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        headers = {"content-type": self.content_type}
        if self.cut_after is not None:
            return httpx2.Response(self.status, content=self._stream(), headers=headers)
        return httpx2.Response(self.status, content=self.body, headers=headers)

    async def async_handler(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        if self.cut_after is not None:
            self.requests += 1
            headers = {"content-type": self.content_type}
            return httpx2.Response(self.status, content=self._async_stream(), headers=headers)
        return self.handler(request)

    def openai(self, is_async: bool = False) -> Any:
        if is_async:
            http = openai.DefaultAsyncHttpx2Client(transport=httpx2.MockTransport(self.async_handler))
            return openai.AsyncOpenAI(api_key=OPENAI_KEY, http_client=http, max_retries=0)
        http = openai.DefaultHttpx2Client(transport=httpx2.MockTransport(self.handler))
        return openai.OpenAI(api_key=OPENAI_KEY, http_client=http, max_retries=0)

    def anthropic(self, is_async: bool = False) -> Any:
        if is_async:
            http = httpx2.AsyncClient(transport=httpx2.MockTransport(self.async_handler))
            return anthropic.AsyncAnthropic(api_key=ANTHROPIC_KEY, http_client=http, max_retries=0)
        http = httpx2.Client(transport=httpx2.MockTransport(self.handler))
        return anthropic.Anthropic(api_key=ANTHROPIC_KEY, http_client=http, max_retries=0)


# -- bodies with a fault written in ----------------------------------------------------------------
def _json(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


def _sse(events: list[dict], named: bool) -> bytes:
    blocks = []
    for event in events:
        data = "data: " + json.dumps(event, allow_nan=True)
        blocks.append(f"event: {event['type']}\n{data}" if named else data)
    if not named:
        blocks.append("data: [DONE]")
    return ("\n\n".join(blocks) + "\n\n").encode()


def _sse_events(name: str) -> list[dict]:
    text = (RECORDINGS / name).read_text()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


NAN, INF = float("nan"), float("inf")

# (fault id, the counts to write in, what the recorder must make of it: "invalid" or "absent")
USAGE_FAULTS = [
    ("nan-input", {"input": NAN}, "invalid"),
    ("nan-output", {"output": NAN}, "invalid"),
    ("infinite", {"input": INF}, "invalid"),
    ("huge-1e999", {"output": 1e999}, "invalid"),
    ("negative", {"input": -100}, "invalid"),
    ("negative-output", {"output": -7}, "invalid"),
    ("text", {"input": "abc"}, "invalid"),
    ("text-output", {"output": "12 tokens"}, "invalid"),
    ("beyond-1e12", {"input": 10**13}, "invalid"),
    ("negative-cache", {"cache": -5}, "invalid"),
    ("all-null", {"input": None, "output": None}, "absent"),
]
EXACT_FAULTS = [
    # Whole floats are exact counts (Cohere bills in floats).
    ("whole-float", {"input": 1250.0}, "exact"),
]


def _write_openai_fault(usage: dict, fault: dict) -> None:
    if "input" in fault:
        usage["prompt_tokens"] = fault["input"]
    if "output" in fault:
        usage["completion_tokens"] = fault["output"]
    if "cache" in fault:
        usage["prompt_tokens_details"]["cached_tokens"] = fault["cache"]


def _write_anthropic_fault(usage: dict, fault: dict) -> None:
    if "input" in fault:
        usage["input_tokens"] = fault["input"]
    if "output" in fault:
        usage["output_tokens"] = fault["output"]
    if "cache" in fault:
        usage["cache_read_input_tokens"] = fault["cache"]
    if fault.get("input", 0) is None:
        usage["cache_read_input_tokens"] = usage["cache_creation_input_tokens"] = None


def openai_chat_body(fault: dict) -> dict:
    body = _json("openai/chat_completion.json")
    _write_openai_fault(body["usage"], fault)
    return body


def openai_stream_body(fault: dict) -> bytes:
    events = _sse_events("openai/chat_stream.sse")
    _write_openai_fault(events[-1]["usage"], fault)
    return _sse(events, named=False)


def anthropic_message_body(fault: dict) -> dict:
    body = _json("anthropic/message.json")
    _write_anthropic_fault(body["usage"], fault)
    return body


def anthropic_stream_body(fault: dict) -> bytes:
    events = _sse_events("anthropic/message_stream.sse")
    for event in events:
        usage = event.get("usage") or (event.get("message") or {}).get("usage")
        if usage:
            _write_anthropic_fault(usage, fault)
    return _sse(events, named=True)


def _dumps(body: dict) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


# -- the calls, as an app makes them ---------------------------------------------------------------
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def openai_sync(server: FaultServer) -> Any:
    return server.openai().chat.completions.create(model="gpt-4o", messages=MESSAGES)


def openai_async(server: FaultServer) -> Any:
    async def call() -> Any:
        return await server.openai(is_async=True).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    return asyncio.run(call())


def openai_stream(server: FaultServer) -> Any:
    stream = server.openai().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    return [chunk for chunk in stream]


def openai_async_stream(server: FaultServer) -> Any:
    async def call() -> Any:
        stream = await server.openai(is_async=True).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    return asyncio.run(call())


def anthropic_sync(server: FaultServer) -> Any:
    return server.anthropic().messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES)


def anthropic_stream(server: FaultServer) -> Any:
    stream = server.anthropic().messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES, stream=True
    )
    return [event for event in stream]


def anthropic_helper(server: FaultServer) -> Any:
    with server.anthropic().messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES) as s:
        return [event for event in s]


# (mode id, the call, how to make a body from a fault, content type)
JSON, SSE = "application/json", "text/event-stream"
MODES: list[tuple[str, Callable[[FaultServer], Any], Callable[[dict], bytes], str]] = [
    ("openai-sync", openai_sync, lambda f: _dumps(openai_chat_body(f)), JSON),
    ("openai-async", openai_async, lambda f: _dumps(openai_chat_body(f)), JSON),
    ("openai-stream", openai_stream, openai_stream_body, SSE),
    ("openai-async-stream", openai_async_stream, openai_stream_body, SSE),
    ("anthropic-sync", anthropic_sync, lambda f: _dumps(anthropic_message_body(f)), JSON),
    ("anthropic-stream", anthropic_stream, anthropic_stream_body, SSE),
    ("anthropic-helper", anthropic_helper, anthropic_stream_body, SSE),
]


# -- the promises ----------------------------------------------------------------------------------
def dumped(value: Any) -> Any:
    """A comparable form of what the caller got (models, lists of chunks)."""
    if isinstance(value, list):
        return [dumped(item) for item in value]
    dump = getattr(value, "model_dump", None)
    return dump() if dump is not None else value


def baseline(call: Callable[[FaultServer], Any], server: FaultServer) -> tuple[Any, BaseException | None]:
    """What the SDK gives the caller with otel-tokens out of the way."""
    with suppress_instrumentation():
        try:
            return dumped(call(server)), None
        except Exception as error:  # the SDK's own exception, kept to compare with
            return None, error


def assert_sound(telemetry: Any, caplog: pytest.LogCaptureFixture, calls: int = 1) -> dict:
    """Counted once, every number finite and non-negative, strict JSON, no traceback logged."""
    statistics = otel_tokens.get_statistics()
    json.dumps(statistics, allow_nan=False)
    assert statistics["total_calls"] == calls
    for key, value in statistics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert math.isfinite(value) and value >= 0, (key, value)
    for name in (A.METRIC_TOKEN_USAGE, A.METRIC_TOKEN_COUNT, A.METRIC_OPERATION_COST):
        for _attributes, point in telemetry.points(name):
            value = getattr(point, "sum", None) if hasattr(point, "bucket_counts") else point.value
            assert math.isfinite(value) and value >= 0, (name, value)
    for span in telemetry.llm_spans():
        for key, value in span.attributes.items():
            if isinstance(value, float):
                assert math.isfinite(value) and value >= 0, (key, value)
            if isinstance(value, int) and not isinstance(value, bool) and key.startswith("gen_ai.usage"):
                assert value >= 0, (key, value)
    otel_tokens.report()
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("otel_tokens")]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    return statistics


@pytest.fixture
def budgeted(instrumented: Any) -> Any:
    """A blocking budget a NaN or a negative cost would break (NaN spent blocks every call; a
    negative one refunds)."""
    otel_tokens.set_budget("worker", limit_usd=100.0, action="block")
    return instrumented


CASES = [
    pytest.param(mode, call, make, ctype, fault, expect, id=f"{mode}-{fault_id}")
    for mode, call, make, ctype in MODES
    for fault_id, fault, expect in USAGE_FAULTS + EXACT_FAULTS
]


@pytest.mark.parametrize(("mode", "call", "make", "content_type", "fault", "expect"), CASES)
def test_bad_usage_is_flagged_never_recorded(
    budgeted, telemetry, caplog, mode, call, make, content_type, fault, expect
) -> None:
    server = FaultServer(make(fault), content_type)
    expected, expected_error = baseline(call, server)
    assert expected_error is None
    with otel_tokens.agent("worker"):
        got = call(server)
    assert dumped(got) == expected  # what the caller gets is untouched

    (span,) = telemetry.llm_spans()
    attributes = span.attributes
    statistics = assert_sound(telemetry, caplog)
    if expect == "exact":
        assert A.OTEL_TOKENS_USAGE_INVALID not in attributes
        assert A.OTEL_TOKENS_USAGE_ESTIMATED not in attributes
        assert type(attributes[A.GEN_AI_USAGE_INPUT_TOKENS]) is int
        assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] >= 1250
        return
    if expect == "invalid":
        assert attributes[A.OTEL_TOKENS_USAGE_INVALID] is True
        assert statistics["usage_invalid_calls"] == 1
        assert telemetry.sum_of(A.METRIC_USAGE_INVALID_CALLS) == 1
        assert any("not a set of finite, non-negative counts" in r.getMessage() for r in caplog.records)
    else:
        assert A.OTEL_TOKENS_USAGE_INVALID not in attributes
    # Estimated in place of the bad or absent counts, and marked so.
    assert attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert statistics["estimated_calls"] == 1
    status = statistics["budgets"]["worker"]
    assert math.isfinite(status["spent_usd"]) and status["spent_usd"] >= 0 and status["status"] == "ok"


def test_the_next_call_after_a_nan_is_neither_blocked_nor_poisoned(budgeted, telemetry, caplog) -> None:
    nan_server = FaultServer(_dumps(openai_chat_body({"input": NAN})), JSON)
    good_server = FaultServer(_dumps(openai_chat_body({})), JSON)
    with otel_tokens.agent("worker"):
        openai_sync(nan_server)
        openai_sync(good_server)  # was: BudgetExceededError "spent $nan"
    statistics = assert_sound(telemetry, caplog, calls=2)
    assert statistics["budgets"]["worker"]["spent_usd"] < 1


def test_invalid_usage_warns_once_per_provider(instrumented, telemetry, caplog) -> None:
    server = FaultServer(_dumps(openai_chat_body({"input": -1})), JSON)
    for _ in range(5):
        openai_sync(server)
    warnings = [r for r in caplog.records if "not a set of finite" in r.getMessage()]
    assert len(warnings) == 1
    assert assert_sound(telemetry, caplog, calls=5)["usage_invalid_calls"] == 5


@pytest.mark.parametrize("cost", [-5.0, NAN, INF, "free", True])
def test_a_bad_provider_cost_is_not_used(instrumented, telemetry, caplog, cost) -> None:
    body = _json("openai/chat_openrouter.json")
    body["usage"]["cost"] = cost
    server = FaultServer(_dumps(body), JSON)
    client = openai.OpenAI(
        api_key=OPENAI_KEY, base_url="https://openrouter.ai/api/v1", max_retries=0,
        http_client=openai.DefaultHttpx2Client(transport=httpx2.MockTransport(server.handler)),
    )
    expected, _ = baseline(lambda s: client.chat.completions.create(model=body["model"], messages=MESSAGES), server)
    got = client.chat.completions.create(model=body["model"], messages=MESSAGES)
    assert dumped(got) == expected
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.OTEL_TOKENS_USAGE_INVALID] is True
    # The exact token counts stay; the cost is ours (local) or unknown, never the provider's bad one.
    assert span.attributes.get(A.GEN_AI_USAGE_COST_SOURCE) != A.COST_SOURCE_PROVIDER
    assert_sound(telemetry, caplog)


@pytest.mark.parametrize("usage", [[], "many", 42, {"prompt_tokens": {"nested": 1}, "completion_tokens": 3}])
def test_usage_of_the_wrong_shape(instrumented, telemetry, caplog, usage) -> None:
    body = _json("openai/chat_completion.json")
    body["usage"] = usage
    server = FaultServer(_dumps(body), JSON)
    expected, _ = baseline(openai_sync, server)
    assert dumped(openai_sync(server)) == expected
    (span,) = telemetry.llm_spans()
    assert span.attributes.get(A.OTEL_TOKENS_USAGE_ESTIMATED) is True
    assert_sound(telemetry, caplog)


# -- errors and broken streams -------------------------------------------------------------------
ERROR_CASES = [
    ("openai-429", openai_sync, "openai/error_429.json", 429),
    ("openai-async-429", openai_async, "openai/error_429.json", 429),
    ("openai-stream-429", openai_stream, "openai/error_429.json", 429),
    ("anthropic-429", anthropic_sync, "anthropic/error_429.json", 429),
    ("anthropic-500", anthropic_sync, "anthropic/error_500.json", 500),
    ("anthropic-stream-500", anthropic_stream, "anthropic/error_500.json", 500),
]


@pytest.mark.parametrize(("call", "recording", "status"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_sdk_errors_pass_through_unchanged(instrumented, telemetry, caplog, call, recording, status) -> None:
    server = FaultServer((RECORDINGS / recording).read_bytes(), JSON, status=status)
    _, expected_error = baseline(call, server)
    with pytest.raises(type(expected_error)) as raised:
        call(server)
    assert str(raised.value) == str(expected_error)
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.ERROR_TYPE] == type(expected_error).__qualname__
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in span.attributes  # nothing was billed
    statistics = assert_sound(telemetry, caplog)
    assert statistics["errors"] == 1 and statistics["usage_unknown_calls"] == 0


def test_the_error_status_never_carries_the_api_key(instrumented, telemetry, caplog) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}.", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}
    server = FaultServer(_dumps(body), JSON, status=401)
    with pytest.raises(openai.AuthenticationError):
        openai_sync(server)
    (span,) = telemetry.llm_spans()
    assert span.status.description and OPENAI_KEY not in span.status.description
    assert OPENAI_KEY not in caplog.text


def test_a_transport_failure_passes_through(instrumented, telemetry, caplog) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    client = openai.OpenAI(
        api_key=OPENAI_KEY, max_retries=0,
        http_client=openai.DefaultHttpx2Client(transport=httpx2.MockTransport(refuse)),
    )
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.ERROR_TYPE] == "APIConnectionError"
    assert assert_sound(telemetry, caplog)["errors"] == 1


CUT_CASES = [
    ("openai-stream", openai_stream, openai_stream_body({}), 400),
    ("openai-async-stream", openai_async_stream, openai_stream_body({}), 400),
    ("anthropic-stream", anthropic_stream, anthropic_stream_body({}), 900),
    ("anthropic-helper", anthropic_helper, anthropic_stream_body({}), 900),
]


@pytest.mark.parametrize(("call", "body", "cut"), [c[1:] for c in CUT_CASES], ids=[c[0] for c in CUT_CASES])
def test_a_stream_cut_off_midway_is_estimated(instrumented, telemetry, caplog, call, body, cut) -> None:
    server = FaultServer(body, SSE, cut_after=cut)
    _, expected_error = baseline(call, server)
    assert expected_error is not None
    with pytest.raises(type(expected_error)):
        call(server)
    (span,) = telemetry.llm_spans()
    # Billed up to the cut: what arrived is estimated (marked), and the failure is recorded.
    assert span.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert A.ERROR_TYPE in span.attributes
    assert assert_sound(telemetry, caplog)["errors"] == 1


def test_a_cancelled_async_stream_is_estimated(instrumented, telemetry, caplog) -> None:
    server = FaultServer(openai_stream_body({}), SSE)

    async def consume() -> None:
        stream = await server.openai(is_async=True).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        async for _chunk in stream:
            await asyncio.sleep(10)  # cancelled here, after the first chunk

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    import gc

    gc.collect()  # the cancelled task dropped the stream unfinished: it finishes as abandoned
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert_sound(telemetry, caplog)


# -- bodies the caller reads itself ----------------------------------------------------------------
def test_with_streaming_response_parsed_is_exact(instrumented, telemetry, caplog) -> None:
    server = FaultServer(_dumps(openai_chat_body({})), JSON)
    client = server.openai()
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as response:
        completion = response.parse()
    assert completion.usage.prompt_tokens == 1250
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in span.attributes
    assert_sound(telemetry, caplog)


def test_with_streaming_response_parsed_async_stream_is_exact(instrumented, telemetry, caplog) -> None:
    server = FaultServer(anthropic_stream_body({}), SSE)

    async def call() -> list:
        client = server.anthropic(is_async=True)
        async with client.messages.with_streaming_response.create(
            model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES, stream=True
        ) as response:
            stream = await response.parse()
            return [event async for event in stream]

    events = asyncio.run(call())
    assert events[-1].type == "message_stop"
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 18 + 512 + 2048
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert_sound(telemetry, caplog)


def test_with_streaming_response_unread_is_flagged_unknown(instrumented, telemetry, caplog) -> None:
    server = FaultServer(_dumps(anthropic_message_body({})), JSON)
    client = server.anthropic()
    with client.messages.with_streaming_response.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES
    ) as response:
        raw = response.read()
    assert json.loads(raw)["usage"]["input_tokens"] == 21
    (span,) = telemetry.llm_spans()
    assert span.attributes[A.OTEL_TOKENS_USAGE_UNKNOWN] is True
    statistics = assert_sound(telemetry, caplog)
    assert statistics["usage_unknown_calls"] == 1
    assert telemetry.sum_of(A.METRIC_USAGE_UNKNOWN_CALLS) == 1


# -- the caller's own callbacks --------------------------------------------------------------------
@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_a_raising_budget_callback_loses_nothing(instrumented, telemetry, caplog, exception) -> None:
    def callback(status: dict) -> None:
        raise exception("from the app's callback")

    otel_tokens.set_budget("worker", limit_usd=0.000001, on_warning=callback, on_exceeded=callback)
    server = FaultServer(_dumps(openai_chat_body({})), JSON)
    try:
        with otel_tokens.agent("worker"):
            openai_sync(server)
    except (KeyboardInterrupt, SystemExit):
        pass  # the app's own interrupt is the app's; ours is only that nothing is lost
    (span,) = telemetry.llm_spans()
    assert span.end_time is not None and span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    statistics = otel_tokens.get_statistics()
    assert statistics["total_calls"] == 1 and statistics["input_tokens"] == 1250


# -- many distinct unpriced models -----------------------------------------------------------------
def test_unpriced_warnings_are_bounded(instrumented, telemetry, caplog) -> None:
    recorder = instrumented.recorder
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    for index in range(3000):
        recorder._warn_unpriced("openai", f"model-{index}")
    warned = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert 1000 <= len(warned) <= 1030  # one per model up to the bound, then rate-limited
