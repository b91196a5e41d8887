"""google-genai: the real SDK over its own HTTP stack (httpx2), answered with recorded Gemini responses."""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

genai = pytest.importorskip("google.genai")

import wrapt  # noqa: E402
from google.genai import errors, types  # noqa: E402
from google.genai import models as genai_models  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from tests.providers.assertions import all_attribute_text, assert_usage  # noqa: E402
from tests.providers.assertions import only_llm_span as only_span  # noqa: E402
from tests.providers.assertions import reference_cost as shared_reference_cost  # noqa: E402
from tests.providers.gemini_mock import API_KEY, GeminiMock, load  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

# generate_content.json: prompt 1287 (1024 cached), candidates 63, thoughts 367.
FLASH = {"input": 1287, "output": 63 + 367, "cache_read": 1024, "reasoning": 367}
# stream.sse: the last chunk's cumulative counts (prompt 38, candidates 23, thoughts 121), not their sum.
STREAM = {"input": 38, "output": 23 + 121, "reasoning": 121}


@pytest.fixture
def mock() -> GeminiMock:
    return GeminiMock()


def reference_cost(model: str, usage: Usage) -> float:
    return shared_reference_cost(model, usage, "google")


def usage_of(counts: dict) -> Usage:
    return Usage(
        input_tokens=counts["input"], output_tokens=counts["output"],
        cache_read_tokens=counts.get("cache_read", 0), reasoning_tokens=counts.get("reasoning", 0),
    )


def assert_cost(span, model: str, usage: Usage) -> float:
    expected = reference_cost(model, usage)
    assert expected > 0
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=0, abs=1e-12)
    return expected


# -- generate_content --------------------------------------------------------------------------------
def test_generate_content_records_exact_tokens_cost_and_metrics(instrumented, telemetry, mock):
    response = mock.client().models.generate_content(
        model="gemini-2.5-flash", contents="Capital of France?",
        config=types.GenerateContentConfig(temperature=0.3, max_output_tokens=800, top_k=40),
    )

    assert type(response) is types.GenerateContentResponse
    assert response.text == "Paris is the capital of France."
    span = only_span(telemetry)
    assert span.name == "generate_content gemini-2.5-flash"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert attrs[A.GEN_AI_OPERATION_NAME] == "generate_content"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "gemini-2.5-flash"
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 800
    assert attrs[A.GEN_AI_REQUEST_TOP_K] == 40
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == "gemini-2.5-flash"
    assert attrs[A.GEN_AI_RESPONSE_ID] == "Xq1aZ9mKJ4-fz7IPp7v3qAs"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.SERVER_ADDRESS] == "generativelanguage.googleapis.com"
    assert attrs[A.SERVER_PORT] == 443
    assert A.OTEL_TOKENS_REQUEST_COUNT not in attrs  # one request
    assert_usage(span, **FLASH)
    expected = assert_cost(span, "gemini-2.5-flash", usage_of(FLASH))

    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 1287
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 430
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="cache_read") == 1024
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="reasoning") == 367
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == pytest.approx(expected, abs=1e-12)
    (attributes, point), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert point.count == 1
    assert attributes[A.GEN_AI_PROVIDER_NAME] == "gcp.gemini"


def test_tool_use_prompt_tokens_count_as_input(instrumented, telemetry, mock):
    mock.reply("generate_content_search.json")
    mock.client().models.generate_content(
        model="models/gemini-2.5-pro", contents="Weather in Paris?",
        config={"tools": [{"google_search": {}}]},
    )
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_MODEL] == "gemini-2.5-pro"  # "models/" is not the model's name
    counts = {"input": 412 + 155, "output": 88 + 231, "reasoning": 231}
    assert_usage(span, **counts)
    assert_cost(span, "gemini-2.5-pro", usage_of(counts))


async def test_async_generate_content(instrumented, telemetry, mock):
    response = await mock.client().aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert type(response) is types.GenerateContentResponse
    assert_usage(only_span(telemetry), **FLASH)


def test_no_usage_is_estimated_and_marked(instrumented, telemetry, mock):
    mock.reply("no_usage.json")
    mock.client().models.generate_content(model="gemini-2.5-flash", contents="count to ten")
    attrs = only_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 3  # "count to ten"
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 8  # "No usage was reported for this answer."


