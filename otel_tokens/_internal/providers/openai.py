"""OpenAI adapter (openai 1.x-3.x, and every OpenAI-compatible endpoint): parsing only.

Token conversion (already in semconv terms): chat ``prompt_tokens`` includes cached tokens and
``completion_tokens`` includes reasoning; Responses ``input_tokens``/``output_tokens`` likewise.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from otel_tokens import semconv
from otel_tokens._internal.base.records import Request, Result, Usage, make_usage, sum_usages, with_billing
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.pricing.tokenizer import count_chat_tokens
from otel_tokens._internal.providers import common
from otel_tokens._internal.providers.detect import openai_client_provider

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

# request keyword -> semconv attribute, for plain scalar parameters
_CHAT_PARAMS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": semconv.GEN_AI_REQUEST_SEED,
    "reasoning_effort": semconv.GEN_AI_REQUEST_REASONING_LEVEL,
}
_RESPONSES_PARAMS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}


def _scalars(kwargs: dict, table: dict[str, str]) -> dict[str, Any]:
    attributes = {}
    for key, value in kwargs.items():  # a call passes few parameters: no look-up per table entry
        attribute = table.get(key)
        if attribute is not None and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            attributes[attribute] = value
    return attributes


def _raw_mode(kwargs: dict) -> str | None:
    headers = kwargs.get("extra_headers")
    if headers and isinstance(headers, dict):
        mode = headers.get(_RAW_RESPONSE_HEADER)
        return str(mode) if mode is not None else None
    return None


def stream_kind_of(package: str) -> Callable[[Any], Literal["sync", "async"] | None]:
    """``stream_kind`` for a Stainless SDK whose package exports ``Stream`` and ``AsyncStream``."""

    @functools.cache
    def classes() -> tuple[type, type]:
        module = importlib.import_module(package)
        return module.Stream, module.AsyncStream

    def stream_kind(response: Any) -> Literal["sync", "async"] | None:
        return common.stream_kind(response, *classes())

    return stream_kind


_stream_kind = stream_kind_of("openai")


def _sequence(value: Any) -> tuple | list:
    """Only lists and tuples are read: an iterator given to the SDK must reach it unconsumed."""
    return value if isinstance(value, (list, tuple)) else ()


def _text_of(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text") or part.get("content")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def openai_server(instance: Any) -> tuple[str, str | None, int | None]:
    """``(provider, server.address, server.port)`` of the client behind a resource."""
    return openai_client_provider(instance._client)


def _request(
    instance: Any,
    kwargs: dict,
    operation: str,
    attributes: dict[str, Any],
    server: Callable[[Any], tuple[str, str | None, int | None]] = openai_server,
) -> Request:
    provider, address, port = server(instance)
    model = kwargs.get("model")
    return Request(
        provider=provider,
        operation=operation,
        model=model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        stream=kwargs.get("stream") is True,
        attributes=attributes,
    )


# Responses output items that are the model asking for a tool the caller runs.
_RESPONSES_TOOL_CALLS = frozenset({"function_call", "custom_tool_call"})


def _extra_cost(usage: Any) -> Any:
    """A cost the server put in ``usage`` (OpenRouter ``usage.cost``), kept as a pydantic extra; the
    recorder uses it only if it is a finite, non-negative amount."""
    extra = getattr(usage, "model_extra", None)
    return extra.get("cost") if extra else None


def _modalities(input_details: Any, output_details: Any) -> dict[str, Any] | None:
    """Audio and image token counts of a usage's details, by genai-prices usage key; None when none."""
    if input_details is None and output_details is None:
        return None
    found = {
        "input_audio_tokens": getattr(input_details, "audio_tokens", None),
        "input_image_tokens": getattr(input_details, "image_tokens", None),
        "output_audio_tokens": getattr(output_details, "audio_tokens", None),
        "output_image_tokens": getattr(output_details, "image_tokens", None),
    }
    return {key: value for key, value in found.items() if value} or None


def chat_usage(usage: Any) -> Usage | None:
    """Chat ``usage`` (OpenAI, Groq and every OpenAI-compatible server share its shape)."""
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return make_usage(
        getattr(usage, "prompt_tokens", None),
        getattr(usage, "completion_tokens", None),
        getattr(prompt_details, "cached_tokens", None),
        getattr(prompt_details, "cache_write_tokens", None),
        getattr(completion_details, "reasoning_tokens", None),
        details=_modalities(prompt_details, completion_details),
    )


