"""OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental: the GenAI conventions' newer metric set
(gen_ai.client.inference.*, gen_ai.client.embeddings.*) instead of core v1.37-v1.41's, checked against the
conventions' names, instrument kinds, units and required attributes, through the real OpenAI SDK."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.sdk.metrics.export import Histogram, Sum

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.base.settings import Settings
from tests.providers.openai_mock import OpenAIMock

OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
CORE_HISTOGRAMS = (A.METRIC_TOKEN_USAGE, A.METRIC_OPERATION_DURATION, A.METRIC_TIME_TO_FIRST_CHUNK)
# name -> (instrument, unit), as the conventions define them.
LATEST = {
    A.METRIC_INFERENCE_DURATION: ("histogram", "s"),
    A.METRIC_EMBEDDINGS_DURATION: ("histogram", "s"),
    A.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: ("histogram", "s"),
    A.METRIC_INFERENCE_OPERATION_INPUT_TOKENS: ("histogram", "{token}"),
    A.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS: ("histogram", "{token}"),
    A.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS: ("histogram", "{token}"),
    A.METRIC_INFERENCE_USAGE_INPUT_TOKENS: ("counter", "{token}"),
    A.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS: ("counter", "{token}"),
    A.METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS: ("counter", "{token}"),
    A.METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS: ("counter", "{token}"),
    A.METRIC_INFERENCE_USAGE_REASONING_TOKENS: ("counter", "{token}"),
}
CALL = {
    A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o",
    A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06", A.SERVER_ADDRESS: "api.openai.com", A.SERVER_PORT: 443,
}


@pytest.fixture
def latest(telemetry, monkeypatch):
    monkeypatch.setenv(OPT_IN, "http, gen_ai_latest_experimental")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield
    otel_tokens.uninstrument()


def metrics(telemetry) -> dict:
    """name -> (instrument, unit) of every otel_tokens metric exported."""
    found = {}
    for resource_metrics in telemetry.reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if scope_metrics.scope.name == "otel_tokens":
                    data = metric.data
                    kind = ("histogram" if isinstance(data, Histogram)
                            else "counter" if isinstance(data, Sum) and data.is_monotonic else type(data).__name__)
                    found[metric.name] = (kind, metric.unit)
    return found


def by_modality(telemetry, name: str) -> dict[str, int]:
    return {attributes[A.GEN_AI_TOKEN_MODALITY]: point.value for attributes, point in telemetry.points(name)}


def test_a_chat_call_writes_the_latest_set_instead_of_the_core_one(latest, telemetry):
    OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    exported = metrics(telemetry)
    assert not set(CORE_HISTOGRAMS) & set(exported)  # instead of, not as well as (the conventions' plan)
    for name in (A.METRIC_INFERENCE_DURATION, A.METRIC_INFERENCE_OPERATION_INPUT_TOKENS,
                 A.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, A.METRIC_INFERENCE_USAGE_INPUT_TOKENS,
                 A.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS, A.METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS):
        assert exported[name] == LATEST[name], name
    # The cost histogram and otel-tokens' counters stay in both sets.
    assert exported[A.METRIC_OPERATION_COST] == ("histogram", "{cost}")
    assert exported[A.METRIC_TOKEN_COUNT] == ("counter", "{token}")

    (attributes, point), = telemetry.points(A.METRIC_INFERENCE_DURATION)
    assert attributes == CALL and point.count == 1
    # Per-operation token histograms: one point per call, no modality, no token type.
    for name, tokens in ((A.METRIC_INFERENCE_OPERATION_INPUT_TOKENS, 1250),
                         (A.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, 42)):
        (attributes, point), = telemetry.points(name)
        assert attributes == CALL and (point.count, point.sum) == (1, tokens)
        assert list(point.explicit_bounds) == list(A.TOKEN_USAGE_BUCKETS)
    # Usage counters: gen_ai.token.modality required; OpenAI gave no breakdown, so unknown (never guessed).
    for name, tokens in ((A.METRIC_INFERENCE_USAGE_INPUT_TOKENS, 1250), (A.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS, 42),
                         (A.METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS, 1024)):
        (attributes, point), = telemetry.points(name)
        assert attributes == {**CALL, A.GEN_AI_TOKEN_MODALITY: "unknown"}, name
        assert point.value == tokens
    # Subset counters with nothing to count have no series.
    assert telemetry.points(A.METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS) == []
    assert telemetry.points(A.METRIC_INFERENCE_USAGE_REASONING_TOKENS) == []


def test_counters_accumulate_and_reasoning_is_counted(latest, telemetry):
    mock = OpenAIMock()
    mock.reply("chat_reasoning.json").reply("chat_reasoning.json")
    client = mock.client()
    for _ in range(2):
        response = client.chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": "x"}])
    usage = response.usage
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0
    assert by_modality(telemetry, A.METRIC_INFERENCE_USAGE_REASONING_TOKENS) == {"unknown": 2 * reasoning}
    assert by_modality(telemetry, A.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS) == {"unknown": 2 * usage.completion_tokens}
    (_, point), = telemetry.points(A.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS)
    assert (point.count, point.sum) == (2, 2 * usage.completion_tokens)


def test_audio_tokens_the_response_breaks_out_are_counted_as_audio(latest, telemetry):
    mock = OpenAIMock()
    mock.reply("chat_audio.json")
    mock.client().chat.completions.create(model="gpt-audio", messages=[{"role": "user", "content": "x"}],
                                          modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"})
    # prompt 1000 (400 audio), completion 300 (200 audio): the rest is not said to be text, so unknown.
    assert by_modality(telemetry, A.METRIC_INFERENCE_USAGE_INPUT_TOKENS) == {"audio": 400, "unknown": 600}
    assert by_modality(telemetry, A.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS) == {"audio": 200, "unknown": 100}
    (_, point), = telemetry.points(A.METRIC_INFERENCE_OPERATION_INPUT_TOKENS)
    assert point.sum == 1000  # the histogram has no modality


def test_a_stream_records_inference_time_to_first_chunk(latest, telemetry):
    stream = OpenAIMock().client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
    list(stream)
    assert metrics(telemetry)[A.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK] == ("histogram", "s")
    (attributes, point), = telemetry.points(A.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK)
    assert point.count == 1 and attributes[A.GEN_AI_OPERATION_NAME] == "chat"
    assert A.METRIC_TIME_TO_FIRST_CHUNK not in metrics(telemetry)


def test_embeddings_get_the_embeddings_metrics_only(latest, telemetry):
    OpenAIMock().client().embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    exported = metrics(telemetry)
    assert exported[A.METRIC_EMBEDDINGS_DURATION] == LATEST[A.METRIC_EMBEDDINGS_DURATION]
    assert exported[A.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS] == LATEST[A.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS]
    (attributes, point), = telemetry.points(A.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS)
    assert attributes[A.GEN_AI_OPERATION_NAME] == "embeddings" and attributes[A.GEN_AI_PROVIDER_NAME] == "openai"
    assert (point.count, point.sum) == (1, 17)
    # Not an inference operation: no inference duration, histograms or usage counters.
    for name in (A.METRIC_INFERENCE_DURATION, A.METRIC_INFERENCE_OPERATION_INPUT_TOKENS,
                 A.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, A.METRIC_INFERENCE_USAGE_INPUT_TOKENS,
                 A.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS, *CORE_HISTOGRAMS):
        assert telemetry.points(name) == [], name


def test_a_failed_call_has_a_duration_with_its_error_and_no_token_histograms(latest, telemetry):
    mock = OpenAIMock()
    mock.reply("error_429.json", status=429)
    with pytest.raises(openai.RateLimitError):
        mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    (attributes, point), = telemetry.points(A.METRIC_INFERENCE_DURATION)
    assert attributes[A.ERROR_TYPE] == "RateLimitError" and point.count == 1
    assert telemetry.points(A.METRIC_INFERENCE_OPERATION_INPUT_TOKENS) == []
    assert telemetry.points(A.METRIC_INFERENCE_USAGE_INPUT_TOKENS) == []  # no usage: nothing to count


def test_the_default_is_the_core_set(telemetry, monkeypatch):
    monkeypatch.delenv(OPT_IN, raising=False)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    finally:
        otel_tokens.uninstrument()
    exported = metrics(telemetry)
    assert exported[A.METRIC_TOKEN_USAGE] == ("histogram", "{token}")
    assert exported[A.METRIC_OPERATION_DURATION] == ("histogram", "s")
    assert not set(LATEST) & set(exported)


@pytest.mark.parametrize(("value", "opted_in"), [
    ("gen_ai_latest_experimental", True),
    ("database, gen_ai_latest_experimental ,http", True),
    ("http/dup", False),
    ("gen_ai_latest", False),
    ("", False),
])
def test_the_opt_in_is_one_token_of_a_comma_separated_list(value, opted_in):
    assert Settings.from_env({OPT_IN: value}).latest_semconv is opted_in
    assert Settings.from_env({}, latest_semconv=True).latest_semconv is True


def test_the_opt_in_is_decided_when_instrumenting(telemetry, monkeypatch):
    monkeypatch.delenv(OPT_IN, raising=False)
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        monkeypatch.setenv(OPT_IN, "gen_ai_latest_experimental")  # too late for this runtime
        OpenAIMock().client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    finally:
        otel_tokens.uninstrument()
    assert len(telemetry.points(A.METRIC_OPERATION_DURATION)) == 1
    assert telemetry.points(A.METRIC_INFERENCE_DURATION) == []
