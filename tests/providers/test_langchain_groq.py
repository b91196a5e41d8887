"""LangChain rides on the SDKs: a call through langchain-groq is recorded once, by the groq instrumentor,
with provider ``groq`` (langchain-groq pins groq<1, so this runs in the .venv-litellm leg)."""

from __future__ import annotations

import pytest

langchain_groq = pytest.importorskip(
    "langchain_groq", reason="langchain-groq pins groq<1: it runs in the .venv-litellm leg of .ci/run"
)

from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from tests.providers.assertions import assert_usage, only_llm_span, reference_cost  # noqa: E402
from tests.providers.groq_mock import API_KEY, GroqMock  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")


def chat_model(mock: GroqMock, model: str) -> object:
    return langchain_groq.ChatGroq(model=model, api_key=API_KEY, max_retries=0, http_client=mock.http_client(),
                                   http_async_client=mock.async_http_client())


def test_invoke_is_recorded_once_as_groq(instrumented, telemetry):
    message = chat_model(GroqMock(), "llama-3.3-70b-versatile").invoke("Why is Groq fast?")
    assert message.content.startswith("Fast inference")
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "groq"
    assert_usage(span, input=417, output=86)
    assert span.attributes[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("llama-3.3-70b-versatile", Usage(input_tokens=417, output_tokens=86), "groq"), abs=1e-12
    )


async def test_async_stream_is_recorded_once_with_x_groq_usage(instrumented, telemetry):
    chunks = [chunk async for chunk in chat_model(GroqMock(), "llama-3.1-8b-instant").astream("Why?")]
    assert "".join(chunk.content for chunk in chunks) == "Tokens stream in order."
    span = only_llm_span(telemetry)
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "groq"
    assert_usage(span, input=263, output=19)
