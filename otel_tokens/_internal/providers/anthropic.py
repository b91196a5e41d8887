"""Anthropic adapter (anthropic >= 0.40, incl. 2.x on httpx2): parsing only.

Token conversion to semconv terms: Anthropic's ``input_tokens`` excludes cached tokens, so

    input      = input_tokens + cache_creation_input_tokens + cache_read_input_tokens
    cache_read = cache_read_input_tokens
    cache_write= cache_creation_input_tokens
    output     = output_tokens                          (includes thinking)
    reasoning  = output_tokens_details.thinking_tokens  (when the API reports it)

Streams: ``message_start`` carries the id, the model and the usage so far; each ``message_delta``
carries *cumulative* counts, so every field it sets replaces the one from ``message_start`` (what the
SDK's own accumulator does). A stream that ends before its ``message_delta`` reports the counts of
``message_start``: the exact input, and the output as the server had counted it then.

Billing beyond tokens, from ``usage``: ``service_tier`` (``standard``, ``priority``, ``batch``) and
``speed`` (``fast``) give the tier and its price context; ``cache_creation`` splits cache writes by TTL
(``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``); ``server_tool_use`` counts web searches
(billed per call) and web fetches (no fee: recorded only).

Beta usage may list compaction ``iterations``, which are billed but not in the top-level counts; they
are not added here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from otel_tokens import semconv
from otel_tokens._internal.base.records import Request, Result, Usage, make_usage, tokens, with_billing
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared
from otel_tokens._internal.providers.detect import server_of

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
# The SDK's header values -> the engine's raw modes ("raw" in anthropic; "true" in older Stainless SDKs).
_RAW_MODES = {"raw": "true", "true": "true", "stream": "stream"}

# Client class name parts -> gen_ai.provider.name; anything else is Anthropic's own API.
_CLIENT_PROVIDERS = (
    ("Bedrock", "aws.bedrock"),
    ("Vertex", "gcp.vertex_ai"),
    ("Foundry", "azure.ai.inference"),
)

# anthropic 2.x dropped these keywords; they can still be sent through ``extra_body``.
_SAMPLING_PARAMS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE, (int, float)),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P, (int, float)),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K, (int,)),
)


@functools.lru_cache(maxsize=64)
def _provider_of_class(cls: type) -> str:
    for klass in cls.__mro__:
        for marker, provider in _CLIENT_PROVIDERS:
            if marker in klass.__name__:
                return provider
    return "anthropic"


def anthropic_client_provider(client: Any) -> tuple[str, str | None, int | None]:
    """``(provider, server.address, server.port)`` for an ``anthropic`` client."""
    host, port = server_of(client)
    return _provider_of_class(type(client)), host, port


def _number(value: Any, types: tuple[type, ...]) -> Any:
    return value if isinstance(value, types) and not isinstance(value, bool) else None


def _raw_mode(kwargs: dict) -> str | None:
    headers = kwargs.get("extra_headers")
    if headers and isinstance(headers, Mapping):
        mode = headers.get(_RAW_RESPONSE_HEADER)
        if mode is not None:
            return _RAW_MODES.get(str(mode), str(mode))
    return None


def _stream_kind(response: Any) -> Literal["sync", "async"] | None:
    import anthropic

    if isinstance(response, anthropic.Stream):
        return "sync"
    if isinstance(response, anthropic.AsyncStream):
        return "async"
    return None


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of blocks (text and tool results)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        return ""
    parts = []
    for block in content:
        if isinstance(block, Mapping):
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif kind == "tool_result":
                parts.append(_text_of(block.get("content")))
        elif isinstance(block, str):
            parts.append(block)
        elif getattr(block, "type", None) == "text":  # a response block passed back as is
            text = getattr(block, "text", None)
            if isinstance(text, str):
                parts.append(text)
    return "\n".join(part for part in parts if part)


def _messages(kwargs: dict) -> tuple | list:
    """The request's messages if they can be read twice; an iterator is left for the SDK alone."""
    messages = kwargs.get("messages")
    return messages if isinstance(messages, (list, tuple)) else ()


