"""Anthropic: the real SDK over its own HTTP stack (httpx2), answered with recorded wire-format responses.

Every client here also gives the SDK a real tracer provider (``open_telemetry={"tracer_provider": ...}``),
so the SDK *would* emit its own ``anthropic.messages.create`` spans; ``only_span`` checks that, by
default, each call still has exactly one span.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pydantic
import pytest
from anthropic.lib.streaming import AsyncMessageStream, MessageStream
from opentelemetry.trace import SpanKind

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import (
    all_attribute_text,
    assert_local_cost,
    assert_token_metrics,
    assert_usage,
    only_llm_span,
)

A = semconv
RECORDINGS = Path(__file__).parent / "recordings" / "anthropic"
SDK_SCOPE = "com.anthropic.sdk.python"
API_KEY = "sk-ant-api03-test-SECRET-key"
SONNET = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "Summarise the termination clause."}]


def assert_cut_off(span: Any, text_received: str) -> int:
    """A stream that ended before its final counts: exact input and cache counts from message_start,
    the output counted from the text received, marked estimated. Returns that output count."""
    from otel_tokens._internal.pricing.tokenizer import count_tokens

    output = count_tokens(text_received, SONNET)
    attributes = span.attributes
    assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 2578
    assert attributes[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2048
    assert attributes[A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 512
    assert attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == output
    assert attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    return output


# -- the recorded server ---------------------------------------------------------------------------
class AnthropicMock:
    """Answers ``POST /v1/messages`` with recordings: queued ones first, else by path and ``stream``."""

    def __init__(self, tracer_provider: Any) -> None:
        self.tracer_provider = tracer_provider
        self.requests: list[tuple[httpx2.URL, dict, httpx2.Headers]] = []
        self._queue: deque[tuple[str, int]] = deque()

    def reply(self, recording: str, status: int = 200) -> AnthropicMock:
        self._queue.append((recording, status))
        return self

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append((request.url, body, request.headers))
        if self._queue:
            name, status = self._queue.popleft()
        elif request.url.path.endswith("/count_tokens"):
            name, status = "count_tokens.json", 200
        else:
            name, status = ("message_stream.sse" if body.get("stream") else "message.json"), 200
        headers = {"request-id": "req_011CVNqY4lA0xF7o2wVsP8Kj"}
        if name.endswith(".sse"):
            headers["content-type"] = "text/event-stream; charset=utf-8"
        else:
            headers["content-type"] = "application/json"
        if status == 429:
            headers["retry-after"] = "12"
        return httpx2.Response(status, content=(RECORDINGS / name).read_bytes(), headers=headers)

    def _options(self, kwargs: dict) -> dict:
        kwargs.setdefault("open_telemetry", {"tracer_provider": self.tracer_provider})
        kwargs.setdefault("max_retries", 0)
        return kwargs

    def client(self, cls: Any = anthropic.Anthropic, **kwargs: Any) -> Any:
        if cls is anthropic.Anthropic:
            kwargs.setdefault("api_key", API_KEY)
        return cls(http_client=httpx2.Client(transport=httpx2.MockTransport(self.handler)), **self._options(kwargs))

    def plain_client(self) -> Any:
        """A client without the SDK's spans, for runs compared with instrumented ones."""
        return self.client(open_telemetry=False)

    def async_client(self, cls: Any = anthropic.AsyncAnthropic, **kwargs: Any) -> Any:
        if cls is anthropic.AsyncAnthropic:
            kwargs.setdefault("api_key", API_KEY)
        handler = self.handler

        async def handle(request: httpx2.Request) -> httpx2.Response:
            await request.aread()
            return handler(request)

        return cls(http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handle)), **self._options(kwargs))


@pytest.fixture
def mock(telemetry) -> AnthropicMock:
    return AnthropicMock(telemetry.tracer_provider)


def sse_types(name: str) -> list[str]:
    text = (RECORDINGS / name).read_text()
    return [json.loads(line[6:])["type"] for line in text.splitlines() if line.startswith("data: {")]


# -- assertions ------------------------------------------------------------------------------------
def sdk_spans(telemetry) -> list:
    return [s for s in telemetry.spans() if s.instrumentation_scope.name.startswith(SDK_SCOPE)]


def only_span(telemetry):
    span = only_llm_span(telemetry)
    assert sdk_spans(telemetry) == []  # one LLM span per call: the SDK's own is not emitted
    return span


def assert_cost(span, runtime, model: str, usage: Usage) -> float:
    return assert_local_cost(span, runtime, "anthropic", "anthropic", model, usage)


# -- messages.create ---------------------------------------------------------------------------------
CACHED = Usage(input_tokens=13821, output_tokens=87, cache_read_tokens=12000, cache_write_tokens=1800)


