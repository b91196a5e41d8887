"""AWS Bedrock: real boto3/botocore over its own HTTP stack (urllib3, SigV4, its parsers) against a
loopback Bedrock Runtime on 127.0.0.1 that answers with recorded wire-format responses, including
AWS event-stream framing for the stream APIs. Dummy credentials; no other connection is allowed."""

from __future__ import annotations

import base64
import gc
import io
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError, ResponseStreamingError
from botocore.response import StreamingBody

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import (
    all_attribute_text,
    assert_local_cost,
    assert_token_metrics,
    assert_usage,
    only_llm_span,
)
from tests.providers.bedrock_server import BedrockServer, event_frame, load, stream_body

SECRET_KEY = "bedrock-test-SECRET-key"
HAIKU = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA_PRO = "us.amazon.nova-pro-v1:0"
USER = [{"role": "user", "content": [{"text": "Summarise the termination clause."}]}]


# -- the loopback set-up -----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections only to 127.0.0.1: no AWS endpoint, no IMDS, no STS."""
    connect = socket.socket.connect

    def only_loopback(self: socket.socket, address: Any) -> Any:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise AssertionError(f"network access attempted: {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", only_loopback)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Any:
    with BedrockServer() as running:
        yield running


def make_client(server: BedrockServer, service: str = "bedrock-runtime") -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=server.endpoint_url,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def client(server: BedrockServer) -> Any:
    return make_client(server)


@pytest.fixture
def records(instrumented: Any, monkeypatch: pytest.MonkeyPatch) -> list:
    """Every finished call's CallRecord, as the ledger receives it."""
    seen: list = []
    record = instrumented.ledger.record

    def keep(call_record: Any) -> None:
        seen.append(call_record)
        record(call_record)

    monkeypatch.setattr(instrumented.ledger, "record", keep)
    return seen


# -- assertions ----------------------------------------------------------------------------------
def comparable(response: dict) -> dict:
    """A response without what differs between two identical calls (the server's Date header)."""
    response = dict(response)
    metadata = dict(response.pop("ResponseMetadata"))
    metadata["HTTPHeaders"] = {k: v for k, v in metadata["HTTPHeaders"].items() if k != "date"}
    response["ResponseMetadata"] = metadata
    return response


def assert_cost(span: Any, runtime: Any, model: str, usage: Usage) -> float:
    return assert_local_cost(span, runtime, "aws.bedrock", "aws", model, usage)


def assert_estimated(span: Any) -> None:
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] > 0


def invoke_body(**body: Any) -> str:
    return json.dumps(body)


def chunk_json(event: dict) -> dict:
    return json.loads(event["chunk"]["bytes"])


# -- the wire format -----------------------------------------------------------------------------------
def test_event_stream_frames_decode_with_botocores_own_parser() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(stream_body(load("invoke_stream_anthropic.json")))
    messages = list(buffer)
    assert len(messages) == 7
    first = messages[0]
    assert first.headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    data = base64.b64decode(json.loads(first.payload)["bytes"])
    assert json.loads(data)["type"] == "message_start"
    # A flipped payload byte fails botocore's CRC check: the frames carry real checksums.
    frame = bytearray(event_frame({"event": "messageStop", "payload": {"stopReason": "end_turn"}}))
    frame[-6] ^= 0x01
    broken = EventStreamBuffer()
    broken.add_data(bytes(frame))
    with pytest.raises(ChecksumMismatch):
        list(broken)


# -- Converse ----------------------------------------------------------------------------------------
CONVERSE = Usage(input_tokens=37 + 1843 + 212, output_tokens=119, cache_read_tokens=1843, cache_write_tokens=212)