def test_unknown_model_is_counted_with_cost_unknown(instrumented, telemetry, mock, caplog):
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    mock.reply("unknown_model.json")
    mock.client().models.generate_content(model="tunedModels/acme-tuned-7", contents="x")
    attrs = only_span(telemetry).attributes
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 77
    assert A.GEN_AI_USAGE_COST_AMOUNT not in attrs  # unknown, never $0
    assert attrs[A.OTEL_TOKENS_PRICE_UNKNOWN] is True
    assert "no price known for model 'gemini-acme-tuned-7'" in caplog.text


# -- streams -----------------------------------------------------------------------------------------
def _texts(chunks):
    return [chunk.text for chunk in chunks]


def test_stream_takes_the_last_cumulative_usage(instrumented, telemetry, mock):
    stream = mock.client().models.generate_content_stream(model="gemini-2.5-flash", contents="stream please")
    assert inspect.isgenerator(stream)
    chunks = list(stream)

    otel_tokens.uninstrument()
    plain = list(mock.client().models.generate_content_stream(model="gemini-2.5-flash", contents="stream please"))
    assert [type(c) for c in chunks] == [type(c) for c in plain] == [types.GenerateContentResponse] * 3
    assert _texts(chunks) == _texts(plain) == ["Streams ", "are read ", "chunk by chunk."]
    assert [c.usage_metadata for c in chunks] == [c.usage_metadata for c in plain]
    assert mock.requests[0][0].endswith("models/gemini-2.5-flash:streamGenerateContent?alt=sse")

    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, **STREAM)
    assert_cost(span, "gemini-2.5-flash", usage_of(STREAM))
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


async def test_async_stream(instrumented, telemetry, mock):
    stream = await mock.client().aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    assert inspect.isasyncgen(stream)
    chunks = [chunk async for chunk in stream]
    assert _texts(chunks) == ["Streams ", "are read ", "chunk by chunk."]
    assert_usage(only_span(telemetry), **STREAM)


def test_stream_abandoned_early_is_estimated_and_marked(instrumented, telemetry, mock):
    stream = mock.client().models.generate_content_stream(model="gemini-2.5-flash", contents="count to ten")
    for chunk in stream:
        assert chunk.text == "Streams "
        break
    assert telemetry.llm_spans() == []  # still open: the caller may go on reading
    del stream, chunk
    gc.collect()
    attrs = only_span(telemetry).attributes
    # Only part of the output was counted when the caller left: estimated, and said so.
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "Streams " (o200k_base: "Streams", " ")


async def test_async_stream_closed_early_is_estimated(instrumented, telemetry, mock):
    stream = await mock.client().aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    async for _chunk in stream:
        break
    await stream.aclose()
    attrs = only_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True


# -- several requests in one call: automatic function calling and continuation -----------------------
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"14 degrees in {city}"


def test_automatic_function_calling_sums_its_requests_on_one_span(instrumented, telemetry, mock):
    mock.reply("function_call.json", "function_result_answer.json")
    response = mock.client().models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert response.text == "It is 14 degrees in Paris."
    assert len(mock.requests) == 2
    # The SDK's own answer carries only the last request's usage.
    assert response.usage_metadata.prompt_token_count == 157

    span = only_span(telemetry)  # no child span per request: the tokens would count twice
    first = {"input": 96, "output": 17 + 45, "reasoning": 45}
    second = {"input": 157, "output": 29}
    assert_usage(span, input=96 + 157, output=62 + 29, reasoning=45)
    assert span.attributes[A.OTEL_TOKENS_REQUEST_COUNT] == 2
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == "hop-two-YmF6cXV4"
    expected = reference_cost("gemini-2.5-flash", usage_of(first)) + reference_cost(
        "gemini-2.5-flash", usage_of(second))
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=0, abs=1e-12)
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 253
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == pytest.approx(expected, abs=1e-12)