def test_create_records_exact_tokens_cost_and_metrics(instrumented, telemetry, mock):
    message = mock.client().messages.create(
        model=SONNET,
        max_tokens=1024,
        system=[{"type": "text", "text": "You are a contracts lawyer.", "cache_control": {"type": "ephemeral"}}],
        messages=USER,
        stop_sequences=["</answer>"],
        output_config={"effort": "medium"},
        extra_body={"temperature": 0.2, "top_k": 40},
    )

    assert type(message) is anthropic.types.Message
    assert message.usage.input_tokens == 21  # the caller's object is the SDK's, untouched
    span = only_span(telemetry)
    assert span.name == f"chat {SONNET}"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == SONNET
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 1024
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[A.GEN_AI_REQUEST_TOP_K] == 40
    assert attrs[A.GEN_AI_REQUEST_STOP_SEQUENCES] == ("</answer>",)
    assert attrs[A.GEN_AI_REQUEST_REASONING_LEVEL] == "medium"
    assert A.GEN_AI_REQUEST_STREAM not in attrs
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == SONNET
    assert attrs[A.GEN_AI_RESPONSE_ID] == "msg_01HCDu5LRGeP2o7s2xGmxyx8"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[A.SERVER_ADDRESS] == "api.anthropic.com"
    assert attrs[A.SERVER_PORT] == 443
    # input = 21 uncached + 1800 written to the cache + 12000 read from it
    assert_usage(span, input=13821, output=87, cache_read=12000, cache_write=1800)
    cost = assert_cost(span, instrumented, SONNET, CACHED)

    assert_token_metrics(telemetry, CACHED)
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == pytest.approx(cost, abs=1e-9)
    (attributes, point), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert point.count == 1
    assert attributes == {
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "anthropic",
        A.GEN_AI_REQUEST_MODEL: SONNET,
        A.GEN_AI_RESPONSE_MODEL: SONNET,
        A.SERVER_ADDRESS: "api.anthropic.com",
        A.SERVER_PORT: 443,
    }


def test_thinking_tokens_are_reasoning(instrumented, telemetry, mock):
    mock.reply("message_thinking.json")
    message = mock.client().messages.create(
        model="claude-opus-4-6",
        max_tokens=4096,
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
        messages=[{"role": "user", "content": "What is 27 * 453?"}],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_REASONING_LEVEL] == "high"
    assert_usage(span, input=52, output=187, reasoning=164)
    usage = Usage(input_tokens=52, output_tokens=187, reasoning_tokens=164)
    assert_cost(span, instrumented, "claude-opus-4-6", usage)
    assert_token_metrics(telemetry, usage)


