"""Cohere: the real ``cohere`` SDK (V2 and V1 APIs) over its own HTTP stack (httpx), answered with
recorded responses in Cohere's wire format (JSON, SSE for V2 streams, JSON lines for V1 streams)."""

from __future__ import annotations

import gc
import types

import cohere
import httpx
import pytest
from cohere.v2.client import V2Client

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.providers import cohere as adapter
from tests.providers.assertions import (
    all_attribute_text,
    assert_instrument_twice_and_unpatch,
    assert_usage,
    only_llm_span,
    reference_cost,
)
from tests.providers.recorded import Recorded

pytestmark = [
    pytest.mark.usefixtures("no_network"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),  # the SDK's own
]

API_KEY = "cohere-test-SECRET-key-789"
MESSAGES = [{"role": "user", "content": "Capital of France?"}]
ROUTES = {
    ("/v2/chat", False): "v2_chat.json",
    ("/v2/chat", True): "v2_chat_stream.sse",
    ("/v2/embed", False): "v2_embed.json",
    ("/v1/chat", False): "v1_chat.json",
    ("/v1/chat", True): "v1_chat_stream.ndjson",
    ("/v1/generate", False): "v1_generate.json",
    ("/v1/embed", False): "v1_embed.json",
}
NO_RETRIES = {"max_retries": 0}  # the SDK retries a 429 by default
STREAM_USAGE = Usage(input_tokens=2716, output_tokens=41, cache_read_tokens=1792)


@pytest.fixture
def server() -> Recorded:
    return Recorded("cohere", httpx, lambda path, body: ROUTES[path, bool(body.get("stream"))])


def client_v2(server: Recorded) -> cohere.ClientV2:
    return cohere.ClientV2(api_key=API_KEY, httpx_client=httpx.Client(transport=server.transport()))


def async_client_v2(server: Recorded) -> cohere.AsyncClientV2:
    return cohere.AsyncClientV2(api_key=API_KEY, httpx_client=httpx.AsyncClient(transport=server.async_transport()))


def client_v1(server: Recorded) -> cohere.Client:
    return cohere.Client(api_key=API_KEY, httpx_client=httpx.Client(transport=server.transport()))


def async_client_v1(server: Recorded) -> cohere.AsyncClient:
    return cohere.AsyncClient(api_key=API_KEY, httpx_client=httpx.AsyncClient(transport=server.async_transport()))


def cost(model: str, usage: Usage) -> float:
    expected = reference_cost(model, usage, "cohere")
    assert expected > 0
    return pytest.approx(expected, abs=1e-12)


# -- V2 chat -----------------------------------------------------------------------------------------
def test_v2_chat_records_billed_tokens_as_integers_and_cost(instrumented, telemetry, server):
    response = client_v2(server).chat(model="command-a-03-2025", messages=MESSAGES, max_tokens=500, temperature=0.4)

    assert type(response) is cohere.V2ChatResponse
    assert response.usage.billed_units.input_tokens == 1342.0  # the SDK's floats reach the caller as they are
    span = only_llm_span(telemetry)
    assert span.name == "chat command-a-03-2025"
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "cohere"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 500
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.4
    assert attrs[A.GEN_AI_RESPONSE_ID] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("COMPLETE",)
    assert attrs[A.SERVER_ADDRESS] == "api.cohere.com"
    assert attrs[A.SERVER_PORT] == 443
    # Billed units, not the raw tokens (1549 / 89), and integers.
    assert_usage(span, input=1342, output=87, cache_read=384)
    assert type(attrs[A.GEN_AI_USAGE_INPUT_TOKENS]) is int
    usage = Usage(input_tokens=1342, output_tokens=87, cache_read_tokens=384)
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == cost("command-a-03-2025", usage)
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 1342
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 87
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == cost("command-a-03-2025", usage)


def test_v2_chat_through_client_v2_attribute(instrumented, telemetry, server):
    v2 = client_v1(server).v2
    assert isinstance(v2, V2Client)
    v2.chat(model="command-a-03-2025", messages=MESSAGES)
    span = only_llm_span(telemetry)
    assert span.attributes[A.SERVER_ADDRESS] == "api.cohere.com"
    assert_usage(span, input=1342, output=87, cache_read=384)


