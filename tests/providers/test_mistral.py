"""Mistral: the real ``mistralai`` 3.x SDK over its own HTTP stack (httpx2), answered with recorded
responses in Mistral's wire format (JSON, and SSE for streams)."""

from __future__ import annotations

import gc

import httpx2
import pytest
from mistralai.client import Mistral, errors, models
from mistralai.client.chat import Chat
from mistralai.client.utils.eventstreaming import EventStream, EventStreamAsync

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.providers import mistral as adapter
from tests.providers.assertions import (
    all_attribute_text,
    assert_instrument_twice_and_unpatch,
    assert_usage,
    only_llm_span,
    reference_cost,
)
from tests.providers.recorded import Recorded

pytestmark = pytest.mark.usefixtures("no_network")

API_KEY = "mistral-test-SECRET-key-456"
CHAT = [{"role": "user", "content": "Capital of France?"}]
CHAT_USAGE = Usage(input_tokens=1187, output_tokens=53, cache_read_tokens=768)
STREAM_USAGE = Usage(input_tokens=2317, output_tokens=31, cache_read_tokens=1536)


def _route(path: str, body: dict) -> str:
    kind = path.removeprefix("/v1/").replace("/", "_")  # chat_completions, fim_completions, ...
    if body.get("stream"):
        return {"chat_completions": "chat_stream.sse", "fim_completions": "fim_stream.sse",
                "agents_completions": "chat_stream.sse"}[kind]
    return {"chat_completions": "chat_completion.json", "fim_completions": "fim_completion.json",
            "agents_completions": "agents_completion.json", "embeddings": "embeddings.json"}[kind]


@pytest.fixture
def server() -> Recorded:
    return Recorded("mistral", httpx2, _route)


def client(server: Recorded, **kwargs) -> Mistral:
    return Mistral(
        api_key=API_KEY,
        client=httpx2.Client(transport=server.transport()),
        async_client=httpx2.AsyncClient(transport=server.async_transport()),
        **kwargs,
    )


def cost(model: str, usage: Usage) -> float:
    expected = reference_cost(model, usage, "mistral")
    assert expected > 0
    return pytest.approx(expected, abs=1e-12)


# -- chat ------------------------------------------------------------------------------------------
def test_chat_complete_records_exact_tokens_cost_and_metrics(instrumented, telemetry, server):
    response = client(server).chat.complete(
        model="mistral-medium-latest", messages=CHAT, max_tokens=300, temperature=0.3, random_seed=7
    )

    assert type(response) is models.ChatCompletionResponse
    assert response.choices[0].message.content == "Paris is the capital of France, on the Seine."
    span = only_llm_span(telemetry)
    assert span.name == "chat mistral-medium-latest"
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "mistral_ai"
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 300
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert attrs[A.GEN_AI_REQUEST_SEED] == 7
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == "mistral-medium-2505"
    assert attrs[A.GEN_AI_RESPONSE_ID] == "cmpl-3f1b7c2ad94e4c0f8e1a6b5d2c7e9f01"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.SERVER_ADDRESS] == "api.mistral.ai"
    assert attrs[A.SERVER_PORT] == 443
    assert_usage(span, input=1187, output=53, cache_read=768)
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == cost("mistral-medium-2505", CHAT_USAGE)
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 1187
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 53
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="cache_read") == 768
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == cost("mistral-medium-2505", CHAT_USAGE)
    (attributes, point), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert point.count == 1
    assert attributes[A.GEN_AI_PROVIDER_NAME] == "mistral_ai"
    # What was sent is what the caller asked for.
    assert server.requests[0][1]["max_tokens"] == 300


async def test_chat_complete_async(instrumented, telemetry, server):
    response = await client(server).chat.complete_async(model="mistral-medium-latest", messages=CHAT)
    assert type(response) is models.ChatCompletionResponse
    assert_usage(only_llm_span(telemetry), input=1187, output=53, cache_read=768)


def test_tool_calls_are_counted(instrumented, telemetry, server):
    server.reply("chat_tool_call.json")
    response = client(server).chat.complete(
        model="mistral-large-latest", messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    assert len(response.choices[0].message.tool_calls) == 2
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert_usage(span, input=213, output=37)
    assert adapter.Chat().result(response, False).tool_calls == 2


def test_parse_is_counted_once(instrumented, telemetry, server):
    import pydantic

    class City(pydantic.BaseModel):
        city: str

    server.reply("chat_parse.json")
    parsed = client(server).chat.parse(response_format=City, model="mistral-small-latest", messages=CHAT)
    assert parsed.choices[0].message.parsed == City(city="Paris")
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_OUTPUT_TYPE] == "json"
    assert_usage(span, input=146, output=11)


def test_response_without_counts_is_estimated_not_zero(instrumented, telemetry, server):
    # UsageInfo defaults missing counts to 0; an empty usage object must not read as a free call.
    server.reply("chat_no_usage.json")
    client(server).chat.complete(model="mistral-small-latest", messages=CHAT)
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 4  # "Capital of France?"
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 8  # "No usage was sent with this answer."