def test_tool_use_response(instrumented, telemetry, mock):
    mock.reply("message_tool_use.json")
    message = mock.client().messages.create(
        model="claude-haiku-4-5",
        max_tokens=1024,
        tools=[{"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert message.content[1].type == "tool_use" and message.content[1].name == "get_weather"
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert span.attributes[A.GEN_AI_RESPONSE_MODEL] == "claude-haiku-4-5-20251001"
    assert_usage(span, input=412, output=71)
    assert_cost(span, instrumented, "claude-haiku-4-5-20251001", Usage(input_tokens=412, output_tokens=71))


async def test_async_create(instrumented, telemetry, mock):
    message = await mock.async_client().messages.create(model=SONNET, max_tokens=1024, messages=USER)
    assert type(message) is anthropic.types.Message
    span = only_span(telemetry)
    assert_usage(span, input=13821, output=87, cache_read=12000, cache_write=1800)
    assert_cost(span, instrumented, SONNET, CACHED)


def test_parse_structured_output(instrumented, telemetry, mock):
    class City(pydantic.BaseModel):
        city: str
        country: str

    mock.reply("message_parse.json")
    parsed = mock.client().messages.parse(
        model=SONNET, max_tokens=256, messages=[{"role": "user", "content": "Where is the Louvre?"}], output_format=City
    )
    assert isinstance(parsed, anthropic.types.ParsedMessage)
    assert parsed.parsed_output == City(city="Paris", country="France")
    assert mock.requests[0][1]["output_config"]["format"]["type"] == "json_schema"
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_OUTPUT_TYPE] == "json"
    assert_usage(span, input=236, output=14)


def test_with_raw_response(instrumented, telemetry, mock):
    raw = mock.client().messages.with_raw_response.create(model=SONNET, max_tokens=1024, messages=USER)
    assert raw.headers["request-id"] == "req_011CVNqY4lA0xF7o2wVsP8Kj"
    assert type(raw.parse()) is anthropic.types.Message
    assert_usage(only_span(telemetry), input=13821, output=87, cache_read=12000, cache_write=1800)


def test_with_streaming_response_counts_the_call_without_reading_the_body(instrumented, telemetry, mock):
    with mock.client().messages.with_streaming_response.create(model=SONNET, max_tokens=1024, messages=USER) as raw:
        message = raw.parse()
        assert message.usage.output_tokens == 87
    span = only_span(telemetry)
    # The caller parsed the body through the SDK: its usage is read, exactly.
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 87
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in span.attributes


# -- stream=True ---------------------------------------------------------------------------------------
STREAMED = Usage(input_tokens=2578, output_tokens=12, cache_read_tokens=2048, cache_write_tokens=512)


def test_stream_events_are_the_sdks_and_usage_is_exact(instrumented, telemetry, mock):
    stream = mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)

    otel_tokens.uninstrument()
    plain = list(mock.plain_client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True))
    assert len(events) == len(plain) == 8  # the ping is the SDK's to drop
    assert [type(e) for e in events] == [type(e) for e in plain]
    assert [e.type for e in events] == [t for t in sse_types("message_stream.sse") if t != "ping"]
    assert [e.to_dict() for e in events] == [e.to_dict() for e in plain]

    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == "msg_01Kx9bQm2Wv7NcLr4TzYp8Hd"
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    assert_usage(span, input=2578, output=12, cache_read=2048, cache_write=512)
    assert_cost(span, instrumented, SONNET, STREAMED)
    assert_token_metrics(telemetry, STREAMED)
    (_, ttfc), = telemetry.points(A.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1


def test_stream_message_delta_counts_are_cumulative(instrumented, telemetry, mock):
    # A server tool ran: message_delta's cumulative input (10682) replaces message_start's (2679).
    mock.reply("message_stream_web_search.sse")
    with mock.client().messages.create(
        model=SONNET, max_tokens=1024, messages=USER, stream=True,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
    ) as stream:
        events = list(stream)
    assert events[-2].usage.input_tokens == 10682
    span = only_span(telemetry)
    assert_usage(span, input=10682, output=510)
    # The web search is billed per call ($10 per 1,000), on top of the tokens.
    usage = Usage(input_tokens=10682, output_tokens=510, details=(("web_searches", 1),))
    cost = assert_cost(span, instrumented, SONNET, usage)
    assert cost == pytest.approx((10682 * 3 + 510 * 15) / 1e6 + 0.01)
    assert span.attributes[A.OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH] == 1
    assert span.attributes[A.OTEL_TOKENS_COST_TOOL_FEES] == pytest.approx(0.01)
    assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "standard"


def test_stream_message_delta_without_input_keeps_message_start_counts(instrumented, telemetry, mock):
    mock.reply("message_stream_thinking.sse")
    events = list(mock.client().messages.create(
        model="claude-opus-4-6", max_tokens=4096, messages=USER, stream=True, thinking={"type": "adaptive"}
    ))
    assert events[-2].usage.input_tokens is None
    span = only_span(telemetry)
    assert_usage(span, input=61, output=290, reasoning=201)
    assert_cost(span, instrumented, "claude-opus-4-6", Usage(input_tokens=61, output_tokens=290, reasoning_tokens=201))


async def test_async_stream(instrumented, telemetry, mock):
    stream = await mock.async_client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    events = [event async for event in stream]
    assert len(events) == 8
    assert_usage(only_span(telemetry), input=2578, output=12, cache_read=2048, cache_write=512)


def test_stream_abandoned_finishes_once_with_the_counts_seen(instrumented, telemetry, mock):
    stream = mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True)
    for index, _event in enumerate(stream):
        if index == 2:
            break
    assert telemetry.llm_spans() == []  # still open: the caller may go on reading
    del stream, _event
    gc.collect()
    span = only_span(telemetry)
    # message_start's exact input and cache counts; the output counted from the text received
    assert_cut_off(span, "Streams")
    assert A.GEN_AI_RESPONSE_FINISH_REASONS not in span.attributes


def test_error_event_mid_stream_passes_through(instrumented, telemetry, mock):
    mock.reply("message_stream_overloaded.sse")
    stream = mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in stream:
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert raised.value.body["error"]["type"] == "overloaded_error"
    span = only_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == type(raised.value).__qualname__
    assert span.status.status_code.name == "ERROR"
    # Billed up to the error: exact input, the output counted from the text that arrived.
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 940
    assert span.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True


# -- the messages.stream() helper ---------------------------------------------------------------------
def test_stream_helper_get_final_message(instrumented, telemetry, mock):
    manager = mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER)
    assert isinstance(manager, anthropic.lib.streaming.MessageStreamManager)
    assert mock.requests == []  # the helper sends nothing until entered
    with manager as stream:
        assert type(stream) is MessageStream
        assert isinstance(stream, anthropic.lib.streaming.MessageStream)
        final = stream.get_final_message()
    assert final.content[0].text == "Streams are read event by event."
    assert final.usage.input_tokens == 18 and final.usage.output_tokens == 12
    assert mock.requests[0][2]["x-stainless-helper-method"] == "stream"
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert_usage(span, input=2578, output=12, cache_read=2048, cache_write=512)
    assert_cost(span, instrumented, SONNET, STREAMED)
    assert_token_metrics(telemetry, STREAMED)