async def test_v2_chat_async(instrumented, telemetry, server):
    response = await async_client_v2(server).chat(model="command-a-03-2025", messages=MESSAGES)
    assert type(response) is cohere.V2ChatResponse
    assert_usage(only_llm_span(telemetry), input=1342, output=87, cache_read=384)


def test_v2_tool_calls_and_float_counts(instrumented, telemetry, server):
    server.reply("v2_chat_tool_call.json")
    response = client_v2(server).chat(model="command-r-plus-08-2024", messages=MESSAGES)
    assert len(response.message.tool_calls) == 3
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("TOOL_CALL",)
    assert_usage(span, input=419, output=63)
    assert adapter.ChatV2().result(response, False).tool_calls == 3


# -- V2 streams ----------------------------------------------------------------------------------------
def test_v2_chat_stream_events_identical_and_usage_from_message_end(instrumented, telemetry, server):
    stream = client_v2(server).chat_stream(model="command-r7b-12-2024", messages=MESSAGES)
    assert isinstance(stream, types.GeneratorType)  # what the SDK returns: a generator
    events = list(stream)
    otel_tokens.uninstrument()
    plain = list(client_v2(server).chat_stream(model="command-r7b-12-2024", messages=MESSAGES))
    assert len(events) == len(plain) == 9
    assert [type(e) for e in events] == [type(e) for e in plain]
    assert [e.type for e in events][-1] == "message-end"
    assert events == plain

    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == "7e2d9c4b-3a1f-4b6e-8d5c-2f9a0e1b7c63"
    assert_usage(span, input=2716, output=41, cache_read=1792)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("command-r7b-12-2024", STREAM_USAGE)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes


async def test_v2_chat_stream_async(instrumented, telemetry, server):
    stream = async_client_v2(server).chat_stream(model="command-r7b-12-2024", messages=MESSAGES)
    assert isinstance(stream, types.AsyncGeneratorType)
    events = [e async for e in stream]
    assert len(events) == 9
    assert_usage(only_llm_span(telemetry), input=2716, output=41, cache_read=1792)


def test_v2_chat_stream_abandoned_early_is_estimated(instrumented, telemetry, server):
    stream = client_v2(server).chat_stream(model="command-r7b-12-2024", messages=MESSAGES)
    for index, _event in enumerate(stream):
        if index == 3:
            break
    assert telemetry.llm_spans() == []
    del stream, _event
    gc.collect()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 4  # "Capital of France?"
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "Streams" + " arrive"


async def test_v2_async_stream_closed_early_is_estimated(instrumented, telemetry, server):
    stream = async_client_v2(server).chat_stream(model="command-r7b-12-2024", messages=MESSAGES)
    async for _event in stream:
        break
    await stream.aclose()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True