def responses_usage(usage: Any) -> Usage | None:
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    return make_usage(
        getattr(usage, "input_tokens", None),
        getattr(usage, "output_tokens", None),
        getattr(input_details, "cached_tokens", None),
        getattr(input_details, "cache_write_tokens", None),
        getattr(output_details, "reasoning_tokens", None),
        details=_modalities(input_details, output_details),
    )


# Tiers billed at the standard rates (OpenAI's default, Groq's on_demand, a compatible server's standard);
# any other tier the response names is priced by its variant, or flagged when there is none.
_STANDARD_TIERS = frozenset({"default", "auto", "on_demand", "standard"})


def service_tier(response: Any) -> tuple[str | None, tuple[tuple[str, str], ...], Any]:
    """The tier that served the call (the response's ``service_tier``, not the requested one): the
    tier, its genai-prices price context, and the span attributes saying it."""
    tier = getattr(response, "service_tier", None)
    if not isinstance(tier, str) or not tier:
        return None, (), ()
    context = () if tier in _STANDARD_TIERS else (("service_tier", tier),)
    return tier, context, ((semconv.OPENAI_RESPONSE_SERVICE_TIER, tier),)


# Responses output items that are a server-side tool the provider bills per call: the usage key.
_SERVER_TOOL_CALLS = {"web_search_call": "web_searches", "file_search_call": "storage_searches"}


# -- chat completions ------------------------------------------------------------------------------
def chat_attributes(kwargs: dict) -> dict[str, Any]:
    """Span attributes of a chat completions request."""
    attributes = _scalars(kwargs, _CHAT_PARAMS)
    max_tokens = kwargs.get("max_completion_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = kwargs.get("max_tokens")
    if isinstance(max_tokens, int):
        attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    n = kwargs.get("n")
    if isinstance(n, int) and n != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, (list, tuple)) and stop:
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(str(s) for s in stop)
    response_format = kwargs.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    elif isinstance(response_format, type):
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    return attributes


class ChatCompletions:
    """``chat.completions.create`` / ``parse`` (sync and async); ``stream()`` goes through ``create``."""

    operation = semconv.OP_CHAT
    # Whether the SDK takes ``stream_options`` (Groq's does not: its usage comes in ``x_groq``).
    asks_stream_usage = True
    server = staticmethod(openai_server)
    # How usage and a server-reported cost are read (an SDK wrapping others may read them differently).
    usage_of = staticmethod(chat_usage)
    cost_of = staticmethod(_extra_cost)

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        request = _request(instance, kwargs, self.operation, chat_attributes(kwargs), self.server)
        send = kwargs
        hide = False
        raw_mode = _raw_mode(kwargs)
        if request.stream and self.asks_stream_usage and settings.stream_usage and raw_mode is None:
            options = kwargs.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                # Ask for exact usage; the proxy hides the extra usage-only chunk from the caller.
                merged = dict(options) if isinstance(options, dict) else {}
                merged["include_usage"] = True
                send = {**kwargs, "stream_options": merged}
                hide = True
        return Prepared(request, send, hide, raw_mode)

    def result(self, response: Any, want_text: bool) -> Result:
        usage = getattr(response, "usage", None)
        choices = getattr(response, "choices", None) or ()
        text = None
        per_choice: tuple[tuple[str, str | None], ...] = ()
        if want_text or usage is None:
            texts = [self._choice_text(choice) for choice in choices]
            text = "".join(texts)
            if want_text and len(texts) > 1:
                per_choice = tuple((each, getattr(choice, "finish_reason", None))
                                   for each, choice in zip(texts, choices, strict=True))
        finish_reasons = []
        tool_calls = 0
        for choice in choices:  # one loop, no generators: this runs on every call
            reason = getattr(choice, "finish_reason", None)
            if reason:
                finish_reasons.append(reason)
            calls = getattr(getattr(choice, "message", None), "tool_calls", None)
            if calls:
                tool_calls += len(calls)
        tier, context, attributes = service_tier(response)
        parsed = self.usage_of(usage) if usage is not None else None
        return Result(
            usage=parsed if tier is None else with_billing(parsed, service_tier=tier, price_context=context),
            response_model=getattr(response, "model", None),
            response_id=getattr(response, "id", None),
            finish_reasons=tuple(finish_reasons),
            provider_cost_usd=self.cost_of(usage) if usage is not None else None,
            tool_calls=tool_calls,
            output_text=text,
            output_choices=per_choice,
            attributes=attributes,
        )

    @staticmethod
    def _choice_text(choice: Any) -> str:
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        return content if isinstance(content, str) else ""

    stream_kind = staticmethod(_stream_kind)

    def accumulator(self, prepared: Prepared) -> ChatStreamAccumulator:
        return ChatStreamAccumulator(prepared.hide_usage_chunk)

    def prompt_text(self, kwargs: dict) -> str:
        messages = _sequence(kwargs.get("messages"))
        return "\n".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))

    def prompt_tokens(self, kwargs: dict, model: str | None) -> int:
        """The chat format's count: each message wrapped, the reply primed, the tool definitions."""
        tools = kwargs.get("tools")
        return count_chat_tokens(_sequence(kwargs.get("messages")), tools if isinstance(tools, list) else None, model)

    def input_messages(self, kwargs: dict) -> Any:
        messages = _sequence(kwargs.get("messages"))
        return [
            {"role": m.get("role"), "parts": [{"type": "text", "content": _text_of(m.get("content"))}]}
            for m in messages
            if isinstance(m, dict)
        ]


