"""Which provider an OpenAI-compatible client talks to, from its class and base URL.

Values are OpenTelemetry ``gen_ai.provider.name`` well-known values where one exists; otel-tokens uses
``openrouter``, ``together_ai``, ``fireworks`` and ``ollama`` for the rest. Any other host is reported as
``openai`` with ``server.address`` naming the host.
"""

from __future__ import annotations

import functools
from typing import Any

_EXACT_HOSTS = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
    "api.perplexity.ai": "perplexity",
    "api.moonshot.ai": "moonshot_ai",
    "api.moonshot.cn": "moonshot_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.cohere.ai": "cohere",
    "api.cohere.com": "cohere",
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together_ai",
    "api.together.ai": "together_ai",
    "api.fireworks.ai": "fireworks",
    "api.anthropic.com": "anthropic",
}

_HOST_SUFFIXES = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".models.ai.azure.com", "azure.ai.inference"),
    (".inference.ai.azure.com", "azure.ai.inference"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".api.aws", "aws.bedrock"),
    (".amazonaws.com", "aws.bedrock"),
)

_OLLAMA_PORT = 11434


@functools.lru_cache(maxsize=256)
def provider_for_host(host: str, port: int | None, default: str = "openai") -> str:
    host = host.lower()
    exact = _EXACT_HOSTS.get(host)
    if exact is not None:
        return exact
    for suffix, provider in _HOST_SUFFIXES:
        if host.endswith(suffix):
            if provider == "aws.bedrock" and "bedrock" not in host:
                continue
            return provider
    if port == _OLLAMA_PORT:
        return "ollama"
    return default


def server_of(client: Any) -> tuple[str | None, int | None]:
    """``(host, port)`` of a Stainless client's base URL (httpx or httpx2 ``URL``)."""
    base = getattr(client, "base_url", None)
    if base is None:
        return None, None
    host = getattr(base, "host", None) or None
    port = getattr(base, "port", None)
    if port is None and host is not None:
        scheme = getattr(base, "scheme", "https")
        port = 443 if scheme == "https" else 80
    return host, port


# (client class, id of its base URL) -> (the URL, the answer). The URL is kept so its id stays unique.
_CLIENT_CACHE: dict[tuple[type, int], tuple[Any, tuple[str, str | None, int | None]]] = {}
_CLIENT_CACHE_SIZE = 256


def openai_client_provider(client: Any) -> tuple[str, str | None, int | None]:
    """``(provider, server.address, server.port)`` for an ``openai`` client; cached per base URL."""
    base = getattr(client, "base_url", None)
    key = (type(client), id(base))
    cached = _CLIENT_CACHE.get(key)
    if cached is not None and cached[0] is base:
        return cached[1]
    answer = _detect_openai_client(client)
    if len(_CLIENT_CACHE) >= _CLIENT_CACHE_SIZE:
        _CLIENT_CACHE.clear()
    _CLIENT_CACHE[key] = (base, answer)
    return answer


def _detect_openai_client(client: Any) -> tuple[str, str | None, int | None]:
    host, port = server_of(client)
    name = type(client).__name__
    if "Azure" in name:
        return "azure.ai.openai", host, port
    runtime = getattr(client, "_provider_runtime", None)
    runtime_name = getattr(runtime, "name", None)
    if runtime_name == "bedrock" or "Bedrock" in name:
        return "aws.bedrock", host, port
    if runtime_name == "vertex":
        return "gcp.vertex_ai", host, port
    if host is None:
        return "openai", None, None
    return provider_for_host(host, port), host, port
