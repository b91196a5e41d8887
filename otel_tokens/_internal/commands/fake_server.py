"""A loopback fake of the OpenAI, Anthropic, Gemini and Groq HTTP APIs, for tests and the demo.

It speaks the providers' wire formats closely enough that the real ``openai``, ``anthropic``, ``groq``,
``google-genai`` and ``google-generativeai`` (REST) SDK clients parse its answers, streaming included::

    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="fake")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        claude = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="fake")
        server.request_count("/v1/chat/completions")  # -> 1

Endpoints: ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/completions``, ``/v1/embeddings``
(OpenAI; also under ``/openai/v1/``, Groq's path), ``POST /v1/messages``, ``/v1/messages/count_tokens``
(Anthropic), and ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` (SSE with
``?alt=sse`` as google-genai asks, else a streamed JSON array as the REST clients of
google-generativeai read), ``:embedContent`` and ``:batchEmbedContents`` (Gemini; ``/v1/`` too).
Point ``genai.Client(http_options={"base_url": server.gemini_base_url})`` at it.

Usage is deterministic, so tests can assert exact numbers:

* text costs ``ceil(len(text) / 4)`` tokens (:func:`count_tokens`); an image part costs 85;
* OpenAI chat and Responses add 3 tokens per request and 4 per message (and per ``instructions``);
  Anthropic adds 4 per request and 3 per message; tool definitions cost their compact JSON;
  legacy completions and embeddings add nothing;
* the reply is built from a hash of the model and the prompt (8-32 words, or an instance of the
  requested JSON schema), cut to ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``
  (whose budget reasoning tokens share); legacy completions default to 16 tokens, as upstream;
* OpenAI models named ``o1*``, ``o3*``, ``o4*`` or ``gpt-5*`` reason: 0 / 64 / 192 / 512 / 1024
  tokens for effort minimal / low / medium (default) / high / xhigh;
* Anthropic ``thinking`` (enabled or adaptive) costs ``min(budget_tokens, 384)`` thinking tokens,
  reported in ``output_tokens_details.thinking_tokens``;
* Gemini counts the text of every part (a ``functionCall``/``functionResponse`` part its compact JSON),
  the ``systemInstruction`` and the tool declarations, plus 3 tokens per content; models named
  ``gemini-2.5*`` or ``gemini-3*`` think 192 tokens (Flash-Lite only with a ``thinkingConfig``;
  ``thinkingBudget`` caps it, 0 turns it off;
  ``thinkingLevel`` low / high give 64 / 512), reported in ``thoughtsTokenCount`` and sharing
  ``maxOutputTokens``. Each stream chunk carries the usage so far (cumulative), as Gemini's does;
* prompt caching keeps per-server state. OpenAI (automatic): the preamble (tools, schema,
  instructions), the prompt without its last message, and the whole prompt are candidates, each
  rounded down to 1024 + k*128 tokens; the longest one seen before is read back, and the newly cached
  rest is reported as ``cache_write_tokens``. Gemini (implicit) caches the same candidates and reports
  only the read (``cachedContentTokenCount``). Anthropic
  (explicit): each ``cache_control`` breakpoint is a candidate; the longest seen prefix is a cache
  read, the rest up to the last breakpoint a cache write (5m or 1h by ``ttl``). Prefixes shorter than
  ``cache_min_tokens`` (1024, as upstream) are never cached.

Errors: a model name containing ``error-<status>`` (``gpt-4o-error-429``) or a request header
``x-fake-error: <status>`` makes it answer that status with the provider's JSON error body.

What it received: ``GET /_fake/requests`` answers JSON with the counts (``total``, ``by_provider``,
``by_path``) and the requests (method, path, provider guessed from the path, model, stream, status,
time), never a header or a body, so no API key; ``DELETE /_fake/requests`` forgets them (the prompt
cache stays). So a test can compare the calls it sent with the calls otel-tokens counted.

Run it alone with ``otel-tokens fake-server --port 8000``: it prints how to point each SDK at it
(:func:`connection_help`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any

_logger = logging.getLogger(__name__)

DEFAULT_CACHE_MIN_TOKENS = 1024
_OPENAI_CACHE_INCREMENT = 128
_IMAGE_TOKENS = 85
_OPENAI_REQUEST_OVERHEAD = 3
_OPENAI_MESSAGE_OVERHEAD = 4
_ANTHROPIC_REQUEST_OVERHEAD = 4
_ANTHROPIC_MESSAGE_OVERHEAD = 3
_LEGACY_COMPLETION_DEFAULT_MAX_TOKENS = 16
_ANTHROPIC_THINKING_TOKENS = 384
_OPENAI_REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 64, "medium": 192, "high": 512, "xhigh": 1024}
_OPENAI_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSIONS = 1536
_MAX_RECORDED_REQUESTS = 10_000
RECEIVED_PATH = "/_fake/requests"
_ERROR_IN_MODEL = re.compile(r"error-(\d{3})")

# Not kept in the request record: test keys are fake, but a real one pasted by mistake should not linger.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
_OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings"})
_ANTHROPIC_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
# Groq's OpenAI-compatible API lives under /openai/v1/.
_GROQ_PREFIX = "/openai"
_GEMINI_PATH = re.compile(
    r"^/(?:v1|v1beta|v1alpha)/(?:models|tunedModels)/([^/:]+):"
    r"(generateContent|streamGenerateContent|embedContent|batchEmbedContents)$"
)
_GEMINI_CONTENT_OVERHEAD = 3
_GEMINI_THINKING_PREFIXES = ("gemini-2.5", "gemini-3")
_GEMINI_THOUGHTS_TOKENS = {"minimal": 0, "low": 64, "medium": 192, "high": 512}
_GEMINI_DEFAULT_THOUGHTS = 192
_GEMINI_EMBEDDING_DIMENSIONS = {"gemini-embedding-001": 3072}
_GEMINI_DEFAULT_EMBEDDING_DIMENSIONS = 768
_GEMINI_ERRORS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "API key not valid. Please pass a valid API key."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Request not allowed."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Anthropic's API is temporarily overloaded."),
}

_WORDS = (
    "tokens", "budget", "cache", "latency", "agent", "model", "cost", "report", "stream", "usage",
    "signal", "metric", "trace", "span", "prompt", "answer", "plan", "result", "summary", "context",
    "window", "price", "call", "batch", "queue", "limit", "alert", "dashboard", "export", "sample",
    "retry", "reason", "input", "output", "vector", "memory", "tool", "step", "draft", "review",
)


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per started group of four characters."""
    return (len(text) + 3) // 4


