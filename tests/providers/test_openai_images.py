"""OpenAI Images (``images.generate``, ``images.edit``): the real SDK over its own HTTP stack, answered
with recorded responses in OpenAI's wire format (JSON, multipart requests for edits, SSE for streams).

Hand-computed bills use OpenAI's published per-million-token rates: gpt-image-1 text input $5, image input
$10, image output $40; gpt-image-1.5 text input $5, image input $8, text output $10, image output $32.
"""

from __future__ import annotations

import io
import logging

import openai
import pytest

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage
from tests.providers.assertions import all_attribute_text, assert_usage, reference_cost
from tests.providers.assertions import only_llm_span as only_span
from tests.providers.openai_mock import OpenAIMock, load, sse_events

_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # what the caller uploads to edit; never read by otel-tokens
_B64 = load("images_generate.json")["data"][0]["b64_json"]


@pytest.fixture
def mock() -> OpenAIMock:
    return OpenAIMock()


def _upload() -> tuple[str, io.BytesIO, str]:
    return ("lighthouse.png", io.BytesIO(_PNG), "image/png")


def assert_billed(span, hand_computed_usd: float) -> float:
    """The recorded cost over the bill computed by hand from the published rates is 1.000."""
    recorded = span.attributes[A.GEN_AI_USAGE_COST_AMOUNT]
    assert recorded / hand_computed_usd == pytest.approx(1.0, rel=1e-9), (recorded, hand_computed_usd)
    return recorded / hand_computed_usd


def assert_calc_price(span, model: str, usage: Usage) -> None:
    """The same cost as ``genai_prices.calc_price`` with the same usage, to 1e-9 USD."""
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost(model, usage, "openai"), abs=1e-9
    )


def _uninstrumented(telemetry, call):
    """What the SDK returns without otel-tokens for the same recording, to compare the caller's object."""
    otel_tokens.uninstrument()
    try:
        return call()
    finally:
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)


# -- generate --------------------------------------------------------------------------------------
def test_generate_is_priced_by_text_input_and_image_output_tokens(instrumented, telemetry, mock):
    client = mock.client()
    response = client.images.generate(model="gpt-image-1", prompt="a lighthouse at dawn", quality="high")

    assert type(response) is openai.types.ImagesResponse
    assert response.model_dump(exclude_unset=True) == load("images_generate.json")
    span = only_span(telemetry)
    assert span.name == "generate_content gpt-image-1"
    attrs = span.attributes
    assert attrs[A.GEN_AI_OPERATION_NAME] == "generate_content"
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "gpt-image-1"
    assert attrs[A.GEN_AI_OUTPUT_TYPE] == "image"
    assert A.GEN_AI_REQUEST_CHOICE_COUNT not in attrs  # n not given (one image)
    assert A.GEN_AI_RESPONSE_MODEL not in attrs  # an ImagesResponse names no model
    assert attrs[A.SERVER_ADDRESS] == "api.openai.com"
    assert_usage(span, input=50, output=4160)
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in attrs
    # 50 text tokens at $5, 4,160 image tokens at $40 per million (genai-prices lists that as output)
    assert_billed(span, (50 * 5 + 4160 * 40) / 1e6)
    assert_calc_price(span, "gpt-image-1", Usage(50, 4160, details=(("input_image_tokens", 0),)))
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == 4160
    assert telemetry.sum_of(A.METRIC_COST_USD) == pytest.approx(0.16665, abs=1e-12)
    (attributes, _), = telemetry.points(A.METRIC_OPERATION_DURATION)
    assert attributes[A.GEN_AI_OPERATION_NAME] == "generate_content"

    # The caller's object is the SDK's own, equal to what the uninstrumented SDK returns.
    plain = _uninstrumented(telemetry, lambda: client.images.generate(model="gpt-image-1", prompt="a lighthouse at dawn"))
    assert type(plain) is type(response) and plain == response


def test_text_and_image_output_tokens_each_at_their_rate(instrumented, telemetry, mock):
    mock.reply("images_generate_text_and_image_output.json")
    response = mock.client().images.generate(model="gpt-image-1.5", prompt="two lighthouses", n=2)
    assert len(response.data) == 2
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert_usage(span, input=44, output=2290)
    # 44 text in at $5; output: 178 text tokens at $10, 2,112 image tokens at $32 per million
    assert_billed(span, (44 * 5 + 178 * 10 + 2112 * 32) / 1e6)
    assert_calc_price(span, "gpt-image-1.5", Usage(44, 2290, details=(("output_image_tokens", 2112),)))
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in span.attributes


