"""Mistral instrumentor: ``MistralInstrumentor().instrument()``.

Covers ``mistralai`` 3.x (``from mistralai.client import Mistral``): ``chat.complete`` / ``stream``,
``fim.complete`` / ``stream`` and ``agents.complete`` / ``stream``, each with its ``*_async`` twin, and
``embeddings.create`` / ``create_async``. ``chat.parse*`` call ``complete`` / ``stream`` and are counted
once, there.

**The SDK's own tracing** (``MISTRAL_SDK_TELEMETRY=dedicated|global`` or ``configure_telemetry``) is
opt-in and left as configured: when on, its span (scope ``mistralai_sdk_tracer``) sits beside ours, and
only ours carries cost; otel-tokens' statistics count only its own spans.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_CHAT = "mistralai.client.chat"
_FIM = "mistralai.client.fim"
_AGENTS = "mistralai.client.agents"
_EMBEDDINGS = "mistralai.client.embeddings"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import mistral as adapter  # loaded with the SDK, not before

    chat, chat_stream = adapter.Chat(), adapter.Chat(streaming=True)
    fim, fim_stream = adapter.Fim(), adapter.Fim(streaming=True)
    embeddings = adapter.Embeddings()
    table = []
    for module, owner, call, stream in ((_CHAT, "Chat", chat, chat_stream), (_FIM, "Fim", fim, fim_stream),
                                        (_AGENTS, "Agents", chat, chat_stream)):
        table += [
            Patch(module, f"{owner}.complete", call, "sync"),
            Patch(module, f"{owner}.complete_async", call, "async"),
            Patch(module, f"{owner}.stream", stream, "sync"),
            Patch(module, f"{owner}.stream_async", stream, "async"),
        ]
    table += [
        Patch(_EMBEDDINGS, "Embeddings.create", embeddings, "sync"),
        Patch(_EMBEDDINGS, "Embeddings.create_async", embeddings, "async"),
    ]
    return table


class MistralInstrumentor(SDKInstrumentor):
    package = "mistralai"
    hook_module = "mistralai.client"
    requirement = "mistralai >= 3.0"

    def patches(self) -> Sequence[Patch]:
        return _patches()
