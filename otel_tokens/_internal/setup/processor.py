"""The public span processor: :class:`GenAISpanProcessor`, bound to the process's runtime.

Imported only when ``otel_tokens.GenAISpanProcessor`` is used, so ``opentelemetry.sdk.trace`` (which raises
at import on a malformed ``OTEL_SPAN_*`` variable) loads only for an app that has an SDK tracer provider.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import SpanProcessor

from otel_tokens._internal.calls.spans import SpanCalls
from otel_tokens._internal.setup.runtime import current_runtime, runtime_for


class GenAISpanProcessor(SpanCalls, SpanProcessor):
    """Cost, tokens and budgets for GenAI spans other instrumentations emit (contrib, OpenInference,
    pydantic-ai, Google ADK, Strands, Semantic Kernel, ...); add it to a ``TracerProvider``.

    Each inference span that ends is recorded like ``otel_tokens.record_usage()`` into the process's
    otel-tokens runtime (built now from the environment if ``instrument()`` has not run, like
    ``set_budget()``): metrics, totals, budgets, usage log and report, marked ``otel_tokens.source``. It adds
    no span of its own. See docs/span-processor.md for what is read and what is never counted twice.
    """

    def __init__(self) -> None:
        runtime_for(implicit=True)  # on the caller's thread: nothing is built or imported in a hook
        SpanCalls.__init__(self, current_runtime)


__all__ = ["GenAISpanProcessor"]
