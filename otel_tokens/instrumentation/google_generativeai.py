"""google-generativeai instrumentor (the deprecated SDK): ``GoogleGenerativeAIInstrumentor().instrument()``.

``GenerativeModel.generate_content`` (``stream=True`` too), ``generate_content_async`` and
``ChatSession.send_message`` send each request through the ``google.ai.generativelanguage`` service
client, which is what is patched: one span per request, over gRPC or REST, provider ``gcp.gemini``.
A chat's automatic function calling sends one request per step, so it gets one span per step.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_SERVICE = "google.ai.generativelanguage_{version}.services.generative_service.{module}"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import (
        google_generativeai as adapter,  # loaded with the SDK, not before
    )

    generate, stream = adapter.GenerateContent(), adapter.GenerateContent(stream=True)
    table = []
    for version in ("v1beta", "v1"):
        client = _SERVICE.format(version=version, module="client")
        async_client = _SERVICE.format(version=version, module="async_client")
        table += [
            Patch(client, "GenerativeServiceClient.generate_content", generate, "sync"),
            Patch(client, "GenerativeServiceClient.stream_generate_content", stream, "sync"),
            Patch(async_client, "GenerativeServiceAsyncClient.generate_content", generate, "async"),
            Patch(async_client, "GenerativeServiceAsyncClient.stream_generate_content", stream, "async"),
        ]
    return table


class GoogleGenerativeAIInstrumentor(SDKInstrumentor):
    package = "google.ai.generativelanguage"
    requirement = "google-ai-generativelanguage >= 0.6"

    def patches(self) -> Sequence[Patch]:
        return _patches()
