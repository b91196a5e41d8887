"""Groq instrumentor: ``GroqInstrumentor().instrument()``.

Covers ``chat.completions.create`` (with and without ``stream=True``) and ``embeddings.create``, sync
and async, and ``with_raw_response``, for groq 0.x and 1.x. Provider ``groq``. Stream usage is read
from the last chunk's ``x_groq.usage`` (the SDK sends no ``stream_options``), so chunks reach the
caller unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_CHAT = "groq.resources.chat.completions"
_EMBEDDINGS = "groq.resources.embeddings"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import groq as adapter  # loaded with the SDK, not before

    chat, embeddings = adapter.ChatCompletions(), adapter.Embeddings()
    return [
        Patch(_CHAT, "Completions.create", chat, "sync"),
        Patch(_CHAT, "AsyncCompletions.create", chat, "async"),
        Patch(_EMBEDDINGS, "Embeddings.create", embeddings, "sync"),
        Patch(_EMBEDDINGS, "AsyncEmbeddings.create", embeddings, "async"),
    ]


class GroqInstrumentor(SDKInstrumentor):
    package = "groq"
    requirement = "groq >= 0.9"

    def patches(self) -> Sequence[Patch]:
        return _patches()