def test_stream_helper_text_stream_and_until_done(instrumented, telemetry, mock):
    client = mock.client()
    with client.messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        text = "".join(stream.text_stream)
        assert stream.get_final_text() == text
    with client.messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        stream.until_done()
        assert stream.request_id == "req_011CVNqY4lA0xF7o2wVsP8Kj"  # through our proxy, to the response
    assert text == "Streams are read event by event."
    spans = telemetry.llm_spans()
    assert len(spans) == 2 and sdk_spans(telemetry) == []
    for span in spans:
        assert_usage(span, input=2578, output=12, cache_read=2048, cache_write=512)


def test_stream_helper_events_match_an_uninstrumented_run(instrumented, telemetry, mock):
    with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        events = list(stream)
    otel_tokens.uninstrument()
    with mock.plain_client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as plain:
        plain_events = list(plain)
    assert len(events) == len(plain_events) == 11  # the raw events plus the helper's text events
    assert [type(e) for e in events] == [type(e) for e in plain_events]
    assert [e.type for e in events] == [e.type for e in plain_events]
    assert len(telemetry.llm_spans()) == 1


def test_stream_helper_early_break_finishes_once_on_exit(instrumented, telemetry, mock):
    with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        for event in stream:
            if event.type == "text":
                break
        assert telemetry.llm_spans() == []
    # Leaving the manager's context closed the response; the call finished there, once.
    span = only_span(telemetry)
    output = assert_cut_off(span, "Streams")
    usage = Usage(input_tokens=2578, output_tokens=output, cache_read_tokens=2048, cache_write_tokens=512)
    assert_cost(span, instrumented, SONNET, usage)
    del stream, event
    gc.collect()
    assert len(telemetry.llm_spans()) == 1


def test_stream_helper_abandoned_without_exit_finishes_on_collection(instrumented, telemetry, mock):
    manager = mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER)
    stream = manager.__enter__()  # never exited, never closed
    assert next(iter(stream)).type == "message_start"
    assert telemetry.llm_spans() == []
    del manager, stream
    gc.collect()
    assert_cut_off(only_span(telemetry), "")


async def test_async_stream_helper(instrumented, telemetry, mock):
    mock.reply("message_stream_thinking.sse")
    manager = mock.async_client().messages.stream(
        model="claude-opus-4-6", max_tokens=4096, messages=USER, thinking={"type": "adaptive"}
    )
    async with manager as stream:
        assert type(stream) is AsyncMessageStream
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, input=61, output=290, reasoning=201)
    assert_token_metrics(telemetry, Usage(input_tokens=61, output_tokens=290, reasoning_tokens=201))


async def test_async_stream_helper_early_break(instrumented, telemetry, mock):
    async with mock.async_client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        async for text in stream.text_stream:
            assert text == "Streams"
            break
    assert_cut_off(only_span(telemetry), "Streams")


def test_stream_helper_budget_blocks_before_anything_is_sent(instrumented, telemetry, mock):
    otel_tokens.set_budget("writer", limit_usd=0.000001, action="block")
    manager = mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER)
    with otel_tokens.agent("writer"), pytest.raises(otel_tokens.BudgetExceededError):
        with manager:
            pytest.fail("the manager must not be entered")
    assert mock.requests == []
    assert telemetry.llm_spans() == []


def test_messages_given_as_an_iterator_are_left_for_the_sdk(instrumented, telemetry, mock):
    otel_tokens.set_budget("writer", limit_usd=100.0, action="block")  # projects from the prompt
    with otel_tokens.agent("writer"):
        mock.client().messages.create(model=SONNET, max_tokens=1024, messages=iter(USER))
    assert mock.requests[0][1]["messages"] == USER
    assert_usage(only_span(telemetry), input=13821, output=87, cache_read=12000, cache_write=1800)


def test_stream_helper_http_error_passes_through(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(anthropic.RateLimitError):
        with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER):
            pytest.fail("the manager must not be entered")
    assert only_span(telemetry).attributes[A.ERROR_TYPE] == "RateLimitError"


# -- beta ------------------------------------------------------------------------------------------
BETA_USAGE = Usage(input_tokens=240512, output_tokens=64)


def test_beta_create(instrumented, telemetry, mock):
    mock.reply("beta_message.json")
    message = mock.client().beta.messages.create(
        model=SONNET, max_tokens=1024, messages=USER, betas=["context-1m-2025-08-07"]
    )
    assert type(message) is anthropic.types.beta.BetaMessage
    assert mock.requests[0][2]["anthropic-beta"] == "context-1m-2025-08-07"
    span = only_span(telemetry)
    assert_usage(span, input=240512, output=64)
    assert_cost(span, instrumented, SONNET, BETA_USAGE)


def test_beta_stream_helper(instrumented, telemetry, mock):
    with mock.client().beta.messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        assert type(stream) is anthropic.lib.streaming.BetaMessageStream
        final = stream.get_final_message()
    assert isinstance(final, anthropic.types.beta.BetaMessage) and final.usage.output_tokens == 12
    assert_usage(only_span(telemetry), input=2578, output=12, cache_read=2048, cache_write=512)