async def test_async_generate(instrumented, telemetry, mock):
    response = await mock.async_client().images.generate(model="gpt-image-1", prompt="a lighthouse at dawn")
    assert type(response) is openai.types.ImagesResponse
    span = only_span(telemetry)
    assert_usage(span, input=50, output=4160)
    assert_billed(span, (50 * 5 + 4160 * 40) / 1e6)


# -- edit (multipart) ------------------------------------------------------------------------------
def test_edit_prices_input_image_tokens_at_the_image_rate(instrumented, telemetry, mock):
    response = mock.client().images.edit(model="gpt-image-1", image=_upload(), prompt="add a sailing boat")

    assert type(response) is openai.types.ImagesResponse
    path, form, headers = mock.requests[0]
    assert path.endswith("/images/edits") and headers["content-type"].startswith("multipart/form-data")
    assert form["image"] == {"filename": "lighthouse.png", "size": len(_PNG)}  # the upload reached the API
    assert form["prompt"] == "add a sailing boat"
    span = only_span(telemetry)
    assert span.name == "generate_content gpt-image-1"
    assert span.attributes[A.GEN_AI_OUTPUT_TYPE] == "image"
    assert_usage(span, input=350, output=1056)
    # 27 text tokens at $5, 323 input image tokens at $10, 1,056 output image tokens at $40 per million
    assert_billed(span, (27 * 5 + 323 * 10 + 1056 * 40) / 1e6)
    assert_calc_price(span, "gpt-image-1", Usage(350, 1056, details=(("input_image_tokens", 323),)))


async def test_async_edit_with_several_images(instrumented, telemetry, mock):
    response = await mock.async_client().images.edit(
        model="gpt-image-1", image=[_upload(), _upload()], prompt="merge them", n=1
    )
    assert type(response) is openai.types.ImagesResponse
    assert len(mock.requests[0][1]["image[]"]) == 2
    span = only_span(telemetry)
    assert A.GEN_AI_REQUEST_CHOICE_COUNT not in span.attributes  # n=1 is the default: not set
    assert_billed(span, (27 * 5 + 323 * 10 + 1056 * 40) / 1e6)


# -- streams ---------------------------------------------------------------------------------------
def test_generate_stream_takes_usage_from_the_completed_event(instrumented, telemetry, mock):
    stream = mock.client().images.generate(model="gpt-image-1", prompt="a lighthouse", stream=True, partial_images=2)
    assert isinstance(stream, openai.Stream)
    events = list(stream)
    assert [event.type for event in events] == [e["type"] for e in sse_events("images_generate_stream.sse")]
    assert events[-1].b64_json == _B64
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in span.attributes
    assert_usage(span, input=31, output=272)
    assert_billed(span, (31 * 5 + 272 * 40) / 1e6)
    assert_calc_price(span, "gpt-image-1", Usage(31, 272))


async def test_async_edit_stream(instrumented, telemetry, mock):
    stream = await mock.async_client().images.edit(
        model="gpt-image-1", image=_upload(), prompt="add a sailing boat", stream=True, partial_images=1
    )
    assert isinstance(stream, openai.AsyncStream)
    types = [event.type async for event in stream]
    assert types == ["image_edit.partial_image", "image_edit.completed"]
    assert mock.requests[0][1]["stream"] == "true"
    span = only_span(telemetry)
    assert_usage(span, input=350, output=1056)
    assert_billed(span, (27 * 5 + 323 * 10 + 1056 * 40) / 1e6)


def test_a_stream_of_several_images_is_summed_and_marked_estimated(instrumented, telemetry, mock):
    # The API does not say whether each completed event's usage is its image's or the whole call's.
    mock.reply("images_generate_stream_n2.sse")
    events = list(mock.client().images.generate(model="gpt-image-1", prompt="two lighthouses", n=2, stream=True))
    assert [event.type for event in events] == ["image_generation.completed"] * 2
    span = only_span(telemetry)
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 62 and span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 544
    assert span.attributes[A.OTEL_TOKENS_USAGE_ESTIMATED] is True
    assert_billed(span, (62 * 5 + 544 * 40) / 1e6)