def billing(
    tier: Any, speed: Any, cache_creation: Any, server_tool_use: Any
) -> tuple[dict[str, Any] | None, str | None, tuple[tuple[str, str], ...], Any]:
    """(details, tier, price context, span attributes) from what a usage says beyond its counts."""
    details: dict[str, Any] | None = None
    one_hour = getattr(cache_creation, "ephemeral_1h_input_tokens", None) if cache_creation is not None else None
    if one_hour:  # 5-minute writes alone are the default cache-write rate: no detail, the fast path
        details = {
            "cache_write_5m_tokens": getattr(cache_creation, "ephemeral_5m_input_tokens", None),
            "cache_write_1h_tokens": one_hour,
        }
    attributes: tuple[tuple[str, Any], ...] = ()
    if server_tool_use is not None:
        details = details or {}
        details["web_searches"] = getattr(server_tool_use, "web_search_requests", None)
        fetches = getattr(server_tool_use, "web_fetch_requests", None)
        if isinstance(fetches, int) and fetches > 0:
            attributes = ((semconv.OTEL_TOKENS_SERVER_TOOL_WEB_FETCH, fetches),)
    tier = tier if isinstance(tier, str) and tier else None
    context: list[tuple[str, str]] = []
    if tier == "batch":
        context.append(("processing", "batch"))
    elif tier is not None and tier != "standard":
        context.append(("service_tier", tier))
    if speed == "fast":
        context.append(("speed", "fast"))
        tier = "fast" if tier in (None, "standard") else f"{tier}+fast"
    return details, tier, tuple(context), attributes


def message_usage(usage: Any) -> tuple[Usage | None, Any]:
    """A ``Usage`` / ``BetaUsage`` in semconv terms (Anthropic's input excludes the cache), and the span
    attributes of what it says beyond billed counts."""
    cache_read = getattr(usage, "cache_read_input_tokens", None)
    cache_write = getattr(usage, "cache_creation_input_tokens", None)
    details = getattr(usage, "output_tokens_details", None)
    billed, tier, context, attributes = billing(
        getattr(usage, "service_tier", None), getattr(usage, "speed", None),
        getattr(usage, "cache_creation", None), getattr(usage, "server_tool_use", None),
    )  # fmt: skip
    return make_usage(
        tokens(getattr(usage, "input_tokens", None), cache_read, cache_write),
        getattr(usage, "output_tokens", None),
        cache_read,
        cache_write,
        getattr(details, "thinking_tokens", None),
        details=billed,
        service_tier=tier,
        price_context=context,
    ), attributes