async def test_async_beta_create_stream(instrumented, telemetry, mock):
    stream = await mock.async_client().beta.messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True)
    events = [event async for event in stream]
    assert type(events[0]) is anthropic.types.beta.BetaRawMessageStartEvent
    assert_usage(only_span(telemetry), input=2578, output=12, cache_read=2048, cache_write=512)


# -- errors ----------------------------------------------------------------------------------------
def test_rate_limit_error_passes_through_unchanged(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(anthropic.RateLimitError) as raised:
        mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER)
    assert type(raised.value) is anthropic.RateLimitError
    assert raised.value.status_code == 429
    assert raised.value.body == json.loads((RECORDINGS / "error_429.json").read_text())
    span = only_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "RateLimitError"
    assert span.status.status_code.name == "ERROR"
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    (attributes, _), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert attributes[A.ERROR_TYPE] == "RateLimitError"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


async def test_async_server_error_passes_through(instrumented, telemetry, mock):
    mock.reply("error_500.json", status=500)
    with pytest.raises(anthropic.InternalServerError) as raised:
        await mock.async_client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True)
    assert raised.value.status_code == 500
    assert only_span(telemetry).attributes[A.ERROR_TYPE] == "InternalServerError"


# -- agents ----------------------------------------------------------------------------------------
def test_agent_attribution_on_span_and_metrics(instrumented, telemetry, mock):
    client = mock.client()
    with otel_tokens.agent("writer"):
        client.messages.create(model=SONNET, max_tokens=1024, messages=USER)
        with client.messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
            stream.until_done()
    calls = telemetry.llm_spans()
    assert len(calls) == 2 and sdk_spans(telemetry) == []
    (agent_span,) = telemetry.spans("invoke_agent")
    for call in calls:
        assert call.attributes[A.GEN_AI_AGENT_NAME] == "writer"
        assert call.parent.span_id == agent_span.context.span_id
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in agent_span.attributes
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__agent__name="writer", gen_ai__token__type="input") == (
        13821 + 2578
    )
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__agent__name="writer", gen_ai__token__type="cache_read") == (
        12000 + 2048
    )


# -- the SDK's own spans and trace propagation --------------------------------------------------------
def test_sdk_keeps_its_spans_for_calls_otel_tokens_does_not_record(instrumented, telemetry, mock):
    count = mock.client().messages.count_tokens(model=SONNET, messages=USER)
    assert count.input_tokens == 2095
    assert telemetry.llm_spans() == []
    assert [s.name for s in sdk_spans(telemetry)] == ["anthropic.messages.count_tokens"]


def test_sdk_would_emit_its_own_span_without_otel_tokens(telemetry, mock):
    mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER)
    (span,) = sdk_spans(telemetry)
    assert span.name == "anthropic.messages.create"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 13821  # same conversion as ours


def test_no_sdk_spans_by_default_for_clients_made_before_and_after_instrument(telemetry, mock, monkeypatch):
    for name in ("OTEL_TOKENS_ANTHROPIC_SDK_SPANS", "ANTHROPIC_OPEN_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    before = mock.client()
    before.messages.create(model=SONNET, max_tokens=1024, messages=USER)  # resolves its tracer
    assert len(sdk_spans(telemetry)) == 1
    telemetry.exporter.clear()

    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        after = mock.client()
        for client in (before, after):
            client.messages.create(model=SONNET, max_tokens=1024, messages=USER)
            list(client.messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True))
            with client.messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
                stream.until_done()
        assert len(telemetry.llm_spans()) == 6
        assert sdk_spans(telemetry) == []
        assert "ANTHROPIC_OPEN_TELEMETRY" not in os.environ  # the environment is untouched
    finally:
        otel_tokens.uninstrument()

    telemetry.exporter.clear()
    before.messages.create(model=SONNET, max_tokens=1024, messages=USER)
    assert len(sdk_spans(telemetry)) == 1  # uninstrument() gave the SDK its spans back


def test_sdk_spans_kept_when_asked(telemetry, mock, monkeypatch):
    monkeypatch.setenv("OTEL_TOKENS_ANTHROPIC_SDK_SPANS", "true")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER)
        with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
            stream.until_done()
    finally:
        otel_tokens.uninstrument()
    ours = telemetry.llm_spans()
    theirs = sdk_spans(telemetry)
    assert len(ours) == len(theirs) == 2
    assert {s.kind for s in ours + theirs} == {SpanKind.CLIENT}
    assert {s.name for s in theirs} == {"anthropic.messages.create"}
    # Only ours carries cost.
    assert all(A.GEN_AI_USAGE_COST_AMOUNT in s.attributes for s in ours)
    assert not any(A.GEN_AI_USAGE_COST_AMOUNT in s.attributes for s in theirs)


def _traceparent_span_id(headers: httpx2.Headers) -> int | None:
    value = headers.get("traceparent")
    return int(value.split("-")[2], 16) if value else None