class ChatStreamAccumulator:
    __slots__ = ("_hide", "_usage", "_id", "_model", "_finish", "_text", "_tools", "_choices", "_first")

    def __init__(self, hide_usage_chunk: bool) -> None:
        self._hide = hide_usage_chunk
        self._usage: Any = None
        self._id: str | None = None
        self._model: str | None = None
        self._finish: list[str] = []
        self._text: list[str] = []
        # (choice, tool call) indices seen: a call's arguments arrive over many deltas.
        self._tools: set[tuple[Any, Any]] = set()
        # With several choices (n > 1): choice index -> (its text parts, its finish reason); else None.
        self._choices: dict[Any, list[Any]] | None = None
        # The first chunk: it says which tier serves the stream.
        self._first: Any = None

    usage_of = staticmethod(chat_usage)
    cost_of = staticmethod(_extra_cost)

    # Usage is read inline (add() runs for every chunk) unless a subclass reads it elsewhere.
    _plain_usage = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_usage = cls._chunk_usage is ChatStreamAccumulator._chunk_usage

    @staticmethod
    def _chunk_usage(chunk: Any) -> Any:
        return chunk.usage

    def _take(self, choice: Any) -> None:
        delta = choice.delta
        index = getattr(choice, "index", 0)
        if index and self._choices is None:  # a second choice: keep each one's text from now on
            self._choices = {0: [list(self._text), self._finish[0] if self._finish else None]}
        if self._choices is not None:
            entry = self._choices.setdefault(index, [[], None])
            if delta is not None and delta.content:
                entry[0].append(delta.content)
            if choice.finish_reason:
                entry[1] = choice.finish_reason
        if delta is not None:
            content = delta.content
            if content:
                self._text.append(content)
            tool_calls = getattr(delta, "tool_calls", None)
            if tool_calls:
                self._tools.update((choice.index, getattr(call, "index", None)) for call in tool_calls)
        reason = choice.finish_reason
        if reason:
            self._finish.append(reason)

    def add(self, chunk: Any) -> bool:
        if self._id is None:
            self._id = chunk.id
            self._model = chunk.model
            self._first = chunk
        usage = chunk.usage if self._plain_usage else self._chunk_usage(chunk)
        choices = chunk.choices
        if usage is not None:
            self._usage = usage
            if not choices and self._hide:
                return False
        for choice in choices:
            self._take(choice)
        return True

    def result(self) -> Result:
        usage = self._usage
        tier, context, attributes = service_tier(self._first)
        parsed = self.usage_of(usage) if usage is not None else None
        return Result(
            usage=parsed if tier is None else with_billing(parsed, service_tier=tier, price_context=context),
            response_model=self._model,
            response_id=self._id,
            finish_reasons=tuple(self._finish),
            provider_cost_usd=self.cost_of(usage) if usage is not None else None,
            tool_calls=len(self._tools),
            output_text="".join(self._text),
            output_choices=tuple(("".join(parts), reason) for _, (parts, reason) in sorted(
                self._choices.items(), key=lambda item: item[0] if isinstance(item[0], int) else 0,
            )) if self._choices else (),
            attributes=attributes,
        )


