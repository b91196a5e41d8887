"""Groq: the real SDK over its own httpx stack, answered with recorded responses in Groq's wire format."""

from __future__ import annotations

import gc
import json

import pytest

groq = pytest.importorskip("groq")
import wrapt  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from otel_tokens._internal.providers import groq as adapter  # noqa: E402
from tests.providers.assertions import all_attribute_text, assert_usage, only_llm_span, reference_cost  # noqa: E402
from tests.providers.groq_mock import RECORDINGS, GroqMock  # noqa: E402

USER = [{"role": "user", "content": "Why is Groq fast?"}]
# Nothing here may leave the machine: the mock transport never opens a socket.
pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def mock() -> GroqMock:
    return GroqMock()


def groq_cost(model: str, usage: Usage) -> float:
    return reference_cost(model, usage, "groq")


def _contents(chunks: list) -> list:
    return [c.choices[0].delta.content if c.choices else None for c in chunks]


# -- chat ----------------------------------------------------------------------------------------------
def test_create_records_exact_tokens_cost_and_metrics(instrumented, telemetry, mock):
    response = mock.client().chat.completions.create(
        model="llama-3.3-70b-versatile", messages=USER, max_tokens=300, temperature=0.4
    )
    assert type(response) is groq.types.chat.ChatCompletion
    assert response.usage.prompt_tokens == 417
    span = only_llm_span(telemetry)
    assert span.name == "chat llama-3.3-70b-versatile"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "groq"
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 300
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.4
    assert attrs[A.GEN_AI_RESPONSE_ID] == "chatcmpl-7c1f0e2a-5b9d-4e61-a8f3-2d4c6b8e0a17"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert (attrs[A.SERVER_ADDRESS], attrs[A.SERVER_PORT]) == ("api.groq.com", 443)
    assert_usage(span, input=417, output=86)
    expected = groq_cost("llama-3.3-70b-versatile", Usage(input_tokens=417, output_tokens=86))
    assert expected > 0
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-12)
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__provider__name="groq", gen_ai__token__type="input") == 417
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 86
    assert telemetry.sum_of(A.METRIC_OPERATION_COST, gen_ai__provider__name="groq") == pytest.approx(expected, abs=1e-12)


def test_reasoning_and_cached_tokens(instrumented, telemetry, mock):
    mock.reply("chat_reasoning.json")
    mock.client().chat.completions.create(model="openai/gpt-oss-120b", messages=USER, reasoning_effort="high")
    span = only_llm_span(telemetry)
    assert_usage(span, input=2873, output=911, cache_read=1536, reasoning=604)
    assert span.attributes[A.GEN_AI_REQUEST_REASONING_LEVEL] == "high"
    usage = Usage(input_tokens=2873, output_tokens=911, cache_read_tokens=1536, reasoning_tokens=604)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        groq_cost("openai/gpt-oss-120b", usage), abs=1e-12
    )
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="cache_read") == 1536
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="reasoning") == 604


def test_tool_calls_are_counted(instrumented, telemetry, mock):
    mock.reply("chat_tool_call.json")
    response = mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert [c.function.name for c in response.choices[0].message.tool_calls] == ["get_weather"] * 2
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert_usage(span, input=233, output=47)
    assert adapter.ChatCompletions().result(response, False).tool_calls == 2


async def test_async_create(instrumented, telemetry, mock):
    response = await mock.async_client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert type(response) is groq.types.chat.ChatCompletion
    assert_usage(only_llm_span(telemetry), input=417, output=86)


def test_with_raw_response(instrumented, telemetry, mock):
    raw = mock.client().chat.completions.with_raw_response.create(model="llama-3.3-70b-versatile", messages=USER)
    assert type(raw.parse()) is groq.types.chat.ChatCompletion
    assert_usage(only_llm_span(telemetry), input=417, output=86)


def test_custom_base_url_is_still_groq(instrumented, telemetry, mock):
    mock.client(base_url="http://127.0.0.1:8787").chat.completions.create(
        model="llama-3.3-70b-versatile", messages=USER
    )
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "groq"
    assert (attrs[A.SERVER_ADDRESS], attrs[A.SERVER_PORT]) == ("127.0.0.1", 8787)


# -- streams -------------------------------------------------------------------------------------------
def test_stream_usage_comes_from_x_groq_and_chunks_are_untouched(instrumented, telemetry, mock):
    stream = mock.client().chat.completions.create(model="llama-3.1-8b-instant", messages=USER, stream=True)
    assert isinstance(stream, groq.Stream)
    chunks = list(stream)
    otel_tokens.uninstrument()
    plain = list(mock.client().chat.completions.create(model="llama-3.1-8b-instant", messages=USER, stream=True))
    assert len(chunks) == len(plain) == 7
    assert [c.model_dump() for c in chunks] == [c.model_dump() for c in plain]
    assert chunks[-1].usage is None and chunks[-1].x_groq.usage.prompt_tokens == 263
    # The request is sent as the caller wrote it: the SDK has no stream_options.
    assert mock.requests[0][1] == mock.requests[1][1]
    assert "stream_options" not in mock.requests[0][1]

    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    assert_usage(span, input=263, output=19)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        groq_cost("llama-3.1-8b-instant", Usage(input_tokens=263, output_tokens=19)), abs=1e-12
    )