def test_long_context_tier_applies_per_request(instrumented, telemetry, mock):
    # Each request is under gemini-2.5-pro's 200k tier; together they are over it.
    mock.reply("long_function_call.json", "long_answer.json")
    mock.client().models.generate_content(
        model="gemini-2.5-pro", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    span = only_span(telemetry)
    first = Usage(input_tokens=151_337, cache_read_tokens=98_304, output_tokens=23 + 517, reasoning_tokens=517)
    second = Usage(input_tokens=151_419, cache_read_tokens=147_456, output_tokens=41 + 203, reasoning_tokens=203)
    assert_usage(span, input=302_756, output=784, cache_read=245_760, reasoning=720)
    per_request = reference_cost("gemini-2.5-pro", first) + reference_cost("gemini-2.5-pro", second)
    price_of_the_sum = reference_cost("gemini-2.5-pro", Usage(
        input_tokens=302_756, cache_read_tokens=245_760, output_tokens=784, reasoning_tokens=720))
    assert price_of_the_sum > per_request * 1.5  # the tier would double the rates
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(per_request, rel=0, abs=1e-12)


async def test_async_automatic_function_calling(instrumented, telemetry, mock):
    mock.reply("function_call.json", "function_result_answer.json")
    response = await mock.client().aio.models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert response.text == "It is 14 degrees in Paris."
    span = only_span(telemetry)
    assert_usage(span, input=253, output=91, reasoning=45)
    assert span.attributes[A.OTEL_TOKENS_REQUEST_COUNT] == 2


def test_stream_with_automatic_function_calling(instrumented, telemetry, mock):
    mock.reply("stream_function_call.sse", "stream_answer.sse")
    chunks = list(mock.client().models.generate_content_stream(
        model="gemini-2.5-flash", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    ))
    assert len(mock.requests) == 2
    texts = [part.text for c in chunks for part in c.candidates[0].content.parts if part.text]
    assert "".join(texts) == "It is 14 degrees in Paris."
    span = only_span(telemetry)
    assert_usage(span, input=253, output=91, reasoning=45)
    assert span.attributes[A.OTEL_TOKENS_REQUEST_COUNT] == 2


async def test_async_stream_with_automatic_function_calling(instrumented, telemetry, mock):
    mock.reply("stream_function_call.sse", "stream_answer.sse")
    stream = await mock.client().aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].text == "degrees in Paris."
    assert_usage(only_span(telemetry), input=253, output=91, reasoning=45)


@pytest.mark.skipif(not hasattr(genai_models.Models, "_generate_content_with_continuation"),
                    reason="automatic continuation arrived in google-genai 3.x")
def test_automatic_continuation_sums_its_requests(instrumented, telemetry, mock):
    mock.reply("continuation_first.json", "continuation_last.json")
    response = mock.client().models.generate_content(model="gemini-2.5-flash", contents="Write a long report")
    assert len(mock.requests) == 2
    assert response.text == "Chapter one: the budget ran out in chapter two."
    span = only_span(telemetry)
    assert_usage(span, input=2_113 + 2_119, output=3_907 + 611 + 1_283 + 97, reasoning=611 + 97)
    assert span.attributes[A.OTEL_TOKENS_REQUEST_COUNT] == 2
    # The SDK merges the two usages the same way.
    assert response.usage_metadata.prompt_token_count == 2_113 + 2_119


def test_chat_messages_are_recorded_once(instrumented, telemetry, mock):
    chat = mock.client().chats.create(model="gemini-2.5-flash")
    chat.send_message("Capital of France?")
    assert_usage(only_span(telemetry), **FLASH)
    for _chunk in chat.send_message_stream("And stream it"):
        pass
    assert len(telemetry.llm_spans()) == 2


# -- embeddings --------------------------------------------------------------------------------------
# google-genai before 3.x does not read the Gemini API's embedding usage: the call is estimated.
EMBED_USAGE_READ = "usage_metadata" in types.EmbedContentResponse.model_fields


def assert_embedding_tokens(span, exact: int, estimated: int) -> None:
    attrs = span.attributes
    if EMBED_USAGE_READ:
        assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == exact
        assert A.OTEL_TOKENS_USAGE_ESTIMATED not in attrs
    else:
        assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == estimated
        assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True


def test_embed_content(instrumented, telemetry, mock):
    result = mock.client().models.embed_content(model="gemini-embedding-001", contents=["first text", "second"])
    assert type(result) is types.EmbedContentResponse
    assert len(result.embeddings) == 2
    assert mock.requests[0][0].endswith("models/gemini-embedding-001:batchEmbedContents")
    span = only_span(telemetry)
    assert span.name == "embeddings gemini-embedding-001"
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "embeddings"
    assert_embedding_tokens(span, exact=19, estimated=4)  # "first text", "second"
    assert_cost(span, "gemini-embedding-001", Usage(input_tokens=span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS]))