def test_converse_records_exact_tokens_cost_and_metrics(instrumented, telemetry, server, client):
    server.reply("converse.json")
    response = client.converse(
        modelId=HAIKU,
        system=[{"text": "You are a contracts lawyer."}, {"cachePoint": {"type": "default"}}],
        messages=USER,
        inferenceConfig={"maxTokens": 512, "temperature": 0.3, "topP": 0.9, "stopSequences": ["</answer>"]},
    )
    assert response["usage"]["inputTokens"] == 37  # the caller's dict is botocore's, untouched
    assert server.requests[0][1] == f"/model/{HAIKU}/converse"
    assert server.requests[0][2]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")

    span = only_llm_span(telemetry)
    assert span.name == f"chat {HAIKU}"
    attrs = span.attributes
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == HAIKU  # the id the caller sent, region prefix and version
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 512
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert attrs[A.GEN_AI_REQUEST_TOP_P] == 0.9
    assert attrs[A.GEN_AI_REQUEST_STOP_SEQUENCES] == ("</answer>",)
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[A.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[A.SERVER_PORT] == int(server.endpoint_url.rsplit(":", 1)[1])
    assert A.GEN_AI_REQUEST_STREAM not in attrs
    # Bedrock's inputTokens (37) excludes the cache: input = 37 + 1843 read + 212 written
    assert_usage(span, input=2092, output=119, cache_read=1843, cache_write=212)
    cost = assert_cost(span, instrumented, HAIKU, CONVERSE)
    assert_token_metrics(telemetry, CONVERSE)
    assert telemetry.sum_of(A.METRIC_OPERATION_COST) == pytest.approx(cost, abs=1e-9)
    (attributes, point), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert point.count == 1
    assert attributes == {
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        A.GEN_AI_REQUEST_MODEL: HAIKU,
        A.SERVER_ADDRESS: "127.0.0.1",
        A.SERVER_PORT: attrs[A.SERVER_PORT],
    }


def test_converse_response_is_what_an_uninstrumented_call_returns(instrumented, server, client):
    server.reply("converse.json", "converse.json")
    instrumented_response = client.converse(modelId=HAIKU, messages=USER)
    otel_tokens.uninstrument()
    plain = client.converse(modelId=HAIKU, messages=USER)
    assert comparable(instrumented_response) == comparable(plain)
    assert type(instrumented_response) is type(plain) is dict


def test_converse_invalid_usage_is_flagged_and_estimated(instrumented, telemetry, server, client):
    server.reply("converse_invalid_usage.json")
    response = client.converse(modelId=HAIKU, messages=USER)
    assert response["usage"]["inputTokens"] == -37  # the caller sees what Bedrock sent
    span = only_llm_span(telemetry)
    assert span.attributes[A.OTEL_TOKENS_USAGE_INVALID] is True
    assert_estimated(span)  # never the negative count, never zero


def test_converse_tool_use_counts_tool_calls(instrumented, telemetry, server, client, records):
    server.reply("converse_tool_use.json")
    response = client.converse(
        modelId=NOVA_PRO,
        messages=[{"role": "user", "content": [{"text": "Weather in Paris and Lyon?"}]}],
        toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]},
    )
    assert [list(block) for block in response["output"]["message"]["content"]] == [["text"], ["toolUse"], ["toolUse"]]
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert_usage(span, input=431, output=67)
    assert_cost(span, instrumented, NOVA_PRO, Usage(input_tokens=431, output_tokens=67))
    (record,) = records
    assert record.result.tool_calls == 2


CALLS = {
    "converse": lambda client: client.converse(modelId=HAIKU, messages=USER),
    "converse_stream": lambda client: client.converse_stream(modelId=HAIKU, messages=USER),
    "invoke_model": lambda client: client.invoke_model(modelId=HAIKU, body=ANTHROPIC_BODY),
    "invoke_model_with_response_stream": lambda client: client.invoke_model_with_response_stream(
        modelId=HAIKU, body=ANTHROPIC_BODY
    ),
}


