"""OpenAI: the real SDK over its own HTTP stack, answered with recorded responses."""

from __future__ import annotations

import asyncio
import gc
import logging

import openai
import pydantic
import pytest
from opentelemetry.trace import SpanKind

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import all_attribute_text, assert_usage
from tests.providers.assertions import only_llm_span as only_span
from tests.providers.assertions import reference_cost as shared_reference_cost
from tests.providers.openai_mock import OpenAIMock, load, sse_events

A = semconv


@pytest.fixture
def mock() -> OpenAIMock:
    return OpenAIMock()


def reference_cost(model: str, usage: Usage) -> float:
    return shared_reference_cost(model, usage, "openai")


# -- chat completions --------------------------------------------------------------------------------
def test_chat_create_records_exact_tokens_cost_and_metrics(instrumented, telemetry, mock):
    client = mock.client()
    response = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=100, temperature=0.2
    )

    assert type(response) is openai.types.chat.ChatCompletion
    assert response.choices[0].message.content == "The capital of France is Paris."
    span = only_span(telemetry)
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 100
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attrs[A.GEN_AI_RESPONSE_ID] == "chatcmpl-AXq9bKxT4YhQ1vN2c3d4e5f6g7h8"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.SERVER_ADDRESS] == "api.openai.com"
    assert attrs[A.SERVER_PORT] == 443
    assert_usage(span, input=1250, output=42, cache_read=1024)
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in attrs

    usage = Usage(input_tokens=1250, output_tokens=42, cache_read_tokens=1024)
    expected = reference_cost("gpt-4o-2024-08-06", usage)
    assert expected > 0
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-9)
    assert attrs[A.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"

    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 1250
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 42
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="cache_read") == 1024
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == pytest.approx(expected, abs=1e-9)
    assert telemetry.sum_of(A.METRIC_COST_USD) == pytest.approx(expected, abs=1e-9)
    (attributes, point), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert point.count == 1
    assert attributes == {
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        A.SERVER_ADDRESS: "api.openai.com",
        A.SERVER_PORT: 443,
    }
    # The conventions' cost histogram: one point per call, the currency (required) and the cost's source.
    (cost_attributes, cost_point), = telemetry.points(A.METRIC_OPERATION_COST)
    assert cost_attributes == {**attributes, A.GEN_AI_USAGE_COST_CURRENCY: "USD", A.GEN_AI_USAGE_COST_SOURCE: "local"}
    assert (cost_point.count, list(cost_point.explicit_bounds)) == (1, list(A.COST_BUCKETS))
    (metric,) = [m for rm in telemetry.reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                 for m in sm.metrics if m.name == A.METRIC_OPERATION_COST]
    assert metric.unit == "{cost}"


def test_reasoning_and_cache_tokens(instrumented, telemetry, mock):
    mock.reply("chat_reasoning.json")
    mock.client().chat.completions.create(
        model="o4-mini", messages=[{"role": "user", "content": "think"}], reasoning_effort="high"
    )
    span = only_span(telemetry)
    assert_usage(span, input=3120, output=1340, cache_read=2048, reasoning=1216)
    assert span.attributes[A.GEN_AI_REQUEST_REASONING_LEVEL] == "high"
    usage = Usage(input_tokens=3120, output_tokens=1340, cache_read_tokens=2048, reasoning_tokens=1216)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("o4-mini-2025-04-16", usage), abs=1e-9
    )
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="reasoning") == 1216


def test_tool_call_response(instrumented, telemetry, mock):
    mock.reply("chat_tool_call.json")
    response = mock.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert_usage(span, input=82, output=17)


async def test_async_chat_create(instrumented, telemetry, mock):
    client = mock.async_client()
    response = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert type(response) is openai.types.chat.ChatCompletion
    assert_usage(only_span(telemetry), input=1250, output=42, cache_read=1024)


def test_parse_structured_output(instrumented, telemetry, mock):
    class City(pydantic.BaseModel):
        city: str
        country: str

    mock.reply("chat_parse.json")
    parsed = mock.client().chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "Where?"}], response_format=City
    )
    assert parsed.choices[0].message.parsed == City(city="Paris", country="France")
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_OUTPUT_TYPE] == "json"
    assert_usage(span, input=96, output=12)


