"""Ollama: the real ``ollama`` SDK over its own HTTP stack (httpx), answered with recorded responses in
Ollama's wire format (JSON, and newline-delimited JSON for streams); the client classes and the
module-level functions, which ``ollama`` binds to its default client at import."""

from __future__ import annotations

import gc
import sys
import types

import httpx
import ollama
import pytest
from ollama._client import AsyncClient, Client

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from otel_tokens._internal.outputs.report import format_usd
from otel_tokens._internal.providers import ollama as adapter
from tests.providers.assertions import (
    all_attribute_text,
    assert_instrument_twice_and_unpatch,
    assert_usage,
    only_llm_span,
)
from tests.providers.recorded import Recorded

pytestmark = pytest.mark.usefixtures("no_network")

HOST = "http://127.0.0.1:11434"
MESSAGES = [{"role": "user", "content": "Capital of France?"}]
ROUTES = {
    ("/api/chat", False): "chat.json",
    ("/api/chat", True): "chat_stream.ndjson",
    ("/api/generate", False): "generate.json",
    ("/api/generate", True): "generate_stream.ndjson",
    ("/api/embed", False): "embed.json",
    ("/api/embeddings", False): "embeddings.json",
}


@pytest.fixture
def server() -> Recorded:
    return Recorded("ollama", httpx, lambda path, body: ROUTES[path, bool(body.get("stream"))])


@pytest.fixture
def default_client(server, monkeypatch):
    """The client ``ollama.chat`` and the other module functions are bound to, on the recorded server."""
    client = vars(sys.modules["ollama"])["_client"]
    monkeypatch.setattr(client, "_client", httpx.Client(base_url=HOST, transport=server.transport()))
    return client


def client(server: Recorded) -> Client:
    return Client(host=HOST, transport=server.transport())


def async_client(server: Recorded) -> AsyncClient:
    return AsyncClient(host=HOST, transport=server.async_transport())


def assert_self_hosted(span) -> None:
    """A local model: cost 0 that says why, never the unpriced flag."""
    attrs = span.attributes
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == 0.0
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "self_hosted"
    assert A.OTEL_TOKENS_PRICE_UNKNOWN not in attrs


# -- chat ------------------------------------------------------------------------------------------
def test_chat_records_exact_counts_and_a_self_hosted_cost(instrumented, telemetry, server):
    response = client(server).chat(
        model="llama3.2:3b", messages=MESSAGES, options={"num_predict": 128, "temperature": 0.1, "seed": 42}
    )
    assert type(response) is ollama.ChatResponse
    assert response.message.content == "Paris is the capital of France."
    span = only_llm_span(telemetry)
    assert span.name == "chat llama3.2:3b"
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "ollama"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 128
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.1
    assert attrs[A.GEN_AI_REQUEST_SEED] == 42
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == "llama3.2:3b"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[A.SERVER_PORT] == 11434
    assert_usage(span, input=31, output=9)
    assert_self_hosted(span)
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 31
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 9
    assert telemetry.points(A.METRIC_UNPRICED_CALLS) == []
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == 0.0
    assert len(telemetry.points(A.METRIC_OPERATION_COST)) == 1  # a cost of 0 is counted, not missing


async def test_chat_async(instrumented, telemetry, server):
    response = await async_client(server).chat(model="llama3.2:3b", messages=MESSAGES)
    assert type(response) is ollama.ChatResponse
    span = only_llm_span(telemetry)
    assert_usage(span, input=31, output=9)
    assert_self_hosted(span)


def test_positional_arguments_reach_the_sdk_and_the_estimate(instrumented, telemetry, server):
    response = client(server).chat("llama3.2:3b", MESSAGES)
    assert response.message.content == "Paris is the capital of France."
    assert server.requests[0][1]["model"] == "llama3.2:3b"
    assert server.requests[0][1]["messages"] == MESSAGES
    assert only_llm_span(telemetry).attributes[A.GEN_AI_REQUEST_MODEL] == "llama3.2:3b"
    # The legacy embeddings endpoint sends no counts: the positional prompt is what gets estimated.
    client(server).embeddings("nomic-embed-text", "a prompt of six words here")
    estimated = [s for s in telemetry.llm_spans() if s.attributes[A.GEN_AI_OPERATION_NAME] == "embeddings"][0]
    assert estimated.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert estimated.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 6


def test_tool_calls_are_counted(instrumented, telemetry, server):
    server.reply("chat_tool_call.json")
    response = client(server).chat(model="qwen3:8b", messages=MESSAGES, tools=[{
        "type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}},
    }])
    assert len(response.message.tool_calls) == 2
    assert_usage(only_llm_span(telemetry), input=187, output=43)
    assert adapter.Chat().result(response, False).tool_calls == 2