@pytest.mark.parametrize("call", CALLS)
def test_throttling_error_passes_through_unchanged(instrumented, telemetry, server, client, call):
    server.reply("throttling.json")
    with pytest.raises(ClientError) as raised:
        CALLS[call](client)
    error = raised.value
    assert type(error) is client.exceptions.ThrottlingException
    assert error.response["Error"] == {
        "Code": "ThrottlingException", "Message": "Too many requests, please wait before trying again.",
    }
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "ThrottlingException"
    assert span.status.status_code.name == "ERROR"
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    (attributes, _), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert attributes[A.ERROR_TYPE] == "ThrottlingException"
    assert telemetry.points(A.METRIC_TOKEN_USAGE) == []


def test_error_is_the_object_botocore_raised(telemetry, server, client, monkeypatch):
    raised_inside: list[BaseException] = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict) -> Any:
        try:
            return original(self, operation_name, api_params)
        except ClientError as error:
            raised_inside.append(error)
            raise

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        server.reply("throttling.json")
        with pytest.raises(ClientError) as raised:
            client.converse(modelId=HAIKU, messages=USER)
    finally:
        otel_tokens.uninstrument()
    assert raised.value is raised_inside[0]
    assert only_llm_span(telemetry).attributes[A.ERROR_TYPE] == "ThrottlingException"


# -- ConverseStream ---------------------------------------------------------------------------------
STREAMED = Usage(input_tokens=29 + 1536, output_tokens=58, cache_read_tokens=1536)