# -- streams -----------------------------------------------------------------------------------------
def _stream_contents(chunks):
    return [c.choices[0].delta.content if c.choices else None for c in chunks]


def test_stream_gets_exact_usage_and_hides_the_usage_chunk(instrumented, telemetry, mock):
    client = mock.client()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}], stream=True
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)

    # The caller sees what an uninstrumented call sees: no usage-only chunk, no usage.
    otel_tokens.uninstrument()
    plain = list(mock.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}], stream=True
    ))
    assert len(chunks) == len(plain) == 9
    assert [type(c) for c in chunks] == [type(c) for c in plain]
    assert _stream_contents(chunks) == _stream_contents(plain)
    assert all(c.usage is None for c in chunks)

    # We asked the server for usage.
    assert mock.requests[0][1]["stream_options"] == {"include_usage": True}
    assert "stream_options" not in mock.requests[1][1]

    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, input=2100, output=8, cache_read=1920)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    (_, ttfc), = telemetry.points(A.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1


def test_stream_with_caller_usage_keeps_the_usage_chunk(instrumented, telemetry, mock):
    chunks = list(mock.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True},
    ))
    assert len(chunks) == 10
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 2100
    assert_usage(only_span(telemetry), input=2100, output=8, cache_read=1920)


def test_stream_as_context_manager(instrumented, telemetry, mock):
    with mock.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    ) as stream:
        assert isinstance(stream, openai.Stream)
        texts = [c.choices[0].delta.content for c in stream if c.choices]
    assert "".join(t for t in texts if t) == "Streams are read chunk by chunk."
    assert len(telemetry.llm_spans()) == 1


def test_stream_abandoned_early_finishes_once_with_an_estimate(instrumented, telemetry, mock):
    stream = mock.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count to ten"}], stream=True
    )
    for index, _chunk in enumerate(stream):
        if index == 2:
            break
    assert telemetry.llm_spans() == []  # still open: the caller may go on reading
    del stream, _chunk
    gc.collect()
    span = only_span(telemetry)
    attrs = span.attributes
    # Usage never arrived: tiktoken counted, and says so.
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "" + "Streams" + " are"
    # The chat format: "count to ten" (3), its role (1), the message's wrapper (3), the reply priming (3).
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 3 + 1 + 3 + 3


def test_a_gpt4_chat_billed_at_12_input_tokens_is_estimated_at_12(instrumented, telemetry, mock):
    """The OpenAI cookbook's example: "Say this is a test" (5 tokens) as a user message is billed 12 input
    tokens; counting the text alone said 5. Streams without usage and budget projections count this way."""
    mock.reply("chat_no_usage.json")
    mock.client().chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Say this is a test"}])
    attrs = only_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 12
    with otel_tokens.budget(limit_usd=1.0) as b, pytest.raises(otel_tokens.BudgetExceededError) as refused:
        with otel_tokens.budget(limit_usd=0.0):
            mock.client().chat.completions.create(
                model="gpt-4", messages=[{"role": "user", "content": "Say this is a test"}], max_tokens=1)
    gpt4 = instrumented.price_book.rates("openai", "gpt-4")
    assert refused.value.projected_usd == pytest.approx(12 * gpt4.input + 1 * gpt4.output, rel=1e-9)
    assert b.spent_usd == 0.0


def test_stream_usage_injection_can_be_turned_off(telemetry, mock, monkeypatch):
    monkeypatch.setenv("OTEL_TOKENS_STREAM_USAGE", "false")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        chunks = list(mock.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}], stream=True
        ))
    finally:
        otel_tokens.uninstrument()
    assert len(chunks) == 9
    assert "stream_options" not in mock.requests[0][1]
    attrs = only_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 7  # "Streams are read chunk by chunk."
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 2 + 1 + 3 + 3  # "stream please" in the chat format


async def test_async_stream(instrumented, telemetry, mock):
    stream = await mock.async_client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert isinstance(stream, openai.AsyncStream)
    chunks = [c async for c in stream]
    assert len(chunks) == 9
    assert_usage(only_span(telemetry), input=2100, output=8, cache_read=1920)


def test_stream_helper_reads_to_the_end(instrumented, telemetry, mock):
    with mock.client().chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Streams are read chunk by chunk."
    assert final.usage is None  # as uninstrumented: the caller did not ask for usage
    assert_usage(only_span(telemetry), input=2100, output=8, cache_read=1920)


