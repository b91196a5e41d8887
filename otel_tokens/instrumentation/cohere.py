"""Cohere instrumentor: ``CohereInstrumentor().instrument()``.

Covers the V2 API (``cohere.ClientV2`` and ``client.v2``): ``chat``, ``chat_stream`` and ``embed``, sync
and async; and the V1 API (``cohere.Client``): ``chat``, ``chat_stream``, ``generate`` and ``embed``,
sync and async. V1 ``embed`` is recorded where the caller calls it (``Client.embed``), whose batches
of 96 texts run on a thread pool that does not carry the caller's context: one span per call, with the
billed units the SDK sums over its batches, and the caller's agent labels and budgets.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_V2 = "cohere.v2.client"
_V1 = "cohere.base_client"
_V1_CLIENT = "cohere.client"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import cohere as adapter  # loaded with the SDK, not before

    chat_v2, chat_v2_stream = adapter.ChatV2(), adapter.ChatV2(streaming=True)
    chat_v1, chat_v1_stream = adapter.ChatV1(), adapter.ChatV1(streaming=True)
    embed, generate = adapter.Embed(), adapter.Generate()
    # The async chat_stream methods are async generator functions: calling one returns the stream at once.
    return [
        Patch(_V2, "V2Client.chat", chat_v2, "sync"),
        Patch(_V2, "V2Client.chat_stream", chat_v2_stream, "sync"),
        Patch(_V2, "V2Client.embed", embed, "sync"),
        Patch(_V2, "AsyncV2Client.chat", chat_v2, "async"),
        Patch(_V2, "AsyncV2Client.chat_stream", chat_v2_stream, "sync"),
        Patch(_V2, "AsyncV2Client.embed", embed, "async"),
        Patch(_V1, "BaseCohere.chat", chat_v1, "sync"),
        Patch(_V1, "BaseCohere.chat_stream", chat_v1_stream, "sync"),
        Patch(_V1, "BaseCohere.generate", generate, "sync"),
        Patch(_V1_CLIENT, "Client.embed", embed, "sync"),
        Patch(_V1, "AsyncBaseCohere.chat", chat_v1, "async"),
        Patch(_V1, "AsyncBaseCohere.chat_stream", chat_v1_stream, "sync"),
        Patch(_V1, "AsyncBaseCohere.generate", generate, "async"),
        Patch(_V1_CLIENT, "AsyncClient.embed", embed, "async"),
    ]


class CohereInstrumentor(SDKInstrumentor):
    package = "cohere"
    requirement = "cohere >= 5.0"

    def patches(self) -> Sequence[Patch]:
        return _patches()