class Messages:
    """``messages.create`` (incl. ``stream=True``) and ``parse``, stable and beta, sync and async.

    With ``streaming_helper=True`` it describes ``messages.stream()``, whose manager sends the request
    itself when entered; its stream keeps the SDK's raw stream in ``raw_stream_attribute``.
    """

    operation = semconv.OP_CHAT
    raw_stream_attribute = "_raw_stream"

    def __init__(self, *, streaming_helper: bool = False) -> None:
        self._streaming_helper = streaming_helper

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes: dict[str, Any] = {}
        max_tokens = _number(kwargs.get("max_tokens"), (int,))
        if max_tokens is not None:
            attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        extra_body = kwargs.get("extra_body")
        extra_body = extra_body if isinstance(extra_body, Mapping) else {}
        for key, attribute, types in _SAMPLING_PARAMS:
            value = _number(kwargs.get(key), types)
            if value is None:
                value = _number(extra_body.get(key), types)
            if value is not None:
                attributes[attribute] = value
        stop = kwargs.get("stop_sequences")
        if isinstance(stop, (list, tuple)) and stop:
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(str(s) for s in stop)
        output_config = kwargs.get("output_config")
        if isinstance(output_config, Mapping):
            effort = output_config.get("effort")
            if isinstance(effort, str):
                attributes[semconv.GEN_AI_REQUEST_REASONING_LEVEL] = effort
            output_format = output_config.get("format")
            if isinstance(output_format, Mapping) and output_format.get("type") == "json_schema":
                attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
        output_format = kwargs.get("output_format")
        if isinstance(output_format, type) or (
            isinstance(output_format, Mapping) and output_format.get("type") == "json_schema"
        ):
            attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"

        provider, address, port = anthropic_client_provider(instance._client)
        model = kwargs.get("model")
        request = Request(
            provider=provider,
            operation=self.operation,
            model=model if isinstance(model, str) else None,
            server_address=address,
            server_port=port,
            stream=self._streaming_helper or kwargs.get("stream") is True,
            attributes=attributes,
        )
        return Prepared(request, kwargs, False, _raw_mode(kwargs))

    def result(self, response: Any, want_text: bool) -> Result:
        usage = getattr(response, "usage", None)
        text = None
        if want_text or usage is None:
            blocks = getattr(response, "content", None) or ()
            text = "".join(block.text for block in blocks if getattr(block, "type", None) == "text")
        stop_reason = getattr(response, "stop_reason", None)
        blocks = getattr(response, "content", None) or ()
        parsed, attributes = message_usage(usage) if usage is not None else (None, ())
        return Result(
            usage=parsed,
            response_model=getattr(response, "model", None),
            response_id=getattr(response, "id", None),
            finish_reasons=(stop_reason,) if stop_reason else (),
            tool_calls=sum(1 for block in blocks if getattr(block, "type", None) == "tool_use"),
            output_text=text,
            attributes=attributes,
        )

    stream_kind = staticmethod(_stream_kind)

    def accumulator(self, prepared: Prepared) -> MessageStreamAccumulator:
        return MessageStreamAccumulator()

    def prompt_text(self, kwargs: dict) -> str:
        parts = [_text_of(kwargs.get("system"))]
        for message in _messages(kwargs):
            if isinstance(message, Mapping):
                parts.append(_text_of(message.get("content")))
        return "\n".join(part for part in parts if part)

    def input_messages(self, kwargs: dict) -> Any:
        messages = []  # the system prompt is not a message here: see system_instructions
        for message in _messages(kwargs):
            if isinstance(message, Mapping):
                text = _text_of(message.get("content"))
                messages.append({"role": message.get("role"), "parts": [{"type": "text", "content": text}]})
        return messages

    def system_instructions(self, kwargs: dict) -> Any:
        system = _text_of(kwargs.get("system"))
        return [{"type": "text", "content": system}] if system else None


class BatchResults:
    """``messages.batches.results(batch_id)``: each succeeded result is one call, billed at batch rates
    and attributed like any other call (the labels in force where the results are read), with its
    ``custom_id`` and the batch's id on the span. Errored, canceled and expired requests are not billed."""

    operation = semconv.OP_CHAT
    _message = Messages()

    def completed(self, instance: Any, args: tuple, kwargs: dict, item: Any) -> tuple[Request, Result] | None:
        result = getattr(item, "result", None)
        if getattr(result, "type", None) != "succeeded":
            return None
        message = result.message
        provider, address, port = anthropic_client_provider(instance._client)
        attributes: dict[str, Any] = {}
        custom_id = getattr(item, "custom_id", None)
        if isinstance(custom_id, str):
            attributes[semconv.OTEL_TOKENS_BATCH_CUSTOM_ID] = custom_id
        batch_id = args[0] if args else kwargs.get("message_batch_id")
        if isinstance(batch_id, str):
            attributes[semconv.OTEL_TOKENS_BATCH_ID] = batch_id
        model = getattr(message, "model", None)
        request = Request(
            provider=provider, operation=self.operation, model=model if isinstance(model, str) else None,
            server_address=address, server_port=port, attributes=attributes,
        )  # fmt: skip
        parsed = self._message.result(message, False)
        usage = parsed.usage
        if usage is not None and usage.service_tier is None:  # a batch result is a batch call
            parsed = replace(parsed, usage=with_billing(usage, service_tier="batch", price_context=(("processing", "batch"),)))
        return request, parsed