def test_user_price_wins_over_self_hosted(instrumented, telemetry, server):
    otel_tokens.set_price("llama3.2:3b", input=0.10, output=0.40, provider="ollama")
    client(server).chat(model="llama3.2:3b", messages=MESSAGES)
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx((31 * 0.10 + 9 * 0.40) / 1e6, abs=1e-15)
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"


# -- streams ---------------------------------------------------------------------------------------
def test_chat_stream_chunks_identical_and_counts_from_the_last(instrumented, telemetry, server):
    stream = client(server).chat(model="llama3.2:3b", messages=MESSAGES, stream=True)
    assert isinstance(stream, types.GeneratorType)  # what the SDK returns: a generator
    chunks = list(stream)
    otel_tokens.uninstrument()
    plain = list(client(server).chat(model="llama3.2:3b", messages=MESSAGES, stream=True))
    assert len(chunks) == len(plain) == 6
    assert chunks == plain
    assert [type(c) for c in chunks] == [ollama.ChatResponse] * 6
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, input=33, output=6)
    assert_self_hosted(span)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes


async def test_chat_stream_async(instrumented, telemetry, server):
    stream = await async_client(server).chat(model="llama3.2:3b", messages=MESSAGES, stream=True)
    assert isinstance(stream, types.AsyncGeneratorType)
    chunks = [c async for c in stream]
    assert [type(c) for c in chunks] == [ollama.ChatResponse] * 6
    assert_usage(only_llm_span(telemetry), input=33, output=6)


def test_stream_abandoned_early_is_estimated(instrumented, telemetry, server):
    stream = client(server).chat(model="llama3.2:3b", messages=MESSAGES, stream=True)
    for index, _chunk in enumerate(stream):
        if index == 1:
            break
    assert telemetry.llm_spans() == []
    del stream, _chunk
    gc.collect()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 4  # "Capital of France?"
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "Streams" + " arrive"


async def test_async_stream_closed_early_is_estimated(instrumented, telemetry, server):
    stream = await async_client(server).chat(model="llama3.2:3b", messages=MESSAGES, stream=True)
    async for _chunk in stream:
        break
    await stream.aclose()
    attrs = only_llm_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 1  # "Streams"


# -- generate, embed, embeddings -------------------------------------------------------------------
def test_generate_and_stream(instrumented, telemetry, server):
    response = client(server).generate(model="llama3.2:3b", prompt="Why is the sky blue?")
    assert type(response) is ollama.GenerateResponse
    chunks = list(client(server).generate(model="llama3.2:3b", prompt="Why is the sky blue?", stream=True))
    assert [type(c) for c in chunks] == [ollama.GenerateResponse] * 5
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert_usage(first, input=27, output=11)
    assert_usage(second, input=29, output=5)
    assert_self_hosted(second)


async def test_generate_async_and_stream(instrumented, telemetry, server):
    ollama_client = async_client(server)
    await ollama_client.generate(model="llama3.2:3b", prompt="Why is the sky blue?")
    chunks = [c async for c in await ollama_client.generate(model="llama3.2:3b", prompt="Why?", stream=True)]
    assert len(chunks) == 5
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert_usage(first, input=27, output=11)
    assert_usage(second, input=29, output=5)


def test_embed(instrumented, telemetry, server):
    result = client(server).embed(model="nomic-embed-text", input=["first text", "second text"])
    assert type(result) is ollama.EmbedResponse
    span = only_llm_span(telemetry)
    assert span.name == "embeddings nomic-embed-text"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 13
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in span.attributes
    assert_self_hosted(span)


async def test_embed_and_embeddings_async(instrumented, telemetry, server):
    ollama_client = async_client(server)
    await ollama_client.embed(model="nomic-embed-text", input="one text")
    result = await ollama_client.embeddings(model="nomic-embed-text", prompt="one text")
    assert type(result) is ollama.EmbeddingsResponse
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 13
    assert second.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True  # no counts on this endpoint
    assert second.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 2