def test_stream_helper_early_break_finishes_on_exit(instrumented, telemetry, mock):
    with mock.client().chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    ) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
        assert telemetry.llm_spans() == []
    # Leaving the helper's context closed the response; the call is finished, once.
    span = only_span(telemetry)
    assert span.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    del stream
    gc.collect()
    assert len(telemetry.llm_spans()) == 1


async def test_async_stream_helper(instrumented, telemetry, mock):
    async with mock.async_client().chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "Streams are read chunk by chunk."
    assert_usage(only_span(telemetry), input=2100, output=8, cache_read=1920)


# -- responses ---------------------------------------------------------------------------------------
def test_responses_create(instrumented, telemetry, mock):
    response = mock.client().responses.create(
        model="o4-mini", input="What is six times seven?", reasoning={"effort": "medium"}, max_output_tokens=2000
    )
    assert type(response) is openai.types.responses.Response
    assert response.output_text == "The answer is 42."
    span = only_span(telemetry)
    assert span.name == "chat o4-mini"
    assert_usage(span, input=2000, output=900, cache_read=1536, reasoning=768)
    assert span.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 2000
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == "resp_68a1b2c3d4e5f6a7b8c9d0e1"
    usage = Usage(input_tokens=2000, output_tokens=900, cache_read_tokens=1536, reasoning_tokens=768)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("o4-mini-2025-04-16", usage), abs=1e-9
    )


def test_responses_stream(instrumented, telemetry, mock):
    events = list(mock.client().responses.create(model="o4-mini", input="six times seven", stream=True))
    assert [e.type for e in events] == [e["type"] for e in sse_events("response_stream.sse")]
    assert_usage(only_span(telemetry), input=2000, output=900, cache_read=1536, reasoning=768)


def test_responses_stream_helper(instrumented, telemetry, mock):
    with mock.client().responses.stream(model="o4-mini", input="six times seven") as stream:
        final = stream.get_final_response()
    assert final.output_text == "The answer is 42."
    assert_usage(only_span(telemetry), input=2000, output=900, cache_read=1536, reasoning=768)


async def test_async_responses_create(instrumented, telemetry, mock):
    response = await mock.async_client().responses.create(model="o4-mini", input="six times seven")
    assert response.usage.output_tokens == 900
    assert_usage(only_span(telemetry), input=2000, output=900, cache_read=1536, reasoning=768)


# -- embeddings, legacy completions, raw responses ---------------------------------------------------
def test_embeddings(instrumented, telemetry, mock):
    result = mock.client().embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2
    span = only_span(telemetry)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 17
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("text-embedding-3-small", Usage(input_tokens=17)), abs=1e-12
    )


def test_legacy_completions_and_stream(instrumented, telemetry, mock):
    completion = mock.client().completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    assert completion.choices[0].text.endswith("a test.")
    chunks = list(mock.client().completions.create(model="gpt-3.5-turbo-instruct", prompt="Once", stream=True))
    assert len(chunks) == 6
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert_usage(first, input=5, output=7)
    assert_usage(second, input=4, output=5)


def test_with_raw_response(instrumented, telemetry, mock):
    raw = mock.client().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    assert type(completion) is openai.types.chat.ChatCompletion
    assert_usage(only_span(telemetry), input=1250, output=42, cache_read=1024)


def test_with_streaming_response_counts_the_call_without_reading_the_body(instrumented, telemetry, mock):
    with mock.client().chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    ) as response:
        assert response.parse().usage.prompt_tokens == 1250
    span = only_span(telemetry)
    # Parsed through the SDK's own path: the usage is read, exactly.
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in span.attributes