class _BadRequest(Exception):
    """A request the real API would reject with 400."""


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the server saw it, and the provider-format usage it answered with."""

    method: str
    path: str
    body: Any
    headers: Mapping[str, str]
    status: int
    usage: Mapping[str, Any] | None = None
    time: float = 0.0  # Unix seconds, when it arrived

    @property
    def provider(self) -> str | None:
        """``openai``, ``anthropic``, ``gemini`` or ``groq``, guessed from the path; None for others."""
        return provider_of(self.path)

    def summary(self) -> dict[str, Any]:
        """What ``GET /_fake/requests`` shows of it: no headers and no body, so no key and no prompt."""
        body = self.body if isinstance(self.body, dict) else {}
        gemini = _GEMINI_PATH.match(self.path)
        model = gemini[1] if gemini else body.get("model")
        stream = gemini[2] == "streamGenerateContent" if gemini else body.get("stream") is True
        return {"time": self.time, "method": self.method, "path": self.path, "provider": self.provider,
                "model": model if isinstance(model, str) else None, "stream": stream, "status": self.status}


@dataclass(frozen=True, slots=True)
class _Generation:
    """What the fake model produced: visible text and the hidden reasoning that shares its budget."""

    text: str
    output_tokens: int  # visible plus reasoning, as providers bill it
    reasoning_tokens: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class _Answer:
    """A finished request: status, headers and either a JSON body or a list of SSE frames."""

    status: int
    body: Any = None
    events: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    usage: Mapping[str, Any] | None = None
    stream: bool = False
    # Of a streamed answer: SSE unless a JSON array is streamed (Gemini without alt=sse).
    content_type: str = "text/event-stream; charset=utf-8"


@dataclass
class _CacheState:
    """Prompt prefixes seen so far, per provider and model."""

    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup_and_store(self, keys: Iterable[str]) -> set[str]:
        """Returns which keys were already cached, and caches them all."""
        keys = list(keys)
        with self.lock:
            hits = {key for key in keys if key in self.seen}
            self.seen.update(keys)
        return hits


class FakeLLMServer:
    """A threaded HTTP server on 127.0.0.1 that answers like OpenAI, Anthropic, Gemini and Groq; see the
    module doc.

    ``latency_s`` delays each answer; ``chunk_delay_s`` paces stream chunks (so time to first chunk
    and durations look real in the demo). ``allow_retries=False`` adds ``x-should-retry: false`` to
    error answers, so SDK clients with default settings fail at once instead of retrying.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        cache_min_tokens: int = DEFAULT_CACHE_MIN_TOKENS,
        allow_retries: bool = True,
    ) -> None:
        if latency_s < 0 or chunk_delay_s < 0:
            raise ValueError("latency_s and chunk_delay_s must be >= 0")
        if cache_min_tokens < 1:
            raise ValueError(f"cache_min_tokens must be >= 1, got {cache_min_tokens}")
        self._host = host
        self._requested_port = port
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.cache_min_tokens = cache_min_tokens
        self.allow_retries = allow_retries
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._requests: deque[ReceivedRequest] = deque(maxlen=_MAX_RECORDED_REQUESTS)
        self._ids = itertools.count(1)
        self._cache = _CacheState()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        if self._httpd is not None:
            return self
        httpd = _Server((self._host, self._requested_port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running; call start() first")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without the ``/v1`` the OpenAI client needs."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The value for ``openai.OpenAI(base_url=...)``."""
        return f"{self.base_url}/v1"

    @property
    def groq_base_url(self) -> str:
        """The value for ``groq.Groq(base_url=...)`` (the SDK adds ``/openai/v1`` itself)."""
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """The value for google-genai's ``HttpOptions(base_url=...)`` (the SDK adds ``/v1beta`` or ``/v1``)."""
        return self.base_url

    @property
    def anthropic_base_url(self) -> str:
        """The value for ``anthropic.Anthropic(base_url=...)`` (the SDK adds ``/v1`` itself)."""
        return self.base_url

    # -- what was received -------------------------------------------------------------------------
    def request_count(self, path: str | None = None) -> int:
        """Requests received on ``path`` (all paths when None), errors included."""
        with self._lock:
            return sum(self._counts.values()) if path is None else self._counts[path]

    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def requests(self) -> tuple[ReceivedRequest, ...]:
        """The last 10,000 requests, oldest first."""
        with self._lock:
            return tuple(self._requests)

    def last_request(self, path: str | None = None) -> ReceivedRequest | None:
        with self._lock:
            for request in reversed(self._requests):
                if path is None or request.path == path:
                    return request
        return None

    def received(self) -> dict[str, Any]:
        """The answer of ``GET /_fake/requests``: counts since start or reset, and the recorded requests."""
        with self._lock:
            counts, requests = dict(self._counts), list(self._requests)
        by_provider: Counter[str] = Counter()
        for path, count in counts.items():
            provider = provider_of(path)
            if provider is not None:
                by_provider[provider] += count
        return {"total": sum(counts.values()), "by_provider": dict(by_provider), "by_path": counts,
                "requests": [request.summary() for request in requests]}

    def forget_requests(self) -> None:
        """Forgets counts and recorded requests (``DELETE /_fake/requests``); the prompt cache stays."""
        with self._lock:
            self._counts.clear()
            self._requests.clear()

    def reset(self) -> None:
        """Forgets counts, recorded requests and the prompt cache."""
        self.forget_requests()
        self._cache = _CacheState()

    # -- request handling (called on handler threads) ----------------------------------------------
    def _count(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_id(self) -> str:
        return f"{next(self._ids):08d}"

    def _answer(self, path: str, body: Any, headers: Mapping[str, str], query: str = "") -> _Answer:
        gemini = _GEMINI_PATH.match(path)
        if gemini is not None:
            return self._gemini(gemini[1], gemini[2], body, headers, "alt=sse" in query.split("&"))
        groq = path.startswith(_GROQ_PREFIX + "/v1/")
        if groq:
            path = path[len(_GROQ_PREFIX):]
        provider = "anthropic" if path in _ANTHROPIC_PATHS else "openai"
        if path not in _OPENAI_PATHS and path not in _ANTHROPIC_PATHS:
            return self._error(provider, 404, f"Unknown request URL: POST {path}.")
        if not isinstance(body, dict):
            return self._error(provider, 400, "The request body must be a JSON object.")
        status = _requested_error(body, headers)
        if status is not None:
            return self._error(provider, status)
        try:
            if path == "/v1/chat/completions":
                return self._openai_chat(body, groq=groq)
            if path == "/v1/responses":
                return self._openai_responses(body)
            if path == "/v1/completions":
                return self._openai_legacy_completion(body)
            if path == "/v1/embeddings":
                return self._openai_embeddings(body)
            if path == "/v1/messages":
                return self._anthropic_messages(body)
            return self._anthropic_count_tokens(body)
        except _BadRequest as err:
            return self._error(provider, 400, str(err))

    def _error(self, provider: str, status: int, message: str | None = None) -> _Answer:
        request_id = f"req_fake{self._next_id()}"
        headers: list[tuple[str, str]] = []
        if not self.allow_retries:
            headers.append(("x-should-retry", "false"))
        if provider == "gemini":
            kind, default_message = _GEMINI_ERRORS.get(status, ("UNKNOWN", "Error."))
            body = {"error": {"code": status, "message": message or default_message, "status": kind}}
        elif provider == "anthropic":
            kind, default_message = _ANTHROPIC_ERRORS.get(status, ("api_error", "Error."))
            body = {"type": "error", "error": {"type": kind, "message": message or default_message},
                    "request_id": request_id}
            headers.append(("request-id", request_id))
        else:
            kind, code, default_message = _OPENAI_ERRORS.get(status, ("server_error", None, "Error."))
            body = {"error": {"message": message or default_message, "type": kind, "param": None, "code": code}}
            headers.append(("x-request-id", request_id))
        return _Answer(status=status, body=body, headers=tuple(headers))

    # -- OpenAI chat completions -------------------------------------------------------------------
    def _openai_chat(self, body: dict[str, Any], groq: bool = False) -> _Answer:
        model = _require_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("[] is too short - 'messages'")
        preamble = _json_tokens(body.get("tools")) + _json_tokens(body.get("response_format"))
        message_tokens = [_OPENAI_MESSAGE_OVERHEAD + _openai_message_tokens(m) for m in messages]
        prompt_tokens = _OPENAI_REQUEST_OVERHEAD + preamble + sum(message_tokens)
        cache_read, cache_write = self._openai_cache(
            model,
            [body.get("tools"), body.get("response_format")],
            messages,
            [_OPENAI_REQUEST_OVERHEAD + preamble + sum(message_tokens[:i]) for i in range(len(messages) + 1)],
        )
        schema = _chat_schema(body.get("response_format"))
        cap = _int_or_none(body.get("max_completion_tokens"), body.get("max_tokens"))
        reasoning = _openai_reasoning(model, body.get("reasoning_effort"))
        seed_text = _openai_prompt_text(messages)
        n = _int_or_none(body.get("n")) or 1
        generations = [_generate(f"{seed_text}\n#{i}" if i else seed_text, model, cap, reasoning, schema)
                       for i in range(n)]
        usage = _openai_chat_usage(prompt_tokens, cache_read, cache_write, generations)
        response_id = f"chatcmpl-fake{self._next_id()}"
        created = int(time.time())
        headers = (("x-request-id", f"req_fake{response_id[-8:]}"), ("openai-processing-ms", "1"))
        finish = ["length" if g.truncated else "stop" for g in generations]
        if not body.get("stream"):
            return _Answer(200, body={
                "id": response_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": g.text, "refusal": None, "annotations": []},
                        "logprobs": None,
                        "finish_reason": finish[i],
                    }
                    for i, g in enumerate(generations)
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }, headers=headers, usage=usage)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "service_tier": "default", "system_fingerprint": "fp_fake"}

        def chunk(choices: list[dict[str, Any]], usage_value: Any = None, x_groq: Any = None) -> str:
            payload = {**base, "choices": choices}
            if include_usage:
                payload["usage"] = usage_value
            if x_groq is not None:
                payload["x_groq"] = x_groq
            return _sse_data(payload)

        # Groq has no stream_options: it sends the usage in the last chunk's x_groq.usage.
        groq_id = f"req_fake{response_id[-8:]}"
        events: list[str] = []
        for i, g in enumerate(generations):
            events.append(chunk([{"index": i, "delta": {"role": "assistant", "content": "", "refusal": None},
                                  "logprobs": None, "finish_reason": None}],
                                x_groq={"id": groq_id} if groq and i == 0 else None))
            for piece in _pieces(g.text):
                events.append(chunk([{"index": i, "delta": {"content": piece}, "logprobs": None,
                                      "finish_reason": None}]))
            last = i == len(generations) - 1
            events.append(chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish[i]}],
                                x_groq={"id": groq_id, "usage": usage} if groq and last else None))
        if include_usage:
            events.append(chunk([], usage))
        events.append("data: [DONE]\n\n")
        return _Answer(200, events=tuple(events), headers=headers,
                       usage=usage if include_usage or groq else None, stream=True)

    def _openai_cache(
        self, model: str, preamble: list[Any], items: list[Any], prefix_tokens: list[int]
    ) -> tuple[int, int]:
        """Automatic caching; the candidates are the preamble alone (tools, instructions), the prompt
        without its last item, and the whole prompt.

        ``prefix_tokens[i]`` is the token count of the preamble plus the first ``i`` items.
        """
        candidates: dict[str, int] = {}
        for size in {0, len(items) - 1, len(items)}:
            cacheable = self._openai_cacheable(prefix_tokens[size])
            if cacheable:
                candidates[_digest("openai", model, preamble, items[:size])] = cacheable
        if not candidates:
            return 0, 0
        hits = self._cache.lookup_and_store(candidates)
        read = max((candidates[key] for key in hits), default=0)
        return read, max(candidates.values()) - read

    def _openai_cacheable(self, tokens: int) -> int:
        minimum = self.cache_min_tokens
        if tokens < minimum:
            return 0
        return minimum + (tokens - minimum) // _OPENAI_CACHE_INCREMENT * _OPENAI_CACHE_INCREMENT

    # -- OpenAI Responses --------------------------------------------------------------------------
    def _openai_responses(self, body: dict[str, Any]) -> _Answer:
        model = _require_model(body)
        items = _responses_items(body.get("input"))
        instructions = body.get("instructions")
        text_config = body.get("text") if isinstance(body.get("text"), dict) else None
        preamble = _json_tokens(body.get("tools")) + _json_tokens((text_config or {}).get("format"))
        if isinstance(instructions, str) and instructions:
            preamble += _OPENAI_MESSAGE_OVERHEAD + count_tokens(instructions)
        item_tokens = [_OPENAI_MESSAGE_OVERHEAD + _openai_message_tokens(item) for item in items]
        input_tokens = _OPENAI_REQUEST_OVERHEAD + preamble + sum(item_tokens)
        cache_read, cache_write = self._openai_cache(
            model,
            [body.get("tools"), (text_config or {}).get("format"), instructions],
            items,
            [_OPENAI_REQUEST_OVERHEAD + preamble + sum(item_tokens[:i]) for i in range(len(items) + 1)],
        )
        reasoning_config = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        reasoning = _openai_reasoning(model, reasoning_config.get("effort"))
        schema = _responses_schema(text_config)
        cap = _int_or_none(body.get("max_output_tokens"))
        seed_text = "\n".join(filter(None, [instructions if isinstance(instructions, str) else "",
                                            _openai_prompt_text(items)]))
        g = _generate(seed_text, model, cap, reasoning, schema)
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
            "output_tokens": g.output_tokens,
            "output_tokens_details": {"reasoning_tokens": g.reasoning_tokens},
            "total_tokens": input_tokens + g.output_tokens,
        }
        number = self._next_id()
        response_id, message_id, reasoning_id = f"resp_fake{number}", f"msg_fake{number}", f"rs_fake{number}"
        created = int(time.time())
        status = "incomplete" if g.truncated else "completed"
        text_part = {"type": "output_text", "text": g.text, "annotations": [], "logprobs": []}
        message_item = {"id": message_id, "type": "message", "status": "completed", "role": "assistant",
                        "content": [text_part]}
        reasoning_item = {"id": reasoning_id, "type": "reasoning", "summary": []}
        output = ([reasoning_item] if reasoning_tokens_expected(model) else []) + [message_item]

        def response_object(state: str, final: bool) -> dict[str, Any]:
            return {
                "id": response_id,
                "object": "response",
                "created_at": created,
                "status": state,
                "background": False,
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if final and g.truncated else None,
                "instructions": instructions,
                "max_output_tokens": cap,
                "model": model,
                "output": output if final else [],
                "parallel_tool_calls": True,
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": {"effort": reasoning_config.get("effort"), "summary": None},
                "service_tier": "default",
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": text_config or {"format": {"type": "text"}},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "top_p": body.get("top_p", 1.0),
                "truncation": "disabled",
                "usage": usage if final else None,
                "user": None,
                "metadata": body.get("metadata") or {},
            }

        headers = (("x-request-id", f"req_fake{number}"), ("openai-processing-ms", "1"))
        if not body.get("stream"):
            return _Answer(200, body=response_object(status, True), headers=headers, usage=usage)

        sequence = itertools.count()
        events: list[str] = []

        def emit(kind: str, **fields: Any) -> None:
            events.append(_sse_event(kind, {"type": kind, "sequence_number": next(sequence), **fields}))

        emit("response.created", response=response_object("in_progress", False))
        emit("response.in_progress", response=response_object("in_progress", False))
        message_index = 0
        if reasoning_tokens_expected(model):
            emit("response.output_item.added", output_index=0,
                 item={**reasoning_item, "summary": []})
            emit("response.output_item.done", output_index=0, item=reasoning_item)
            message_index = 1
        emit("response.output_item.added", output_index=message_index,
             item={**message_item, "status": "in_progress", "content": []})
        emit("response.content_part.added", item_id=message_id, output_index=message_index, content_index=0,
             part={**text_part, "text": ""})
        for piece in _pieces(g.text):
            emit("response.output_text.delta", item_id=message_id, output_index=message_index,
                 content_index=0, delta=piece, logprobs=[])
        emit("response.output_text.done", item_id=message_id, output_index=message_index, content_index=0,
             text=g.text, logprobs=[])
        emit("response.content_part.done", item_id=message_id, output_index=message_index, content_index=0,
             part=text_part)
        emit("response.output_item.done", output_index=message_index, item=message_item)
        emit("response.incomplete" if g.truncated else "response.completed",
             response=response_object(status, True))
        return _Answer(200, events=tuple(events), headers=headers, usage=usage, stream=True)

    # -- OpenAI legacy completions -----------------------------------------------------------------
    def _openai_legacy_completion(self, body: dict[str, Any]) -> _Answer:
        model = _require_model(body)
        prompt = body.get("prompt", "")
        prompts = _legacy_prompts(prompt)
        cap = _int_or_none(body.get("max_tokens"))
        cap = _LEGACY_COMPLETION_DEFAULT_MAX_TOKENS if cap is None else cap
        n = _int_or_none(body.get("n")) or 1
        prompt_tokens = sum(len(p) if isinstance(p, list) else count_tokens(p) for p in prompts)
        generations = [
            _generate(f"{_legacy_seed(p)}\n#{i}" if i else _legacy_seed(p), model, cap, 0, None)
            for p in prompts for i in range(n)
        ]
        completion_tokens = sum(g.output_tokens for g in generations)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        number = self._next_id()
        response_id = f"cmpl-fake{number}"
        created = int(time.time())
        headers = (("x-request-id", f"req_fake{number}"),)
        finish = ["length" if g.truncated else "stop" for g in generations]
        if not body.get("stream"):
            return _Answer(200, body={
                "id": response_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"text": g.text, "index": i, "logprobs": None, "finish_reason": finish[i]}
                            for i, g in enumerate(generations)],
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }, headers=headers, usage=usage)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": response_id, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": "fp_fake"}

        def chunk(choices: list[dict[str, Any]], usage_value: Any = None) -> str:
            payload = {**base, "choices": choices}
            if include_usage:
                payload["usage"] = usage_value
            return _sse_data(payload)

        events = []
        for i, g in enumerate(generations):
            for piece in _pieces(g.text):
                events.append(chunk([{"text": piece, "index": i, "logprobs": None, "finish_reason": None}]))
            events.append(chunk([{"text": "", "index": i, "logprobs": None, "finish_reason": finish[i]}]))
        if include_usage:
            events.append(chunk([], usage))
        events.append("data: [DONE]\n\n")
        return _Answer(200, events=tuple(events), headers=headers, usage=usage if include_usage else None,
                       stream=True)

    # -- OpenAI embeddings -------------------------------------------------------------------------
    def _openai_embeddings(self, body: dict[str, Any]) -> _Answer:
        model = _require_model(body)
        inputs = _legacy_prompts(body.get("input"))
        if not inputs:
            raise _BadRequest("'input' must not be empty")
        dimensions = _int_or_none(body.get("dimensions")) or _EMBEDDING_DIMENSIONS.get(
            model, _DEFAULT_EMBEDDING_DIMENSIONS)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = _embedding(model, json.dumps(item), dimensions)
            encoded: Any = (base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
                            if as_base64 else vector)
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(item) if isinstance(item, list) else count_tokens(item) for item in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        headers = (("x-request-id", f"req_fake{self._next_id()}"),)
        return _Answer(200, body={"object": "list", "data": data, "model": model, "usage": usage},
                       headers=headers, usage=usage)

    # -- Anthropic messages ------------------------------------------------------------------------
    def _anthropic_prompt(self, body: dict[str, Any]) -> tuple[str, list[_Segment]]:
        model = _require_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages: at least one message is required")
        return model, _anthropic_segments(body.get("tools"), body.get("system"), messages)

    def _anthropic_messages(self, body: dict[str, Any]) -> _Answer:
        model, segments = self._anthropic_prompt(body)
        max_tokens = _int_or_none(body.get("max_tokens"))
        if max_tokens is None or max_tokens < 1:
            raise _BadRequest("max_tokens: Field required")
        thinking = _anthropic_thinking_tokens(body.get("thinking"), max_tokens)
        total = sum(s.tokens for s in segments)
        cache_read, cache_write, write_ttl = self._anthropic_cache(model, segments)
        messages = body["messages"]
        seed_text = _anthropic_prompt_text(body.get("system"), messages)
        g = _generate(seed_text, model, max_tokens, thinking, None)
        cache_creation = {"ephemeral_5m_input_tokens": cache_write if write_ttl == "5m" else 0,
                          "ephemeral_1h_input_tokens": cache_write if write_ttl == "1h" else 0}
        input_usage = {
            "input_tokens": total - cache_read - cache_write,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
        }
        usage: dict[str, Any] = {**input_usage, "cache_creation": cache_creation, "output_tokens": g.output_tokens,
                                 "service_tier": "standard"}
        if body.get("thinking") and thinking:
            usage["output_tokens_details"] = {"thinking_tokens": g.reasoning_tokens}
        number = self._next_id()
        message_id = f"msg_fake{number}"
        headers = (("request-id", f"req_fake{number}"),)
        stop_reason = "max_tokens" if g.truncated else "end_turn"
        content: list[dict[str, Any]] = []
        thinking_block = None
        if g.reasoning_tokens:
            thinking_block = {"type": "thinking", "thinking": _thinking_summary(seed_text),
                              "signature": base64.b64encode(hashlib.sha256(seed_text.encode()).digest()).decode()}
            content.append(thinking_block)
        content.append({"type": "text", "text": g.text})
        message = {"id": message_id, "type": "message", "role": "assistant", "model": model,
                   "content": content, "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return _Answer(200, body=message, headers=headers, usage=usage)

        events: list[str] = []

        def emit(kind: str, **fields: Any) -> None:
            events.append(_sse_event(kind, {"type": kind, **fields}))

        start_usage = {**input_usage, "cache_creation": cache_creation, "output_tokens": 1,
                       "service_tier": "standard"}
        emit("message_start", message={**message, "content": [], "stop_reason": None, "usage": start_usage})
        index = 0
        if thinking_block is not None:
            emit("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""})
            emit("ping")
            for piece in _pieces(thinking_block["thinking"]):
                emit("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": piece})
            emit("content_block_delta", index=0,
                 delta={"type": "signature_delta", "signature": thinking_block["signature"]})
            emit("content_block_stop", index=0)
            index = 1
        emit("content_block_start", index=index, content_block={"type": "text", "text": ""})
        if thinking_block is None:
            emit("ping")
        for piece in _pieces(g.text):
            emit("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
        emit("content_block_stop", index=index)
        delta_usage: dict[str, Any] = {**input_usage, "output_tokens": g.output_tokens}
        if "output_tokens_details" in usage:
            delta_usage["output_tokens_details"] = usage["output_tokens_details"]
        emit("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None}, usage=delta_usage)
        emit("message_stop")
        return _Answer(200, events=tuple(events), headers=headers, usage=usage, stream=True)

    def _anthropic_count_tokens(self, body: dict[str, Any]) -> _Answer:
        _model, segments = self._anthropic_prompt(body)
        return _Answer(200, body={"input_tokens": sum(s.tokens for s in segments)},
                       headers=(("request-id", f"req_fake{self._next_id()}"),))

    def _anthropic_cache(self, model: str, segments: list[_Segment]) -> tuple[int, int, str]:
        """Explicit caching: each breakpoint long enough is a candidate prefix."""
        candidates: dict[str, int] = {}
        last_ttl = "5m"
        running = 0
        for i, segment in enumerate(segments):
            running += segment.tokens
            if segment.cache_ttl is not None and running >= self.cache_min_tokens:
                key = _digest("anthropic", model, [s.content for s in segments[: i + 1]])
                candidates[key] = running
                last_ttl = segment.cache_ttl
        if not candidates:
            return 0, 0, last_ttl
        hits = self._cache.lookup_and_store(candidates)
        read = max((candidates[key] for key in hits), default=0)
        return read, max(candidates.values()) - read, last_ttl

    # -- Gemini ------------------------------------------------------------------------------------
    def _gemini(self, model: str, method: str, body: Any, headers: Mapping[str, str], sse: bool) -> _Answer:
        if not isinstance(body, dict):
            return self._error("gemini", 400, "The request body must be a JSON object.")
        status = _requested_error({"model": model}, headers)
        if status is not None:
            return self._error("gemini", status)
        try:
            if method in ("embedContent", "batchEmbedContents"):
                return self._gemini_embed(model, method, body)
            return self._gemini_generate(model, body, stream=method == "streamGenerateContent", sse=sse)
        except _BadRequest as err:
            return self._error("gemini", 400, str(err))

    def _gemini_generate(self, model: str, body: dict[str, Any], *, stream: bool, sse: bool) -> _Answer:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _BadRequest("* GenerateContentRequest.contents: contents is not specified")
        system = body.get("systemInstruction")
        preamble = _json_tokens(body.get("tools"))
        if system:
            preamble += _GEMINI_CONTENT_OVERHEAD + _gemini_content_tokens(system)
        content_tokens = [_GEMINI_CONTENT_OVERHEAD + _gemini_content_tokens(c) for c in contents]
        prompt_tokens = preamble + sum(content_tokens)
        cache_read, _write = self._openai_cache(
            f"gemini/{model}", [body.get("tools"), system], contents,
            [preamble + sum(content_tokens[:i]) for i in range(len(contents) + 1)],
        )
        config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
        thoughts = _gemini_thoughts(model, config.get("thinkingConfig"))
        cap = _int_or_none(config.get("maxOutputTokens"))
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema is None and config.get("responseMimeType") == "application/json":
            schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
        seed_text = "\n".join(filter(None, [_gemini_text(system), _gemini_text(contents)]))
        g = _generate(seed_text, model, cap, thoughts, schema)
        finish = "MAX_TOKENS" if g.truncated else "STOP"
        response_id = f"fake{self._next_id()}"

        def usage_of(candidates: int) -> dict[str, Any]:
            usage: dict[str, Any] = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": candidates,
                                     "totalTokenCount": prompt_tokens + candidates + g.reasoning_tokens,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}
            if cache_read:
                usage["cachedContentTokenCount"] = cache_read
                usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cache_read}]
            if g.reasoning_tokens:
                usage["thoughtsTokenCount"] = g.reasoning_tokens
            return usage

        def response(text: str, candidates: int, finish_reason: str | None) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish_reason:
                candidate["finishReason"] = finish_reason
            return {"candidates": [candidate], "usageMetadata": usage_of(candidates), "modelVersion": model,
                    "responseId": response_id}

        visible = g.output_tokens - g.reasoning_tokens
        usage = usage_of(visible)
        if not stream:
            return _Answer(200, body=response(g.text, visible, finish), usage=usage)
        pieces = _pieces(g.text) or [""]
        chunks, sent = [], ""
        for i, piece in enumerate(pieces):
            sent += piece
            last = i == len(pieces) - 1
            chunks.append(response(piece, visible if last else count_tokens(sent), finish if last else None))
        if sse:
            events = tuple(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks)
            return _Answer(200, events=events, usage=usage, stream=True)
        # Without alt=sse Gemini streams one JSON array, element by element.
        events = tuple(("[" if i == 0 else ",\r\n") + json.dumps(chunk) for i, chunk in enumerate(chunks)) + ("]",)
        return _Answer(200, events=events, usage=usage, stream=True, content_type="application/json; charset=UTF-8")

    def _gemini_embed(self, model: str, method: str, body: dict[str, Any]) -> _Answer:
        requests = body.get("requests") if method == "batchEmbedContents" else [body]
        if not isinstance(requests, list) or not requests:
            raise _BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
        embeddings, tokens = [], 0
        for request in requests:
            content = request.get("content") if isinstance(request, Mapping) else None
            if not content:
                raise _BadRequest("* EmbedContentRequest.content: content is not specified")
            dimensions = _int_or_none(request.get("outputDimensionality")) or _GEMINI_EMBEDDING_DIMENSIONS.get(
                model, _GEMINI_DEFAULT_EMBEDDING_DIMENSIONS)
            text = _gemini_text(content)
            tokens += _gemini_content_tokens(content)
            embeddings.append({"values": _embedding(model, text, dimensions)})
        usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
        if method == "embedContent":
            return _Answer(200, body={"embedding": embeddings[0], "usageMetadata": usage}, usage=usage)
        return _Answer(200, body={"embeddings": embeddings, "usageMetadata": usage}, usage=usage)