class MessageStreamAccumulator:
    """Reads ``RawMessageStreamEvent`` / ``BetaRawMessageStreamEvent``; never changes what the caller gets."""

    __slots__ = (
        "_id", "_model", "_usage_seen", "_input", "_cache_read", "_cache_write", "_output", "_thinking",
        "_stop", "_text", "_tools", "_final", "_tier", "_speed", "_cache_creation", "_server_tools",
    )

    def __init__(self) -> None:
        self._id: str | None = None
        self._model: str | None = None
        self._usage_seen = False
        # Raw counts as sent (None until sent); validated once, in result().
        self._input: Any = None
        self._cache_read: Any = None
        self._cache_write: Any = None
        self._output: Any = None
        self._thinking: Any = None
        self._stop: str | None = None
        self._text: list[str] = []
        self._tools = 0
        self._final = False  # message_delta (the final counts) arrived
        # What the usage says beyond counts, latest sent.
        self._tier: Any = None
        self._speed: Any = None
        self._cache_creation: Any = None
        self._server_tools: Any = None

    def add(self, event: Any) -> bool:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self._text.append(delta.text)
        elif kind == "content_block_start":
            if getattr(event.content_block, "type", None) == "tool_use":
                self._tools += 1
        elif kind == "message_start":
            message = event.message
            self._id = message.id
            self._model = message.model
            usage = message.usage
            if usage is not None:
                self._take(usage)
        elif kind == "message_delta":
            self._final = True
            self._take(event.usage)
            stop = event.delta.stop_reason
            if stop:
                self._stop = stop
        return True

    def _take(self, usage: Any) -> None:
        """Counts of a ``message_start`` usage, or the cumulative counts a ``message_delta`` sets."""
        self._usage_seen = True
        value = usage.input_tokens
        if value is not None:
            self._input = value
        value = getattr(usage, "cache_read_input_tokens", None)
        if value is not None:
            self._cache_read = value
        value = getattr(usage, "cache_creation_input_tokens", None)
        if value is not None:
            self._cache_write = value
        value = usage.output_tokens
        if value is not None:
            self._output = value
        details = getattr(usage, "output_tokens_details", None)
        if details is not None:
            self._thinking = getattr(details, "thinking_tokens", None)
        value = getattr(usage, "service_tier", None)
        if value is not None:
            self._tier = value
        value = getattr(usage, "speed", None)
        if value is not None:
            self._speed = value
        value = getattr(usage, "cache_creation", None)
        if value is not None:
            self._cache_creation = value
        value = getattr(usage, "server_tool_use", None)
        if value is not None:
            self._server_tools = value

    def result(self) -> Result:
        usage = None
        attributes: tuple[tuple[str, Any], ...] = ()
        if self._usage_seen:
            output = self._output
            if not self._final:
                # Cut off before message_delta: message_start's output count is a placeholder, so the
                # output is counted from the text that arrived (input and cache counts stay exact).
                from otel_tokens._internal.pricing.tokenizer import count_tokens

                output = count_tokens("".join(self._text), self._model)
            billed, tier, context, attributes = billing(
                self._tier, self._speed, self._cache_creation, self._server_tools
            )
            usage = make_usage(
                tokens(self._input, self._cache_read, self._cache_write),
                output,
                self._cache_read,
                self._cache_write,
                self._thinking,
                details=billed,
                service_tier=tier,
                price_context=context,
            )
            if usage is not None and not self._final and not usage.invalid:
                usage = replace(usage, estimated=True)
        return Result(
            usage=usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=(self._stop,) if self._stop else (),
            tool_calls=self._tools,
            output_text="".join(self._text),
            attributes=attributes,
        )
