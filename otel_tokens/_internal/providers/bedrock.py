"""AWS Bedrock adapter (boto3/botocore ``bedrock-runtime``): parsing only.

One adapter serves botocore's ``BaseClient._make_api_call(operation_name, api_params)``, the entry
point of every generated client; it declines every other service and operation.

Token conversion to semconv terms. Bedrock's ``inputTokens`` (Converse), ``inputTokenCount``
(stream invocation metrics) and the ``x-amzn-bedrock-*`` headers count only uncached input (their
``totalTokens`` is input + output + cache read + cache write), so

    input      = inputTokens + cacheReadInputTokens + cacheWriteInputTokens
    output     = outputTokens

``InvokeModel`` bodies are the model family's own JSON; usage is read from the body where the family
reports it (Anthropic, Amazon Nova, Meta Llama, Amazon Titan, Cohere ``meta.billed_units``), else from
the ``x-amzn-bedrock-input-token-count`` / ``-output-token-count`` response headers Bedrock sends for
every model (Mistral and Cohere embed bodies have no usage). Streams of ``InvokeModelWithResponseStream``
end with a chunk carrying ``amazon-bedrock-invocationMetrics``; ``ConverseStream`` ends with a
``metadata`` event. A stream dropped before either is estimated.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit

from otel_tokens import semconv
from otel_tokens._internal.base.records import Request, Result, make_usage, tokens, with_billing
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"
# botocore names the client class it generates for the service after its full name.
_CLIENT_CLASS = "BedrockRuntime"

# recorded operation -> whether it streams
_OPERATIONS: Mapping[str, bool] = {
    "Converse": False,
    "ConverseStream": True,
    "InvokeModel": False,
    "InvokeModelWithResponseStream": True,
}
_CONVERSE = frozenset({"Converse", "ConverseStream"})

# Converse ``inferenceConfig`` keys -> semconv attributes
_CONVERSE_PARAMS = (
    ("maxTokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("topP", semconv.GEN_AI_REQUEST_TOP_P),
)
# InvokeModel body keys of the families (Anthropic, Llama, Mistral, Cohere; Nova and Titan nest them)
_BODY_PARAMS = (
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_gen_len", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_new_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("maxTokenCount", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("topP", semconv.GEN_AI_REQUEST_TOP_P),
    ("p", semconv.GEN_AI_REQUEST_TOP_P),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K),
    ("topK", semconv.GEN_AI_REQUEST_TOP_K),
    ("k", semconv.GEN_AI_REQUEST_TOP_K),
)
_BODY_PARAM_GROUPS = ("inferenceConfig", "textGenerationConfig")
# Request keys whose text is the prompt, across Converse and the InvokeModel families.
_PROMPT_KEYS = ("system", "messages", "chat_history", "message", "prompt", "inputText", "texts")

# Bedrock's usage headers on every InvokeModel response: input, output, cache read, cache write.
_HEADERS = (
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-output-token-count",
    "x-amzn-bedrock-cache-read-input-token-count",
    "x-amzn-bedrock-cache-write-input-token-count",
)
_METRICS_KEY = "amazon-bedrock-invocationMetrics"


@functools.lru_cache(maxsize=64)
def _server(endpoint_url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(endpoint_url)
    host = parts.hostname
    if host is None:
        return None, None
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def _call_arguments(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    if len(args) >= 2:
        return args[0], args[1]
    if args:
        return args[0], kwargs.get("api_params")
    return kwargs.get("operation_name"), kwargs.get("api_params")


def _number(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _scalars(source: Any, table: tuple, attributes: dict[str, Any]) -> None:
    if not isinstance(source, Mapping):
        return
    for key, attribute in table:
        value = _number(source.get(key))
        if value is not None and attribute not in attributes:
            attributes[attribute] = value


def _stops(value: Any, attributes: dict[str, Any]) -> None:
    if isinstance(value, list | tuple) and value and all(isinstance(s, str) for s in value):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(value)


def _json_body(body: Any) -> dict | None:
    """An InvokeModel request body as JSON, when it is bytes or text (a file object is the SDK's to read)."""
    if isinstance(body, bytes | bytearray | str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _text_of(value: Any) -> str:
    """Text in a prompt value of any family: a string, a list of messages or blocks, a message."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "\n".join(text for text in map(_text_of, value) if text)
    if isinstance(value, Mapping):
        for key in ("text", "content", "message", "toolResult"):
            if key in value:
                return _text_of(value[key])
    return ""


def _body_operation(model: str | None, body: dict | None) -> str:
    if model and "embed" in model.lower():
        return semconv.OP_EMBEDDINGS
    if body is not None and ("messages" in body or "message" in body):
        return semconv.OP_CHAT
    return semconv.OP_TEXT_COMPLETION


class BedrockRuntime:
    """``Converse``, ``ConverseStream``, ``InvokeModel`` and ``InvokeModelWithResponseStream`` of a
    ``bedrock-runtime`` client; every other service and operation goes straight to botocore."""

    def accepts(self, instance: Any, args: tuple, kwargs: dict) -> bool:
        # The generated class's name first: the one check every other AWS call pays.
        if type(instance).__name__ != _CLIENT_CLASS or instance.meta.service_model.service_name != SERVICE:
            return False
        operation_name, params = _call_arguments(args, kwargs)
        return isinstance(operation_name, str) and operation_name in _OPERATIONS and isinstance(params, Mapping)

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        meta = instance.meta
        operation_name, params = _call_arguments(args, kwargs)
        model = params.get("modelId")
        model = model if isinstance(model, str) else None
        attributes: dict[str, Any] = {}
        if operation_name in _CONVERSE:
            operation = semconv.OP_CHAT
            config = params.get("inferenceConfig")
            _scalars(config, _CONVERSE_PARAMS, attributes)
            if isinstance(config, Mapping):
                _stops(config.get("stopSequences"), attributes)
            inputs = dict(params)
        else:
            body = _json_body(params.get("body"))
            operation = _body_operation(model, body)
            inputs = body or {}
            _scalars(inputs, _BODY_PARAMS, attributes)
            for group in _BODY_PARAM_GROUPS:
                _scalars(inputs.get(group), _BODY_PARAMS, attributes)
            _stops(inputs.get("stop_sequences") or inputs.get("stop"), attributes)
        address, port = _server(meta.endpoint_url) if isinstance(meta.endpoint_url, str) else (None, None)
        request = Request(
            provider=PROVIDER,
            operation=operation,
            model=model,
            server_address=address,
            server_port=port,
            stream=_OPERATIONS[operation_name],
            attributes=attributes,
        )
        return Prepared(request, kwargs, inputs=inputs)

    # -- responses ---------------------------------------------------------------------------------
    def result(self, response: Any, want_text: bool) -> Result:
        if not isinstance(response, dict):
            return Result()
        if "body" in response:
            return _invoke_result(response)
        return _converse_result(response)

    def stream_kind(self, response: Any) -> Literal["sync", "async"] | None:
        if isinstance(response, dict) and _event_stream_key(response) is not None:
            return "sync"
        return None

    def with_stream(self, response: dict, wrap: Any) -> dict:
        key = _event_stream_key(response)
        response[key] = wrap(response[key])
        return response

    def accumulator(self, prepared: Prepared) -> StreamAccumulator:
        return StreamAccumulator()

    def prompt_text(self, inputs: dict) -> str:
        return "\n".join(text for text in (_text_of(inputs.get(key)) for key in _PROMPT_KEYS) if text)

    def input_messages(self, inputs: dict) -> Any:
        messages = []
        system = _text_of(inputs.get("system"))
        if system:
            messages.append({"role": "system", "parts": [{"type": "text", "content": system}]})
        given = inputs.get("messages")
        if isinstance(given, list | tuple):
            for message in given:
                if isinstance(message, Mapping):
                    text = _text_of(message.get("content"))
                    messages.append({"role": message.get("role"), "parts": [{"type": "text", "content": text}]})
        else:
            prompt = "\n".join(
                text for text in (_text_of(inputs.get(key)) for key in ("prompt", "inputText", "message")) if text
            )
            if prompt:
                messages.append({"role": "user", "parts": [{"type": "text", "content": prompt}]})
        return messages


def bedrock_usage(input_tokens: Any, output_tokens: Any, cache_read: Any, cache_write: Any) -> Any:
    """Usage from counts whose input excludes the cache reads and writes, as Bedrock reports them."""
    return make_usage(tokens(input_tokens, cache_read, cache_write), output_tokens, cache_read, cache_write)


def _event_stream_key(response: dict) -> str | None:
    from botocore.eventstream import EventStream

    for key in ("stream", "body"):
        if isinstance(response.get(key), EventStream):
            return key
    return None


# -- Converse ------------------------------------------------------------------------------------
def converse_usage(usage: Any, service_tier: Any = None) -> Any:
    """Converse ``usage`` (and ConverseStream ``metadata.usage``) in semconv terms, with the tier that
    served the call (``serviceTier.type``: ``default``, ``priority``, ``flex``...) where the response
    has it."""
    if not isinstance(usage, Mapping):
        return None
    parsed = bedrock_usage(
        usage.get("inputTokens"), usage.get("outputTokens"),
        usage.get("cacheReadInputTokens"), usage.get("cacheWriteInputTokens"),
    )
    tier = service_tier.get("type") if isinstance(service_tier, Mapping) else None
    if not isinstance(tier, str) or not tier:
        return parsed
    context = () if tier in ("default", "standard") else (("service_tier", tier),)
    return with_billing(parsed, service_tier=tier, price_context=context)


def _converse_result(response: dict) -> Result:
    output = response.get("output")
    message = output.get("message") if isinstance(output, Mapping) else None
    blocks = message.get("content") if isinstance(message, Mapping) else None
    blocks = blocks if isinstance(blocks, list) else []
    stop = response.get("stopReason")
    return Result(
        usage=converse_usage(response.get("usage"), response.get("serviceTier")),
        finish_reasons=(stop,) if isinstance(stop, str) else (),
        tool_calls=sum(1 for block in blocks if isinstance(block, Mapping) and "toolUse" in block),
        output_text="".join(
            block["text"] for block in blocks if isinstance(block, Mapping) and isinstance(block.get("text"), str)
        ),
    )


# -- InvokeModel ---------------------------------------------------------------------------------
class _ReadFailed(io.RawIOBase):
    """The raw stream of a body whose read failed: the caller's own read raises the same error."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self._error


def _read_body(response: dict) -> bytes | None:
    """Read the body, and give the caller a ``StreamingBody`` with the same bytes to read in full."""
    from botocore.response import StreamingBody

    body = response["body"]
    if not isinstance(body, StreamingBody):
        return None
    try:
        data = body.read()
    except Exception as error:  # the SDK's read failed: the caller's read gets the very same error
        response["body"] = StreamingBody(_ReadFailed(error), None)
        return None
    response["body"] = StreamingBody(io.BytesIO(data), len(data))
    return data


def _header_count(headers: Mapping, name: str) -> Any:
    value = headers.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value  # absent (None) or invalid, which make_usage flags


def header_usage(response: dict) -> Any:
    metadata = response.get("ResponseMetadata")
    headers = metadata.get("HTTPHeaders") if isinstance(metadata, Mapping) else None
    if not isinstance(headers, Mapping):
        return None
    return bedrock_usage(*(_header_count(headers, name) for name in _HEADERS))


def _invoke_result(response: dict) -> Result:
    data = _read_body(response)
    body = None
    content_type = response.get("contentType")
    if data is not None and (not isinstance(content_type, str) or "json" in content_type):
        try:
            body = json.loads(data)
        except ValueError:
            body = None
    result = body_result(body) if isinstance(body, dict) else Result()
    if result.usage is None:
        usage = header_usage(response)
        if usage is not None:
            result = replace(result, usage=usage)
    return result


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], Mapping) else None


