"""GenAISpanProcessor with a real agent framework: pydantic-ai's built-in tracing (``InstrumentationSettings``)
over the real openai SDK and a mock transport. Alone, each model request is counted once, with its exact
tokens and cost, under the agent's name, and the agent run span's aggregated usage is not counted again;
with otel-tokens' openai instrumentor too, each request is still counted once.

Runs where pydantic-ai is installed (.ci/run's ``.venv-spans`` leg; docs/development.md)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pydantic_ai", reason="pydantic-ai is not installed (its own venv: .ci/run's .venv-spans leg)")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.instrumented import InstrumentationSettings  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

try:
    from pydantic_ai.models.openai import OpenAIChatModel as ChatModel  # noqa: E402
except ImportError:  # older pydantic-ai
    from pydantic_ai.models.openai import OpenAIModel as ChatModel  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from tests.providers.assertions import reference_cost  # noqa: E402
from tests.providers.openai_mock import OpenAIMock  # noqa: E402

# The recorded chat completion (tests/providers/recordings/openai/chat_completion.json).
MODEL, INPUT, OUTPUT, CACHE_READ = "gpt-4o-2024-08-06", 1250, 42, 1024


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)
    yield
    otel_tokens.uninstrument()


def _agent(telemetry, mock):
    model = ChatModel("gpt-4o", provider=OpenAIProvider(openai_client=mock.async_client()))
    agent = Agent(model, name="support")
    agent.instrument = InstrumentationSettings(tracer_provider=telemetry.tracer_provider,
                                               meter_provider=telemetry.meter_provider)
    return agent


def _expected_cost():
    return reference_cost(MODEL, Usage(INPUT, OUTPUT, CACHE_READ), "openai")


def test_pydantic_ai_alone(telemetry, clean_env):
    telemetry.tracer_provider.add_span_processor(otel_tokens.GenAISpanProcessor())
    agent = _agent(telemetry, OpenAIMock())
    for _ in range(2):
        assert "Paris" in str(agent.run_sync("Capital of France?").output)
    names = [span.name for span in telemetry.spans()]
    assert sum(name.startswith("chat ") for name in names) == 2  # model requests made
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 2  # model requests recorded; the agent runs' aggregated usage is not
    entry = stats["by_agent"]["support"]
    assert (entry["calls"], entry["input_tokens"], entry["output_tokens"], entry["cache_read_tokens"]) == (
        2, 2 * INPUT, 2 * OUTPUT, 2 * CACHE_READ)
    assert entry["cost_usd"] == pytest.approx(2 * _expected_cost(), abs=1e-12)
    assert list(stats["by_provider"]) == ["openai"]


def test_pydantic_ai_beside_our_openai_instrumentor(telemetry, clean_env):
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           span_processor=True)
    agent = _agent(telemetry, OpenAIMock())
    for _ in range(2):
        agent.run_sync("Capital of France?")
    assert len(telemetry.llm_spans()) == 2  # our instrumentor traced each request too
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 2
    assert stats["by_agent"]["support"]["calls"] == 2
    assert stats["by_agent"]["support"]["cost_usd"] == pytest.approx(2 * _expected_cost(), abs=1e-12)