async def test_async_embed_content(instrumented, telemetry, mock):
    result = await mock.client().aio.models.embed_content(model="gemini-embedding-001", contents="text")
    assert len(result.embeddings) == 2
    assert_embedding_tokens(only_span(telemetry), exact=19, estimated=1)  # "text"


# -- Vertex AI ---------------------------------------------------------------------------------------
def test_vertex_client_is_gcp_vertex_ai(instrumented, telemetry, mock):
    mock.vertex_client().models.generate_content(model="gemini-2.5-flash", contents="x")
    attrs = only_span(telemetry).attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert attrs[A.SERVER_ADDRESS] == "us-central1-aiplatform.googleapis.com"
    assert "projects/acme-prod/locations/us-central1/publishers/google/models/gemini-2.5-flash" in mock.requests[0][0]
    assert_usage(only_span(telemetry), **FLASH)


def test_vertex_embeddings_count_the_statistics(instrumented, telemetry, mock):
    result = mock.vertex_client().models.embed_content(model="text-embedding-005", contents=["a", "b"])
    assert result.embeddings[1].statistics.token_count == 13
    attrs = only_span(telemetry).attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 7 + 13


# -- errors, lifecycle, privacy ----------------------------------------------------------------------
def test_sdk_error_passes_through_unchanged(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    with pytest.raises(errors.ClientError) as raised:
        mock.client().models.generate_content(model="gemini-2.5-flash", contents="x")
    assert raised.value.code == 429
    assert raised.value.details == load("error_429.json")
    span = only_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "ClientError"
    assert span.status.status_code.name == "ERROR"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


async def test_async_stream_error_passes_through(instrumented, telemetry, mock):
    mock.reply("error_429.json", status=429)
    stream = await mock.client().aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    with pytest.raises(errors.ClientError):
        async for _chunk in stream:
            pass
    assert only_span(telemetry).attributes[A.ERROR_TYPE] == "ClientError"


def test_uninstrument_restores_the_sdk(telemetry, mock):
    from google.genai import _extra_utils

    originals = {name: genai_models.Models.__dict__[name] for name in ("generate_content", "_generate_content")}
    run_functions = _extra_utils.get_function_response_parts
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert isinstance(genai_models.Models.__dict__["generate_content"], wrapt.FunctionWrapper)
    assert isinstance(_extra_utils.get_function_response_parts, wrapt.FunctionWrapper)
    assert isinstance(genai_models.AsyncModels.__dict__["_generate_content_stream"], wrapt.FunctionWrapper)
    otel_tokens.uninstrument()
    for name, original in originals.items():
        assert genai_models.Models.__dict__[name] is original
    assert _extra_utils.get_function_response_parts is run_functions
    assert not isinstance(genai_models.AsyncModels.__dict__["embed_content"], wrapt.FunctionWrapper)
    mock.client().models.generate_content(model="gemini-2.5-flash", contents="x")
    assert telemetry.llm_spans() == []


def test_double_instrument_gives_one_span(telemetry, mock):
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.reply("function_call.json", "function_result_answer.json")
        mock.client().models.generate_content(
            model="gemini-2.5-flash", contents="x", config=types.GenerateContentConfig(tools=[get_weather]))
    finally:
        otel_tokens.uninstrument()
    span = only_span(telemetry)
    assert span.attributes[A.OTEL_TOKENS_REQUEST_COUNT] == 2  # each request counted once


def test_agent_labels_and_no_content_or_key_by_default(instrumented, telemetry, mock):
    with otel_tokens.agent("researcher"):
        mock.client().models.generate_content(model="gemini-2.5-flash", contents="my secret prompt")
    assert only_span(telemetry).attributes[A.GEN_AI_AGENT_NAME] == "researcher"
    text = all_attribute_text(telemetry)
    assert "my secret prompt" not in text
    assert "Paris" not in text
    assert API_KEY not in text
    assert API_KEY not in str(mock.requests[0][1])  # the key travels in a header only


def test_content_capture_opt_in(telemetry, mock, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        mock.client().models.generate_content(
            model="gemini-2.5-flash", contents="my prompt", config={"system_instruction": "be brief"})
    finally:
        otel_tokens.uninstrument()
    attrs = only_span(telemetry).attributes
    assert "my prompt" in attrs[A.GEN_AI_INPUT_MESSAGES]
    assert "be brief" in attrs[A.GEN_AI_INPUT_MESSAGES]
    assert "Paris" in attrs[A.GEN_AI_OUTPUT_MESSAGES]
    assert API_KEY not in all_attribute_text(telemetry)


# -- LangChain rides on the SDK ----------------------------------------------------------------------
def test_langchain_google_genai_call_is_recorded_once(instrumented, telemetry, mock):
    chat_models = pytest.importorskip("langchain_google_genai")
    llm = chat_models.ChatGoogleGenerativeAI(model="gemini-2.5-flash", google_api_key=API_KEY)
    llm.client = mock.client()  # its google-genai client, on the mock transport
    message = llm.invoke("Capital of France?")
    assert message.content == "Paris is the capital of France."
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert_usage(span, **FLASH)
    assert len(mock.requests) == 1


# -- imports ---------------------------------------------------------------------------------------------
AUTO_SCRIPT = """
import sys
import otel_tokens.auto  # before the SDK is imported
assert not any(name.startswith(("google.genai", "google.generativeai")) for name in sys.modules)
import json, otel_tokens
from tests.providers.gemini_mock import GeminiMock
GeminiMock().client().models.generate_content(model="gemini-2.5-flash", contents="x")
stats = otel_tokens.get_statistics()
print(json.dumps({"calls": stats["total_calls"], "input": stats["input_tokens"]}))
"""


def test_auto_import_instruments_google_genai_imported_later():
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run([sys.executable, "-c", AUTO_SCRIPT], capture_output=True, text=True, timeout=120,
                          env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"calls": 1, "input": 1287}


def test_llm_calls_inside_an_automatic_function_call_are_calls_of_their_own(instrumented, telemetry, mock):
    client = mock.client()

    def get_weather(city: str) -> str:
        """The weather in a city, as another model tells it."""
        return client.models.generate_content(model="gemini-2.5-flash", contents=f"Weather in {city}?").text

    get_weather.__annotations__ = {"city": str, "return": str}  # real types: google-genai 1.x reads them

    # Outer request, the tool's own call, outer request.
    mock.reply("function_call.json", "generate_content.json", "function_result_answer.json")
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert response.text == "It is 14 degrees in Paris."
    inner, outer = sorted(telemetry.llm_spans(), key=lambda s: s.end_time)
    assert_usage(inner, **FLASH)
    assert_usage(outer, input=253, output=91, reasoning=45)
    assert outer.attributes[A.OTEL_TOKENS_REQUEST_COUNT] == 2


async def test_async_llm_calls_inside_an_automatic_function_call(instrumented, telemetry, mock):
    client = mock.client()

    async def get_weather(city: str) -> str:
        """The weather in a city, as another model tells it."""
        response = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=city)
        return response.text

    get_weather.__annotations__ = {"city": str, "return": str}

    mock.reply("function_call.json", "generate_content.json", "function_result_answer.json")
    await client.aio.models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
    )
    inner, outer = sorted(telemetry.llm_spans(), key=lambda s: s.end_time)
    assert_usage(inner, **FLASH)
    assert_usage(outer, input=253, output=91, reasoning=45)


