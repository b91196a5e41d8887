"""Cohere adapter (``cohere`` 5.x-7.x, V2 and V1 APIs): parsing only.

Token conversion: the *billed* units are the counts (semconv's choice, and what the price is for):
``billed_units.input_tokens`` / ``output_tokens``, which arrive as floats (``make_usage`` turns whole
floats into ints); ``cached_tokens`` is the cache read. V2 chat puts them in ``usage``, V1 responses
and embeddings in ``meta``.

Streams are generators (sync) and async generators of events. V2: ``message-start`` has the id,
``message-end`` the finish reason and usage. V1 chat: ``stream-end`` carries the whole response, meta
included. Cohere's responses name no model; the requested one is used.
"""

from __future__ import annotations

from typing import Any

from otel_tokens import semconv
from otel_tokens._internal.base.records import Result, make_usage
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers import common

PROVIDER = "cohere"

_CHAT_PARAMS = (
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS, (int,)),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE, (int, float)),
    ("p", semconv.GEN_AI_REQUEST_TOP_P, (int, float)),
    ("k", semconv.GEN_AI_REQUEST_TOP_K, (int,)),
    ("seed", semconv.GEN_AI_REQUEST_SEED, (int,)),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY, (int, float)),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, (int, float)),
)


def _server(instance: Any) -> tuple[str | None, int | None]:
    # ClientV2 / BaseCohere keep the wrapper themselves; client.v2 (a V2Client) in its raw client.
    wrapper = getattr(instance, "_client_wrapper", None)
    if wrapper is None:
        wrapper = getattr(getattr(instance, "_raw_client", None), "_client_wrapper", None)
    url = wrapper.get_base_url() if wrapper is not None else None
    return common.server_of_url(url) if isinstance(url, str) else (None, None)


def usage_of(usage: Any) -> Any:
    """``Usage`` (V2) or ``ApiMeta`` (V1, embed) in semconv terms: the billed counts."""
    if usage is None:
        return None
    billed = common.field(usage, "billed_units")
    return make_usage(
        common.field(billed, "input_tokens"), common.field(billed, "output_tokens"), common.field(usage, "cached_tokens")
    )


def _finish(reason: Any) -> tuple[str, ...]:
    reason = getattr(reason, "value", reason)
    return (reason,) if isinstance(reason, str) and reason else ()


class _Base:
    operation = semconv.OP_CHAT

    def __init__(self, *, streaming: bool = False) -> None:
        self._streaming = streaming

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes = common.request_attributes(kwargs, _CHAT_PARAMS)
        stop = common.stop_sequences(kwargs.get("stop_sequences"))
        if stop:
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        if common.field(kwargs.get("response_format"), "type") == "json_object":
            attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
        request = common.request(
            PROVIDER, self.operation, kwargs.get("model"), _server(instance), attributes, self._streaming
        )
        return Prepared(request, kwargs)

    stream_kind = staticmethod(common.generator_stream_kind)

    def input_messages(self, kwargs: dict) -> Any:
        return [{"role": "user", "parts": [{"type": "text", "content": self.prompt_text(kwargs)}]}]

    def prompt_text(self, kwargs: dict) -> str:
        raise NotImplementedError


# -- V2 --------------------------------------------------------------------------------------------
class ChatV2(_Base):
    """``V2Client.chat`` / ``chat_stream`` and their async twins."""

    def result(self, response: Any, want_text: bool) -> Result:
        usage = usage_of(getattr(response, "usage", None))
        message = getattr(response, "message", None)
        text = common.text_of(getattr(message, "content", None)) if common.needs_text(want_text, usage) else None
        return Result(
            usage=usage,
            response_id=getattr(response, "id", None),
            finish_reasons=_finish(getattr(response, "finish_reason", None)),
            tool_calls=common.count_of(getattr(message, "tool_calls", None)),
            output_text=text,
        )

    def accumulator(self, prepared: Prepared) -> ChatV2StreamAccumulator:
        return ChatV2StreamAccumulator()

    def prompt_text(self, kwargs: dict) -> str:
        return common.messages_text(kwargs.get("messages"))

    def input_messages(self, kwargs: dict) -> Any:
        return common.input_messages(kwargs.get("messages"))