# -- errors --------------------------------------------------------------------------------------------
def test_sdk_error_passes_through_unchanged(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(openai.RateLimitError) as raised:
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 429
    assert raised.value.body == load("error_429.json")["error"]
    span = only_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "RateLimitError"
    assert span.status.status_code.name == "ERROR"
    (attributes, point), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert attributes[A.ERROR_TYPE] == "RateLimitError"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


async def test_async_sdk_error_passes_through(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(openai.RateLimitError):
        await mock.async_client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert only_span(telemetry).attributes[A.ERROR_TYPE] == "RateLimitError"


# -- providers and cost sources ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base_url", "provider", "address"),
    [
        ("https://api.deepseek.com/v1", "deepseek", "api.deepseek.com"),
        ("https://api.groq.com/openai/v1", "groq", "api.groq.com"),
        ("https://api.x.ai/v1", "x_ai", "api.x.ai"),
        ("https://api.together.xyz/v1", "together_ai", "api.together.xyz"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini", "generativelanguage.googleapis.com"),
        ("http://localhost:11434/v1", "ollama", "localhost"),
        ("https://llm.internal.example:8443/v1", "openai", "llm.internal.example"),
    ],
)
def test_provider_detected_from_base_url(instrumented, telemetry, mock, base_url, provider, address):
    mock.client(base_url=base_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    attrs = only_span(telemetry).attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == provider
    assert attrs[A.SERVER_ADDRESS] == address


def test_azure_client_is_azure(instrumented, telemetry, mock):
    from tests.providers.openai_mock import SyncHttpClient, http

    client = openai.AzureOpenAI(
        api_key="sk-test-SECRET-key-123",
        api_version="2024-10-21",
        azure_endpoint="https://contoso.openai.azure.com",
        http_client=SyncHttpClient(transport=http.MockTransport(mock.handler)),
        max_retries=0,
    )
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    attrs = only_span(telemetry).attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert attrs[A.SERVER_ADDRESS] == "contoso.openai.azure.com"
    assert mock.requests[0][0].endswith("/deployments/gpt-4o/chat/completions")


def test_openrouter_reported_cost_is_used_as_is(instrumented, telemetry, mock):
    mock.reply("chat_openrouter.json")
    mock.client(base_url="https://openrouter.ai/api/v1").chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in French"}]
    )
    attrs = only_span(telemetry).attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "openrouter"
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == 0.0000045
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "provider"
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == pytest.approx(0.0000045, abs=1e-15)


def test_unknown_model_has_no_cost_is_counted_and_warns_once(instrumented, telemetry, mock, caplog):
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    client = mock.client(base_url="https://llm.internal.example/v1")
    for _ in range(3):
        mock.reply("chat_unknown_model.json")
        client.chat.completions.create(model="acme-llm-7b", messages=[{"role": "user", "content": "x"}])
    spans = telemetry.llm_spans()
    assert len(spans) == 3
    for span in spans:
        assert A.GEN_AI_USAGE_COST_AMOUNT not in span.attributes  # unknown, never $0
        assert span.attributes[A.OTEL_TOKENS_PRICE_UNKNOWN] is True
        assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    assert telemetry.sum_of(A.METRIC_UNPRICED_CALLS, gen_ai__request__model="acme-llm-7b") == 3
    assert telemetry.points(A.METRIC_OPERATION_COST) == []
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) == 1
    assert "acme-llm-7b" in warnings[0].getMessage()


# -- agents ----------------------------------------------------------------------------------------------
def test_agent_attribution_on_span_and_metrics(instrumented, telemetry, mock):
    client = mock.client()
    with otel_tokens.agent("researcher"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        with otel_tokens.agent("critic"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "y"}])
    researcher_call, critic_call = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert researcher_call.attributes[A.GEN_AI_AGENT_NAME] == "researcher"
    assert critic_call.attributes[A.GEN_AI_AGENT_NAME] == "critic"
    agent_spans = {s.name: s for s in telemetry.spans("invoke_agent")}
    assert set(agent_spans) == {"invoke_agent researcher", "invoke_agent critic"}
    assert agent_spans["invoke_agent researcher"].kind is SpanKind.INTERNAL
    assert researcher_call.parent.span_id == agent_spans["invoke_agent researcher"].context.span_id
    assert critic_call.parent.span_id == agent_spans["invoke_agent critic"].context.span_id
    assert agent_spans["invoke_agent researcher"].attributes[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__agent__name="researcher", gen_ai__token__type="input") == 1250
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__agent__name="critic", gen_ai__token__type="input") == 1250
    # agent spans carry no usage, so nothing is counted twice
    for span in agent_spans.values():
        assert A.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes


async def test_agent_decorator_on_coroutines_and_async_generators_in_tasks(instrumented, telemetry, mock):
    client = mock.async_client()

    @otel_tokens.agent("planner")
    async def plan():
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "p"}])

    @otel_tokens.agent("writer")
    async def write():
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "w"}])
        yield "done"

    async def drain():
        return [item async for item in write()]

    await asyncio.gather(plan(), drain(), plan())
    agents = sorted(s.attributes[A.GEN_AI_AGENT_NAME] for s in telemetry.llm_spans())
    assert agents == ["planner", "planner", "writer"]