def test_trace_context_still_propagates_to_a_real_span(instrumented, telemetry, mock):
    client = mock.client()
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as app_span:
        client.messages.create(model=SONNET, max_tokens=1024, messages=USER)
        with client.messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
            stream.until_done()
    client.messages.create(model=SONNET, max_tokens=1024, messages=USER)  # no current span

    # Each request continues the LLM span otel-tokens made current while the SDK sends (exported, a child
    # of the app's span), never a span the SDK would have dropped.
    ours = sorted(telemetry.llm_spans(), key=lambda span: span.start_time)
    sent = [_traceparent_span_id(headers) for _, _, headers in mock.requests]
    assert sent == [span.context.span_id for span in ours]
    assert [span.parent.span_id if span.parent else None for span in ours] == [
        app_span.get_span_context().span_id, app_span.get_span_context().span_id, None]
    assert sdk_spans(telemetry) == []


def test_propagation_off_sends_no_traceparent(instrumented, telemetry, mock):
    client = mock.client(open_telemetry={"tracer_provider": telemetry.tracer_provider, "propagation": False})
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("handle request"):
        client.messages.create(model=SONNET, max_tokens=1024, messages=USER)
    assert "traceparent" not in mock.requests[0][2]
    assert len(telemetry.llm_spans()) == 1 and sdk_spans(telemetry) == []