# -- legacy completions ----------------------------------------------------------------------------
class Completions(ChatCompletions):
    operation = semconv.OP_TEXT_COMPLETION

    @staticmethod
    def _choice_text(choice: Any) -> str:
        text = getattr(choice, "text", None)
        return text if isinstance(text, str) else ""

    def accumulator(self, prepared: Prepared) -> CompletionStreamAccumulator:
        return CompletionStreamAccumulator(prepared.hide_usage_chunk)

    prompt_tokens = None  # a plain prompt: its text is the count

    def prompt_text(self, kwargs: dict) -> str:
        return _text_of(kwargs.get("prompt"))

    def input_messages(self, kwargs: dict) -> Any:
        return [{"role": "user", "parts": [{"type": "text", "content": self.prompt_text(kwargs)}]}]


class CompletionStreamAccumulator(ChatStreamAccumulator):
    __slots__ = ()

    def _take(self, choice: Any) -> None:
        if choice.text:
            self._text.append(choice.text)
        if choice.finish_reason:
            self._finish.append(choice.finish_reason)


# -- responses -------------------------------------------------------------------------------------
_STATUS_TO_FINISH = {"completed": "stop", "failed": "error", "cancelled": "cancelled"}
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _finish_of(response: Any) -> tuple[str, ...]:
    status = getattr(response, "status", None)
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        return (getattr(details, "reason", None) or "incomplete",)
    finish = _STATUS_TO_FINISH.get(status) if status else None
    return (finish,) if finish else ()


def responses_attributes(kwargs: dict) -> dict[str, Any]:
    """Span attributes of a Responses API request."""
    attributes = _scalars(kwargs, _RESPONSES_PARAMS)
    reasoning = kwargs.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        attributes[semconv.GEN_AI_REQUEST_REASONING_LEVEL] = reasoning["effort"]
    previous = kwargs.get("previous_response_id")
    if isinstance(previous, str):
        attributes[semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID] = previous
    text = kwargs.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        if text["format"].get("type") in ("json_schema", "json_object"):
            attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    if kwargs.get("text_format") is not None:
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    return attributes


class Responses:
    """``responses.create`` / ``parse`` (sync and async); ``stream()`` goes through ``create``."""

    operation = semconv.OP_CHAT
    server = staticmethod(openai_server)
    cost_of = staticmethod(_extra_cost)

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        request = _request(instance, kwargs, self.operation, responses_attributes(kwargs), self.server)
        return Prepared(request, kwargs, False, _raw_mode(kwargs))

    def result(self, response: Any, want_text: bool) -> Result:
        usage = getattr(response, "usage", None)
        text = None
        if want_text or usage is None:
            text = guarded_output_text(response)
        tool_calls = 0
        server_tools: dict[str, int] = {}
        for item in getattr(response, "output", None) or ():
            kind = getattr(item, "type", None)
            if kind in _RESPONSES_TOOL_CALLS:
                tool_calls += 1
            elif kind in _SERVER_TOOL_CALLS:
                key = _SERVER_TOOL_CALLS[kind]
                server_tools[key] = server_tools.get(key, 0) + 1
        tier, context, attributes = service_tier(response)
        parsed = responses_usage(usage) if usage is not None else None
        return Result(
            usage=with_billing(parsed, details=server_tools, service_tier=tier, price_context=context),
            response_model=getattr(response, "model", None),
            response_id=getattr(response, "id", None),
            finish_reasons=_finish_of(response),
            provider_cost_usd=self.cost_of(usage) if usage is not None else None,
            tool_calls=tool_calls,
            output_text=text,
            attributes=attributes,
        )

    stream_kind = staticmethod(_stream_kind)

    def accumulator(self, prepared: Prepared) -> ResponsesStreamAccumulator:
        return ResponsesStreamAccumulator(self)

    def prompt_text(self, kwargs: dict) -> str:
        parts = []
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            parts.append(instructions)
        given = kwargs.get("input")
        if isinstance(given, str):
            parts.append(given)
        elif isinstance(given, (list, tuple)):
            for item in given:
                if isinstance(item, dict):
                    parts.append(_text_of(item.get("content")))
        return "\n".join(parts)

    def input_messages(self, kwargs: dict) -> Any:
        return [{"role": "user", "parts": [{"type": "text", "content": self.prompt_text(kwargs)}]}]