class ChatV2StreamAccumulator:
    __slots__ = ("_id", "_usage", "_finish", "_text", "_tool_calls")

    def __init__(self) -> None:
        self._id: str | None = None
        self._usage: Any = None
        self._finish: tuple[str, ...] = ()
        self._text: list[str] = []
        self._tool_calls = 0

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content-delta":
            content = common.field(common.field(event.delta, "message"), "content")
            text = common.field(content, "text")
            if isinstance(text, str):
                self._text.append(text)
        elif kind == "message-start":
            self._id = event.id
        elif kind == "tool-call-start":
            self._tool_calls += 1
        elif kind == "message-end":
            delta = event.delta
            self._usage = common.field(delta, "usage")
            self._finish = _finish(common.field(delta, "finish_reason"))
        return True

    def result(self) -> Result:
        return Result(
            usage=usage_of(self._usage),
            response_id=self._id,
            finish_reasons=self._finish,
            tool_calls=self._tool_calls,
            output_text="".join(self._text),
        )


class Embed(_Base):
    """V2 ``embed`` and V1 ``embed``: billed input tokens in ``meta``."""

    operation = semconv.OP_EMBEDDINGS

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes: dict[str, Any] = {}
        types = kwargs.get("embedding_types")
        if isinstance(types, (list, tuple)) and all(isinstance(t, str) for t in types) and types:
            attributes[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = tuple(types)
        dimensions = kwargs.get("output_dimension")
        if isinstance(dimensions, int) and not isinstance(dimensions, bool):
            attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        return Prepared(common.request(PROVIDER, self.operation, kwargs.get("model"), _server(instance), attributes), kwargs)

    def result(self, response: Any, want_text: bool) -> Result:
        return Result(usage=usage_of(getattr(response, "meta", None)), response_id=getattr(response, "id", None))

    def accumulator(self, prepared: Prepared) -> Any:  # embeddings never stream
        raise NotImplementedError

    def prompt_text(self, kwargs: dict) -> str:
        return "\n".join(text for text in common.sequence(kwargs.get("texts")) if isinstance(text, str))

    def input_messages(self, kwargs: dict) -> Any:
        return None


# -- V1 --------------------------------------------------------------------------------------------
class ChatV1(_Base):
    """``BaseCohere.chat`` / ``chat_stream`` (and async): ``message`` + ``preamble`` + ``chat_history``."""

    def result(self, response: Any, want_text: bool) -> Result:
        usage = usage_of(getattr(response, "meta", None))
        text = getattr(response, "text", None)
        return Result(
            usage=usage,
            response_id=getattr(response, "response_id", None) or getattr(response, "generation_id", None),
            finish_reasons=_finish(getattr(response, "finish_reason", None)),
            tool_calls=common.count_of(getattr(response, "tool_calls", None)),
            output_text=text if isinstance(text, str) and common.needs_text(want_text, usage) else None,
        )

    def accumulator(self, prepared: Prepared) -> ChatV1StreamAccumulator:
        return ChatV1StreamAccumulator(self)

    def prompt_text(self, kwargs: dict) -> str:
        parts = [kwargs.get("preamble")]
        parts += [common.field(turn, "message") for turn in common.sequence(kwargs.get("chat_history"))]
        parts.append(kwargs.get("message"))
        return "\n".join(part for part in parts if isinstance(part, str) and part)


class ChatV1StreamAccumulator:
    __slots__ = ("_adapter", "_final", "_id", "_text")

    def __init__(self, adapter: ChatV1) -> None:
        self._adapter = adapter
        self._final: Any = None
        self._id: str | None = None
        self._text: list[str] = []

    def add(self, event: Any) -> bool:
        kind = getattr(event, "event_type", None)
        if kind == "text-generation":
            self._text.append(event.text)
        elif kind == "stream-start":
            self._id = event.generation_id
        elif kind == "stream-end":
            self._final = event.response
        return True

    def result(self) -> Result:
        if self._final is not None:
            return self._adapter.result(self._final, True)
        return Result(response_id=self._id, output_text="".join(self._text))


class Generate(_Base):
    """V1 ``generate``: ``prompt`` in, ``generations`` out."""

    operation = semconv.OP_TEXT_COMPLETION

    def result(self, response: Any, want_text: bool) -> Result:
        usage = usage_of(getattr(response, "meta", None))
        generations = getattr(response, "generations", None) or ()
        text = None
        if common.needs_text(want_text, usage):
            text = "".join(g.text for g in generations if isinstance(getattr(g, "text", None), str))
        reasons = tuple(r for g in generations for r in _finish(getattr(g, "finish_reason", None)))
        return Result(usage=usage, response_id=getattr(response, "id", None), finish_reasons=reasons, output_text=text)

    def accumulator(self, prepared: Prepared) -> Any:  # generate_stream is not patched
        raise NotImplementedError

    def prompt_text(self, kwargs: dict) -> str:
        prompt = kwargs.get("prompt")
        return prompt if isinstance(prompt, str) else ""