def test_invalid_counts_are_flagged_and_estimated(instrumented, telemetry, server):
    server.reply("chat_invalid_usage.json")  # prompt_tokens: -5
    response = client(server).chat.complete(model="mistral-small-latest", messages=CHAT)
    assert response.usage.prompt_tokens == -5  # the caller still gets what the server sent
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_INVALID] is True
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 4  # "Capital of France?", not -5
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 3  # "Bad counts."
    assert telemetry.sum_of(A.METRIC_USAGE_INVALID_CALLS) == 1


# -- streams ---------------------------------------------------------------------------------------
def _texts(events):
    return [e.data.choices[0].delta.content for e in events]


def test_stream_chunks_are_identical_and_usage_exact(instrumented, telemetry, server):
    stream = client(server).chat.stream(model="mistral-medium-latest", messages=CHAT)
    assert isinstance(stream, EventStream)
    events = list(stream)

    otel_tokens.uninstrument()
    plain = list(client(server).chat.stream(model="mistral-medium-latest", messages=CHAT))
    assert len(events) == len(plain) == 7
    assert [type(e) for e in events] == [type(e) for e in plain] == [models.CompletionEvent] * 7
    assert _texts(events) == _texts(plain)
    assert server.requests[0][1] == server.requests[1][1]

    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, input=2317, output=31, cache_read=1536)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("mistral-medium-2505", STREAM_USAGE)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    (_, ttfc), = telemetry.points(A.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1


def test_stream_as_context_manager(instrumented, telemetry, server):
    with client(server).chat.stream(model="mistral-medium-latest", messages=CHAT) as stream:
        assert isinstance(stream, EventStream)
        text = "".join(e.data.choices[0].delta.content for e in stream)
    assert text == "Streams arrive in pieces."
    assert_usage(only_llm_span(telemetry), input=2317, output=31, cache_read=1536)


async def test_stream_async(instrumented, telemetry, server):
    stream = await client(server).chat.stream_async(model="mistral-medium-latest", messages=CHAT)
    assert isinstance(stream, EventStreamAsync)
    events = [e async for e in stream]
    assert [type(e) for e in events] == [models.CompletionEvent] * 7
    assert_usage(only_llm_span(telemetry), input=2317, output=31, cache_read=1536)


async def test_stream_async_context_manager(instrumented, telemetry, server):
    async with await client(server).chat.stream_async(model="mistral-medium-latest", messages=CHAT) as stream:
        events = [e async for e in stream]
    assert len(events) == 7
    assert_usage(only_llm_span(telemetry), input=2317, output=31, cache_read=1536)


def test_stream_abandoned_early_is_estimated_and_finished_once(instrumented, telemetry, server):
    stream = client(server).chat.stream(model="mistral-medium-latest", messages=CHAT)
    for index, _event in enumerate(stream):
        if index == 2:
            break
    assert telemetry.llm_spans() == []  # the caller may still read on
    del stream, _event
    gc.collect()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 4  # "Capital of France?"
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "" + "Streams" + " arrive"


def test_sdk_message_models_are_read_for_the_estimate(instrumented, telemetry, server):
    stream = client(server).chat.stream(
        model="mistral-medium-latest", messages=[models.UserMessage(content="Capital of France?")]
    )
    next(iter(stream))
    stream.close()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 4  # "Capital of France?", from the SDK's own message model


async def test_async_stream_closed_early_is_estimated(instrumented, telemetry, server):
    stream = await client(server).chat.stream_async(model="mistral-medium-latest", messages=CHAT)
    async for _event in stream:
        break
    await stream.close()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 0


def test_parse_stream_is_counted_once(instrumented, telemetry, server):
    import pydantic

    class City(pydantic.BaseModel):
        city: str

    events = list(client(server).chat.parse_stream(response_format=City, model="mistral-medium-latest", messages=CHAT))
    assert len(events) == 7
    assert_usage(only_llm_span(telemetry), input=2317, output=31, cache_read=1536)


# -- fim, agents, embeddings -----------------------------------------------------------------------
def test_fim_complete_and_stream(instrumented, telemetry, server):
    mistral = client(server)
    completion = mistral.fim.complete(model="codestral-latest", prompt="def add(a, b):\n", suffix="\n")
    assert type(completion) is models.FIMCompletionResponse
    events = list(mistral.fim.stream(model="codestral-latest", prompt="def add(a, b):\n"))
    assert [type(e) for e in events] == [models.CompletionEvent] * 6
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.name == "text_completion codestral-latest"
    assert first.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert_usage(first, input=58, output=19)
    assert first.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("codestral-2501", Usage(58, 19))
    assert second.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(second, input=61, output=23)


async def test_fim_async(instrumented, telemetry, server):
    mistral = client(server)
    await mistral.fim.complete_async(model="codestral-latest", prompt="def add(a, b):\n")
    events = [e async for e in await mistral.fim.stream_async(model="codestral-latest", prompt="def add(a, b):\n")]
    assert len(events) == 6
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert_usage(first, input=58, output=19)
    assert_usage(second, input=61, output=23)


def test_agents_complete_and_stream(instrumented, telemetry, server):
    mistral = client(server)
    response = mistral.agents.complete(agent_id="ag_0195f2c3d4e5", messages=CHAT)
    assert type(response) is models.ChatCompletionResponse
    events = list(mistral.agents.stream(agent_id="ag_0195f2c3d4e5", messages=CHAT))
    assert len(events) == 7
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.name == "chat"  # the request names an agent, not a model
    assert first.attributes[A.GEN_AI_AGENT_ID] == "ag_0195f2c3d4e5"
    assert first.attributes[A.GEN_AI_RESPONSE_MODEL] == "mistral-small-2506"
    assert_usage(first, input=642, output=89)
    assert first.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("mistral-small-2506", Usage(642, 89))
    assert_usage(second, input=2317, output=31, cache_read=1536)


async def test_agents_async(instrumented, telemetry, server):
    mistral = client(server)
    await mistral.agents.complete_async(agent_id="ag_0195f2c3d4e5", messages=CHAT)
    events = [e async for e in await mistral.agents.stream_async(agent_id="ag_0195f2c3d4e5", messages=CHAT)]
    assert len(events) == 7
    assert len(telemetry.llm_spans()) == 2


def test_embeddings(instrumented, telemetry, server):
    result = client(server).embeddings.create(model="mistral-embed", inputs=["first text", "second text"])
    assert type(result) is models.EmbeddingResponse
    assert len(result.data) == 2
    span = only_llm_span(telemetry)
    assert span.name == "embeddings mistral-embed"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 29
    assert A.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == cost("mistral-embed", Usage(input_tokens=29))


async def test_embeddings_async(instrumented, telemetry, server):
    result = await client(server).embeddings.create_async(model="mistral-embed", inputs="one text")
    assert type(result) is models.EmbeddingResponse
    assert only_llm_span(telemetry).attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 29


# -- errors ----------------------------------------------------------------------------------------
def _sdk_error(server: Recorded, call) -> errors.SDKError:
    server.reply("error_429.json", status=429)
    with pytest.raises(errors.SDKError) as raised:
        call()
    return raised.value


def test_sdk_error_passes_through_unchanged(instrumented, telemetry, server):
    error = _sdk_error(server, lambda: client(server).chat.complete(model="mistral-small-latest", messages=CHAT))
    assert type(error) is errors.SDKError
    assert error.status_code == 429
    assert "rate limit" in error.body
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "SDKError"
    assert span.status.status_code.name == "ERROR"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


def test_stream_error_passes_through(instrumented, telemetry, server):
    error = _sdk_error(server, lambda: client(server).chat.stream(model="mistral-small-latest", messages=CHAT))
    assert error.status_code == 429
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "SDKError"


async def test_async_error_passes_through(instrumented, telemetry, server):
    server.reply("error_429.json", status=429)
    with pytest.raises(errors.SDKError) as raised:
        await client(server).chat.complete_async(model="mistral-small-latest", messages=CHAT)
    assert raised.value.status_code == 429
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "SDKError"


# -- lifecycle, the SDK's own tracing, privacy -----------------------------------------------------
def test_uninstrument_restores_the_original_methods(telemetry, server):
    assert_instrument_twice_and_unpatch(
        telemetry, Chat, "complete", lambda: client(server).chat.complete(model="mistral-small-latest", messages=CHAT)
    )


def test_sdk_tracing_on_coexists(instrumented, telemetry, server, monkeypatch):
    from mistralai.extra.observability import configure_telemetry

    monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
    mistral = client(server)
    assert configure_telemetry(mistral, provider=telemetry.tracer_provider)
    mistral.chat.complete(model="mistral-medium-latest", messages=CHAT)
    list(mistral.chat.stream(model="mistral-medium-latest", messages=CHAT))

    sdk_spans = [s for s in telemetry.spans() if s.instrumentation_scope.name.startswith("mistralai")]
    assert len(sdk_spans) == 2  # the SDK's tracing is on and left alone
    ours = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert len(ours) == 2  # one LLM span of ours per call, with exact counts and the only cost
    assert_usage(ours[0], input=1187, output=53, cache_read=768)
    assert_usage(ours[1], input=2317, output=31, cache_read=1536)
    assert all(A.GEN_AI_USAGE_COST_AMOUNT not in s.attributes for s in sdk_spans)
    statistics = otel_tokens.get_statistics()
    assert statistics["total_calls"] == 2
    assert statistics["input_tokens"] == 1187 + 2317


def test_no_content_and_no_api_key_by_default(instrumented, telemetry, server):
    client(server).chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "my secret"}])
    text = all_attribute_text(telemetry)
    assert "my secret" not in text
    assert "Seine" not in text
    assert API_KEY not in text
    assert server.requests[0][2]["authorization"] == f"Bearer {API_KEY}"  # the key did reach the SDK's request


def test_server_url_override_is_the_server_address(instrumented, telemetry, server):
    client(server, server_url="https://mistral.gateway.internal:8443").chat.complete(
        model="mistral-small-latest", messages=CHAT
    )
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.SERVER_ADDRESS] == "mistral.gateway.internal"
    assert attrs[A.SERVER_PORT] == 8443
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "mistral_ai"