def guarded_output_text(response: Any) -> str | None:
    try:
        text = response.output_text
    except Exception:
        return None
    return text if isinstance(text, str) else None


class ResponsesStreamAccumulator:
    __slots__ = ("_adapter", "_final", "_id", "_model", "_text")

    def __init__(self, adapter: Responses) -> None:
        self._adapter = adapter
        self._final: Any = None
        self._id: str | None = None
        self._model: str | None = None
        self._text: list[str] = []

    def add(self, event: Any) -> bool:
        kind = event.type
        if kind == "response.output_text.delta":
            self._text.append(event.delta)
        elif kind in _TERMINAL_EVENTS:
            self._final = event.response
        elif kind == "response.created":
            response = event.response
            self._id = response.id
            self._model = response.model
        return True

    def result(self) -> Result:
        if self._final is not None:
            result = self._adapter.result(self._final, False)
            if result.output_text is None:
                result = replace(result, output_text="".join(self._text))
            return result
        return Result(response_model=self._model, response_id=self._id, output_text="".join(self._text))


# -- embeddings ------------------------------------------------------------------------------------
class Embeddings:
    operation = semconv.OP_EMBEDDINGS
    server = staticmethod(openai_server)
    cost_of = staticmethod(_extra_cost)

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes: dict[str, Any] = {}
        encoding = kwargs.get("encoding_format")
        if isinstance(encoding, str):
            attributes[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = (encoding,)
        dimensions = kwargs.get("dimensions")
        if isinstance(dimensions, int):
            attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
        request = _request(instance, kwargs, self.operation, attributes, self.server)
        return Prepared(request, kwargs, False, _raw_mode(kwargs))

    def result(self, response: Any, want_text: bool) -> Result:
        usage = getattr(response, "usage", None)
        return Result(
            usage=make_usage(getattr(usage, "prompt_tokens", None), None) if usage is not None else None,
            response_model=getattr(response, "model", None),
            provider_cost_usd=self.cost_of(usage) if usage is not None else None,
        )

    stream_kind = staticmethod(lambda response: None)

    def accumulator(self, prepared: Prepared) -> Any:  # embeddings never stream
        raise NotImplementedError

    def prompt_text(self, kwargs: dict) -> str:
        given = kwargs.get("input")
        if isinstance(given, str):
            return given
        if isinstance(given, (list, tuple)):
            return "\n".join(item for item in given if isinstance(item, str))
        return ""

    def input_messages(self, kwargs: dict) -> Any:
        return None


# -- images ---------------------------------------------------------------------------------------
# Stream events that end one image, carrying the usage of its generation.
_IMAGE_COMPLETED_EVENTS = frozenset({"image_generation.completed", "image_edit.completed"})


class Images:
    """``images.generate`` / ``images.edit`` (sync and async, streams included). GPT image models report
    usage as Responses does (``input_tokens_details`` / ``output_tokens_details`` by modality, priced at
    the image rates); DALL-E reports none and is billed per image, so its calls are usage unknown."""

    # The conventions define no image operation; generate_content is theirs for multimodal generation.
    operation = semconv.OP_GENERATE_CONTENT
    server = staticmethod(openai_server)
    cost_of = staticmethod(_extra_cost)
    # Billed by image tokens or per image, not by the prompt's text: never estimated from it.
    estimates_usage = False

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes: dict[str, Any] = {semconv.GEN_AI_OUTPUT_TYPE: "image"}
        n = kwargs.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n != 1:
            attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
        # No model given: the API picks one and the response does not name it, so it stays unknown.
        request = _request(instance, kwargs, self.operation, attributes, self.server)
        return Prepared(request, kwargs, False, _raw_mode(kwargs))

    def result(self, response: Any, want_text: bool) -> Result:
        usage = getattr(response, "usage", None)
        return Result(
            usage=responses_usage(usage) if usage is not None else None,
            provider_cost_usd=self.cost_of(usage) if usage is not None else None,
        )

    stream_kind = staticmethod(_stream_kind)

    def accumulator(self, prepared: Prepared) -> ImagesStreamAccumulator:
        return ImagesStreamAccumulator()

    def prompt_text(self, kwargs: dict) -> str:
        prompt = kwargs.get("prompt")
        return prompt if isinstance(prompt, str) else ""

    def input_messages(self, kwargs: dict) -> Any:
        # The prompt's text only: never the images sent (edit) or their bytes.
        return [{"role": "user", "parts": [{"type": "text", "content": self.prompt_text(kwargs)}]}]


class ImagesStreamAccumulator:
    """Partial images carry no usage; each ``*.completed`` event carries its image's."""

    __slots__ = ("_usages", "_cost")

    def __init__(self) -> None:
        self._usages: list[Usage | None] = []
        self._cost: Any = None

    def add(self, event: Any) -> bool:
        if event.type in _IMAGE_COMPLETED_EVENTS:
            usage = getattr(event, "usage", None)
            self._usages.append(responses_usage(usage) if usage is not None else None)
            self._cost = _extra_cost(usage) if usage is not None else None
        return True

    def result(self) -> Result:
        usages = self._usages
        if len(usages) == 1:
            return Result(usage=usages[0], provider_cost_usd=self._cost)
        # Several completed events (n > 1): summed, and marked estimated, since the API does not say whether
        # each event's usage is its image's or the whole call's. None seen: usage unknown.
        total = sum_usages(usages)
        if len(usages) > 1 and isinstance(total, Usage) and not total.invalid:
            total = replace(total, estimated=True)
        return Result(usage=total)


# -- batches --------------------------------------------------------------------------------------
# Batch endpoints -> the operation their requests are.
_BATCH_OPERATIONS = {
    "/v1/chat/completions": semconv.OP_CHAT, "/v1/responses": semconv.OP_CHAT,
    "/v1/completions": semconv.OP_TEXT_COMPLETION, "/v1/embeddings": semconv.OP_EMBEDDINGS,
}


class BatchObjects:
    """``batches.retrieve()`` and ``batches.list()`` (each page, as the SDK fetches it: no request of
    ours): a completed ``Batch`` with ``usage`` is one call for the whole batch, at batch rates. The
    engine counts it once per batch id (``calls.engine.BatchOperation``)."""

    @staticmethod
    def batches(response: Any) -> Any:
        if getattr(response, "object", None) == "batch":  # retrieve(): the Batch itself
            return (response,)
        data = getattr(response, "data", None)  # a page; the page patches see every paginated list
        if isinstance(data, list) and data and getattr(data[0], "object", None) == "batch":
            return data
        return ()

    @staticmethod
    def calls(instance: Any, args: tuple, kwargs: dict, batch: Any) -> tuple[str, list[tuple[Request, Result]]] | None:
        usage = getattr(batch, "usage", None)
        batch_id = getattr(batch, "id", None)
        if getattr(batch, "status", None) != "completed" or usage is None or not isinstance(batch_id, str):
            return None
        # A page's client (page._client) or a resource's (instance._client): both are the OpenAI client.
        client = getattr(instance, "_client", None)
        provider, address, port = openai_client_provider(client) if client is not None else ("openai", None, None)
        model = getattr(batch, "model", None)
        request = Request(
            provider=provider, operation=_BATCH_OPERATIONS.get(getattr(batch, "endpoint", None), semconv.OP_CHAT),
            model=model if isinstance(model, str) else None, server_address=address, server_port=port,
            attributes={semconv.OTEL_TOKENS_BATCH_ID: batch_id},
        )  # fmt: skip
        parsed = with_billing(responses_usage(usage), service_tier="batch", price_context=(("processing", "batch"),))
        return batch_id, [(request, Result(usage=parsed, response_model=request.model, response_id=batch_id))]


# -- helpers' raw streams --------------------------------------------------------------------------
def helper_raw_stream(stream: Any) -> Any:
    """The raw ``Stream`` inside a ``ChatCompletionStream`` / ``ResponseStream`` helper."""
    return getattr(stream, "_raw_stream", None)