def test_agent_in_threads_with_copied_context(instrumented, telemetry, mock):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    client = mock.client()

    def call():
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    with otel_tokens.agent("crawler"), ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call) for _ in range(4)]
        for future in futures:
            future.result()
    assert [s.attributes[A.GEN_AI_AGENT_NAME] for s in telemetry.llm_spans()] == ["crawler"] * 4


def test_framework_agent_span_attributes_calls(instrumented, telemetry, mock):
    tracer = telemetry.tracer_provider.get_tracer("some.agent.framework")
    with tracer.start_as_current_span("invoke_agent summarizer", attributes={A.GEN_AI_AGENT_NAME: "summarizer"}):
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert only_span(telemetry).attributes[A.GEN_AI_AGENT_NAME] == "summarizer"


def test_decorated_function_and_generator(instrumented, telemetry, mock):
    client = mock.client()

    @otel_tokens.agent("sync-agent")
    def run():
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        return 7

    @otel_tokens.agent("gen-agent")
    def gen():
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        yield 1

    assert run() == 7
    assert list(gen()) == [1]
    assert sorted(s.attributes[A.GEN_AI_AGENT_NAME] for s in telemetry.llm_spans()) == ["gen-agent", "sync-agent"]


def test_agent_name_must_be_a_non_empty_string():
    with pytest.raises(ValueError, match="non-empty string"):
        otel_tokens.agent("")


# -- privacy ---------------------------------------------------------------------------------------------
def test_no_content_and_no_api_key_by_default(instrumented, telemetry, mock):
    mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "my secret prompt"}])
    text = all_attribute_text(telemetry)
    assert "my secret prompt" not in text
    assert "Paris" not in text
    assert "sk-test-SECRET" not in text
    assert A.GEN_AI_INPUT_MESSAGES not in only_span(telemetry).attributes


@pytest.mark.parametrize("value", ["true", "SPAN_ONLY", "span_and_event"])
def test_content_capture_opt_in(telemetry, mock, monkeypatch, value):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "my prompt"}])
    finally:
        otel_tokens.uninstrument()
    attrs = only_span(telemetry).attributes
    assert "my prompt" in attrs[A.GEN_AI_INPUT_MESSAGES]
    assert "Paris" in attrs[A.GEN_AI_OUTPUT_MESSAGES]
    assert "sk-test-SECRET" not in all_attribute_text(telemetry)


@pytest.mark.parametrize("value", ["EVENT_ONLY", "span_and_event"])
def test_content_event_is_a_log_record_in_the_calls_trace(telemetry, logs, mock, monkeypatch, value):
    """The conventions' gen_ai.client.inference.operation.details is a log-based event: emitted through the
    Logs API at severity DEBUG, with the span's attributes (operation and provider required) and the
    content in structured form, correlated with the span."""
    from opentelemetry._logs import SeverityNumber

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           logger_provider=logs.logger_provider)
    try:
        mock.client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "my prompt"}], temperature=0.2)
    finally:
        otel_tokens.uninstrument()
    span = only_span(telemetry)
    (record,) = logs.records()
    assert record.event_name == A.EVENT_INFERENCE_OPERATION_DETAILS == "gen_ai.client.inference.operation.details"
    assert record.severity_number is SeverityNumber.DEBUG and record.severity_number.value == 5
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    assert record.body is None
    attrs = dict(record.attributes)
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat" and attrs[A.GEN_AI_PROVIDER_NAME] == "openai"
    # Every attribute of the span, the content aside.
    span_attrs = {k: v for k, v in span.attributes.items() if k not in (A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_OUTPUT_MESSAGES)}
    assert {k: attrs[k] for k in span_attrs} == span_attrs
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.2 and attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250
    # Structured, not JSON text.
    assert attrs[A.GEN_AI_INPUT_MESSAGES] == ({"role": "user", "parts": ({"type": "text", "content": "my prompt"},)},)
    assert attrs[A.GEN_AI_OUTPUT_MESSAGES] == ({
        "role": "assistant", "parts": ({"type": "text", "content": "The capital of France is Paris."},),
        "finish_reason": "stop",
    },)
    assert A.GEN_AI_SYSTEM_INSTRUCTIONS not in attrs  # the system prompt is a message in the chat API
    assert span.events == ()  # the event is a log record, no longer a span event
    assert (A.GEN_AI_INPUT_MESSAGES in span.attributes) is (value == "span_and_event")
    assert "sk-test-SECRET" not in repr(attrs)


