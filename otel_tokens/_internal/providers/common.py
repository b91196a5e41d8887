"""Small parsing helpers the Mistral, Cohere and Ollama adapters share (parsing only, no telemetry)."""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from otel_tokens._internal.base.records import Request

_DEFAULT_PORTS = {"https": 443, "http": 80}


def request_attributes(kwargs: Mapping[str, Any], table: tuple[tuple[str, str, tuple[type, ...]], ...]) -> dict[str, Any]:
    """Semconv request attributes from ``(keyword, attribute, types)`` rows, for the values given.

    SDK "unset" sentinels, None and booleans (an int subclass) are skipped.
    """
    attributes: dict[str, Any] = {}
    for key, attribute, kinds in table:
        value = kwargs.get(key)
        if isinstance(value, kinds) and not isinstance(value, bool):
            attributes[attribute] = value
    return attributes


def request(
    provider: str,
    operation: str,
    model: Any,
    server: tuple[str | None, int | None],
    attributes: dict[str, Any],
    stream: bool = False,
) -> Request:
    """A ``Request`` for a provider whose name does not depend on the endpoint."""
    return Request(
        provider=provider,
        operation=operation,
        model=model if isinstance(model, str) and model else None,
        server_address=server[0],
        server_port=server[1],
        stream=stream,
        attributes=attributes,
    )


def stream_kind(response: Any, sync_type: type, async_type: type) -> Literal["sync", "async"] | None:
    """Whether a response is the SDK's sync or async stream (None: not a stream). Another
    instrumentation's stream wrapper that holds the SDK's stream in ``.stream`` and iterates it (the
    contrib openai-v2 instrumentation's, when it patched the SDK before us) is a stream too."""
    if isinstance(response, sync_type):
        return "sync"
    if isinstance(response, async_type):
        return "async"
    inner = getattr(response, "stream", None) if not isinstance(response, (str, bytes, dict, list, tuple)) else None
    if isinstance(inner, sync_type) and hasattr(response, "__next__"):
        return "sync"
    if isinstance(inner, async_type) and hasattr(response, "__anext__"):
        return "async"
    return None


def generator_stream_kind(response: Any) -> Literal["sync", "async"] | None:
    """For SDKs whose streams are plain generators and async generators (Cohere, Ollama)."""
    return stream_kind(response, types.GeneratorType, types.AsyncGeneratorType)


def stop_sequences(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


@functools.lru_cache(maxsize=64)
def server_of_url(url: str) -> tuple[str | None, int | None]:
    """``(host, port)`` of a base URL string, the port defaulted from the scheme."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None, None
    if host is None:
        return None, None
    return host, port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def sequence(value: Any) -> tuple | list:
    """Only lists and tuples are read: an iterator given to the SDK must reach it unconsumed."""
    return value if isinstance(value, (list, tuple)) else ()


def field(obj: Any, name: str) -> Any:
    """A response field as sent: a mapping's key, or an attribute; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def sent_field(model: Any, name: str) -> Any:
    """A pydantic field only if the response set it: a model default (Mistral's ``prompt_tokens = 0``)
    would turn an absent count into a zero."""
    if model is None:
        return None
    fields_set = getattr(model, "model_fields_set", None)
    if fields_set is not None and name not in fields_set:
        extra = getattr(model, "model_extra", None) or {}
        return extra.get(name)
    return getattr(model, name, None)


def text_of(content: Any) -> str:
    """Text of a message ``content``: a string, or parts (mappings or models) with ``text``."""
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        return ""
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
            continue
        text = field(part, "text")
        if isinstance(text, str):
            parts.append(text)
    return "\n".join(part for part in parts if part)


def messages_text(messages: Any) -> str:
    """The text of a list of chat messages (mappings or models with ``content``)."""
    return "\n".join(
        text for text in (text_of(field(message, "content")) for message in sequence(messages)) if text
    )


def input_messages(messages: Any) -> list[dict[str, Any]]:
    """Chat messages in the semconv ``gen_ai.input.messages`` shape (text parts only)."""
    out = []
    for message in sequence(messages):
        role = field(message, "role")
        out.append({
            "role": role if isinstance(role, str) else None,
            "parts": [{"type": "text", "content": text_of(field(message, "content"))}],
        })
    return out


def needs_text(want_text: bool, usage: Any) -> bool:
    """Keep the output text when content capture asks for it, or when counts must be estimated
    (absent or invalid usage)."""
    return want_text or usage is None or usage.invalid


def count_of(items: Any) -> int:
    """How many items a response list holds (tool calls); 0 for None or a non-list."""
    return len(items) if isinstance(items, (list, tuple)) else 0
