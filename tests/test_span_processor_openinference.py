"""GenAISpanProcessor with a real source: OpenInference's openai instrumentation on the real openai SDK over
a mock transport. Alone, each call (chat, stream, embeddings) is counted once with its exact tokens, cache
reads and cost; beside otel-tokens' own openai instrumentor, in either order, each call is still counted
once (OpenInference writes no response id: the twin is matched on its exact counts).

Runs where the package is installed (.ci/run's ``.venv-spans`` leg; docs/development.md)."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "openinference.instrumentation.openai",
    reason="openinference-instrumentation-openai is not installed (its own venv: .ci/run's .venv-spans leg)",
)

from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceOpenAIInstrumentor  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from tests.providers.assertions import reference_cost  # noqa: E402
from tests.providers.openai_mock import OpenAIMock  # noqa: E402

SCOPE = "openinference.instrumentation.openai"
MESSAGES = [{"role": "user", "content": "hi"}]
# The recorded responses (tests/providers/recordings/openai): model, input, output, cache read.
CHAT = ("gpt-4o-2024-08-06", 1250, 42, 1024)
STREAM = ("gpt-4o-mini-2024-07-18", 2100, 8, 1920)
EMBEDDINGS = ("text-embedding-3-small", 17)


@pytest.fixture
def openinference(telemetry, monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)
    instrumentor = OpenInferenceOpenAIInstrumentor()
    yield lambda: instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    otel_tokens.uninstrument()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def _calls(client):
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}):
        pass
    client.embeddings.create(model="text-embedding-3-small", input="hi")


def test_openinference_alone_every_call_counted_once(telemetry, openinference):
    openinference()
    telemetry.tracer_provider.add_span_processor(otel_tokens.GenAISpanProcessor())
    _calls(OpenAIMock().client())
    assert len([s for s in telemetry.spans() if s.instrumentation_scope.name == SCOPE]) == 3  # calls made
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 3  # calls recorded
    for model, input, output, cache_read in (CHAT, STREAM):
        entry = stats["by_model"][model]
        assert (entry["calls"], entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"]) == (
            1, input, output, cache_read)
        expected = reference_cost(model, Usage(input, output, cache_read), "openai")
        assert entry["cost_usd"] == pytest.approx(expected, abs=1e-12)
    model, input = EMBEDDINGS
    entry = stats["by_model"][model]
    assert (entry["calls"], entry["input_tokens"]) == (1, input)
    assert stats["by_operation"]["embeddings"]["calls"] == 1
    assert entry["cost_usd"] == pytest.approx(reference_cost(model, Usage(input, 0), "openai"), abs=1e-12)
    assert list(stats["by_provider"]) == ["openai"]


@pytest.mark.parametrize("first", ["openinference", "otel_tokens"])
def test_openinference_beside_our_instrumentor_counts_each_call_once(telemetry, openinference, first):
    def ours():
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               span_processor=True)

    for step in ((openinference, ours) if first == "openinference" else (ours, openinference)):
        step()
    with otel_tokens.agent("both"):
        _calls(OpenAIMock().client())
    assert len([s for s in telemetry.spans() if s.instrumentation_scope.name == SCOPE]) == 3
    assert len(telemetry.llm_spans()) == 3
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 3 and stats["by_agent"]["both"]["calls"] == 3
    assert stats["cache_read_tokens"] == CHAT[3] + STREAM[3]
    assert {attrs.get(A.OTEL_TOKENS_SOURCE) for attrs, _ in telemetry.points(A.METRIC_OPERATION_DURATION)} == {None}