@pytest.mark.parametrize("value", [None, "SPAN_ONLY"])
def test_no_content_event_unless_asked_for(telemetry, logs, mock, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           logger_provider=logs.logger_provider)
    try:
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "my prompt"}])
        with mock.client().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True) as stream:
            list(stream)
    finally:
        otel_tokens.uninstrument()
    assert len(telemetry.llm_spans()) == 2
    assert logs.exporter.get_finished_logs() == ()


def test_content_event_goes_to_the_global_logger_provider_set_after_instrument(telemetry, logs, mock, monkeypatch):
    from opentelemetry._logs import _internal as logs_api

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    # What set_logger_provider() does, undone after the test (the API allows it once per process).
    monkeypatch.setattr(logs_api, "_LOGGER_PROVIDER", logs.logger_provider)
    try:
        with mock.client().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "my prompt"}], stream=True) as stream:
            list(stream)
    finally:
        otel_tokens.uninstrument()
    (record,) = logs.records()
    assert record.event_name == A.EVENT_INFERENCE_OPERATION_DETAILS
    assert record.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert record.attributes[A.GEN_AI_INPUT_MESSAGES][0]["parts"][0]["content"] == "my prompt"
    assert record.span_id == only_span(telemetry).context.span_id


def test_messages_iterator_reaches_the_sdk_unconsumed(telemetry, mock, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.set_budget("iter-agent", limit_usd=10.0, action="block")  # projection reads the prompt
    try:
        with otel_tokens.agent("iter-agent"):
            mock.client().chat.completions.create(
                model="gpt-4o", messages=iter([{"role": "user", "content": "from an iterator"}])
            )
    finally:
        otel_tokens.uninstrument()
    assert mock.requests[0][1]["messages"] == [{"role": "user", "content": "from an iterator"}]
    assert_usage(only_span(telemetry), input=1250, output=42, cache_read=1024)


class _ForeignStreamWrapper:
    """Another instrumentation's stream wrapper, as contrib openai-v2 makes one: the SDK's stream in
    ``.stream``, iterated by ``__next__``, not an ``openai.Stream``."""

    def __init__(self, stream):
        self.stream = stream

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.stream)

    def close(self):
        self.stream.close()