def test_converse_stream_events_are_botocores_and_usage_is_exact(instrumented, telemetry, server, client):
    server.reply("converse_stream.json", "converse_stream.json")
    response = client.converse_stream(modelId=HAIKU, messages=USER, inferenceConfig={"maxTokens": 256})
    stream = response["stream"]
    assert isinstance(stream, EventStream)
    events = list(stream)

    otel_tokens.uninstrument()
    plain_response = client.converse_stream(modelId=HAIKU, messages=USER, inferenceConfig={"maxTokens": 256})
    plain = list(plain_response["stream"])
    assert type(plain_response["stream"]) is EventStream
    assert events == plain
    assert [next(iter(event)) for event in events] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
        "messageStop", "metadata",
    ]
    assert comparable({k: v for k, v in response.items() if k != "stream"}) == comparable(
        {k: v for k, v in plain_response.items() if k != "stream"}
    )

    span = only_llm_span(telemetry)
    attrs = span.attributes
    assert attrs[A.GEN_AI_REQUEST_STREAM] is True
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 256
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs
    assert_usage(span, input=1565, output=58, cache_read=1536)
    assert_cost(span, instrumented, HAIKU, STREAMED)
    assert_token_metrics(telemetry, STREAMED)
    (_, ttfc), = telemetry.points(A.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1


def test_converse_stream_tool_use(instrumented, telemetry, server, client, records):
    server.reply("converse_stream_tool_use.json")
    response = client.converse_stream(modelId="us.amazon.nova-lite-v1:0", messages=USER)
    events = list(response["stream"])
    assert events[3]["contentBlockStart"]["start"]["toolUse"]["name"] == "get_weather"
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert_usage(span, input=388, output=41)
    assert_cost(span, instrumented, "us.amazon.nova-lite-v1:0", Usage(input_tokens=388, output_tokens=41))
    (record,) = records
    assert record.result.tool_calls == 1


def test_converse_stream_abandoned_early_is_estimated_and_marked(instrumented, telemetry, server, client):
    server.reply("converse_stream.json")
    response = client.converse_stream(modelId=HAIKU, messages=USER)
    for index, _event in enumerate(response["stream"]):
        if index == 2:
            break
    assert telemetry.llm_spans() == []  # still open: the caller may go on reading
    del response, _event
    gc.collect()
    span = only_llm_span(telemetry)
    assert_estimated(span)  # the usage only comes in the last (metadata) event
    assert A.GEN_AI_RESPONSE_FINISH_REASONS not in span.attributes
    assert A.ERROR_TYPE not in span.attributes


def test_converse_stream_closed_early_finishes_once(instrumented, telemetry, server, client):
    server.reply("converse_stream.json")
    stream = client.converse_stream(modelId=HAIKU, messages=USER)["stream"]
    assert next(iter(stream)) == {"messageStart": {"role": "assistant"}}
    stream.close()
    span = only_llm_span(telemetry)
    assert_estimated(span)
    del stream
    gc.collect()
    assert len(telemetry.llm_spans()) == 1


def test_converse_stream_exception_event_passes_through(instrumented, telemetry, server, client):
    server.reply("converse_stream_throttled.json")
    stream = client.converse_stream(modelId=HAIKU, messages=USER)["stream"]
    seen = []
    with pytest.raises(EventStreamError) as raised:
        for event in stream:
            seen.append(next(iter(event)))
    assert seen == ["messageStart", "contentBlockDelta"]
    assert type(raised.value) is EventStreamError
    assert raised.value.response["Error"]["Code"] == "throttlingException"
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "EventStreamError"
    assert span.status.status_code.name == "ERROR"
    assert_estimated(span)  # cut off after it was billed: what arrived is estimated


# -- InvokeModel: one body shape per model family ----------------------------------------------------------
ANTHROPIC_BODY = invoke_body(
    anthropic_version="bedrock-2023-05-31", max_tokens=400, temperature=0.2, top_k=40,
    system="You are a contracts lawyer.", messages=[{"role": "user", "content": "Summarise the termination clause."}],
)


def test_invoke_model_anthropic(instrumented, telemetry, server, client):
    server.reply("invoke_anthropic.json")
    response = client.invoke_model(modelId=HAIKU, body=ANTHROPIC_BODY, contentType="application/json")
    body = response["body"]
    assert type(body) is StreamingBody
    assert json.loads(body.read()) == load("invoke_anthropic.json")["body"]  # the caller still reads it all
    span = only_llm_span(telemetry)
    attrs = span.attributes
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == HAIKU
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == "claude-3-5-haiku-20241022"
    assert attrs[A.GEN_AI_RESPONSE_ID] == "msg_bdrk_01XyZ8qW3nR7vK2mP5sT9bLc"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 400
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[A.GEN_AI_REQUEST_TOP_K] == 40
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    usage = Usage(input_tokens=41 + 1911, output_tokens=96, cache_read_tokens=1911)
    assert_usage(span, input=1952, output=96, cache_read=1911)
    assert_cost(span, instrumented, "claude-3-5-haiku-20241022", usage)
    assert_token_metrics(telemetry, usage)


def test_invoke_model_body_reads_like_botocores(instrumented, server, client):
    server.reply("invoke_nova.json", "invoke_nova.json")
    body_json = invoke_body(messages=[{"role": "user", "content": [{"text": "Explain a haiku."}]}])
    ours = client.invoke_model(modelId=NOVA_PRO, body=body_json)
    otel_tokens.uninstrument()
    plain = client.invoke_model(modelId=NOVA_PRO, body=body_json)
    assert type(ours["body"]) is type(plain["body"]) is StreamingBody
    # read in parts, then the rest, like a caller streaming the body
    first, rest = ours["body"].read(10), ours["body"].read()
    assert first + rest == plain["body"].read()
    assert ours["body"].read() == b""
    assert comparable({k: v for k, v in ours.items() if k != "body"}) == comparable(
        {k: v for k, v in plain.items() if k != "body"}
    )


def test_invoke_model_body_iterates_like_botocores(instrumented, server, client):
    server.reply("invoke_llama.json", "invoke_llama.json")
    body_json = invoke_body(prompt="Explain photosynthesis.", max_gen_len=512)
    lines = list(client.invoke_model(modelId="meta.llama3-3-70b-instruct-v1:0", body=body_json)["body"].iter_lines())
    with client.invoke_model(modelId="meta.llama3-3-70b-instruct-v1:0", body=body_json)["body"] as raw:
        whole = raw.read()
    assert lines == [whole]


def test_invoke_model_amazon_nova(instrumented, telemetry, server, client):
    server.reply("invoke_nova.json")
    client.invoke_model(
        modelId=NOVA_PRO,
        body=invoke_body(
            system=[{"text": "Be brief."}], messages=[{"role": "user", "content": [{"text": "Explain a haiku."}]}],
            inferenceConfig={"max_new_tokens": 300, "temperature": 0.7, "topP": 0.95},
        ),
    )
    span = only_llm_span(telemetry)
    attrs = span.attributes
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == 300
    assert attrs[A.GEN_AI_REQUEST_TOP_P] == 0.95
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert_usage(span, input=23, output=151)
    assert_cost(span, instrumented, NOVA_PRO, Usage(input_tokens=23, output_tokens=151))


def test_invoke_model_meta_llama(instrumented, telemetry, server, client):
    model = "us.meta.llama3-3-70b-instruct-v1:0"
    server.reply("invoke_llama.json")
    client.invoke_model(modelId=model, body=invoke_body(prompt="Explain photosynthesis.", max_gen_len=512, top_p=0.8))
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 512
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert_usage(span, input=53, output=211)
    assert_cost(span, instrumented, model, Usage(input_tokens=53, output_tokens=211))


def test_invoke_model_mistral_usage_from_bedrock_headers(instrumented, telemetry, server, client):
    model = "mistral.mistral-7b-instruct-v0:2"
    server.reply("invoke_mistral.json")
    response = client.invoke_model(modelId=model, body=invoke_body(prompt="<s>[INST] Capital of France? [/INST]"))
    assert "usage" not in json.loads(response["body"].read())  # Mistral bodies carry no usage
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert_usage(span, input=34, output=127)
    assert_cost(span, instrumented, model, Usage(input_tokens=34, output_tokens=127))


def test_invoke_model_cohere_is_counted_and_flagged_unpriced(instrumented, telemetry, server, client):
    model = "cohere.command-r-v1:0"
    server.reply("invoke_cohere.json")
    client.invoke_model(modelId=model, body=invoke_body(message="Summarise the termination clause.", max_tokens=300))
    span = only_llm_span(telemetry)
    attrs = span.attributes
    assert attrs[A.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[A.GEN_AI_RESPONSE_ID] == "7f3c9a2e-1b4d-4c8e-9f6a-2d5e8b1c4a70"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("COMPLETE",)
    assert_usage(span, input=67, output=143)  # meta.billed_units
    # genai-prices has no Cohere model on AWS: cost unknown and flagged, never $0
    assert instrumented.price_book.cost("aws.bedrock", model, Usage(input_tokens=67, output_tokens=143)) is None
    assert attrs[A.OTEL_TOKENS_PRICE_UNKNOWN] is True
    assert A.GEN_AI_USAGE_COST_AMOUNT not in attrs
    assert telemetry.sum_of(A.METRIC_UNPRICED_CALLS) == 1


def test_invoke_model_titan_embeddings(instrumented, telemetry, server, client):
    model = "amazon.titan-embed-text-v2:0"
    server.reply("invoke_titan_embed.json")
    response = client.invoke_model(modelId=model, body=invoke_body(inputText="Termination clause", dimensions=256))
    assert len(json.loads(response["body"].read())["embedding"]) == 4
    span = only_llm_span(telemetry)
    assert span.name == f"embeddings {model}"
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 17
    assert_cost(span, instrumented, model, Usage(input_tokens=17))


def test_invoke_model_anthropic_tool_use(instrumented, telemetry, server, client, records):
    model = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    server.reply("invoke_anthropic_tool_use.json")
    response = client.invoke_model(modelId=model, body=ANTHROPIC_BODY)
    assert json.loads(response["body"].read())["content"][1]["type"] == "tool_use"
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert_usage(span, input=512, output=88)
    assert_cost(span, instrumented, model, Usage(input_tokens=512, output_tokens=88))
    (record,) = records
    assert record.result.tool_calls == 1


def test_invoke_model_body_read_error_reaches_the_caller_on_its_read(instrumented, telemetry, server, client):
    server.reply("invoke_truncated.json")
    response = client.invoke_model(modelId=HAIKU, body=ANTHROPIC_BODY)
    body = response["body"]
    assert type(body) is StreamingBody
    with pytest.raises(ResponseStreamingError) as first:
        body.read()
    otel_tokens.uninstrument()
    server.reply("invoke_truncated.json")
    with pytest.raises(ResponseStreamingError) as plain:
        client.invoke_model(modelId=HAIKU, body=ANTHROPIC_BODY)["body"].read()
    assert type(first.value) is type(plain.value)
    assert str(first.value).split(":")[0] == str(plain.value).split(":")[0]
    # The body never arrived whole; Bedrock's usage headers did.
    assert_usage(only_llm_span(telemetry), input=1952, output=96, cache_read=1911)


def test_invoke_model_file_body_is_left_to_the_sdk(instrumented, telemetry, server, client):
    server.reply("invoke_llama.json")
    sent = ANTHROPIC_BODY.encode()
    client.invoke_model(modelId="meta.llama3-3-70b-instruct-v1:0", body=io.BytesIO(sent))
    assert server.requests[0][3] == sent  # we did not read the caller's file
    assert_usage(only_llm_span(telemetry), input=53, output=211)


# -- InvokeModelWithResponseStream ---------------------------------------------------------------------
def test_invoke_stream_anthropic_uses_invocation_metrics(instrumented, telemetry, server, client):
    server.reply("invoke_stream_anthropic.json", "invoke_stream_anthropic.json")
    response = client.invoke_model_with_response_stream(modelId=HAIKU, body=ANTHROPIC_BODY)
    assert isinstance(response["body"], EventStream)
    events = list(response["body"])
    otel_tokens.uninstrument()
    plain = list(client.invoke_model_with_response_stream(modelId=HAIKU, body=ANTHROPIC_BODY)["body"])
    assert events == plain
    assert [chunk_json(event)["type"] for event in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    span = only_llm_span(telemetry)
    attrs = span.attributes
    assert attrs[A.GEN_AI_REQUEST_STREAM] is True
    assert attrs[A.GEN_AI_RESPONSE_ID] == "msg_bdrk_017Yq4WmP2kR8sT3vX6zB9cD"
    assert attrs[A.GEN_AI_RESPONSE_MODEL] == "claude-3-5-haiku-20241022"
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    usage = Usage(input_tokens=26 + 1287, output_tokens=73, cache_write_tokens=1287)
    assert_usage(span, input=1313, output=73, cache_write=1287)
    assert_cost(span, instrumented, "claude-3-5-haiku-20241022", usage)
    assert_token_metrics(telemetry, usage)


def test_invoke_stream_meta_llama(instrumented, telemetry, server, client):
    model = "meta.llama3-1-8b-instruct-v1:0"
    server.reply("invoke_stream_llama.json")
    events = list(client.invoke_model_with_response_stream(modelId=model, body=invoke_body(prompt="Lists?"))["body"])
    assert "".join(chunk_json(event)["generation"] for event in events) == "Lists keep their order."
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert_usage(span, input=19, output=44)
    assert_cost(span, instrumented, model, Usage(input_tokens=19, output_tokens=44))


def test_invoke_stream_anthropic_tool_use(instrumented, telemetry, server, client, records):
    model = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
    server.reply("invoke_stream_anthropic_tool_use.json")
    events = list(client.invoke_model_with_response_stream(modelId=model, body=ANTHROPIC_BODY)["body"])
    assert len(events) == 9
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert_usage(span, input=467, output=91)
    assert_cost(span, instrumented, model, Usage(input_tokens=467, output_tokens=91))
    (record,) = records
    assert record.result.tool_calls == 2


def test_invoke_stream_amazon_nova(instrumented, telemetry, server, client):
    server.reply("invoke_stream_nova.json")
    body = invoke_body(messages=[{"role": "user", "content": [{"text": "Explain a haiku."}]}])
    events = list(client.invoke_model_with_response_stream(modelId=NOVA_PRO, body=body)["body"])
    assert [next(iter(chunk_json(event))) for event in events][:2] == ["messageStart", "contentBlockDelta"]
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert_usage(span, input=31, output=18)
    assert_cost(span, instrumented, NOVA_PRO, Usage(input_tokens=31, output_tokens=18))


def test_invoke_stream_abandoned_early_is_estimated_and_marked(instrumented, telemetry, server, client):
    server.reply("invoke_stream_anthropic.json")
    body = client.invoke_model_with_response_stream(modelId=HAIKU, body=ANTHROPIC_BODY)["body"]
    for index, _event in enumerate(body):
        if index == 3:
            break
    assert telemetry.llm_spans() == []
    del body, _event
    gc.collect()
    span = only_llm_span(telemetry)
    assert_estimated(span)  # the invocation metrics come with the last chunk


def test_invoke_stream_exception_event_passes_through(instrumented, telemetry, server, client):
    server.reply("invoke_stream_overloaded.json")
    body = client.invoke_model_with_response_stream(modelId="meta.llama3-1-8b-instruct-v1:0", body=invoke_body(prompt="x"))
    seen = []
    with pytest.raises(EventStreamError) as raised:
        for event in body["body"]:
            seen.append(chunk_json(event)["generation"])
    assert seen == ["Half"]
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    span = only_llm_span(telemetry)
    assert span.attributes[A.ERROR_TYPE] == "EventStreamError"
    assert_estimated(span)


# -- what is not a Bedrock inference call ---------------------------------------------------------------
def test_other_services_and_operations_pass_straight_through(instrumented, telemetry, server, monkeypatch):
    from otel_tokens._internal.providers import bedrock as adapter

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a call that is not Bedrock inference reached the adapter")

    monkeypatch.setattr(adapter.BedrockRuntime, "request", never)
    control = make_client(server, "bedrock")
    models = control.list_foundation_models()
    assert models["modelSummaries"][0]["modelId"] == "amazon.nova-pro-v1:0"
    runtime = make_client(server)
    server.reply("count_tokens.json")
    counted = runtime.count_tokens(
        modelId=HAIKU, input={"converse": {"messages": USER}},
    )
    assert counted["inputTokens"] == 19
    assert telemetry.llm_spans() == []
    assert telemetry.points(A.METRIC_OPERATION_DURATION) == []


# -- content, lifecycle -------------------------------------------------------------------------------
def test_no_content_and_no_secret_by_default(instrumented, telemetry, server, client):
    server.reply("converse.json", "invoke_anthropic.json")
    client.converse(modelId=HAIKU, system=[{"text": "secret system"}], messages=USER)
    client.invoke_model(modelId=HAIKU, body=ANTHROPIC_BODY)
    text = all_attribute_text(telemetry)
    assert "termination clause" not in text and "secret system" not in text and "30 days" not in text
    assert SECRET_KEY not in text and "AKIAIOSFODNN7EXAMPLE" not in text


def test_content_capture_opt_in(telemetry, server, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        server.reply("converse.json", "converse_stream.json")
        client.converse(modelId=HAIKU, system=[{"text": "Be brief."}], messages=USER)
        list(client.converse_stream(modelId=HAIKU, messages=USER)["stream"])
    finally:
        otel_tokens.uninstrument()
    first, second = sorted(telemetry.llm_spans(), key=lambda s: s.start_time)
    messages = json.loads(first.attributes[A.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["parts"][0]["content"] == "Summarise the termination clause."
    assert "30 days" in first.attributes[A.GEN_AI_OUTPUT_MESSAGES]
    assert "Streams arrive event by event." in second.attributes[A.GEN_AI_OUTPUT_MESSAGES]
    assert SECRET_KEY not in all_attribute_text(telemetry)


def test_uninstrument_restores_make_api_call_and_double_instrument_wraps_once(telemetry, server, client):
    original = botocore.client.BaseClient._make_api_call
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    otel_tokens.instrument()  # idempotent
    try:
        wrapped = botocore.client.BaseClient._make_api_call
        assert wrapped is not original
        assert wrapped.__wrapped__ is original  # one wrapper, not two
        server.reply("converse.json")
        client.converse(modelId=HAIKU, messages=USER)
        assert len(telemetry.llm_spans()) == 1
    finally:
        otel_tokens.uninstrument()
        otel_tokens.uninstrument()
    assert botocore.client.BaseClient._make_api_call is original
    server.reply("converse.json")
    client.converse(modelId=HAIKU, messages=USER)  # a client made while instrumented
    assert len(telemetry.llm_spans()) == 1


def test_client_made_before_instrument_is_recorded(telemetry, server):
    early = make_client(server)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        server.reply("converse.json")
        early.converse(modelId=HAIKU, messages=USER)
    finally:
        otel_tokens.uninstrument()
    assert_usage(only_llm_span(telemetry), input=2092, output=119, cache_read=1843, cache_write=212)


def test_agent_attribution(instrumented, telemetry, server, client):
    server.reply("converse.json", "invoke_llama.json")
    with otel_tokens.agent("drafter"):
        client.converse(modelId=HAIKU, messages=USER)
        client.invoke_model(modelId="us.meta.llama3-3-70b-instruct-v1:0", body=invoke_body(prompt="x"))
    for span in telemetry.llm_spans():
        assert span.attributes[A.GEN_AI_AGENT_NAME] == "drafter"
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__agent__name="drafter", gen_ai__token__type="input") == (
        2092 + 53
    )


# -- fail open ---------------------------------------------------------------------------------------
@pytest.fixture
def users_mode(monkeypatch):
    """Internal errors logged, not raised: what users run."""
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")


def test_a_broken_adapter_never_breaks_the_call(instrumented, telemetry, server, client, users_mode, monkeypatch, caplog):
    from otel_tokens._internal.providers import bedrock as adapter

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(adapter.StreamAccumulator, "add", broken)
    monkeypatch.setattr(adapter, "body_result", broken)
    server.reply("converse_stream.json", "invoke_anthropic.json")
    events = list(client.converse_stream(modelId=HAIKU, messages=USER)["stream"])
    body = client.invoke_model(modelId=HAIKU, body=ANTHROPIC_BODY)["body"].read()
    assert len(events) == 7
    assert json.loads(body)["usage"]["output_tokens"] == 96
    assert "adapter bug" in caplog.text
    assert len(telemetry.llm_spans()) == 2  # both calls still finished, once each


def test_importing_otel_tokens_imports_no_botocore_and_instrument_waits_for_it(tmp_path):
    code = textwrap.dedent("""
        import sys, otel_tokens
        otel_tokens.instrument()
        print("botocore" in sys.modules)
        import boto3, botocore.client, wrapt
        print(isinstance(botocore.client.BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper))
    """)
    env = {"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none",
           "OTEL_METRICS_EXPORTER": "none", "AWS_CONFIG_FILE": str(tmp_path / "none")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_entry_point_for_the_opentelemetry_launcher():
    from importlib.metadata import entry_points

    from otel_tokens.instrumentation.bedrock import BedrockInstrumentor

    (point,) = [p for p in entry_points(group="opentelemetry_instrumentor") if p.name == "otel_tokens_bedrock"]
    assert point.load() is BedrockInstrumentor


def test_converse_service_tier_is_recorded_and_an_unpriced_tier_flagged(instrumented, telemetry, server, client):
    server.reply("converse_priority.json")
    response = client.converse(modelId=HAIKU, messages=USER)
    assert response["serviceTier"] == {"type": "priority"}
    span = only_llm_span(telemetry)
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "priority"
    # genai-prices has no Bedrock tier prices: the standard rates, and the call flagged
    assert attrs[A.OTEL_TOKENS_COST_INCOMPLETE] is True
    assert attrs[A.OTEL_TOKENS_COST_UNPRICED_DIMENSIONS] == ("service_tier",)
    standard = instrumented.price_book.cost("aws.bedrock", HAIKU, CONVERSE)
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(standard, abs=1e-12)
    assert telemetry.sum_of(A.METRIC_COST_INCOMPLETE_CALLS) == 1