def provider_of(path: str) -> str | None:
    """The provider whose API a request path belongs to; None for a path none of them has."""
    if _GEMINI_PATH.match(path):
        return "gemini"
    if path.startswith(_GROQ_PREFIX + "/v1/"):
        return "groq" if path[len(_GROQ_PREFIX):] in _OPENAI_PATHS else None
    if path in _ANTHROPIC_PATHS:
        return "anthropic"
    return "openai" if path in _OPENAI_PATHS else None


def connection_help(server: FakeLLMServer) -> list[str]:
    """How to point each SDK the server speaks at it, in code and in the environment (the variables
    each SDK reads itself; google-generativeai has none for its endpoint)."""
    base, openai_url = server.base_url, server.openai_base_url
    return [
        f"fake OpenAI, Anthropic, Gemini and Groq APIs on {base} (no keys, no network); Ctrl-C stops it",
        f'  openai:              openai.OpenAI(base_url="{openai_url}", api_key="fake")',
        f'  anthropic:           anthropic.Anthropic(base_url="{server.anthropic_base_url}", api_key="fake")',
        f'  groq:                groq.Groq(base_url="{server.groq_base_url}", api_key="fake")',
        f'  google-genai:        genai.Client(api_key="fake", http_options={{"base_url": "{server.gemini_base_url}"}})'
        "  # from google import genai",
        f'  google-generativeai: genai.configure(api_key="fake", transport="rest", '
        f'client_options={{"api_endpoint": "{base}"}})  # import google.generativeai as genai',
        "  or in the environment (google-generativeai reads no variable for its endpoint):",
        f"    export OPENAI_BASE_URL={openai_url} OPENAI_API_KEY=fake",
        f"    export ANTHROPIC_BASE_URL={server.anthropic_base_url} ANTHROPIC_API_KEY=fake",
        f"    export GROQ_BASE_URL={server.groq_base_url} GROQ_API_KEY=fake",
        f"    export GOOGLE_GEMINI_BASE_URL={server.gemini_base_url} GEMINI_API_KEY=fake  # google-genai >= 1.13",
        f"  what it received: curl {base}{RECEIVED_PATH} (curl -X DELETE {base}{RECEIVED_PATH} forgets it)",
    ]