def test_a_stream_another_instrumentation_wrapped_first_is_still_read(telemetry):
    import wrapt

    def foreign(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        return _ForeignStreamWrapper(result) if kwargs.get("stream") else result

    target = openai.resources.chat.completions.Completions
    original = target.__dict__["create"]
    wrapt.wrap_function_wrapper(target, "create", foreign)  # patched before otel-tokens
    try:
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            stream = OpenAIMock().client().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
            assert len(list(stream)) > 1
            stats = otel_tokens.get_statistics()
            assert (stats["input_tokens"], stats["output_tokens"], stats["cache_read_tokens"]) == (2100, 8, 1920)
            assert stats["estimated_calls"] == 0
        finally:
            otel_tokens.uninstrument()
    finally:
        target.create = original


@pytest.mark.parametrize("stream", [False, True], ids=["response", "stream"])
def test_several_choices_give_one_output_message_each(telemetry, mock, monkeypatch, stream):
    """The conventions: one output message per choice, each with its finish reason (n > 1)."""
    import json

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.reply("chat_stream_n2.sse" if stream else "chat_completion_n2.json")
        response = mock.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital of France?"}], n=2, stream=stream)
        if stream:
            for _chunk in response:
                pass
    finally:
        otel_tokens.uninstrument()
    attrs = only_span(telemetry).attributes
    messages = json.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    expected = (["Paris.", "It is Paris"] if stream
                else ["Paris.", "The capital of France is Paris, on the Seine"])
    assert [m["parts"][0]["content"] for m in messages] == expected
    assert [m["finish_reason"] for m in messages] == ["stop", "length"]
    assert {m["role"] for m in messages} == {"assistant"}
    assert sorted(attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ["length", "stop"]


def test_one_choice_gives_one_output_message_with_its_finish_reason(telemetry, mock, monkeypatch):
    import json

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    finally:
        otel_tokens.uninstrument()
    (message,) = json.loads(only_span(telemetry).attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert message == {"role": "assistant", "parts": [{"type": "text", "content": "The capital of France is Paris."}],
                       "finish_reason": "stop"}


# -- billing dimensions: the tier that served, modalities, server-tool fees ---------------------------
def assert_billed(span, hand_computed_usd: float) -> None:
    """The recorded cost is the bill computed by hand from the provider's price list (ratio 1.000)."""
    recorded = span.attributes[A.GEN_AI_USAGE_COST_AMOUNT]
    assert recorded / hand_computed_usd == pytest.approx(1.0, rel=1e-9), (recorded, hand_computed_usd)


def test_chat_is_priced_at_the_tier_that_served_it(instrumented, telemetry, mock):
    mock.reply("chat_flex.json")
    response = mock.client().chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], service_tier="auto"
    )
    assert response.service_tier == "flex"
    span = only_span(telemetry)
    assert span.attributes[A.OPENAI_RESPONSE_SERVICE_TIER] == "flex"
    assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "flex"
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in span.attributes
    # gpt-5 flex: $0.625 input, $0.0625 cached input, $5 output per million tokens
    assert_billed(span, (976 * 0.625 + 1024 * 0.0625 + 500 * 5) / 1e6)
    usage = Usage(input_tokens=2000, output_tokens=500, cache_read_tokens=1024, reasoning_tokens=256,
                  price_context=(("service_tier", "flex"),))
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(reference_cost("gpt-5-2025-08-07", usage), abs=1e-9)
    stats = otel_tokens.get_statistics()
    assert stats["by_tier"]["flex"]["calls"] == 1
    assert stats["by_tier"]["flex"]["cost_usd"] == pytest.approx(span.attributes[A.GEN_AI_USAGE_COST_AMOUNT])


def test_chat_stream_is_priced_at_the_tier_that_served_it(instrumented, telemetry, mock):
    mock.reply("chat_stream_priority.sse")
    chunks = list(mock.client().chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True
    ))
    assert chunks[0].service_tier == "priority"
    span = only_span(telemetry)
    assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "priority"
    assert span.attributes[A.OPENAI_RESPONSE_SERVICE_TIER] == "priority"
    # gpt-5 priority: $2.50 input, $0.25 cached input, $20 output per million tokens
    assert_billed(span, (180 * 2.5 + 1920 * 0.25 + 8 * 20) / 1e6)


def test_chat_audio_tokens_are_priced_at_audio_rates(instrumented, telemetry, mock):
    mock.reply("chat_audio.json")
    mock.client().chat.completions.create(
        model="gpt-audio", messages=[{"role": "user", "content": "hi"}], modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    )
    span = only_span(telemetry)
    assert_usage(span, input=1000, output=300)
    # gpt-audio: text $2.50 in / $10 out, audio $32 in / $64 out per million tokens
    assert_billed(span, (600 * 2.5 + 400 * 32 + 100 * 10 + 200 * 64) / 1e6)
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in span.attributes


def test_audio_tokens_of_a_model_with_only_text_rates_are_flagged(instrumented, telemetry, mock, caplog):
    """genai-prices lists gpt-4o-audio-preview with text rates only: the audio is costed at them (never an
    invented rate), the call flagged, and one WARNING per model and dimension."""
    mock.reply("chat_audio_preview.json").reply("chat_audio_preview.json")
    client = mock.client()
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-audio-preview", messages=[{"role": "user", "content": "hi"}])
    spans = telemetry.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.attributes[A.OTEL_TOKENS_COST_INCOMPLETE] is True
        assert span.attributes[A.OTEL_TOKENS_COST_UNPRICED_DIMENSIONS] == ("input_audio_tokens", "output_audio_tokens")
        assert_billed(span, (1000 * 2.5 + 300 * 10) / 1e6)
    assert telemetry.sum_of(A.METRIC_COST_INCOMPLETE_CALLS) == 2
    warnings = [r.getMessage() for r in caplog.records if "no price known for" in r.getMessage()]
    assert len(warnings) == 2  # one per dimension, not per call
    assert any("input_audio_tokens" in w for w in warnings) and any("output_audio_tokens" in w for w in warnings)


