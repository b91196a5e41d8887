"""OpenAI instrumentor: ``OpenAIInstrumentor().instrument()``.

Covers chat completions (``create`` with and without ``stream=True``, ``parse``, the ``stream()``
helper), responses (``create``, ``parse``, ``stream()``), embeddings, legacy completions and images
(``generate``, ``edit``, streams included), sync and async, and ``with_raw_response``; finished
batches from ``batches.retrieve()`` and ``batches.list()``.
Works with openai 1.x/2.x (httpx) and 3.x (httpx2), and with every OpenAI-compatible endpoint (the
provider is detected from the client's class and base URL).
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_CHAT = "openai.resources.chat.completions.completions"
_CHAT_LEGACY = "openai.resources.chat.completions"  # openai 1.x before the package split
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"
_COMPLETIONS = "openai.resources.completions"
_IMAGES = "openai.resources.images"
_BATCHES = "openai.resources.batches"
_PAGES = "openai._base_client"  # where list() pages fetch the next page (and async lists their first)


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import openai as adapter  # loaded with the SDK, not before

    chat, responses = adapter.ChatCompletions(), adapter.Responses()
    embeddings, completions, images = adapter.Embeddings(), adapter.Completions(), adapter.Images()
    raw = adapter.helper_raw_stream
    table = []
    for module in (_CHAT, _CHAT_LEGACY):
        table += [
            Patch(module, "Completions.create", chat, "sync"),
            Patch(module, "AsyncCompletions.create", chat, "async"),
            Patch(module, "Completions.parse", chat, "sync"),
            Patch(module, "AsyncCompletions.parse", chat, "async"),
            Patch(module, "Completions.stream", raw, "sync_manager"),
            Patch(module, "AsyncCompletions.stream", raw, "sync_manager"),
        ]
    table += [
        Patch(_RESPONSES, "Responses.create", responses, "sync"),
        Patch(_RESPONSES, "AsyncResponses.create", responses, "async"),
        Patch(_RESPONSES, "Responses.parse", responses, "sync"),
        Patch(_RESPONSES, "AsyncResponses.parse", responses, "async"),
        Patch(_RESPONSES, "Responses.stream", raw, "sync_manager"),
        Patch(_RESPONSES, "AsyncResponses.stream", raw, "sync_manager"),
        Patch(_EMBEDDINGS, "Embeddings.create", embeddings, "sync"),
        Patch(_EMBEDDINGS, "AsyncEmbeddings.create", embeddings, "async"),
        Patch(_COMPLETIONS, "Completions.create", completions, "sync"),
        Patch(_COMPLETIONS, "AsyncCompletions.create", completions, "async"),
        Patch(_IMAGES, "Images.generate", images, "sync"),
        Patch(_IMAGES, "AsyncImages.generate", images, "async"),
        Patch(_IMAGES, "Images.edit", images, "sync"),
        Patch(_IMAGES, "AsyncImages.edit", images, "async"),
    ]
    batches = adapter.BatchObjects()
    table += [
        Patch(_BATCHES, "Batches.retrieve", batches, "batches"),
        Patch(_BATCHES, "AsyncBatches.retrieve", batches, "async_batches"),
        # batches.list(): the sync first page; then every page the SDK fetches (any list's: the adapter
        # reads only pages of batches), and the async first page, fetched when awaited or iterated.
        Patch(_BATCHES, "Batches.list", batches, "batches"),
        Patch(_PAGES, "BaseSyncPage.get_next_page", batches, "batches"),
        Patch(_PAGES, "AsyncPaginator._get_page", batches, "async_batches"),
        Patch(_PAGES, "BaseAsyncPage.get_next_page", batches, "async_batches"),
    ]
    return table


class OpenAIInstrumentor(SDKInstrumentor):
    package = "openai"
    requirement = "openai >= 1.40"

    def patches(self) -> Sequence[Patch]:
        return _patches()
