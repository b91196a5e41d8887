"""LiteLLM: the real package over its own HTTP routes against a loopback server with recorded responses.

Routes: ``openai/...`` goes through the openai SDK inside LiteLLM; ``anthropic/...`` and ``gemini/...``
through LiteLLM's own HTTP handlers. Exactly one layer records: LiteLLM's. LiteLLM pins ``openai<3``, so
these tests run in their own venv leg (``.venv-litellm`` in ``.ci/run``) and skip elsewhere.
"""

from __future__ import annotations

import gc
import importlib.util
import os

import pytest

if importlib.util.find_spec("litellm") is None:
    pytest.skip("litellm is not installed: it pins openai<3, so it runs in the .venv-litellm leg of .ci/run",
                allow_module_level=True)

# LiteLLM fetches its model price map over the network at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.providers.loopback import RecordedServer, refuse_non_loopback  # noqa: E402

with pytest.MonkeyPatch.context() as _guard:  # importing LiteLLM must not touch the network either
    refuse_non_loopback(_guard)
    import litellm

import otel_tokens  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from otel_tokens._internal.base.settings import Settings  # noqa: E402
from otel_tokens._internal.providers import litellm as adapter  # noqa: E402
from tests.providers.assertions import all_attribute_text, assert_usage, only_llm_span, reference_cost  # noqa: E402
from tests.providers.openai_mock import _chat_sse  # noqa: E402

USER = [{"role": "user", "content": "Summarise the cost report"}]
KEY = "sk-test-SECRET-litellm-77"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    refuse_non_loopback(monkeypatch)


@pytest.fixture
def server():
    recorded = (
        RecordedServer()
        .route("/chat/completions", "openai/chat_completion.json", "openai/chat_stream.sse", transform=_chat_sse)
        .route("/completions", "openai/completion.json")
        .route("/embeddings", "openai/embeddings.json")
        .route("/responses", "openai/response.json", "openai/response_stream.sse")
        .route("/messages", "anthropic/message.json", "anthropic/message_stream.sse")
        .route(":generateContent", "litellm/gemini_generate_content.json")
        .route(":streamGenerateContent", None, "litellm/gemini_stream.sse")
    )
    with recorded:
        yield recorded


def openai_route(server):
    return {"api_base": f"{server.url}/v1", "api_key": KEY}


def own_route(server):
    return {"api_base": server.url, "api_key": KEY}


OPENAI_CHAT = Usage(input_tokens=1250, output_tokens=42, cache_read_tokens=1024)
ANTHROPIC = Usage(input_tokens=21 + 12000 + 1800, output_tokens=87, cache_read_tokens=12000, cache_write_tokens=1800)
GEMINI = Usage(input_tokens=1843, output_tokens=57 + 311, cache_read_tokens=1024, reasoning_tokens=311)


def assert_call(span, provider, model, usage, price_model, price_provider):
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == provider
    assert attrs[A.GEN_AI_REQUEST_MODEL] == model
    assert attrs[A.SERVER_ADDRESS] == "127.0.0.1"
    assert_usage(span, input=usage.input_tokens, output=usage.output_tokens, cache_read=usage.cache_read_tokens,
                 cache_write=usage.cache_write_tokens, reasoning=usage.reasoning_tokens)
    expected = reference_cost(price_model, usage, price_provider)
    assert expected > 0
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-12)
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"  # LiteLLM's own cost estimate is never used


# -- one span per call, on each route ----------------------------------------------------------------
def test_openai_route_goes_through_the_openai_sdk_and_is_recorded_once(instrumented, telemetry, server):
    response = litellm.completion(model="openai/gpt-4o", messages=USER, max_tokens=64, **openai_route(server))
    assert type(response) is litellm.ModelResponse
    assert response.usage.prompt_tokens == 1250
    # LiteLLM used the openai SDK (its user agent), which is instrumented too: still one span, LiteLLM's.
    assert server.requests[-1][3]["user-agent"].startswith("OpenAI/Python")
    span = only_llm_span(telemetry)
    assert span.name == "chat gpt-4o"
    assert span.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert span.attributes[A.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert_call(span, "openai", "gpt-4o", OPENAI_CHAT, "gpt-4o-2024-08-06", "openai")
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 1250
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="cache_read") == 1024


def test_anthropic_route_counts_cache_reads_and_writes_in_input(instrumented, telemetry, server):
    response = litellm.completion(model="anthropic/claude-sonnet-4-6", messages=USER, **own_route(server))
    assert type(response) is litellm.ModelResponse
    assert server.requests[-1][0] == "/v1/messages"
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == response.id  # LiteLLM's id, as the caller sees it
    assert_call(span, "anthropic", "claude-sonnet-4-6", ANTHROPIC, "claude-sonnet-4-6", "anthropic")
    assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type="cache_write") == 1800