# -- V2 embed ------------------------------------------------------------------------------------------
def test_v2_embed(instrumented, telemetry, server):
    result = client_v2(server).embed(
        model="embed-v4.0", texts=["first text", "second text"], input_type="search_document",
        embedding_types=["float"],
    )
    assert len(result.embeddings.float_) == 2
    span = only_llm_span(telemetry)
    assert span.name == "embeddings embed-v4.0"
    assert span.attributes[A.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 23
    assert A.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("embed-v4.0", Usage(input_tokens=23))


async def test_v2_embed_async(instrumented, telemetry, server):
    await async_client_v2(server).embed(
        model="embed-v4.0", texts=["a"], input_type="search_query", embedding_types=["float"]
    )
    assert only_llm_span(telemetry).attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 23


# -- V1 --------------------------------------------------------------------------------------------------
def test_v1_chat_and_stream(instrumented, telemetry, server):
    co = client_v1(server)
    response = co.chat(model="command-r-plus-08-2024", message="Say hello", preamble="Be brief.")
    assert type(response) is cohere.NonStreamedChatResponse
    events = list(co.chat_stream(model="command-r-plus-08-2024", message="Stream it"))
    assert [e.event_type for e in events][0] == "stream-start"
    assert len(events) == 8
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.attributes[A.GEN_AI_RESPONSE_ID] == "0b7e4d2a-1c3f-4e5d-9a8b-7c6d5e4f3a2b"
    assert_usage(first, input=57, output=23)
    assert first.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("command-r-plus-08-2024", Usage(57, 23))
    assert second.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(second, input=61, output=13)


async def test_v1_chat_and_stream_async(instrumented, telemetry, server):
    co = async_client_v1(server)
    await co.chat(model="command-r-plus-08-2024", message="Say hello")
    events = [e async for e in co.chat_stream(model="command-r-plus-08-2024", message="Stream it")]
    assert len(events) == 8
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert_usage(first, input=57, output=23)
    assert_usage(second, input=61, output=13)


def test_v1_generate(instrumented, telemetry, server):
    result = client_v1(server).generate(model="command", prompt="Once upon a time there was", max_tokens=40)
    assert type(result) is cohere.Generation
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("COMPLETE",)
    assert_usage(span, input=7, output=19)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("command", Usage(7, 19))


async def test_v1_generate_async(instrumented, telemetry, server):
    await async_client_v1(server).generate(model="command", prompt="Once upon a time there was")
    assert_usage(only_llm_span(telemetry), input=7, output=19)


def test_v1_embed_is_one_call_with_the_batches_billed_units_and_the_callers_labels(instrumented, telemetry, server):
    # cohere.Client.embed sends batches of 96 texts from a thread pool that does not carry the
    # caller's context; the call is recorded where the caller made it.
    with otel_tokens.agent("indexer"):
        result = client_v1(server).embed(model="embed-v4.0", texts=["one text"] * 100, input_type="search_query")
    assert len(server.requests) == 2
    assert len(result.embeddings) == 2  # one recorded embedding per batch
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_AGENT_NAME] == "indexer"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 18  # 9 + 9, summed by the SDK
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("embed-v4.0", Usage(input_tokens=18))


async def test_v1_embed_async_unpriced_model_is_flagged(instrumented, telemetry, server):
    await async_client_v1(server).embed(model="embed-english-v3.0", texts=["one text"], input_type="search_query")
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert A.GEN_AI_USAGE_COST_AMOUNT not in attrs  # unknown, never $0
    assert attrs[A.OTEL_TOKENS_PRICE_UNKNOWN] is True


# -- errors, lifecycle, privacy --------------------------------------------------------------------------
def test_sdk_error_passes_through_unchanged(instrumented, telemetry, server):
    server.reply("error_429.json", status=429)
    with pytest.raises(cohere.TooManyRequestsError) as raised:
        client_v2(server).chat(model="command-a-03-2025", messages=MESSAGES, request_options=NO_RETRIES)
    assert type(raised.value) is cohere.TooManyRequestsError
    assert raised.value.status_code == 429
    assert raised.value.body == server.load("error_429.json")
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "TooManyRequestsError"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


def test_stream_error_passes_through_on_first_read(instrumented, telemetry, server):
    server.reply("error_429.json", status=429)
    stream = client_v2(server).chat_stream(model="command-a-03-2025", messages=MESSAGES, request_options=NO_RETRIES)
    with pytest.raises(cohere.TooManyRequestsError):
        next(iter(stream))
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "TooManyRequestsError"


async def test_async_error_passes_through(instrumented, telemetry, server):
    server.reply("error_429.json", status=429)
    with pytest.raises(cohere.TooManyRequestsError):
        await async_client_v2(server).chat(model="command-a-03-2025", messages=MESSAGES, request_options=NO_RETRIES)
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "TooManyRequestsError"


def test_uninstrument_restores_the_original_methods(telemetry, server):
    assert_instrument_twice_and_unpatch(
        telemetry, V2Client, "chat", lambda: client_v2(server).chat(model="command-a-03-2025", messages=MESSAGES)
    )


def test_no_content_and_no_api_key_by_default(instrumented, telemetry, server):
    client_v2(server).chat(model="command-a-03-2025", messages=[{"role": "user", "content": "my secret"}])
    text = all_attribute_text(telemetry)
    assert "my secret" not in text
    assert "Paris" not in text
    assert API_KEY not in text
    assert server.requests[0][2]["authorization"] == f"Bearer {API_KEY}"
