"""google-generativeai (the deprecated SDK): its REST client against the loopback fake server, and its
async client (gRPC only) against a loopback gRPC server answering recorded Gemini responses."""

from __future__ import annotations

import gc
import socket
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():  # the SDK warns that it is deprecated, and api_core about Python 3.11
    warnings.simplefilter("ignore")
    generativeai = pytest.importorskip("google.generativeai")
    from google.ai import generativelanguage_v1beta as glm
    from google.ai.generativelanguage_v1beta.services.generative_service import client as service_client

import grpc  # noqa: E402
import wrapt  # noqa: E402
from google.api_core import exceptions as api_exceptions  # noqa: E402
from google.generativeai.types import generation_types  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from otel_tokens._internal.commands.fake_server import FakeLLMServer, count_tokens  # noqa: E402
from tests.providers.assertions import all_attribute_text, assert_usage, reference_cost  # noqa: E402
from tests.providers.assertions import only_llm_span as only_span  # noqa: E402

RECORDINGS = Path(__file__).parent / "recordings" / "gemini"
QUESTION = "How many tokens does this use?"  # the fake server: 3 per content + 8
API_KEY = "AIza-test-SECRET-key-456"
MODEL = "gemini-1.5-flash"


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python sockets may reach 127.0.0.1 only."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {address!r}")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def server(loopback_only):
    with FakeLLMServer() as fake:
        generativeai.configure(api_key=API_KEY, transport="rest", client_options={"api_endpoint": fake.base_url})
        yield fake


def model() -> generativeai.GenerativeModel:
    return generativeai.GenerativeModel(MODEL)


def expected_usage(server: FakeLLMServer) -> Usage:
    usage = server.last_request().usage
    return Usage(input_tokens=usage["promptTokenCount"], output_tokens=usage["candidatesTokenCount"])


# -- REST, sync ------------------------------------------------------------------------------------
def test_generate_content_records_exact_tokens_and_cost(instrumented, telemetry, server):
    response = model().generate_content(QUESTION, generation_config={"temperature": 0.4, "max_output_tokens": 300})
    assert type(response) is generation_types.GenerateContentResponse
    usage = expected_usage(server)
    assert usage.input_tokens == 11 and usage.output_tokens == count_tokens(response.text)
    span = only_span(telemetry)
    attrs = span.attributes
    assert span.name == f"generate_content {MODEL}"
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == pytest.approx(0.4)
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 300
    assert attrs[A.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert_usage(span, input=usage.input_tokens, output=usage.output_tokens)
    expected = reference_cost(MODEL, usage, "google")
    assert expected > 0
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=0, abs=1e-12)
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == 11


def test_stream_takes_the_last_usage(instrumented, telemetry, server):
    response = model().generate_content(QUESTION, stream=True)
    assert type(response) is generation_types.GenerateContentResponse
    texts = [chunk.text for chunk in response]
    assert len(texts) > 3
    usage = expected_usage(server)
    assert usage.output_tokens == count_tokens("".join(texts))
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, input=11, output=usage.output_tokens)


def test_stream_abandoned_early_is_estimated_and_marked(instrumented, telemetry, server):
    response = model().generate_content(QUESTION, stream=True)
    for _chunk in response:
        break
    assert telemetry.llm_spans() == []
    del response, _chunk
    gc.collect()
    attrs = only_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 7  # QUESTION, counted with o200k_base


def test_chat_send_message_is_recorded_once_per_message(instrumented, telemetry, server):
    chat = model().start_chat()
    chat.send_message(QUESTION)
    chat.send_message("And once more")
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    assert first.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 11
    # The second request carries the history: both questions and the first answer.
    assert second.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == expected_usage(server).input_tokens > 11
    assert server.request_count() == 2


def test_error_passes_through_unchanged(instrumented, telemetry, server):
    with pytest.raises(api_exceptions.TooManyRequests) as raised:
        generativeai.GenerativeModel("gemini-1.5-flash-error-429").generate_content(QUESTION)
    assert raised.value.code == 429
    span = only_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "TooManyRequests"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


