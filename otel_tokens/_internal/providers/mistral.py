"""Mistral adapter (``mistralai`` 3.x, ``from mistralai.client import Mistral``): parsing only.

Token conversion (already in semconv terms): ``prompt_tokens`` includes cached tokens, which arrive as
the pydantic extra ``prompt_tokens_details.cached_tokens``; ``completion_tokens`` is the output. The SDK's
``UsageInfo`` defaults missing counts to 0, so only counts the response actually set are read.

Streams are ``EventStream`` / ``EventStreamAsync`` of ``CompletionEvent``; the last event's
``data.usage`` carries the counts.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from otel_tokens import semconv
from otel_tokens._internal.base.records import Result, make_usage
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers import common

PROVIDER = "mistral_ai"

_CHAT_PARAMS = (
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS, (int,)),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE, (int, float)),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P, (int, float)),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K, (int,)),
    ("random_seed", semconv.GEN_AI_REQUEST_SEED, (int,)),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY, (int, float)),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, (int, float)),
    ("reasoning_effort", semconv.GEN_AI_REQUEST_REASONING_LEVEL, (str,)),
)


@functools.cache
def _stream_classes() -> tuple[type, type]:
    from mistralai.client.utils import eventstreaming

    return eventstreaming.EventStream, eventstreaming.EventStreamAsync


def _stream_kind(response: Any) -> Literal["sync", "async"] | None:
    return common.stream_kind(response, *_stream_classes())


def _server(instance: Any, kwargs: dict) -> tuple[str | None, int | None]:
    url = kwargs.get("server_url")
    if not isinstance(url, str) or not url:
        url = instance.sdk_configuration.get_server_details()[0]
    return common.server_of_url(url) if isinstance(url, str) else (None, None)


def usage_of(usage: Any) -> Any:
    """A ``UsageInfo`` in semconv terms (None when it carries no counts)."""
    if usage is None:
        return None
    details = common.sent_field(usage, "prompt_tokens_details")
    return make_usage(
        common.sent_field(usage, "prompt_tokens"),
        common.sent_field(usage, "completion_tokens"),
        common.field(details, "cached_tokens"),
    )


def _choice_text(choice: Any) -> str:
    message = getattr(choice, "message", None)
    return common.text_of(getattr(message, "content", None))


def _tool_calls(choices: Any) -> int:
    return sum(common.count_of(getattr(getattr(c, "message", None), "tool_calls", None)) for c in choices)


class Chat:
    """``chat.complete`` / ``complete_async`` / ``stream`` / ``stream_async`` (``parse*`` go through
    them) and ``agents.*``, whose requests name an agent instead of a model."""

    operation = semconv.OP_CHAT

    def __init__(self, *, streaming: bool = False) -> None:
        # The stream methods send ``stream: true`` themselves; their caller passes no flag.
        self._streaming = streaming

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes = common.request_attributes(kwargs, _CHAT_PARAMS)
        stop = common.stop_sequences(kwargs.get("stop"))
        if stop:
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        n = kwargs.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n != 1:
            attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
        response_format = kwargs.get("response_format")
        kind = common.field(response_format, "type")
        if kind in ("json_object", "json_schema") or getattr(kind, "value", None) in ("json_object", "json_schema"):
            attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
        agent_id = kwargs.get("agent_id")
        if isinstance(agent_id, str):
            attributes[semconv.GEN_AI_AGENT_ID] = agent_id
        request = common.request(
            PROVIDER, self.operation, kwargs.get("model"), _server(instance, kwargs), attributes, self._streaming
        )
        return Prepared(request, kwargs)

    def result(self, response: Any, want_text: bool) -> Result:
        usage = usage_of(getattr(response, "usage", None))
        choices = getattr(response, "choices", None) or ()
        text = "".join(_choice_text(c) for c in choices) if common.needs_text(want_text, usage) else None
        return Result(
            usage=usage,
            response_model=getattr(response, "model", None),
            response_id=getattr(response, "id", None),
            finish_reasons=_finish_reasons(choices),
            tool_calls=_tool_calls(choices),
            output_text=text,
        )

    stream_kind = staticmethod(_stream_kind)

    def accumulator(self, prepared: Prepared) -> CompletionEventAccumulator:
        return CompletionEventAccumulator()

    def prompt_text(self, kwargs: dict) -> str:
        return common.messages_text(kwargs.get("messages"))

    def input_messages(self, kwargs: dict) -> Any:
        return common.input_messages(kwargs.get("messages"))


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    reasons = []
    for choice in choices:
        reason = getattr(choice, "finish_reason", None)
        reason = getattr(reason, "value", reason)
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    return tuple(reasons)


class Fim(Chat):
    """``fim.complete`` / ``stream`` (sync and async): a code completion of ``prompt`` + ``suffix``."""

    operation = semconv.OP_TEXT_COMPLETION

    def prompt_text(self, kwargs: dict) -> str:
        return "\n".join(part for part in (kwargs.get("prompt"), kwargs.get("suffix")) if isinstance(part, str))

    def input_messages(self, kwargs: dict) -> Any:
        return [{"role": "user", "parts": [{"type": "text", "content": self.prompt_text(kwargs)}]}]


class CompletionEventAccumulator:
    """Reads ``CompletionEvent``s; never changes what the caller gets."""

    __slots__ = ("_usage", "_id", "_model", "_finish", "_text", "_tool_calls")

    def __init__(self) -> None:
        self._usage: Any = None
        self._id: str | None = None
        self._model: str | None = None
        self._finish: list[str] = []
        self._text: list[str] = []
        self._tool_calls = 0

    def add(self, event: Any) -> bool:
        chunk = event.data
        if self._id is None:
            self._id = chunk.id
            self._model = chunk.model
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta is not None:
                text = common.text_of(delta.content)
                if text:
                    self._text.append(text)
                self._tool_calls += common.count_of(delta.tool_calls)
        self._finish.extend(_finish_reasons(chunk.choices))
        return True

    def result(self) -> Result:
        return Result(
            usage=usage_of(self._usage),
            response_model=self._model,
            response_id=self._id,
            finish_reasons=tuple(self._finish),
            tool_calls=self._tool_calls,
            output_text="".join(self._text),
        )


class Embeddings:
    operation = semconv.OP_EMBEDDINGS

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes: dict[str, Any] = {}
        dimensions = kwargs.get("output_dimension")
        if isinstance(dimensions, int) and not isinstance(dimensions, bool):
            attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        encoding = kwargs.get("encoding_format")
        encoding = getattr(encoding, "value", encoding)
        if isinstance(encoding, str):
            attributes[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = (encoding,)
        request = common.request(PROVIDER, self.operation, kwargs.get("model"), _server(instance, kwargs), attributes)
        return Prepared(request, kwargs)

    def result(self, response: Any, want_text: bool) -> Result:
        return Result(
            usage=usage_of(getattr(response, "usage", None)),
            response_model=getattr(response, "model", None),
            response_id=getattr(response, "id", None),
        )

    stream_kind = staticmethod(lambda response: None)

    def accumulator(self, prepared: Prepared) -> Any:  # embeddings never stream
        raise NotImplementedError

    def prompt_text(self, kwargs: dict) -> str:
        inputs = kwargs.get("inputs")
        if isinstance(inputs, str):
            return inputs
        return "\n".join(item for item in common.sequence(inputs) if isinstance(item, str))

    def input_messages(self, kwargs: dict) -> Any:
        return None
