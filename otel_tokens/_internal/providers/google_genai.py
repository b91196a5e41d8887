"""Google Gen AI adapter (google-genai 1.x-3.x, the Gemini API and Vertex AI): parsing only.

Token conversion to semconv terms (``usage_metadata``)::

    input      = prompt_token_count (cached content included) + tool_use_prompt_token_count
    cache_read = cached_content_token_count
    output     = candidates_token_count + thoughts_token_count
    reasoning  = thoughts_token_count

Modalities other than text (``prompt_tokens_details``, ``tool_use_prompt_tokens_details``,
``candidates_tokens_details``, ``cache_tokens_details``: ``[{modality, token_count}]``) become the
details ``input_<m>_tokens``, ``output_<m>_tokens`` and ``cache_<m>_read_tokens`` for audio, image and
video, so each is priced at its own rate where the model has one. Grounding with Google Search
(``candidates[].grounding_metadata.web_search_queries``) is billed per grounded prompt on Gemini 2.x
and per search query from Gemini 3 on: the detail ``web_searches`` counts accordingly.

Streams: every chunk carries the request's usage so far (cumulative), so the last one counts, never
their sum. One public call may send several requests (automatic function calling, automatic
continuation): the engine sums the requests ("hops") it saw through ``Models._generate_content`` and
``_generate_content_stream``, each priced on its own. Embeddings: ``usage_metadata.prompt_token_count``
(Gemini API), else the sum of the embeddings' ``statistics.token_count`` (Vertex AI).

The same response parsing serves the deprecated ``google-generativeai`` SDK, whose responses carry the
same usage fields (see ``providers/google_generativeai.py``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit

from otel_tokens import semconv
from otel_tokens._internal.base.records import Request, Result, Usage, make_usage, tokens, with_billing
from otel_tokens._internal.base.settings import Settings
from otel_tokens._internal.calls.engine import Prepared

GEMINI = "gcp.gemini"
VERTEX = "gcp.vertex_ai"

# GenerateContentConfig field -> semconv attribute, for plain scalar parameters
_CONFIG_PARAMS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K),
    ("max_output_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("seed", semconv.GEN_AI_REQUEST_SEED),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
)


def field(value: Any, name: str) -> Any:
    """A field of an SDK object or of the dict a caller passed in its place."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def model_name(value: Any) -> str | None:
    """``gemini-2.5-flash`` from ``models/gemini-2.5-flash``, a Vertex resource path or ``google/...``."""
    if not isinstance(value, str) or not value:
        return None
    if "models/" in value:
        value = value.rsplit("models/", 1)[1]
    elif value.startswith("google/"):
        value = value[len("google/"):]
    return value or None


