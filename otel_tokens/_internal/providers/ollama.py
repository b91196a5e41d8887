"""Ollama adapter (``ollama`` 0.4-0.6): parsing only.

Token conversion: ``prompt_eval_count`` is the input, ``eval_count`` the output (thinking included);
Ollama reports no cache counts. Both are on the response, or on a stream's last chunk (``done=True``).
The legacy ``embeddings`` endpoint reports no counts at all, so its calls are estimated (and marked).

Arguments may be positional (``ollama.chat("llama3.2", messages)``); the adapter passes them on by name.
"""

from __future__ import annotations

from typing import Any

from otel_tokens import semconv
from otel_tokens._internal.base.records import Result, make_usage
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers import common

PROVIDER = "ollama"

# ``options`` keys -> semconv request attributes
_OPTIONS = (
    ("num_predict", semconv.GEN_AI_REQUEST_MAX_TOKENS, (int,)),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE, (int, float)),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P, (int, float)),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K, (int,)),
    ("seed", semconv.GEN_AI_REQUEST_SEED, (int,)),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY, (int, float)),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, (int, float)),
)


def _options(kwargs: dict) -> dict[str, Any]:
    options = kwargs.get("options")
    if options is None:
        return {}
    if not isinstance(options, dict):  # an ``ollama.Options`` model
        options = {key: getattr(options, key, None) for key, _attribute, _types in _OPTIONS} | {
            "stop": getattr(options, "stop", None)
        }
    attributes = common.request_attributes(options, _OPTIONS)
    stop = common.stop_sequences(options.get("stop"))
    if stop:
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    return attributes


def _server(instance: Any) -> tuple[str | None, int | None]:
    base = getattr(getattr(instance, "_client", None), "base_url", None)
    return common.server_of_url(str(base)) if base is not None else (None, None)


def usage_of(response: Any) -> Any:
    return make_usage(getattr(response, "prompt_eval_count", None), getattr(response, "eval_count", None))


def _finish(response: Any) -> tuple[str, ...]:
    reason = getattr(response, "done_reason", None)
    return (reason,) if isinstance(reason, str) and reason else ()


class _Operation:
    """One Ollama endpoint; ``positional`` names its parameters that may be passed by position."""

    operation = semconv.OP_CHAT
    positional: tuple[str, ...] = ()

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        send_args = None
        if args and len(args) <= len(self.positional) and not set(self.positional[: len(args)]) & set(kwargs):
            # Sent by name instead, so the prompt can be read; anything else reaches the SDK as given.
            kwargs = {**dict(zip(self.positional, args, strict=False)), **kwargs}
            send_args = ()
        attributes = _options(kwargs)
        if kwargs.get("format"):
            attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
        request = common.request(
            PROVIDER, self.operation, kwargs.get("model"), _server(instance), attributes, kwargs.get("stream") is True
        )
        return Prepared(request, kwargs, args=send_args)

    stream_kind = staticmethod(common.generator_stream_kind)

    def result(self, response: Any, want_text: bool) -> Result:
        usage = usage_of(response)
        return Result(
            usage=usage,
            response_model=getattr(response, "model", None),
            finish_reasons=_finish(response),
            tool_calls=self._tool_calls(response),
            output_text=self._text(response) if common.needs_text(want_text, usage) else None,
        )

    def accumulator(self, prepared: Prepared) -> StreamAccumulator:
        return StreamAccumulator(self)

    def _text(self, response: Any) -> str:
        return ""

    def _tool_calls(self, response: Any) -> int:
        return 0

    def prompt_text(self, kwargs: dict) -> str:
        raise NotImplementedError

    def input_messages(self, kwargs: dict) -> Any:
        return [{"role": "user", "parts": [{"type": "text", "content": self.prompt_text(kwargs)}]}]


class Chat(_Operation):
    positional = ("model", "messages")

    def _text(self, response: Any) -> str:
        content = getattr(getattr(response, "message", None), "content", None)
        return content if isinstance(content, str) else ""

    def _tool_calls(self, response: Any) -> int:
        return common.count_of(getattr(getattr(response, "message", None), "tool_calls", None))

    def prompt_text(self, kwargs: dict) -> str:
        return common.messages_text(kwargs.get("messages"))

    def input_messages(self, kwargs: dict) -> Any:
        return common.input_messages(kwargs.get("messages"))


class Generate(_Operation):
    operation = semconv.OP_TEXT_COMPLETION
    positional = ("model", "prompt", "suffix")

    def _text(self, response: Any) -> str:
        text = getattr(response, "response", None)
        return text if isinstance(text, str) else ""

    def prompt_text(self, kwargs: dict) -> str:
        parts = (kwargs.get("system"), kwargs.get("prompt"), kwargs.get("suffix"))
        return "\n".join(part for part in parts if isinstance(part, str) and part)


class Embed(_Operation):
    """``embed`` (``input``, with counts) and the legacy ``embeddings`` (``prompt``, without)."""

    operation = semconv.OP_EMBEDDINGS
    def __init__(self, text_parameter: str) -> None:
        self.positional = ("model", text_parameter)

    def prompt_text(self, kwargs: dict) -> str:
        given = kwargs.get("input", kwargs.get("prompt"))
        if isinstance(given, str):
            return given
        return "\n".join(item for item in common.sequence(given) if isinstance(item, str))

    def input_messages(self, kwargs: dict) -> Any:
        return None


class StreamAccumulator:
    """Reads a stream's chunks; the last one (``done=True``) has the counts."""

    __slots__ = ("_adapter", "_last", "_model", "_text", "_tool_calls")

    def __init__(self, adapter: _Operation) -> None:
        self._adapter = adapter
        self._last: Any = None
        self._model: str | None = None
        self._text: list[str] = []
        self._tool_calls = 0

    def add(self, chunk: Any) -> bool:
        if self._model is None:
            self._model = getattr(chunk, "model", None)
        self._text.append(self._adapter._text(chunk))
        self._tool_calls += self._adapter._tool_calls(chunk)
        if getattr(chunk, "done", None):
            self._last = chunk
        return True

    def result(self) -> Result:
        last = self._last
        return Result(
            usage=usage_of(last) if last is not None else None,
            response_model=self._model,
            finish_reasons=_finish(last) if last is not None else (),
            tool_calls=self._tool_calls,
            output_text="".join(self._text),
        )
