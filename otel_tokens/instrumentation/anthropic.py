"""Anthropic instrumentor: ``AnthropicInstrumentor().instrument()``.

Covers ``messages.create`` (with and without ``stream=True``), ``messages.parse`` and the
``messages.stream()`` helper, stable and beta, sync and async, and ``with_raw_response``, for every
client class (``Anthropic``, ``AnthropicBedrock``, ``AnthropicVertex``, ``AnthropicFoundry``, ...).

**The SDK's own spans.** anthropic 2.x traces its API calls itself (span ``anthropic.messages.create``,
scope ``com.anthropic.sdk.python``) whenever a real tracer provider is set, so every call would have
two LLM spans. By default (``OTEL_TOKENS_ANTHROPIC_SDK_SPANS=false``, setting ``anthropic_sdk_spans``)
the SDK starts no span of its own for a call that otel-tokens records; its other spans (tool runner,
tool use, ``count_tokens``, ...) are untouched. The seam is ``anthropic._tracing.start_api_call_span``,
which the SDK calls once per API call and whose documented ``None`` means "the call goes on without a
span"; it is patched where the client looks it up (``anthropic._base_client``), so it applies to
clients made before and after ``instrument()``, changes no environment variable and no client, and is
removed by ``uninstrument()``.

Trace propagation is kept: a client that propagates trace context (the SDK's default) still sends
``traceparent``, now that of the span current while the SDK sends, which is otel-tokens' LLM span, so a
gateway behind ``base_url`` stays in the trace and no request names a span that is never exported. A
client with ``propagation`` off sends none, as before.

With ``OTEL_TOKENS_ANTHROPIC_SDK_SPANS=true`` both spans exist: ours (CLIENT, ``chat {model}``, with
tokens and cost) and the SDK's (CLIENT, ``anthropic.messages.create``), the SDK's a child of ours.
Count LLM calls from one scope only (``otel_tokens``) to avoid counting twice.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import wrapt
from opentelemetry import trace

from otel_tokens._internal.base.safety import log_internal_error
from otel_tokens._internal.calls.engine import Patch, in_recorded_call
from otel_tokens.instrumentation._base import SDKInstrumentor

_MESSAGES = "anthropic.resources.messages.messages"
_MESSAGES_LEGACY = "anthropic.resources.messages"  # anthropic < 0.34, before the batches split
_BETA_MESSAGES = "anthropic.resources.beta.messages.messages"
_BATCHES = "anthropic.resources.messages.batches"
# Where the client looks up the SDK's per-call span factory (anthropic >= 2.0).
_SDK_SPAN_MODULE = "anthropic._base_client"
_SDK_SPAN_FUNCTION = "start_api_call_span"


def _patches() -> list[Patch]:
    from otel_tokens._internal.providers import anthropic as adapter  # loaded with the SDK, not before

    messages = adapter.Messages()
    helper = adapter.Messages(streaming_helper=True)
    table = []
    for module in (_MESSAGES, _MESSAGES_LEGACY, _BETA_MESSAGES):
        table += [
            Patch(module, "Messages.create", messages, "sync"),
            Patch(module, "AsyncMessages.create", messages, "async"),
            Patch(module, "Messages.parse", messages, "sync"),
            Patch(module, "AsyncMessages.parse", messages, "async"),
            Patch(module, "Messages.stream", helper, "sending_manager"),
            Patch(module, "AsyncMessages.stream", helper, "sending_manager"),
        ]
    batches = adapter.BatchResults()
    table += [
        Patch(_BATCHES, "Batches.results", batches, "completed_calls"),
        Patch(_BATCHES, "AsyncBatches.results", batches, "async_completed_calls"),
    ]
    return table


def _without_sdk_span(switch: Any) -> Any:
    """Wrapper for ``start_api_call_span``: inside a call otel-tokens records, start no SDK span."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not (switch.on and in_recorded_call()):
            return wrapped(*args, **kwargs)
        # A non-recording span of the current context: the SDK then records nothing and ends nothing,
        # and sends the traceparent its own span would have continued.
        if kwargs.get("propagation", True):
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                return trace.NonRecordingSpan(context)
        return None

    return wrapper


class AnthropicInstrumentor(SDKInstrumentor):
    package = "anthropic"
    requirement = "anthropic >= 0.40"

    def patches(self) -> Sequence[Patch]:
        return _patches()

    def _prepare(self, recorder: Any) -> None:
        self._sdk_span_handle = None
        if recorder.settings.anthropic_sdk_spans:
            return
        try:
            module = importlib.import_module(_SDK_SPAN_MODULE)
        except ImportError:
            return
        if not hasattr(module, _SDK_SPAN_FUNCTION):  # anthropic < 2 has no spans of its own
            return
        self._sdk_span_handle = wrapt.wrap_function_wrapper(
            module, _SDK_SPAN_FUNCTION, _without_sdk_span(self._switch)
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        handle, self._sdk_span_handle = getattr(self, "_sdk_span_handle", None), None
        if handle is None:
            return
        try:
            wrapt.unwrap_object(importlib.import_module(_SDK_SPAN_MODULE), _SDK_SPAN_FUNCTION, handle, missing_ok=True)
        except Exception:
            log_internal_error("unpatching anthropic's SDK span factory")