# -- module-level functions ------------------------------------------------------------------------
def test_module_functions_are_recorded(instrumented, telemetry, server, default_client):
    ollama.chat(model="llama3.2:3b", messages=MESSAGES)
    list(ollama.chat(model="llama3.2:3b", messages=MESSAGES, stream=True))
    ollama.generate(model="llama3.2:3b", prompt="Why is the sky blue?")
    ollama.embed(model="nomic-embed-text", input="one text")
    ollama.embeddings(model="nomic-embed-text", prompt="one text")
    spans = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert [s.name for s in spans] == [
        "chat llama3.2:3b", "chat llama3.2:3b", "text_completion llama3.2:3b",
        "embeddings nomic-embed-text", "embeddings nomic-embed-text",
    ]
    assert_usage(spans[0], input=31, output=9)
    assert_usage(spans[1], input=33, output=6)
    assert spans[0].attributes[A.SERVER_ADDRESS] == "127.0.0.1"


def test_module_functions_unpatch_symmetrically(telemetry, server, default_client):
    module = sys.modules["ollama"]
    assert_instrument_twice_and_unpatch(
        telemetry, module, "chat", lambda: module.chat(model="llama3.2:3b", messages=MESSAGES)
    )
    assert module.chat == default_client.chat  # the bound method of the default client again


def test_class_methods_unpatch(telemetry, server):
    assert_instrument_twice_and_unpatch(
        telemetry, Client, "chat", lambda: client(server).chat(model="llama3.2:3b", messages=MESSAGES)
    )


# -- errors, privacy, the report -------------------------------------------------------------------
def test_sdk_error_passes_through_unchanged(instrumented, telemetry, server):
    server.reply("error_404.json", status=404)
    with pytest.raises(ollama.ResponseError) as raised:
        client(server).chat(model="llama9", messages=MESSAGES)
    assert type(raised.value) is ollama.ResponseError
    assert raised.value.status_code == 404
    assert "not found" in raised.value.error
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "ResponseError"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


def test_stream_error_passes_through_on_first_read(instrumented, telemetry, server):
    server.reply("error_404.json", status=404)
    stream = client(server).chat(model="llama9", messages=MESSAGES, stream=True)
    with pytest.raises(ollama.ResponseError):
        next(stream)
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "ResponseError"


async def test_async_error_passes_through(instrumented, telemetry, server):
    server.reply("error_404.json", status=404)
    with pytest.raises(ollama.ResponseError):
        await async_client(server).generate(model="llama9", prompt="x")
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "ResponseError"


def test_no_content_by_default(instrumented, telemetry, server):
    client(server).chat(model="llama3.2:3b", messages=[{"role": "user", "content": "my secret"}])
    text = all_attribute_text(telemetry)
    assert "my secret" not in text
    assert "Paris" not in text


def test_report_lists_self_hosted_usage_apart_and_reprices_it(instrumented, telemetry, server):
    for _ in range(3):
        client(server).chat(model="llama3.2:3b", messages=MESSAGES)
    statistics = otel_tokens.get_statistics()
    assert statistics["unpriced_calls"] == 0
    assert statistics["by_provider"]["ollama"]["cost_usd"] == 0.0

    text = otel_tokens.report(what_if=["gpt-4o-mini@openai"])
    section = text[text.index("Self-hosted (no per-token price)"):]
    assert section.splitlines()[4].split() == ["ollama", "3", "93", "27", "120", "$0.00"]
    book = instrumented.price_book
    hosted = 3 * book.cost("openai", "gpt-4o-mini", Usage(input_tokens=31, output_tokens=9))
    assert hosted > 0
    what_if = [line for line in text.splitlines() if line.startswith("The same usage on gpt-4o-mini")]
    assert what_if == [
        f"The same usage on gpt-4o-mini (openai) would cost {format_usd(hosted)} (now {format_usd(0.0)}), over 3 calls."
    ]


def test_usage_log_says_self_hosted_and_its_report_lists_it_apart(telemetry, server, monkeypatch, tmp_path):
    from otel_tokens._internal.accounting.usage_log import read_usage_log
    from otel_tokens._internal.outputs.report import render_report, stats_from_usage_lines

    log = tmp_path / "usage.jsonl"
    monkeypatch.setenv("OTEL_TOKENS_LOG", str(log))
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        client(server).chat(model="llama3.2:3b", messages=MESSAGES)
        client(server).embed(model="nomic-embed-text", input="one text")
    finally:
        otel_tokens.uninstrument()
    lines, skipped = read_usage_log(log)
    assert skipped == 0
    assert [(line["cost_usd"], line["cost_source"]) for line in lines] == [(0.0, "self_hosted")] * 2
    text = render_report(stats_from_usage_lines(lines))
    section = text[text.index("Self-hosted (no per-token price)"):]
    assert section.splitlines()[4].split() == ["ollama", "2", "44", "9", "53", format_usd(0.0)]