# -- providers ---------------------------------------------------------------------------------------
def test_vertex_and_foundry_clients(instrumented, telemetry, mock):
    vertex = mock.client(anthropic.AnthropicVertex, region="us-east5", project_id="acme", access_token="ya29.test")
    vertex.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=USER)
    foundry = mock.client(anthropic.AnthropicFoundry, api_key=API_KEY, resource="contoso")
    foundry.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=USER)
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.attributes[A.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert first.attributes[A.SERVER_ADDRESS] == "us-east5-aiplatform.googleapis.com"
    assert second.attributes[A.GEN_AI_PROVIDER_NAME] == "azure.ai.inference"
    assert second.attributes[A.SERVER_ADDRESS] == "contoso.services.ai.azure.com"
    assert "rawPredict" in mock.requests[0][0].path
    assert sdk_spans(telemetry) == []


def test_bedrock_client_is_aws_bedrock():
    from otel_tokens._internal.providers.anthropic import anthropic_client_provider

    client = anthropic.AnthropicBedrock(aws_access_key="AKIA0TEST", aws_secret_key="secret", aws_region="us-east-1")
    assert anthropic_client_provider(client) == ("aws.bedrock", "bedrock-runtime.us-east-1.amazonaws.com", 443)
    async_client = anthropic.AsyncAnthropicBedrock(aws_access_key="a", aws_secret_key="b", aws_region="eu-west-3")
    assert anthropic_client_provider(async_client)[0] == "aws.bedrock"
    assert anthropic_client_provider(anthropic.Anthropic(api_key=API_KEY)) == ("anthropic", "api.anthropic.com", 443)


# -- content and lifecycle ---------------------------------------------------------------------------
def test_no_content_and_no_api_key_by_default(instrumented, telemetry, mock):
    mock.client().messages.create(model=SONNET, max_tokens=1024, system="secret system", messages=USER)
    text = all_attribute_text(telemetry)
    assert "termination clause" not in text and "secret system" not in text and "30 days" not in text
    assert API_KEY not in text


def _call_with_capture(telemetry, mock, monkeypatch, capture, logger_provider=None):
    """A call with a system prompt, then a stream without one, under this content capture."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", capture)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           logger_provider=logger_provider)
    try:
        mock.client().messages.create(model=SONNET, max_tokens=1024, system="Be brief.", messages=USER)
        with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
            stream.until_done()
    finally:
        otel_tokens.uninstrument()


def test_content_capture_opt_in(telemetry, mock, monkeypatch):
    _call_with_capture(telemetry, mock, monkeypatch, "SPAN_ONLY")
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    messages = json.loads(first.attributes[A.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["user"]
    assert messages[0]["parts"][0]["content"] == "Summarise the termination clause."
    # The conventions put a separate system prompt in gen_ai.system_instructions, not among the messages.
    assert json.loads(first.attributes[A.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert A.GEN_AI_SYSTEM_INSTRUCTIONS not in second.attributes  # no system prompt given
    assert "30 days" in first.attributes[A.GEN_AI_OUTPUT_MESSAGES]
    assert "Streams are read event by event." in second.attributes[A.GEN_AI_OUTPUT_MESSAGES]
    assert API_KEY not in all_attribute_text(telemetry)


def test_content_event_carries_the_system_instructions_structured(telemetry, logs, mock, monkeypatch):
    from opentelemetry._logs import SeverityNumber

    _call_with_capture(telemetry, mock, monkeypatch, "EVENT_ONLY", logs.logger_provider)
    spans = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    records = logs.records()
    assert [(r.event_name, r.severity_number) for r in records] == [
        (A.EVENT_INFERENCE_OPERATION_DETAILS, SeverityNumber.DEBUG)] * 2
    by_span = {r.span_id: r for r in records}
    first, second = (dict(by_span[span.context.span_id].attributes) for span in spans)
    for attrs in (first, second):
        assert (attrs[A.GEN_AI_OPERATION_NAME], attrs[A.GEN_AI_PROVIDER_NAME]) == ("chat", "anthropic")
        assert attrs[A.GEN_AI_INPUT_MESSAGES] == (
            {"role": "user", "parts": ({"type": "text", "content": "Summarise the termination clause."},)},)
    assert first[A.GEN_AI_SYSTEM_INSTRUCTIONS] == ({"type": "text", "content": "Be brief."},)
    assert A.GEN_AI_SYSTEM_INSTRUCTIONS not in second
    assert "30 days" in first[A.GEN_AI_OUTPUT_MESSAGES][0]["parts"][0]["content"]
    assert second[A.GEN_AI_REQUEST_STREAM] is True
    # EVENT_ONLY: no content on the spans.
    assert not any(A.GEN_AI_INPUT_MESSAGES in span.attributes for span in spans)
    assert API_KEY not in repr(records[0].attributes) + repr(records[1].attributes)


def test_uninstrument_removes_every_patch(telemetry, mock):
    from anthropic import _base_client
    from anthropic.resources.beta.messages import messages as beta_messages
    from anthropic.resources.messages import messages

    originals = (
        messages.Messages.create, messages.AsyncMessages.stream, beta_messages.Messages.parse,
        _base_client.start_api_call_span,
    )
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument()  # idempotent
    assert messages.Messages.create is not originals[0]
    otel_tokens.uninstrument()
    otel_tokens.uninstrument()
    assert (
        messages.Messages.create, messages.AsyncMessages.stream, beta_messages.Messages.parse,
        _base_client.start_api_call_span,
    ) == originals
    mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER)
    assert telemetry.llm_spans() == [] and len(sdk_spans(telemetry)) == 1


def test_manager_made_before_uninstrument_is_not_observed_after(instrumented, telemetry, mock):
    manager = mock.client(open_telemetry=False).messages.stream(model=SONNET, max_tokens=1024, messages=USER)
    otel_tokens.uninstrument()
    with manager as stream:
        assert type(stream) is MessageStream
        assert stream.get_final_message().usage.output_tokens == 12
    assert telemetry.spans() == []


# -- fail open -------------------------------------------------------------------------------------
@pytest.fixture
def users_mode(monkeypatch):
    """Internal errors logged, not raised: what users run."""
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")


def test_a_broken_adapter_never_breaks_the_helper(instrumented, telemetry, mock, users_mode, monkeypatch, caplog):
    from otel_tokens._internal.providers import anthropic as adapter

    def broken(*args, **kwargs):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(adapter.Messages, "request", broken)
    with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        events = list(stream)
    message = mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER)
    with mock.plain_client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as plain:
        plain_events = list(plain)
    assert [e.to_dict() for e in events] == [e.to_dict() for e in plain_events]
    assert type(message) is anthropic.types.Message
    assert telemetry.llm_spans() == []
    assert "adapter bug" in caplog.text


def test_a_broken_accumulator_never_breaks_the_stream(instrumented, telemetry, mock, users_mode, monkeypatch):
    from otel_tokens._internal.providers import anthropic as adapter

    def broken(self, event):
        raise RuntimeError("accumulator bug")

    monkeypatch.setattr(adapter.MessageStreamAccumulator, "add", broken)
    with mock.client().messages.stream(model=SONNET, max_tokens=1024, messages=USER) as stream:
        final = stream.get_final_message()
    events = list(mock.client().messages.create(model=SONNET, max_tokens=1024, messages=USER, stream=True))
    assert final.usage.output_tokens == 12
    assert len(events) == 8
    assert len(telemetry.llm_spans()) == 2  # both calls still finished, once each


# -- billing dimensions: tiers, fast mode, 1-hour cache writes, server tools --------------------------
def assert_billed(span, hand_computed_usd: float) -> None:
    """The recorded cost is the bill computed by hand from Anthropic's price list (ratio 1.000)."""
    recorded = span.attributes[A.GEN_AI_USAGE_COST_AMOUNT]
    assert recorded / hand_computed_usd == pytest.approx(1.0, rel=1e-9), (recorded, hand_computed_usd)


SONNET_45 = "claude-sonnet-4-5-20250929"


def test_batch_tier_and_one_hour_cache_writes(instrumented, telemetry, mock):
    mock.reply("message_batch_1h.json")
    mock.client().messages.create(model=SONNET_45, max_tokens=256, messages=USER)
    span = only_span(telemetry)
    assert_usage(span, input=4000, output=200, cache_write=3000)
    assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "batch"
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in span.attributes
    # batch: $1.50 input, $1.875 5-minute cache write, $3 1-hour cache write, $7.50 output per million
    assert_billed(span, (1000 * 1.5 + 1000 * 1.875 + 2000 * 3 + 200 * 7.5) / 1e6)
    usage = Usage(
        input_tokens=4000, output_tokens=200, cache_write_tokens=3000,
        details=(("cache_write_5m_tokens", 1000), ("cache_write_1h_tokens", 2000)),
        price_context=(("processing", "batch"),),
    )  # fmt: skip
    assert_cost(span, instrumented, SONNET_45, usage)
    assert otel_tokens.get_statistics()["by_tier"]["batch"]["calls"] == 1


def test_fast_mode_is_priced_at_fast_rates(instrumented, telemetry, mock):
    mock.reply("message_fast.json")
    mock.client().messages.create(model="claude-opus-4-8", max_tokens=256, messages=USER)
    span = only_span(telemetry)
    assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "fast"
    # fast mode: $10 input, $50 output per million tokens (2x)
    assert_billed(span, (500 * 10 + 100 * 50) / 1e6)


def test_priority_tier_has_no_list_price_so_it_is_flagged(instrumented, telemetry, mock, caplog):
    mock.reply("message_priority.json")
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        mock.client().messages.create(model=SONNET_45, max_tokens=256, messages=USER)
    span = only_span(telemetry)
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "priority"
    assert attrs[A.OTEL_TOKENS_COST_INCOMPLETE] is True
    assert attrs[A.OTEL_TOKENS_COST_UNPRICED_DIMENSIONS] == ("service_tier",)
    assert_billed(span, (800 * 3 + 120 * 15) / 1e6)  # the standard rates: what is known
    assert telemetry.sum_of(A.METRIC_COST_INCOMPLETE_CALLS) == 1
    assert "service tier 'priority'" in caplog.text


def test_priority_tier_priced_by_an_override(instrumented, telemetry, mock):
    otel_tokens.set_price(SONNET_45, input=3, output=15, tiers={"priority": {"input": 4, "output": 20}})
    mock.reply("message_priority.json")
    mock.client().messages.create(model=SONNET_45, max_tokens=256, messages=USER)
    span = only_span(telemetry)
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in span.attributes
    assert_billed(span, (800 * 4 + 120 * 20) / 1e6)


def test_stream_one_hour_cache_writes_above_200k_and_web_searches(instrumented, telemetry, mock):
    mock.reply("message_stream_1h_long.sse")
    with mock.client().messages.create(model=SONNET_45, max_tokens=1024, messages=USER, stream=True) as stream:
        for _ in stream:
            pass
    span = only_span(telemetry)
    attrs = span.attributes
    assert_usage(span, input=220_000, output=300, cache_write=20_000)
    assert attrs[A.OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH] == 2
    assert attrs[A.OTEL_TOKENS_SERVER_TOOL_WEB_FETCH] == 1
    assert attrs[A.OTEL_TOKENS_COST_TOOL_FEES] == pytest.approx(0.02)
    # above 200k input: $6 input, $12 1-hour cache write, $22.50 output per million; $10 per 1,000 searches
    assert_billed(span, (200_000 * 6 + 20_000 * 12 + 300 * 22.5) / 1e6 + 2 * 0.010)


def test_batch_results_are_calls_at_batch_rates_with_their_custom_id(instrumented, telemetry, mock):
    mock.reply("message_batch.json").reply("message_batch_results.jsonl")
    with otel_tokens.agent("support-triage"):
        results = list(mock.client().messages.batches.results("msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d"))
    assert [r.custom_id for r in results] == ["ticket-1", "ticket-2", "ticket-3"]  # the caller's, unchanged
    spans = sorted(telemetry.llm_spans(), key=lambda span: span.attributes[A.OTEL_TOKENS_BATCH_CUSTOM_ID])
    assert [s.attributes[A.OTEL_TOKENS_BATCH_CUSTOM_ID] for s in spans] == ["ticket-1", "ticket-2"]  # errored: not billed
    for span in spans:
        assert span.attributes[A.OTEL_TOKENS_BATCH_ID] == "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d"
        assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "batch"
        assert span.attributes[A.GEN_AI_AGENT_NAME] == "support-triage"
    # batch: $1.50 input, $0.15 cache read, $7.50 output per million tokens
    assert_billed(spans[0], (1000 * 1.5 + 200 * 7.5) / 1e6)
    assert_billed(spans[1], (500 * 1.5 + 2000 * 0.15 + 100 * 7.5) / 1e6)
    stats = otel_tokens.get_statistics()
    assert stats["by_agent"]["support-triage"]["calls"] == 2
    assert stats["by_tier"]["batch"]["cost_usd"] == pytest.approx(0.003 + 0.0018)


async def test_async_batch_results(instrumented, telemetry, mock):
    mock.reply("message_batch.json").reply("message_batch_results.jsonl")
    decoder = await mock.async_client().messages.batches.results("msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d")
    results = [result async for result in decoder]
    assert len(results) == 3
    assert len(telemetry.llm_spans()) == 2
