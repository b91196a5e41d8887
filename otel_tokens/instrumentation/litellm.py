"""LiteLLM instrumentor: ``LiteLLMInstrumentor().instrument()``.

Covers ``litellm.completion`` / ``acompletion`` (with ``stream=True``: ``CustomStreamWrapper``),
``embedding`` / ``aembedding``, ``text_completion`` / ``atext_completion`` and ``responses`` /
``aresponses``, whichever provider LiteLLM routes to. The functions are patched on the ``litellm``
module, so code that did ``from litellm import completion`` before ``instrument()`` keeps the original.

**One span per call.** For some providers LiteLLM calls the openai SDK itself; the LiteLLM layer is the
one that records (it sees the caller's model and LiteLLM's provider), and the SDK call inside it is
skipped, as every nested instrumented call is.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_tokens._internal.calls.engine import Patch
from otel_tokens.instrumentation._base import SDKInstrumentor

_MODULE = "litellm"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import litellm as adapter  # loaded with the SDK, not before

    embeddings, responses = adapter.Embeddings(), adapter.Responses()
    return [
        Patch(_MODULE, "completion", adapter.ChatCompletions(asynchronous=False), "sync"),
        Patch(_MODULE, "acompletion", adapter.ChatCompletions(asynchronous=True), "async"),
        Patch(_MODULE, "text_completion", adapter.Completions(asynchronous=False), "sync"),
        Patch(_MODULE, "atext_completion", adapter.Completions(asynchronous=True), "async"),
        Patch(_MODULE, "embedding", embeddings, "sync"),
        Patch(_MODULE, "aembedding", embeddings, "async"),
        Patch(_MODULE, "responses", responses, "sync"),
        Patch(_MODULE, "aresponses", responses, "async"),
    ]


class LiteLLMInstrumentor(SDKInstrumentor):
    package = "litellm"
    requirement = "litellm >= 1.40"

    def patches(self) -> Sequence[Patch]:
        return _patches()