def test_audio_prompt_tokens_are_priced_at_the_audio_rate(instrumented, telemetry, mock):
    mock.reply("generate_content_audio.json")
    mock.client().models.generate_content(model="gemini-2.5-flash", contents="Transcribe this.")
    span = only_span(telemetry)
    assert_usage(span, input=1000, output=50)
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in span.attributes
    # gemini-2.5-flash: $0.30 text input, $1.00 audio input, $2.50 output per million tokens
    hand_computed = (300 * 0.3 + 700 * 1.0 + 50 * 2.5) / 1e6
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] / hand_computed == pytest.approx(1.0, rel=1e-9)
    assert_cost(span, "gemini-2.5-flash", Usage(input_tokens=1000, output_tokens=50, details=(("input_audio_tokens", 700),)))


def test_grounding_with_google_search_is_billed_per_grounded_prompt(instrumented, telemetry, mock):
    mock.reply("generate_content_grounded.json")
    mock.client().models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
    )
    span = only_span(telemetry)
    assert_usage(span, input=420, output=40)
    assert span.attributes[A.OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH] == 1  # two queries, one grounded prompt
    # gemini-2.5-flash: $0.30 input, $2.50 output per million tokens, $35 per 1,000 grounded prompts
    hand_computed = (420 * 0.3 + 40 * 2.5) / 1e6 + 0.035
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] / hand_computed == pytest.approx(1.0, rel=1e-9)
