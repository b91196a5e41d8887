"""LiteLLM adapter (``litellm.completion`` and friends): parsing only.

LiteLLM answers in OpenAI's shapes (``ModelResponse``, ``EmbeddingResponse``, ``TextCompletionResponse``,
``ResponsesAPIResponse``), so the OpenAI adapter's parsing is reused. What differs:

* the provider is LiteLLM's resolved one (``get_llm_provider``), mapped onto ``gen_ai.provider.name``
  values, and the model is the name without LiteLLM's ``provider/`` prefix;
* usage is LiteLLM's normalised ``Usage`` (input includes cache reads and writes, output includes
  reasoning, for every provider); cache writes may also come as Anthropic's ``cache_creation_input_tokens``;
* the ``cost`` LiteLLM puts in stream usage is its own estimate, not the provider's: never used;
* a stream's usage is on its last chunk: ``usage`` when the caller asked for it, else the usage LiteLLM
  keeps in the chunk's hidden params (``UnreportedUsage`` there means the provider sent none).
"""

from __future__ import annotations

from typing import Any, Literal

from otel_tokens import semconv
from otel_tokens._internal.base.records import Request, Usage, make_usage
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers import common, openai

# LiteLLM provider -> gen_ai.provider.name; any other LiteLLM name is reported as it is.
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "anthropic_text": "anthropic",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "groq": "groq",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "text-completion-codestral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "perplexity": "perplexity",
    "moonshot": "moonshot_ai",
    "watsonx": "ibm.watsonx.ai",
    "openrouter": "openrouter",
    "together_ai": "together_ai",
    "fireworks_ai": "fireworks",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}
UNKNOWN_PROVIDER = "litellm"


def _resolve(args: tuple, kwargs: dict) -> tuple[str, str | None, str | None, int | None]:
    """``(provider, model, server.address, server.port)`` as LiteLLM will route the call."""
    import litellm

    model = kwargs.get("model", args[0] if args else None)
    if not isinstance(model, str):
        return UNKNOWN_PROVIDER, None, None, None
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    try:
        name, provider, _key, resolved_base = litellm.get_llm_provider(
            model=model, custom_llm_provider=kwargs.get("custom_llm_provider"),
            api_base=api_base if isinstance(api_base, str) else None,
        )
    except Exception:  # LiteLLM raises the same error itself when the call is made
        return UNKNOWN_PROVIDER, model, None, None
    base = api_base if isinstance(api_base, str) else resolved_base
    host, port = common.server_of_url(base) if isinstance(base, str) and base else (None, None)
    return PROVIDERS.get(provider, provider or UNKNOWN_PROVIDER), name or model, host, port


def litellm_usage(usage: Any) -> Usage | None:
    """LiteLLM's ``Usage``: OpenAI's fields, plus Anthropic-style cache fields for some providers."""
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    cache_read = getattr(prompt_details, "cached_tokens", None)
    if cache_read is None:
        cache_read = getattr(usage, "cache_read_input_tokens", None)
    cache_write = getattr(prompt_details, "cache_write_tokens", None)
    if cache_write is None:
        cache_write = getattr(usage, "cache_creation_input_tokens", None)
    return make_usage(
        getattr(usage, "prompt_tokens", None),
        getattr(usage, "completion_tokens", None),
        cache_read,
        cache_write,
        getattr(completion_details, "reasoning_tokens", None),
    )


def _no_cost(usage: Any) -> None:
    return None


def _request(operation: str, args: tuple, kwargs: dict, attributes: dict[str, Any]) -> Request:
    provider, model, host, port = _resolve(args, kwargs)
    return Request(
        provider=provider,
        operation=operation,
        model=model,
        server_address=host,
        server_port=port,
        stream=kwargs.get("stream") is True,
        attributes=attributes,
    )


_CHAT_STREAMS = frozenset({"CustomStreamWrapper", "TextCompletionStreamWrapper"})
_RESPONSE_STREAMS = {"SyncResponsesAPIStreamingIterator": "sync", "ResponsesAPIStreamingIterator": "async"}


# -- completion / acompletion ------------------------------------------------------------------------
class ChatCompletions(openai.ChatCompletions):
    usage_of = staticmethod(litellm_usage)
    cost_of = staticmethod(_no_cost)

    def __init__(self, asynchronous: bool) -> None:
        self.asynchronous = asynchronous

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        return Prepared(_request(self.operation, args, kwargs, openai.chat_attributes(kwargs)), kwargs)

    def stream_kind(self, response: Any) -> Literal["sync", "async"] | None:
        # One stream class serves both: iterated with ``for`` after completion(), ``async for`` after
        # acompletion().
        if type(response).__name__ in _CHAT_STREAMS:
            return "async" if self.asynchronous else "sync"
        return None

    def accumulator(self, prepared: Prepared) -> ChatStreamAccumulator:
        return ChatStreamAccumulator(False)


class ChatStreamAccumulator(openai.ChatStreamAccumulator):
    __slots__ = ()
    usage_of = staticmethod(litellm_usage)
    cost_of = staticmethod(_no_cost)

    @staticmethod
    def _chunk_usage(chunk: Any) -> Any:
        usage = getattr(chunk, "usage", None)
        if usage is None:
            hidden = getattr(chunk, "_hidden_params", None)
            usage = hidden.get("usage") if isinstance(hidden, dict) else None
            if type(usage).__name__ == "UnreportedUsage":
                return None
        return usage


# -- text_completion / atext_completion --------------------------------------------------------------
class Completions(ChatCompletions, openai.Completions):
    """``text_completion``: LiteLLM's ``TextCompletionResponse`` has OpenAI's legacy shape."""

    operation = semconv.OP_TEXT_COMPLETION

    def accumulator(self, prepared: Prepared) -> CompletionStreamAccumulator:
        return CompletionStreamAccumulator(False)


class CompletionStreamAccumulator(ChatStreamAccumulator, openai.CompletionStreamAccumulator):
    __slots__ = ()


# -- embedding / aembedding --------------------------------------------------------------------------
class Embeddings(openai.Embeddings):
    cost_of = staticmethod(_no_cost)

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes: dict[str, Any] = {}
        dimensions = kwargs.get("dimensions")
        if isinstance(dimensions, int):
            attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        return Prepared(_request(self.operation, args, kwargs, attributes), kwargs)


# -- responses / aresponses --------------------------------------------------------------------------
class Responses(openai.Responses):
    cost_of = staticmethod(_no_cost)

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        return Prepared(_request(self.operation, args, kwargs, openai.responses_attributes(kwargs)), kwargs)

    @staticmethod
    def stream_kind(response: Any) -> Literal["sync", "async"] | None:
        return _RESPONSE_STREAMS.get(type(response).__name__)  # type: ignore[return-value]