@functools.lru_cache(maxsize=64)
def _server(base_url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(base_url)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, None


def _client_provider(instance: Any) -> tuple[str, str | None, int | None]:
    api_client = getattr(instance, "_api_client", None)
    provider = VERTEX if getattr(api_client, "vertexai", False) else GEMINI
    base_url = field(getattr(api_client, "_http_options", None), "base_url")
    host, port = _server(base_url) if isinstance(base_url, str) else (None, None)
    return provider, host, port


def _number(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def config_attributes(config: Any) -> dict[str, Any]:
    """Semconv request attributes from a ``GenerateContentConfig`` (object or dict)."""
    if config is None:
        return {}
    attributes: dict[str, Any] = {}
    for key, attribute in _CONFIG_PARAMS:
        value = _number(field(config, key))
        if value is not None:
            attributes[attribute] = value
    stop = field(config, "stop_sequences")
    if isinstance(stop, list | tuple) and stop:
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(str(s) for s in stop)
    count = _number(field(config, "candidate_count"))
    if count is not None and count != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = count
    level = field(field(config, "thinking_config"), "thinking_level")
    if level is not None:
        attributes[semconv.GEN_AI_REQUEST_REASONING_LEVEL] = str(getattr(level, "value", level)).lower()
    if field(config, "response_mime_type") == "application/json":
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    return attributes


def text_of(value: Any) -> str:
    """The text in contents: a string, a list, a ``Content``/``Part`` or their dict forms."""
    if isinstance(value, str):
        return value
    # Sequences only (lists, protobuf repeated fields): an iterator must reach the SDK unconsumed.
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return "\n".join(part for part in (text_of(item) for item in value) if part)
    text = field(value, "text")
    if isinstance(text, str):
        return text
    parts = field(value, "parts")
    if isinstance(parts, Sequence):
        return text_of(parts)
    return ""


_MODALITIES = {"AUDIO": "audio", "IMAGE": "image", "VIDEO": "video"}
_MODALITY_DETAILS = (
    ("prompt_tokens_details", "input_{}_tokens"),
    ("tool_use_prompt_tokens_details", "input_{}_tokens"),
    ("candidates_tokens_details", "output_{}_tokens"),
    ("cache_tokens_details", "cache_{}_read_tokens"),
)


def _modality_details(metadata: Any) -> dict[str, Any] | None:
    """Audio, image and video token counts by genai-prices usage key; None when there are none."""
    details: dict[str, Any] | None = None
    for name, key in _MODALITY_DETAILS:
        for entry in getattr(metadata, name, None) or ():
            modality = getattr(entry, "modality", None)
            modality = getattr(modality, "name", modality)  # an enum (google-genai) or its name
            kind = _MODALITIES.get(modality) if isinstance(modality, str) else None
            if kind is None:
                continue
            value = getattr(entry, "token_count", None)
            if value:
                details = details or {}
                usage_key = key.format(kind)
                previous = details.get(usage_key)
                details[usage_key] = value if previous is None else tokens(previous, value)
    return details


def usage_of(metadata: Any) -> Usage | None:
    """``usage_metadata`` (google-genai, or google-generativeai's proto) in semconv terms."""
    if metadata is None:
        return None
    thoughts = getattr(metadata, "thoughts_token_count", None)
    return make_usage(
        tokens(metadata.prompt_token_count, getattr(metadata, "tool_use_prompt_token_count", None)),
        tokens(metadata.candidates_token_count, thoughts),
        getattr(metadata, "cached_content_token_count", None),
        None,
        thoughts,
        details=_modality_details(metadata),
    )


def _finish_reason(reason: Any) -> str | None:
    if reason is None:
        return None
    name = getattr(reason, "name", None) or str(reason)
    return name.lower() if name not in ("FINISH_REASON_UNSPECIFIED", "0") else None


def _parts(candidate: Any) -> Any:
    content = getattr(candidate, "content", None)
    return getattr(content, "parts", None) or ()


class GenerateContentAccumulator:
    """Reads ``GenerateContentResponse`` chunks: the last usage (cumulative), text, tool calls."""

    __slots__ = ("_usage", "_model", "_id", "_finish", "_text", "_tool_calls", "_queries")

    @staticmethod
    def usage_sent(chunk: Any) -> Any:
        return getattr(chunk, "usage_metadata", None)

    @staticmethod
    def is_function_call(part: Any) -> bool:
        return getattr(part, "function_call", None) is not None

    def __init__(self) -> None:
        self._usage: Any = None
        self._model: str | None = None
        self._id: str | None = None
        self._finish: dict[int, str] = {}
        self._text: list[str] = []
        self._tool_calls = 0
        # Google Search queries the model grounded on (streams repeat them: a set).
        self._queries: set[str] | None = None

    def add(self, chunk: Any) -> bool:
        usage = self.usage_sent(chunk)
        if usage is not None:
            self._usage = usage
        model = getattr(chunk, "model_version", None)
        if model:
            self._model = model
        response_id = getattr(chunk, "response_id", None)
        if response_id:
            self._id = response_id
        for index, candidate in enumerate(getattr(chunk, "candidates", None) or ()):
            reason = _finish_reason(getattr(candidate, "finish_reason", None))
            if reason:
                self._finish[getattr(candidate, "index", None) or index] = reason
            grounding = getattr(candidate, "grounding_metadata", None)
            if grounding is not None:
                queries = getattr(grounding, "web_search_queries", None)
                if queries:
                    self._queries = (self._queries or set()) | {str(query) for query in queries}
            for part in _parts(candidate):
                if self.is_function_call(part):
                    self._tool_calls += 1
                elif index == 0 and not getattr(part, "thought", None):
                    text = getattr(part, "text", None)
                    if text:
                        self._text.append(text)
        return True

    def result(self, whole: bool = False) -> Result:
        # A stream left before its finish reason has counted only part of its output: estimated instead.
        # A whole response counts as sent (a blocked prompt has no candidates, but has usage).
        finished = whole or bool(self._finish)
        usage = usage_of(self._usage) if finished else None
        if self._queries and usage is not None:
            # Gemini 2.x bills a grounded prompt once, however many queries it ran; later models per query.
            searches = 1 if (self._model or "").startswith("gemini-2") else len(self._queries)
            usage = with_billing(usage, details={"web_searches": searches})
        return Result(
            usage=usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=tuple(self._finish[i] for i in sorted(self._finish)),
            tool_calls=self._tool_calls,
            output_text="".join(self._text),
        )


def response_result(
    response: Any, want_text: bool, accumulator_class: type[GenerateContentAccumulator] = GenerateContentAccumulator
) -> Result:
    """A whole ``GenerateContentResponse`` (also a hop's), read as one chunk is."""
    accumulator = accumulator_class()
    accumulator.add(response)
    result = accumulator.result(whole=True)
    if not want_text and result.usage is not None:
        return Result(
            usage=result.usage, response_model=result.response_model, response_id=result.response_id,
            finish_reasons=result.finish_reasons, tool_calls=result.tool_calls,
        )
    return result


def stream_kind(response: Any) -> Literal["sync", "async"] | None:
    if inspect.isgenerator(response):
        return "sync"
    if inspect.isasyncgen(response):
        return "async"
    return None


def _request(instance: Any, kwargs: dict, operation: str, attributes: dict[str, Any], stream: bool) -> Request:
    provider, address, port = _client_provider(instance)
    return Request(
        provider=provider,
        operation=operation,
        model=model_name(kwargs.get("model")),
        server_address=address,
        server_port=port,
        stream=stream,
        attributes=attributes,
    )


def _input_messages(kwargs: dict) -> list[dict[str, Any]]:
    messages = []
    system = text_of(field(kwargs.get("config"), "system_instruction"))
    if system:
        messages.append({"role": "system", "parts": [{"type": "text", "content": system}]})
    contents = kwargs.get("contents")
    items = contents if isinstance(contents, list | tuple) else [contents]
    for item in items:
        role = field(item, "role") if not isinstance(item, str) else None
        text = text_of(item)
        if text:
            messages.append({"role": role or "user", "parts": [{"type": "text", "content": text}]})
    return messages


class GenerateContent:
    """``models.generate_content`` and ``generate_content_stream``, sync and ``client.aio``; and, as a
    HopOperation, the per-request ``_generate_content`` / ``_generate_content_stream`` under them."""

    operation = semconv.OP_GENERATE_CONTENT
    counts_hops = True

    def __init__(self, *, stream: bool = False) -> None:
        self._stream = stream

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        attributes = config_attributes(kwargs.get("config"))
        return Prepared(_request(instance, kwargs, self.operation, attributes, self._stream), kwargs)

    result = staticmethod(response_result)
    stream_kind = staticmethod(stream_kind)

    def accumulator(self, prepared: Prepared) -> GenerateContentAccumulator:
        return GenerateContentAccumulator()

    def hop_accumulator(self) -> GenerateContentAccumulator:
        return GenerateContentAccumulator()

    def prompt_text(self, kwargs: dict) -> str:
        system = text_of(field(kwargs.get("config"), "system_instruction"))
        return "\n".join(part for part in (system, text_of(kwargs.get("contents"))) if part)

    def input_messages(self, kwargs: dict) -> Any:
        return _input_messages(kwargs)


class EmbedContent:
    """``models.embed_content``, sync and ``client.aio``."""

    operation = semconv.OP_EMBEDDINGS

    def request(self, instance: Any, args: tuple, kwargs: dict, settings: Settings) -> Prepared:
        return Prepared(_request(instance, kwargs, self.operation, {}, False), kwargs)

    def result(self, response: Any, want_text: bool) -> Result:
        metadata = getattr(response, "usage_metadata", None)
        prompt = getattr(metadata, "prompt_token_count", None) if metadata is not None else None
        if prompt is None:  # Vertex AI: per-embedding statistics
            counts = [
                getattr(getattr(embedding, "statistics", None), "token_count", None)
                for embedding in getattr(response, "embeddings", None) or ()
            ]
            prompt = tokens(*counts)
        return Result(usage=make_usage(prompt, None))

    def stream_kind(self, response: Any) -> None:
        return None

    def accumulator(self, prepared: Prepared) -> Any:
        raise TypeError("embeddings do not stream")

    def prompt_text(self, kwargs: dict) -> str:
        return text_of(kwargs.get("contents"))

    def input_messages(self, kwargs: dict) -> Any:
        return _input_messages(kwargs)


# -- batch jobs ------------------------------------------------------------------------------------
_SUCCEEDED = "JOB_STATE_SUCCEEDED"
_BATCH_BILLING: dict[str, Any] = {"service_tier": "batch", "price_context": (("processing", "batch"),)}


class BatchJobs:
    """``batches.get()`` and ``batches.list()`` (its ``_list`` fetches each page), sync and ``client.aio``.

    A job in ``JOB_STATE_SUCCEEDED`` whose results came back inline (``dest.inlined_responses``) holds
    one call per response with usage, at batch rates, with the job's name and the request's
    ``metadata["key"]``; the engine counts a job once (``calls.engine.BatchOperation``). Results written
    to a file (``dest.file_name``) carry no usage in the job: the app downloads them, and they are not
    counted. Errored requests are not billed."""

    @staticmethod
    def batches(response: Any) -> Any:
        jobs = getattr(response, "batch_jobs", None)  # a page of list()
        if jobs is not None:
            return jobs if isinstance(jobs, list) else ()
        return (response,)

    @staticmethod
    def calls(instance: Any, args: tuple, kwargs: dict, job: Any) -> tuple[str, list[tuple[Request, Result]]] | None:
        state = getattr(job, "state", None)
        name = getattr(job, "name", None)
        if getattr(state, "value", state) != _SUCCEEDED or not isinstance(name, str):
            return None
        inlined = getattr(getattr(job, "dest", None), "inlined_responses", None)
        if not inlined:
            return None
        provider, address, port = _client_provider(instance)
        model = model_name(getattr(job, "model", None))
        calls = []
        for item in inlined:
            response = getattr(item, "response", None)
            if response is None or getattr(item, "error", None) is not None:
                continue
            result = response_result(response, False)
            if result.usage is None:
                continue
            attributes = {semconv.OTEL_TOKENS_BATCH_ID: name}
            metadata = getattr(item, "metadata", None)
            key = metadata.get("key") if isinstance(metadata, Mapping) else None
            if isinstance(key, str):
                attributes[semconv.OTEL_TOKENS_BATCH_CUSTOM_ID] = key
            request = Request(
                provider=provider, operation=semconv.OP_GENERATE_CONTENT,
                model=model or model_name(result.response_model), server_address=address, server_port=port,
                attributes=attributes,
            )  # fmt: skip
            calls.append((request, replace(result, usage=with_billing(result.usage, **_BATCH_BILLING))))
        return name, calls