def reasoning_tokens_expected(model: str) -> bool:
    """Whether the fake treats an OpenAI model as a reasoning model."""
    return model.startswith(_OPENAI_REASONING_PREFIXES)


# -- HTTP plumbing ---------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLMServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client may drop a kept-alive connection at any time (the openai SDK does after a stream's
        # [DONE]); that is a normal close, not an error worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Ends kept-alive connections too, so a stopped server answers nobody."""
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so SDK connection pools behave as with the real API
    server_version = "fake-llm"
    timeout = 30  # idle keep-alive connections close instead of pinning a thread

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        _logger.debug("fake server: " + format, *args)

    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    @property
    def _fake(self) -> FakeLLMServer:
        return self.server.fake

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        self._drain_body()
        if path == RECEIVED_PATH:  # not an API call: neither counted nor recorded
            self._send_json(_Answer(status=200, body=self._fake.received()))
            return
        self._fake._count(path)
        answer = self._fake._error("anthropic" if path in _ANTHROPIC_PATHS else "openai", 404,
                                   f"Unknown request URL: GET {path}.")
        self._fake._record(ReceivedRequest("GET", path, None, self._kept_headers(), 404, time=time.time()))
        self._send_json(answer)

    def do_DELETE(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        self._drain_body()
        if path == RECEIVED_PATH:
            self._fake.forget_requests()
            self._send_json(_Answer(status=200, body={"total": 0}))
        else:
            self._send_json(self._fake._error("openai", 404, f"Unknown request URL: DELETE {path}."))

    def _kept_headers(self) -> Mapping[str, str]:
        return MappingProxyType({k.lower(): v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS})

    def do_POST(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        fake = self._fake
        fake._count(path)
        raw = self._drain_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        arrived = time.time()
        headers = self._kept_headers()
        answer = fake._answer(path, body, headers, query)
        fake._record(ReceivedRequest("POST", path, body, headers, answer.status,
                                     MappingProxyType(answer.usage) if answer.usage is not None else None,
                                     arrived))
        if fake.latency_s:
            time.sleep(fake.latency_s)
        try:
            if answer.stream:
                self._send_events(answer)
            else:
                self._send_json(answer)
        except OSError:
            # The client went away (an abandoned stream); nothing to answer.
            self.close_connection = True

    def _drain_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, answer: _Answer) -> None:
        data = json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        delay = self._fake.chunk_delay_s
        for i, event in enumerate(answer.events):
            if delay and i:
                time.sleep(delay)
            data = event.encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


def _sse_data(payload: Any) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _sse_event(kind: str, payload: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"


# -- request reading -------------------------------------------------------------------------------
def _requested_error(body: Mapping[str, Any], headers: Mapping[str, str]) -> int | None:
    raw = headers.get("x-fake-error")
    if raw and raw.strip().isdigit():
        return int(raw)
    model = body.get("model")
    if isinstance(model, str):
        match = _ERROR_IN_MODEL.search(model)
        if match:
            return int(match.group(1))
    return None


def _require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter")
    return model


def _int_or_none(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _json_tokens(value: Any) -> int:
    if not value:
        return 0
    return count_tokens(json.dumps(value, sort_keys=True, separators=(",", ":")))


def _part_tokens(part: Any) -> int:
    if isinstance(part, str):
        return count_tokens(part)
    if not isinstance(part, Mapping):
        return _json_tokens(part)
    kind = part.get("type")
    if kind in ("image_url", "input_image", "image"):
        return _IMAGE_TOKENS
    for key in ("text", "thinking", "refusal"):
        if isinstance(part.get(key), str):
            return count_tokens(part[key])
    if kind == "tool_result":
        return _content_tokens(part.get("content"))
    if kind == "tool_use":
        return count_tokens(str(part.get("name", ""))) + _json_tokens(part.get("input"))
    return _json_tokens({k: v for k, v in part.items() if k != "cache_control"})


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, list):
        return sum(_part_tokens(part) for part in content)
    return _part_tokens(content)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_content_text(part) for part in content)
    if isinstance(content, Mapping):
        for key in ("text", "content", "output", "arguments"):
            if key in content:
                return _content_text(content[key])
    return ""


def _openai_message_tokens(message: Any) -> int:
    if not isinstance(message, Mapping):
        return _part_tokens(message)
    tokens = _content_tokens(message.get("content"))
    if message.get("tool_calls"):
        tokens += _json_tokens(message["tool_calls"])
    for key in ("output", "arguments"):  # Responses function_call / function_call_output items
        if isinstance(message.get(key), str):
            tokens += count_tokens(message[key])
    return tokens


def _openai_prompt_text(messages: Iterable[Any]) -> str:
    return "\n".join(_content_text(m) for m in messages)


def _responses_items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value:
        return value
    raise _BadRequest("'input' is required")


def _legacy_prompts(prompt: Any) -> list[Any]:
    """A prompt is a string, a list of strings, a token list, or a list of token lists."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list):
        if prompt and all(isinstance(t, int) for t in prompt):
            return [prompt]
        return [p for p in prompt if isinstance(p, (str, list))]
    return []


def _legacy_seed(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def _openai_reasoning(model: str, effort: Any) -> int:
    if not reasoning_tokens_expected(model):
        return 0
    return _OPENAI_REASONING_TOKENS.get(effort if isinstance(effort, str) else "medium", 192)


def _chat_schema(response_format: Any) -> Any:
    if not isinstance(response_format, Mapping):
        return None
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    if response_format.get("type") == "json_object":
        return {"type": "object", "properties": {"answer": {"type": "string"}}}
    return None


def _responses_schema(text_config: Mapping[str, Any] | None) -> Any:
    fmt = (text_config or {}).get("format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        return fmt.get("schema") or {"type": "object"}
    if fmt.get("type") == "json_object":
        return {"type": "object", "properties": {"answer": {"type": "string"}}}
    return None


@dataclass(frozen=True, slots=True)
class _Segment:
    """A cacheable unit of an Anthropic prompt: a tool, a system block or a message block."""

    tokens: int
    content: Any
    cache_ttl: str | None  # "5m" / "1h" when the block carries cache_control


def _cache_ttl(block: Any) -> str | None:
    if not isinstance(block, Mapping) or not isinstance(block.get("cache_control"), Mapping):
        return None
    return "1h" if block["cache_control"].get("ttl") == "1h" else "5m"


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, Mapping):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _anthropic_segments(tools: Any, system: Any, messages: list[Any]) -> list[_Segment]:
    segments: list[_Segment] = []
    overhead = _ANTHROPIC_REQUEST_OVERHEAD
    for tool in tools or []:
        segments.append(_Segment(overhead + _json_tokens(_without_cache_control(tool)),
                                 _without_cache_control(tool), _cache_ttl(tool)))
        overhead = 0
    system_blocks = [system] if isinstance(system, str) else list(system or [])
    for block in system_blocks:
        segments.append(_Segment(overhead + _part_tokens(block), _without_cache_control(block), _cache_ttl(block)))
        overhead = 0
    for message in messages:
        if not isinstance(message, Mapping):
            raise _BadRequest("messages: each message must be an object")
        content = message.get("content")
        blocks = [content] if isinstance(content, str) else list(content or [])
        role = message.get("role")
        overhead += _ANTHROPIC_MESSAGE_OVERHEAD
        if not blocks:
            segments.append(_Segment(overhead, role, None))
        for block in blocks:
            segments.append(_Segment(overhead + _part_tokens(block), [role, _without_cache_control(block)],
                                     _cache_ttl(block)))
            overhead = 0
    return segments


def _anthropic_prompt_text(system: Any, messages: list[Any]) -> str:
    parts = [_content_text(system)] if system else []
    parts.extend(_content_text(m.get("content")) for m in messages if isinstance(m, Mapping))
    return "\n".join(parts)


def _anthropic_thinking_tokens(thinking: Any, max_tokens: int) -> int:
    if not isinstance(thinking, Mapping):
        return 0
    kind = thinking.get("type")
    if kind == "enabled":
        budget = _int_or_none(thinking.get("budget_tokens"))
        if budget is None:
            raise _BadRequest("thinking.enabled.budget_tokens: Field required")
        if budget >= max_tokens:
            raise _BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`.")
        return min(budget, _ANTHROPIC_THINKING_TOKENS)
    if kind == "adaptive":
        return min(max_tokens - 1, _ANTHROPIC_THINKING_TOKENS)
    return 0


def _gemini_part_tokens(part: Any) -> int:
    if not isinstance(part, Mapping):
        return _part_tokens(part)
    if isinstance(part.get("text"), str):
        return count_tokens(part["text"])
    if "inlineData" in part or "fileData" in part:
        return _IMAGE_TOKENS
    return _json_tokens(part)  # functionCall, functionResponse, ...


def _gemini_content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_tokens(content)
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return sum(_gemini_part_tokens(part) for part in parts or ())


def _gemini_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_gemini_text(item) for item in value)
    if isinstance(value, Mapping):
        if isinstance(value.get("text"), str):
            return value["text"]
        return _gemini_text(value.get("parts") or [])
    return ""


def _gemini_thoughts(model: str, thinking: Any) -> int:
    if not model.startswith(_GEMINI_THINKING_PREFIXES):
        return 0
    thinking = thinking if isinstance(thinking, Mapping) else {}
    if "flash-lite" in model and not thinking:  # Flash-Lite thinks only when asked to
        return 0
    # google-genai sends this object's keys as written in Python (snake case); REST documents camel case.
    budget = _int_or_none(thinking.get("thinkingBudget"), thinking.get("thinking_budget"))
    level = thinking.get("thinkingLevel") or thinking.get("thinking_level")
    if isinstance(level, str) and level.lower() in _GEMINI_THOUGHTS_TOKENS:
        return _GEMINI_THOUGHTS_TOKENS[level.lower()]
    if budget is not None and budget >= 0:
        return min(budget, _GEMINI_DEFAULT_THOUGHTS)
    return _GEMINI_DEFAULT_THOUGHTS


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


# -- generation ------------------------------------------------------------------------------------
def _word_stream(seed: str) -> Iterator[int]:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    while True:
        yield from digest
        digest = hashlib.sha256(digest).digest()


def _reply_text(seed_text: str, model: str) -> str:
    stream = _word_stream(f"{model}\n{seed_text}")
    count = 8 + next(stream) % 25
    words = [_WORDS[next(stream) % len(_WORDS)] for _ in range(count)]
    return " ".join(words).capitalize() + "."


def _generate(seed_text: str, model: str, cap: int | None, reasoning: int, schema: Any) -> _Generation:
    if cap is not None:
        reasoning = min(reasoning, max(cap, 0))
    full = (json.dumps(_schema_instance(schema, schema, _word_stream(seed_text), 0))
            if schema is not None else _reply_text(seed_text, model))
    visible_cap = None if cap is None else max(cap - reasoning, 0)
    text = full
    if visible_cap is not None and count_tokens(full) > visible_cap:
        text = full[: visible_cap * 4]
    return _Generation(text=text, output_tokens=count_tokens(text) + reasoning, reasoning_tokens=reasoning,
                       truncated=text != full)


def _pieces(text: str) -> list[str]:
    """Stream deltas: one word each, trailing space included, so they concatenate to ``text``."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else ([text] if text else [])


def _thinking_summary(seed_text: str) -> str:
    first_line = seed_text.strip().splitlines()[0] if seed_text.strip() else ""
    return f"The user asks: {first_line[:80]}. Plan a short answer."


def _schema_instance(schema: Any, root: Any, words: Iterator[int], depth: int) -> Any:
    """A small value that validates against a (pydantic-generated) JSON schema."""
    if not isinstance(schema, Mapping) or depth > 12:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key, {}) if isinstance(target, Mapping) else {}
        return _schema_instance(target, root, words, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")),
                          options[0])
            return _schema_instance(chosen, root, words, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _schema_instance(sub, root, words, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, _int_or_none(schema.get("minItems")) or 1)
        return [_schema_instance(schema.get("items") or {}, root, words, depth + 1) for _ in range(count)]
    if kind == "integer":
        return _int_or_none(schema.get("minimum")) or 1 + next(words) % 100
    if kind == "number":
        return float(schema.get("minimum", 0)) + (next(words) % 100) / 4
    if kind == "boolean":
        return next(words) % 2 == 0
    if kind == "null":
        return None
    if schema.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    if schema.get("format") == "date":
        return "2026-01-01"
    return _WORDS[next(words) % len(_WORDS)]


def _embedding(model: str, text: str, dimensions: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(f"{model}\n{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    # Rounded through float32, so JSON and base64 answers carry the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in vector]


def _openai_chat_usage(prompt_tokens: int, cache_read: int, cache_write: int,
                       generations: list[_Generation]) -> dict[str, Any]:
    completion = sum(g.output_tokens for g in generations)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(g.reasoning_tokens for g in generations),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