def test_gemini_route_counts_thoughts_as_output(instrumented, telemetry, server):
    litellm.completion(model="gemini/gemini-2.5-flash", messages=USER, **own_route(server))
    assert server.requests[-1][0] == "/models/gemini-2.5-flash:generateContent"
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert_call(span, "gcp.gemini", "gemini-2.5-flash", GEMINI, "gemini-2.5-flash", "google")


async def test_acompletion_openai_route(instrumented, telemetry, server):
    response = await litellm.acompletion(model="openai/gpt-4o", messages=USER, **openai_route(server))
    assert type(response) is litellm.ModelResponse
    assert_call(only_llm_span(telemetry), "openai", "gpt-4o", OPENAI_CHAT, "gpt-4o-2024-08-06", "openai")


async def test_acompletion_anthropic_route(instrumented, telemetry, server):
    await litellm.acompletion(model="anthropic/claude-sonnet-4-6", messages=USER, **own_route(server))
    assert_call(only_llm_span(telemetry), "anthropic", "claude-sonnet-4-6", ANTHROPIC, "claude-sonnet-4-6", "anthropic")


# -- streams -----------------------------------------------------------------------------------------
def _texts(chunks):
    return [c.choices[0].delta.content if c.choices else None for c in chunks]


def test_stream_usage_from_litellm_final_chunk_and_chunks_unchanged(instrumented, telemetry, server):
    stream = litellm.completion(model="anthropic/claude-sonnet-4-6", messages=USER, stream=True, **own_route(server))
    assert isinstance(stream, litellm.CustomStreamWrapper)
    chunks = list(stream)
    otel_tokens.uninstrument()
    plain = list(litellm.completion(model="anthropic/claude-sonnet-4-6", messages=USER, stream=True,
                                    **own_route(server)))
    assert _texts(chunks) == _texts(plain)
    assert [type(c) for c in chunks] == [type(c) for c in plain]
    assert server.requests[0][2] == server.requests[1][2]  # the request went out as the caller wrote it
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    usage = Usage(input_tokens=18 + 2048 + 512, output_tokens=12, cache_read_tokens=2048, cache_write_tokens=512)
    assert_call(span, "anthropic", "claude-sonnet-4-6", usage, "claude-sonnet-4-6", "anthropic")


async def test_async_stream_gemini_route(instrumented, telemetry, server):
    stream = await litellm.acompletion(model="gemini/gemini-2.5-flash", messages=USER, stream=True,
                                       **own_route(server))
    assert isinstance(stream, litellm.CustomStreamWrapper)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Streams arrive in pieces."
    usage = Usage(input_tokens=389, output_tokens=9 + 149, reasoning_tokens=149)
    assert_call(only_llm_span(telemetry), "gcp.gemini", "gemini-2.5-flash", usage, "gemini-2.5-flash", "google")


def test_openai_route_stream_with_caller_usage_is_exact(instrumented, telemetry, server):
    chunks = list(litellm.completion(model="openai/gpt-4o-mini", messages=USER, stream=True,
                                     stream_options={"include_usage": True}, **openai_route(server)))
    assert chunks[-1].usage.prompt_tokens == 2100
    usage = Usage(input_tokens=2100, output_tokens=8, cache_read_tokens=1920)
    assert_call(only_llm_span(telemetry), "openai", "gpt-4o-mini", usage, "gpt-4o-mini-2024-07-18", "openai")


def test_openai_route_stream_without_usage_is_estimated_and_marked(instrumented, telemetry, server):
    chunks = list(litellm.completion(model="openai/gpt-4o-mini", messages=USER, stream=True, **openai_route(server)))
    assert "".join(_texts(chunks)[i] or "" for i in range(len(chunks))) == "Streams are read chunk by chunk."
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 7  # "Streams are read chunk by chunk." in o200k


def test_stream_abandoned_early_is_estimated_and_marked(instrumented, telemetry, server):
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=USER, stream=True, **openai_route(server))
    for index, _chunk in enumerate(stream):
        if index == 2:
            break
    assert telemetry.llm_spans() == []
    del stream, _chunk
    gc.collect()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "" + "Streams" + " are"


def test_gemini_stream_abandoned_keeps_the_cumulative_counts_seen(instrumented, telemetry, server):
    stream = litellm.completion(model="gemini/gemini-2.5-flash", messages=USER, stream=True, **own_route(server))
    assert next(iter(stream)).choices[0].delta.content == "Streams"
    del stream
    gc.collect()
    # Gemini sends cumulative usage on every chunk: what was billed up to the first one, not an estimate.
    span = only_llm_span(telemetry)
    assert_usage(span, input=389, output=2 + 149, reasoning=149)