def body_result(body: dict) -> Result:
    """Usage, finish reason, tool calls and text of an InvokeModel response body of any family."""
    usage = body.get("usage")
    if isinstance(usage, Mapping) and "input_tokens" in usage:  # Anthropic Messages
        blocks = body.get("content") if isinstance(body.get("content"), list) else []
        stop = body.get("stop_reason")
        return Result(
            usage=bedrock_usage(
                usage.get("input_tokens"), usage.get("output_tokens"),
                usage.get("cache_read_input_tokens"), usage.get("cache_creation_input_tokens"),
            ),
            response_model=body.get("model") if isinstance(body.get("model"), str) else None,
            response_id=body.get("id") if isinstance(body.get("id"), str) else None,
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            tool_calls=sum(1 for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_use"),
            output_text="".join(
                b["text"] for b in blocks if isinstance(b, Mapping) and isinstance(b.get("text"), str)
            ),
        )
    if isinstance(usage, Mapping) and "inputTokens" in usage:  # Amazon Nova (Converse-like)
        usage = bedrock_usage(
            usage.get("inputTokens"), usage.get("outputTokens"),
            usage.get("cacheReadInputTokenCount"), usage.get("cacheWriteInputTokenCount"),
        )
        return replace(_converse_result({**body, "usage": None}), usage=usage)
    if "generation" in body:  # Meta Llama
        stop = body.get("stop_reason")
        text = body.get("generation")
        return Result(
            usage=make_usage(body.get("prompt_token_count"), body.get("generation_token_count")),
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            output_text=text if isinstance(text, str) else None,
        )
    if "inputTextTokenCount" in body:  # Amazon Titan text and embeddings
        result = _first(body.get("results"))
        output = result.get("tokenCount") if result is not None else None
        stop = result.get("completionReason") if result is not None else None
        text = result.get("outputText") if result is not None else None
        return Result(
            usage=make_usage(body.get("inputTextTokenCount"), output),
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            output_text=text if isinstance(text, str) else None,
        )
    choice = _first(body.get("choices"))
    if choice is not None:  # Mistral chat (usage only in headers)
        message = choice.get("message") if isinstance(choice.get("message"), Mapping) else {}
        calls = message.get("tool_calls")
        stop = choice.get("stop_reason") or choice.get("finish_reason")
        text = message.get("content")
        return Result(
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            tool_calls=len(calls) if isinstance(calls, list) else 0,
            output_text=text if isinstance(text, str) else None,
        )
    output = _first(body.get("outputs"))
    if output is not None:  # Mistral text completion (usage only in headers)
        stop = output.get("stop_reason")
        text = output.get("text")
        return Result(
            finish_reasons=(stop,) if isinstance(stop, str) else (),
            output_text=text if isinstance(text, str) else None,
        )
    # Cohere Command R (chat) and Command (generate); embed bodies carry no usage.
    meta = body.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, Mapping) else None
    usage = make_usage(billed.get("input_tokens"), billed.get("output_tokens")) if isinstance(billed, Mapping) else None
    generation = _first(body.get("generations"))
    source = generation if generation is not None else body
    stop = source.get("finish_reason")
    text = source.get("text")
    calls = body.get("tool_calls")
    response_id = body.get("response_id") or body.get("id")
    return Result(
        usage=usage,
        response_id=response_id if isinstance(response_id, str) else None,
        finish_reasons=(stop,) if isinstance(stop, str) else (),
        tool_calls=len(calls) if isinstance(calls, list) else 0,
        output_text=text if isinstance(text, str) else None,
    )


