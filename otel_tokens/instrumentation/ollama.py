"""Ollama instrumentor: ``OllamaInstrumentor().instrument()``.

Covers ``chat``, ``generate``, ``embed`` and ``embeddings`` of ``ollama.Client`` and
``ollama.AsyncClient`` (with and without ``stream=True``), and the module-level functions
(``ollama.chat(...)``, ...), which ``ollama`` binds to its default client at import and so bypass the
class patches; they are patched on the module, and restored on uninstrument.

A local model has no per-token price: its calls cost 0 with ``gen_ai.usage.cost.source =
self_hosted``, unless a price is set for it (``otel_tokens.set_price``).
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_CLIENT = "ollama._client"
_MODULE = "ollama"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import ollama as adapter  # loaded with the SDK, not before

    operations = {
        "chat": adapter.Chat(),
        "generate": adapter.Generate(),
        "embed": adapter.Embed("input"),
        "embeddings": adapter.Embed("prompt"),
    }
    table = []
    for method, operation in operations.items():
        table += [
            Patch(_CLIENT, f"Client.{method}", operation, "sync"),
            Patch(_CLIENT, f"AsyncClient.{method}", operation, "async"),
            Patch(_MODULE, method, operation, "sync"),
        ]
    return table


class OllamaInstrumentor(SDKInstrumentor):
    package = "ollama"
    requirement = "ollama >= 0.4"

    def patches(self) -> Sequence[Patch]:
        return _patches()
