"""Groq adapter (groq 0.x and 1.x): parsing only.

Groq speaks OpenAI's chat and embeddings wire format, so the OpenAI adapter's parsing is reused; what
differs is the provider (always ``groq``, whatever the base URL), the stream classes, and stream
usage: the SDK has no ``stream_options`` and the server puts usage in the last chunk's ``x_groq.usage``.
"""

from __future__ import annotations

from typing import Any

from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers import openai
from otel_tokens._internal.providers.detect import server_of

PROVIDER = "groq"


def groq_server(instance: Any) -> tuple[str, str | None, int | None]:
    host, port = server_of(instance._client)
    return PROVIDER, host, port


class ChatCompletions(openai.ChatCompletions):
    """``chat.completions.create`` (sync, async, ``stream=True``)."""

    asks_stream_usage = False
    server = staticmethod(groq_server)
    stream_kind = staticmethod(openai.stream_kind_of("groq"))

    def accumulator(self, prepared: Prepared) -> ChatStreamAccumulator:
        return ChatStreamAccumulator(prepared.hide_usage_chunk)


class ChatStreamAccumulator(openai.ChatStreamAccumulator):
    __slots__ = ()

    @staticmethod
    def _chunk_usage(chunk: Any) -> Any:
        # ``usage`` is filled only when a caller sent stream_options through extra_body.
        usage = chunk.usage
        if usage is None:
            x_groq = getattr(chunk, "x_groq", None)
            usage = getattr(x_groq, "usage", None)
        return usage


class Embeddings(openai.Embeddings):
    server = staticmethod(groq_server)