def test_responses_server_tool_calls_are_billed_per_call(instrumented, telemetry, mock):
    mock.reply("response_tools.json")
    response = mock.client().responses.create(
        model="gpt-5", input="weather?", tools=[{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    )
    assert [item.type for item in response.output][:3] == ["web_search_call", "web_search_call", "file_search_call"]
    span = only_span(telemetry)
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH] == 2
    assert attrs[A.OTEL_TOKENS_SERVER_TOOL_FILE_SEARCH] == 1
    assert attrs[A.OTEL_TOKENS_COST_TOOL_FEES] == pytest.approx(2 * 0.010 + 0.0025)
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "default"
    # gpt-5: $1.25 input, $0.125 cached, $10 output per million; $10 per 1,000 web searches, $2.50 per
    # 1,000 file searches
    assert_billed(span, (464 * 1.25 + 1536 * 0.125 + 900 * 10) / 1e6 + 2 * 0.010 + 0.0025)
    stats = otel_tokens.get_statistics()
    assert stats["tool_fee_usd"] == pytest.approx(0.0225)
    assert stats["server_tool_calls"] == 3


def test_responses_stream_tier_and_tool_calls_come_from_the_final_response(instrumented, telemetry, mock):
    mock.reply("response_stream_tools.sse")
    events = list(mock.client().responses.create(model="gpt-5", input="weather?", stream=True, service_tier="auto"))
    assert events[0].response.service_tier == "auto" and events[-1].response.service_tier == "flex"
    span = only_span(telemetry)
    assert span.attributes[A.OTEL_TOKENS_SERVICE_TIER] == "flex"
    assert span.attributes[A.OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH] == 1
    # gpt-5 flex: $0.625 / $0.0625 / $5 per million tokens, plus one web search at $10 per 1,000
    assert_billed(span, (464 * 0.625 + 1536 * 0.0625 + 900 * 5) / 1e6 + 0.010)


def test_a_tier_with_no_price_is_costed_at_standard_and_flagged(instrumented, telemetry, mock, caplog):
    mock.reply("chat_flex.json")
    # Azure OpenAI: genai-prices does not apply OpenAI's tier variants through the fallback provider.
    client = mock.client(base_url="https://example-resource.openai.azure.com/openai/v1")
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    span = only_span(telemetry)
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "flex"
    assert attrs[A.OTEL_TOKENS_COST_INCOMPLETE] is True
    assert attrs[A.OTEL_TOKENS_COST_UNPRICED_DIMENSIONS] == ("service_tier",)
    # standard gpt-5 rates
    assert_billed(span, (976 * 1.25 + 1024 * 0.125 + 500 * 10) / 1e6)
    assert telemetry.sum_of(A.METRIC_COST_INCOMPLETE_CALLS) == 1
    assert "service tier 'flex'" in caplog.text
    assert otel_tokens.get_statistics()["cost_incomplete_calls"] == 1


def test_a_completed_batch_is_one_call_at_batch_rates_counted_once(instrumented, telemetry, mock):
    mock.reply("batch_completed.json").reply("batch_completed.json")
    client = mock.client()
    with otel_tokens.agent("nightly-eval"):
        first = client.batches.retrieve("batch_6931c0ffee0000000000001")
        client.batches.retrieve("batch_6931c0ffee0000000000001")  # polled again: not counted again
    assert first.usage.input_tokens == 120000
    span = only_span(telemetry)
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_BATCH_ID] == "batch_6931c0ffee0000000000001"
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "batch"
    assert attrs[A.GEN_AI_AGENT_NAME] == "nightly-eval"
    assert_usage(span, input=120000, output=30000, cache_read=40000, reasoning=12000)
    # gpt-5 batch: $0.625 input, $0.0625 cached input, $5 output per million tokens
    assert_billed(span, (80000 * 0.625 + 40000 * 0.0625 + 30000 * 5) / 1e6)


async def test_async_batch_retrieve(instrumented, telemetry, mock):
    mock.reply("batch_completed.json")
    await mock.async_client().batches.retrieve("batch_6931c0ffee0000000000001")
    assert only_span(telemetry).attributes[A.OTEL_TOKENS_BATCH_ID] == "batch_6931c0ffee0000000000001"
