"""Google Gen AI instrumentor: ``GoogleGenAIInstrumentor().instrument()``.

Covers ``models.generate_content``, ``generate_content_stream`` and ``embed_content`` of
``genai.Client`` and of ``client.aio``, for the Gemini API (``gcp.gemini``) and Vertex AI
(``gcp.vertex_ai``), and finished batch jobs with inline results (``batches.get``, ``batches.list``).
Chats (``client.chats``) call ``models``, so each message is recorded once.

**One span per public call, several requests.** Automatic function calling and automatic continuation
make one ``generate_content`` call send several HTTP requests. The public call gets the one span; the
per-request methods under it (``_generate_content``, ``_generate_content_stream``) are patched as
"hops" that add each request's usage to it. The span carries their sum, its cost is the sum of each
request's own price (long-context tiers apply per request), and ``otel_tokens.request.count`` says how
many requests there were. Hops get no child spans: they would repeat the tokens the call's span
already carries, and any backend summing span tokens would count them twice. The caller's functions
that automatic function calling runs between requests are outside the call: an LLM call they make is
recorded as a call of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_MODELS = "google.genai.models"
_EXTRA_UTILS = "google.genai._extra_utils"
_BATCHES = "google.genai.batches"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import google_genai as adapter  # loaded with the SDK, not before

    generate, stream = adapter.GenerateContent(), adapter.GenerateContent(stream=True)
    embed, batches = adapter.EmbedContent(), adapter.BatchJobs()
    return [
        Patch(_MODELS, "Models.generate_content", generate, "sync"),
        Patch(_MODELS, "AsyncModels.generate_content", generate, "async"),
        # A generator function: it returns the generator before any request is sent.
        Patch(_MODELS, "Models.generate_content_stream", stream, "sync"),
        # Awaited, it returns an async generator.
        Patch(_MODELS, "AsyncModels.generate_content_stream", stream, "async"),
        Patch(_MODELS, "Models.embed_content", embed, "sync"),
        Patch(_MODELS, "AsyncModels.embed_content", embed, "async"),
        Patch(_MODELS, "Models._generate_content", generate, "hop"),
        Patch(_MODELS, "AsyncModels._generate_content", generate, "async_hop"),
        Patch(_MODELS, "Models._generate_content_stream", generate, "hop"),
        Patch(_MODELS, "AsyncModels._generate_content_stream", generate, "async_hop"),
        # Automatic function calling runs the caller's functions between requests.
        Patch(_EXTRA_UTILS, "get_function_response_parts", None, "user_code"),
        Patch(_EXTRA_UTILS, "get_function_response_parts_async", None, "async_user_code"),
        # Finished batch jobs: get(), and list() whose pager fetches every page through _list().
        Patch(_BATCHES, "Batches.get", batches, "batches"),
        Patch(_BATCHES, "AsyncBatches.get", batches, "async_batches"),
        Patch(_BATCHES, "Batches._list", batches, "batches"),
        Patch(_BATCHES, "AsyncBatches._list", batches, "async_batches"),
    ]


class GoogleGenAIInstrumentor(SDKInstrumentor):
    package = "google.genai"
    requirement = "google-genai >= 1.0"

    def patches(self) -> Sequence[Patch]:
        return _patches()
