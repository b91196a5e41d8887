"""google-generativeai adapter (the deprecated SDK, 0.x): parsing only.

``GenerativeModel.generate_content`` (``stream=True`` too), ``generate_content_async`` and
``ChatSession.send_message`` all send through the ``google.ai.generativelanguage`` service client, one
request per call, over gRPC or REST. Its responses are protobuf messages with the same usage fields as
google-genai (read by :mod:`.google_genai`), but an unset field reads as 0 or an empty message, so
presence is asked of the message itself: usage that was not sent is absent, not zero. The proto has no
thoughts or tool-use counts; output = ``candidates_token_count``.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from otel_tokens import semconv
from otel_tokens._internal.base.records import Request, Result
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers.google_genai import (
    GEMINI,
    GenerateContentAccumulator,
    config_attributes,
    field,
    model_name,
    response_result,
    text_of,
)


class ProtoAccumulator(GenerateContentAccumulator):
    """Reads ``google.ai.generativelanguage`` response messages, where unset means default."""

    __slots__ = ()

    @staticmethod
    def usage_sent(chunk: Any) -> Any:
        return chunk.usage_metadata if "usage_metadata" in chunk else None

    @staticmethod
    def is_function_call(part: Any) -> bool:
        return "function_call" in part


def _server(instance: Any) -> tuple[str | None, int | None]:
    host = getattr(getattr(instance, "_transport", None), "_host", None)
    if not isinstance(host, str):
        return None, None
    parts = urlsplit(host if "://" in host else f"https://{host}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _request_message(args: tuple, kwargs: dict) -> Any:
    return args[0] if args else kwargs.get("request")


class GenerateContent:
    """``GenerativeServiceClient.generate_content`` / ``stream_generate_content`` (+ async client)."""

    operation = semconv.OP_GENERATE_CONTENT

    def __init__(self, *, stream: bool = False) -> None:
        self._stream = stream

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        message = _request_message(args, kwargs)
        model = field(message, "model") if message is not None else kwargs.get("model")
        address, port = _server(instance)
        config = field(message, "generation_config") if message is not None else None
        request = Request(
            provider=GEMINI,
            operation=self.operation,
            model=model_name(model),
            server_address=address,
            server_port=port,
            stream=self._stream,
            attributes=_config_attributes(config),
        )
        if args:  # sent as the keyword the client also takes, so prompt_text can read it
            return Prepared(request, {**kwargs, "request": message}, args=args[1:])
        return Prepared(request, kwargs)

    def result(self, response: Any, want_text: bool) -> Result:
        return response_result(response, want_text, ProtoAccumulator)

    def stream_kind(self, response: Any) -> Literal["sync", "async"] | None:
        if not self._stream:
            return None
        return "async" if hasattr(response, "__aiter__") else "sync"

    def accumulator(self, prepared: Prepared) -> ProtoAccumulator:
        return ProtoAccumulator()

    def prompt_text(self, kwargs: dict) -> str:
        message = kwargs.get("request")
        contents = field(message, "contents") if message is not None else kwargs.get("contents")
        system = field(message, "system_instruction") if message is not None else None
        return "\n".join(part for part in (text_of(system), text_of(contents)) if part)

    def input_messages(self, kwargs: dict) -> Any:
        message = kwargs.get("request")
        contents = field(message, "contents") if message is not None else kwargs.get("contents")
        return [{"role": field(item, "role") or "user", "parts": [{"type": "text", "content": text_of(item)}]}
                for item in contents or ()]


def _config_attributes(config: Any) -> dict[str, Any]:
    # Unset proto fields read as 0: only the ones the caller set count.
    if config is None:
        return {}
    present = {name: getattr(config, name) for name in (
        "temperature", "top_p", "top_k", "max_output_tokens", "stop_sequences", "candidate_count",
        "presence_penalty", "frequency_penalty", "response_mime_type") if _has(config, name)}
    return config_attributes(present)


def _has(message: Any, name: str) -> bool:
    try:
        return name in message
    except Exception:
        return False