# -- the other surfaces ------------------------------------------------------------------------------
def test_embedding_and_aembedding(instrumented, telemetry, server):
    result = litellm.embedding(model="openai/text-embedding-3-small", input=["a", "b"], **openai_route(server))
    assert type(result) is litellm.EmbeddingResponse
    span = only_llm_span(telemetry)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 17
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("text-embedding-3-small", Usage(input_tokens=17), "openai"), abs=1e-15
    )


async def test_aembedding(instrumented, telemetry, server):
    await litellm.aembedding(model="openai/text-embedding-3-small", input="a", **openai_route(server))
    span = only_llm_span(telemetry)
    assert (span.attributes[A.GEN_AI_OPERATION_NAME], span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS]) == ("embeddings", 17)


def test_text_completion(instrumented, telemetry, server):
    response = litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say this is a test",
                                       **openai_route(server))
    assert response.choices[0].text.endswith("a test.")
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert_usage(span, input=5, output=7)


def test_responses(instrumented, telemetry, server):
    response = litellm.responses(model="openai/o4-mini", input="six times seven", **openai_route(server))
    assert response.usage.output_tokens == 900
    span = only_llm_span(telemetry)
    usage = Usage(input_tokens=2000, output_tokens=900, cache_read_tokens=1536, reasoning_tokens=768)
    assert_call(span, "openai", "o4-mini", usage, "o4-mini-2025-04-16", "openai")


def test_responses_stream(instrumented, telemetry, server):
    events = list(litellm.responses(model="openai/o4-mini", input="six times seven", stream=True,
                                    **openai_route(server)))
    assert events[-1].type == "response.completed"
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, input=2000, output=900, cache_read=1536, reasoning=768)


async def test_aresponses_stream(instrumented, telemetry, server):
    stream = await litellm.aresponses(model="openai/o4-mini", input="six times seven", stream=True,
                                      **openai_route(server))
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert_usage(only_llm_span(telemetry), input=2000, output=900, cache_read=1536, reasoning=768)


async def test_aresponses(instrumented, telemetry, server):
    await litellm.aresponses(model="openai/o4-mini", input="six times seven", **openai_route(server))
    assert_usage(only_llm_span(telemetry), input=2000, output=900, cache_read=1536, reasoning=768)


# -- errors, providers, lifecycle ----------------------------------------------------------------------
def test_error_passes_through_unchanged(instrumented, telemetry, server):
    server.reply("anthropic/error_429.json", status=429)
    with pytest.raises(litellm.RateLimitError) as raised:
        litellm.completion(model="anthropic/claude-sonnet-4-6", messages=USER, **own_route(server))
    assert raised.value.status_code == 429
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "RateLimitError"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


async def test_async_error_passes_through(instrumented, telemetry, server):
    server.reply("anthropic/error_429.json", status=429)
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(model="anthropic/claude-sonnet-4-6", messages=USER, **own_route(server))
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "RateLimitError"


@pytest.mark.parametrize(
    ("model", "provider", "name"),
    [
        ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
        ("mistral/mistral-large-latest", "mistral_ai", "mistral-large-latest"),
        ("xai/grok-4", "x_ai", "grok-4"),
        ("deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
        ("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("vertex_ai/gemini-2.5-pro", "gcp.vertex_ai", "gemini-2.5-pro"),
        ("cohere_chat/command-r-plus", "cohere", "command-r-plus"),
        ("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
    ],
)
def test_provider_is_litellms_resolved_one(model, provider, name):
    prepared = adapter.ChatCompletions(asynchronous=False).request(None, (), {"model": model, "messages": USER},
                                                                   Settings())
    assert (prepared.request.provider, prepared.request.model) == (provider, name)


def test_uninstrument_restores_litellm_and_double_instrument_records_once(telemetry, server):
    originals = {name: getattr(litellm, name) for name in ("completion", "acompletion", "embedding", "responses")}
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        assert litellm.completion is not originals["completion"]
        litellm.completion(model="anthropic/claude-sonnet-4-6", messages=USER, **own_route(server))
        assert len(telemetry.llm_spans()) == 1
    finally:
        otel_tokens.uninstrument()
        otel_tokens.uninstrument()
    # Unwrapped by handle: litellm's own __wrapped__ (dispatch -> main) is not followed.
    assert {name: getattr(litellm, name) for name in originals} == originals
    litellm.completion(model="anthropic/claude-sonnet-4-6", messages=USER, **own_route(server))
    assert len(telemetry.llm_spans()) == 1


def test_agent_label_and_no_content_or_key(instrumented, telemetry, server):
    with otel_tokens.agent("litellm-agent"):
        litellm.completion(model="gemini/gemini-2.5-flash", messages=USER, **own_route(server))
    assert only_llm_span(telemetry).attributes[A.GEN_AI_AGENT_NAME] == "litellm-agent"
    text = all_attribute_text(telemetry)
    assert "Summarise the cost report" not in text and KEY not in text and "Caching the shared" not in text