def test_stream_left_before_its_image_is_usage_unknown_not_estimated(instrumented, telemetry, mock):
    stream = mock.client().images.generate(model="gpt-image-1", prompt="a lighthouse", stream=True, partial_images=2)
    assert next(iter(stream)).type == "image_generation.partial_image"
    stream.close()
    attrs = only_span(telemetry).attributes
    assert attrs[A.OTEL_TOKENS_USAGE_UNKNOWN] is True
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in attrs and A.GEN_AI_USAGE_COST_AMOUNT not in attrs
    assert telemetry.sum_of(A.METRIC_USAGE_UNKNOWN_CALLS) == 1


# -- DALL-E: no usage ------------------------------------------------------------------------------
def test_dall_e_without_usage_is_flagged_usage_unknown_never_zero(instrumented, telemetry, mock):
    """DALL-E is billed per image and reports no usage; genai-prices has no per-image price. The call is
    counted and flagged, not estimated from the prompt's text and not costed at $0."""
    mock.reply("images_dalle3.json")
    response = mock.client().images.generate(model="dall-e-3", prompt="a lighthouse", size="1024x1024")
    assert response.usage is None and response.data[0].revised_prompt
    span = only_span(telemetry)
    attrs = span.attributes
    assert span.name == "generate_content dall-e-3"
    assert attrs[A.OTEL_TOKENS_USAGE_UNKNOWN] is True
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in attrs
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in attrs and A.GEN_AI_USAGE_COST_AMOUNT not in attrs
    assert telemetry.sum_of(A.METRIC_USAGE_UNKNOWN_CALLS) == 1
    assert telemetry.points(A.METRIC_COST_USD) == []
    stats = otel_tokens.get_statistics()
    assert (stats["total_calls"], stats["usage_unknown_calls"], stats["input_tokens"]) == (1, 1, 0)
    assert stats["by_model"]["dall-e-3"]["calls"] == 1


def test_a_request_without_a_model_is_counted_with_price_unknown(instrumented, telemetry, mock):
    """openai 3.x states no default model and the response names none: the tokens are exact, the price
    unknown (flagged), never a guessed model's."""
    mock.client().images.generate(prompt="a lighthouse")
    span = only_span(telemetry)
    assert A.GEN_AI_REQUEST_MODEL not in span.attributes
    assert_usage(span, input=50, output=4160)
    assert span.attributes[A.OTEL_TOKENS_PRICE_UNKNOWN] is True
    assert A.GEN_AI_USAGE_COST_AMOUNT not in span.attributes


# -- prices you set --------------------------------------------------------------------------------
def test_your_image_rates_beat_genai_prices(instrumented, telemetry, mock):
    otel_tokens.set_price("gpt-image-1", input=4, output=30, input_image=8, output_image=32)
    mock.client().images.edit(model="gpt-image-1", image=_upload(), prompt="add a sailing boat")
    mock.reply("images_generate_text_and_image_output.json")
    mock.client().images.generate(model="gpt-image-1", prompt="two lighthouses", n=2)
    edit, generate = telemetry.llm_spans()
    # gpt-image-1's edit reports no output split: all 1,056 output tokens at the output rate
    assert_billed(edit, (27 * 4 + 323 * 8 + 1056 * 30) / 1e6)
    assert_billed(generate, (44 * 4 + 178 * 30 + 2112 * 32) / 1e6)


# -- privacy ---------------------------------------------------------------------------------------
def test_no_prompt_by_default_and_never_image_data(telemetry, mock, monkeypatch, caplog):
    for capture in (None, "SPAN_AND_EVENT"):
        if capture:
            monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", capture)
        telemetry.exporter.clear()
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            with caplog.at_level(logging.DEBUG, logger="otel_tokens"):
                client = mock.client()
                client.images.generate(model="gpt-image-1", prompt="my secret lighthouse")
                client.images.edit(model="gpt-image-1", image=_upload(), prompt="my secret boat")
                list(client.images.generate(model="gpt-image-1", prompt="my secret stream", stream=True))
        finally:
            otel_tokens.uninstrument()
        text = all_attribute_text(telemetry) + caplog.text
        assert len(telemetry.llm_spans()) == 3
        assert _B64 not in text and _B64[:24] not in text  # the image data, even with capture on
        assert "lighthouse.png" not in text and "sk-test-SECRET" not in text
        if capture:
            assert "my secret lighthouse" in text and "my secret boat" in text and "my secret stream" in text
            for span in telemetry.llm_spans():
                assert A.GEN_AI_OUTPUT_MESSAGES not in span.attributes
        else:
            assert "my secret" not in text