# -- streams -------------------------------------------------------------------------------------
class StreamAccumulator:
    """Reads ConverseStream events and InvokeModelWithResponseStream chunks; never changes them."""

    __slots__ = ("_usage", "_stop", "_tool_calls", "_text", "_id", "_model")

    def __init__(self) -> None:
        self._usage: Any = None
        self._stop: str | None = None
        self._tool_calls = 0
        self._text: list[str] = []
        self._id: str | None = None
        self._model: str | None = None

    def add(self, event: Any) -> bool:
        chunk = event.get("chunk")
        if chunk is not None:
            self._add_chunk(chunk.get("bytes"))
            return True
        if "contentBlockDelta" in event:
            delta = event["contentBlockDelta"].get("delta") or {}
            text = delta.get("text")
            if isinstance(text, str):
                self._text.append(text)
        elif "contentBlockStart" in event:
            start = event["contentBlockStart"].get("start") or {}
            if "toolUse" in start:
                self._tool_calls += 1
        elif "messageStop" in event:
            stop = event["messageStop"].get("stopReason")
            if isinstance(stop, str):
                self._stop = stop
        elif "metadata" in event:
            metadata = event["metadata"]
            self._usage = converse_usage(metadata.get("usage"), metadata.get("serviceTier"))
        return True

    def _add_chunk(self, data: Any) -> None:
        try:
            body = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(body, dict):
            return
        metrics = body.get(_METRICS_KEY)
        if isinstance(metrics, Mapping):
            self._usage = bedrock_usage(
                metrics.get("inputTokenCount"), metrics.get("outputTokenCount"),
                metrics.get("cacheReadInputTokenCount"), metrics.get("cacheWriteInputTokenCount"),
            )
        kind = body.get("type")
        if kind is not None:  # Anthropic Messages events
            self._add_anthropic(kind, body)
        elif "contentBlockDelta" in body or "contentBlockStart" in body or "messageStop" in body:  # Nova
            usage = self._usage
            self.add(body)
            self._usage = usage
        else:  # Llama, Titan, Mistral, Cohere: text and a stop reason per chunk
            self._add_text_chunk(body)

    def _add_anthropic(self, kind: str, body: dict) -> None:
        if kind == "content_block_delta":
            delta = body.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self._text.append(delta["text"])
        elif kind == "content_block_start":
            block = body.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._tool_calls += 1
        elif kind == "message_start":
            message = body.get("message") or {}
            self._id = message.get("id") if isinstance(message.get("id"), str) else None
            self._model = message.get("model") if isinstance(message.get("model"), str) else None
        elif kind == "message_delta":
            stop = (body.get("delta") or {}).get("stop_reason")
            if isinstance(stop, str):
                self._stop = stop

    def _add_text_chunk(self, body: dict) -> None:
        source = _first(body.get("outputs")) or _first(body.get("results")) or _first(body.get("generations")) or body
        choice = _first(body.get("choices"))
        if choice is not None:
            source = choice.get("delta") if isinstance(choice.get("delta"), Mapping) else choice
        for key in ("generation", "outputText", "text", "content"):
            text = source.get(key)
            if isinstance(text, str):
                self._text.append(text)
                break
        holder = choice if choice is not None else source
        for key in ("stop_reason", "completionReason", "finish_reason"):
            stop = holder.get(key)
            if isinstance(stop, str):
                self._stop = stop
                break

    def result(self) -> Result:
        return Result(
            usage=self._usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=(self._stop,) if self._stop else (),
            tool_calls=self._tool_calls,
            output_text="".join(self._text),
        )