def test_stream_as_context_manager(instrumented, telemetry, mock):
    with mock.client().chat.completions.create(model="llama-3.1-8b-instant", messages=USER, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "Tokens stream in order."
    assert_usage(only_llm_span(telemetry), input=263, output=19)


async def test_async_stream(instrumented, telemetry, mock):
    stream = await mock.async_client().chat.completions.create(
        model="llama-3.1-8b-instant", messages=USER, stream=True
    )
    assert isinstance(stream, groq.AsyncStream)
    chunks = [chunk async for chunk in stream]
    assert _contents(chunks) == ["", "Tokens", " stream", " in", " order", ".", None]
    assert_usage(only_llm_span(telemetry), input=263, output=19)


def test_stream_abandoned_early_is_estimated_and_marked(instrumented, telemetry, mock):
    stream = mock.client().chat.completions.create(model="llama-3.1-8b-instant", messages=USER, stream=True)
    for index, _chunk in enumerate(stream):
        if index == 2:
            break
    assert telemetry.llm_spans() == []
    del stream, _chunk
    gc.collect()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    # "Why is Groq fast?" (6, o200k fallback for Llama) in the chat format: role 1, wrapper 3, priming 3.
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 6 + 1 + 3 + 3
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "" + "Tokens" + " stream"


def test_stream_with_invalid_usage_is_flagged_and_estimated(instrumented, telemetry, mock):
    mock.reply_stream({"prompt_tokens": -263, "completion_tokens": 19, "total_tokens": -244})
    chunks = list(mock.client().chat.completions.create(model="llama-3.1-8b-instant", messages=USER, stream=True))
    assert chunks[-1].x_groq.usage.prompt_tokens == -263  # the caller still gets what the server sent
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_INVALID] is True
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 6 + 1 + 3 + 3  # never the negative count
    assert telemetry.sum_of(A.METRIC_USAGE_INVALID_CALLS) == 1


def test_stream_without_x_groq_usage_is_estimated(instrumented, telemetry, mock):
    mock.reply_stream(None)
    list(mock.client().chat.completions.create(model="llama-3.1-8b-instant", messages=USER, stream=True))
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 5  # "Tokens stream in order." (o200k)


# -- embeddings ----------------------------------------------------------------------------------------
def test_embeddings_unpriced_model_is_counted_and_flagged(instrumented, telemetry, mock):
    result = mock.client().embeddings.create(model="nomic-embed-text-v1_5", input=["alpha", "beta"])
    assert type(result) is groq.types.CreateEmbeddingResponse
    span = only_llm_span(telemetry)
    assert span.name == "embeddings nomic-embed-text-v1_5"
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "groq"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 23
    # genai-prices has no price for it: unknown, never $0.
    assert A.GEN_AI_USAGE_COST_AMOUNT not in span.attributes
    assert span.attributes[A.OTEL_TOKENS_PRICE_UNKNOWN] is True


async def test_async_embeddings(instrumented, telemetry, mock):
    result = await mock.async_client().embeddings.create(model="nomic-embed-text-v1_5", input="alpha")
    assert len(result.data) == 2
    assert only_llm_span(telemetry).attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 23


# -- errors --------------------------------------------------------------------------------------------
def test_rate_limit_error_passes_through_unchanged(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(groq.RateLimitError) as raised:
        mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert raised.value.status_code == 429
    assert raised.value.body == json.loads((RECORDINGS / "error_429.json").read_text())
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "RateLimitError"
    assert span.status.status_code.name == "ERROR"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


async def test_async_error_passes_through(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(groq.RateLimitError):
        await mock.async_client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "RateLimitError"


# -- lifecycle and privacy -----------------------------------------------------------------------------
def test_uninstrument_restores_the_sdk_and_double_instrument_records_once(telemetry, mock):
    from groq.resources import embeddings
    from groq.resources.chat import completions

    originals = (completions.Completions.__dict__["create"], completions.AsyncCompletions.__dict__["create"],
                 embeddings.Embeddings.__dict__["create"])
    assert not any(isinstance(o, wrapt.FunctionWrapper) for o in originals)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
        assert len(telemetry.llm_spans()) == 1
    finally:
        otel_tokens.uninstrument()
        otel_tokens.uninstrument()
    assert (completions.Completions.__dict__["create"], completions.AsyncCompletions.__dict__["create"],
            embeddings.Embeddings.__dict__["create"]) == originals
    mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert len(telemetry.llm_spans()) == 1


def test_agent_attribution(instrumented, telemetry, mock):
    with otel_tokens.agent("groq-researcher"):
        mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert only_llm_span(telemetry).attributes[A.GEN_AI_AGENT_NAME] == "groq-researcher"
    assert otel_tokens.get_statistics()["by_agent"]["groq-researcher"]["calls"] == 1


def test_no_content_and_no_api_key_by_default(instrumented, telemetry, mock):
    mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    text = all_attribute_text(telemetry)
    assert "Why is Groq fast" not in text and "SRAM" not in text
    assert "gsk_test_SECRET" not in text


def test_importing_the_instrumentors_imports_no_sdk():
    import subprocess
    import sys

    code = (
        "import sys, otel_tokens, otel_tokens.instrumentation.groq, otel_tokens.instrumentation.litellm, "
        "otel_tokens.instrumentation.crewai; "
        "print(sorted(m for m in ('groq', 'litellm', 'crewai', 'langchain_groq') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"




def test_on_demand_tier_is_recorded_and_priced_as_standard(instrumented, telemetry, mock):
    """Groq names its standard tier on_demand: recorded, at the standard rates, never flagged."""
    mock.reply("chat_on_demand.json")
    mock.client().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "on_demand"
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in attrs
    expected = groq_cost("llama-3.3-70b-versatile", Usage(input_tokens=417, output_tokens=86))
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-12)