def test_uninstrument_restores_the_client(telemetry, server):
    original = service_client.GenerativeServiceClient.__dict__["generate_content"]
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert isinstance(service_client.GenerativeServiceClient.__dict__["generate_content"], wrapt.FunctionWrapper)
    otel_tokens.uninstrument()
    assert service_client.GenerativeServiceClient.__dict__["generate_content"] is original
    model().generate_content(QUESTION)
    assert telemetry.llm_spans() == []


def test_double_instrument_gives_one_span(telemetry, server):
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        model().generate_content(QUESTION)
    finally:
        otel_tokens.uninstrument()
    assert only_span(telemetry).attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 11


def test_no_content_and_no_api_key_by_default(instrumented, telemetry, server):
    model().generate_content("my secret prompt")
    text = all_attribute_text(telemetry)
    assert "my secret prompt" not in text
    assert API_KEY not in text


# -- gRPC, async -----------------------------------------------------------------------------------
def _recorded(name: str) -> list[glm.GenerateContentResponse]:
    text = (RECORDINGS / name).read_text()
    bodies = [line[6:] for line in text.splitlines() if line.startswith("data: ")] or [text]
    return [glm.GenerateContentResponse.from_json(body, ignore_unknown_fields=True) for body in bodies]


@pytest.fixture
async def grpc_model():
    """A GenerativeModel whose async client talks gRPC to a loopback server of recorded responses."""
    from google.ai.generativelanguage_v1beta.services.generative_service import GenerativeServiceAsyncClient
    from google.ai.generativelanguage_v1beta.services.generative_service.transports import (
        GenerativeServiceGrpcAsyncIOTransport,
    )

    async def generate(request, context):
        if request.model.endswith("error-429"):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Resource has been exhausted")
        return _recorded("generate_content.json")[0]

    async def stream(request, context):
        for chunk in _recorded("stream.sse"):
            yield chunk

    options = {"request_deserializer": glm.GenerateContentRequest.deserialize,
               "response_serializer": glm.GenerateContentResponse.serialize}
    handler = grpc.method_handlers_generic_handler("google.ai.generativelanguage.v1beta.GenerativeService", {
        "GenerateContent": grpc.unary_unary_rpc_method_handler(generate, **options),
        "StreamGenerateContent": grpc.unary_stream_rpc_method_handler(stream, **options),
    })
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = GenerativeServiceAsyncClient(transport=GenerativeServiceGrpcAsyncIOTransport(channel=channel))

    def make(name: str = MODEL) -> generativeai.GenerativeModel:
        instance = generativeai.GenerativeModel(name)
        instance._async_client = client  # what configure() would build, on an insecure loopback channel
        return instance

    yield make
    await channel.close()
    await server.stop(None)


async def test_async_generate_content_over_grpc(instrumented, telemetry, grpc_model):
    response = await grpc_model().generate_content_async(QUESTION)
    assert type(response) is generation_types.AsyncGenerateContentResponse
    assert response.text == "Paris is the capital of France."
    span = only_span(telemetry)
    # The proto has no thoughts count: output is candidates only.
    assert_usage(span, input=1287, output=63, cache_read=1024)
    assert span.attributes[A.GEN_AI_RESPONSE_MODEL] == "gemini-2.5-flash"  # the recording's model_version
    usage = Usage(input_tokens=1287, output_tokens=63, cache_read_tokens=1024)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("gemini-2.5-flash", usage, "google"), rel=0, abs=1e-12)


async def test_async_stream_over_grpc(instrumented, telemetry, grpc_model):
    response = await grpc_model().generate_content_async(QUESTION, stream=True)
    assert type(response) is generation_types.AsyncGenerateContentResponse
    texts = [chunk.text async for chunk in response]
    assert texts == ["Streams ", "are read ", "chunk by chunk."]
    span = only_span(telemetry)
    assert_usage(span, input=38, output=23)  # the last chunk's counts, not their sum


async def test_async_error_passes_through(instrumented, telemetry, grpc_model):
    with pytest.raises(api_exceptions.ResourceExhausted):
        await grpc_model("gemini-1.5-flash-error-429").generate_content_async(QUESTION)
    assert only_span(telemetry).attributes[A.ERROR_TYPE] == "ResourceExhausted"
