"""The floor: the least code that emits exactly the telemetry otel-tokens emits for the benchmark's
OpenAI chat calls (same span name, kind and attributes, same four histogram points, same observable
counters fed by a dict update), with no parsing beyond reading the fields, no pricing (a constant cost),
no ledger, budgets, labels, estimates or fail-open guards. What it costs is what the OpenTelemetry SDK
costs; otel-tokens minus the floor is what our own code costs.

Only for ``benchmarks/overhead.py``: it knows the benchmark's requests and is not safe for anything else.
"""

from __future__ import annotations

import time
from typing import Any

import wrapt
from opentelemetry.metrics import Observation
from opentelemetry.trace import SpanKind

COST_USD = 0.000123  # the floor does no pricing; the attribute and counter still get a value


def instrument_floor(tracer_provider: Any, meter_provider: Any) -> None:
    tracer = tracer_provider.get_tracer("otel_tokens")
    meter = meter_provider.get_meter("otel_tokens")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    ttfc_histogram = meter.create_histogram("gen_ai.client.operation.time_to_first_chunk", unit="s")
    token_usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    operation_cost = meter.create_histogram("gen_ai.client.operation.cost", unit="{cost}")
    totals: dict[tuple, list[float]] = {}

    def observe(index: int, token_type: str | None = None) -> Any:
        def callback(options: Any) -> list[Observation]:
            extra = {"gen_ai.token.type": token_type} if token_type else {}
            return [Observation(values[index], {**dict(key), **extra}) for key, values in list(totals.items())]

        return callback

    meter.create_observable_counter("otel_tokens.cost", callbacks=[observe(2)], unit="USD")
    meter.create_observable_counter(
        "otel_tokens.token.usage", callbacks=[observe(0, "input"), observe(1, "output")], unit="{token}"
    )

    def finish(span: Any, started: float, response_id: str, model: str, reasons: tuple, usage: Any,
               request_attributes: dict, first_chunk_at: float | None = None) -> None:
        elapsed = time.perf_counter() - started
        attributes = {
            "gen_ai.response.model": model,
            "gen_ai.response.id": response_id,
            "gen_ai.response.finish_reasons": reasons,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.prompt_tokens_details.cached_tokens,
            "gen_ai.usage.cost.amount": COST_USD,
            "gen_ai.usage.cost.currency": "USD",
            "gen_ai.usage.cost.source": "local",
        }
        if first_chunk_at is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = first_chunk_at - started
        span.set_attributes(attributes)
        span.end()
        points = {**request_attributes, "gen_ai.response.model": model}
        duration.record(elapsed, points)
        if first_chunk_at is not None:
            ttfc_histogram.record(first_chunk_at - started, points)
        token_usage.record(usage.prompt_tokens, {**points, "gen_ai.token.type": "input"})
        token_usage.record(usage.completion_tokens, {**points, "gen_ai.token.type": "output"})
        operation_cost.record(COST_USD, {**points, "gen_ai.usage.cost.currency": "USD", "gen_ai.usage.cost.source": "local"})
        row = totals.setdefault(tuple(points.items()), [0, 0, 0.0])
        row[0] += usage.prompt_tokens
        row[1] += usage.completion_tokens
        row[2] += COST_USD

    def start(kwargs: dict) -> tuple[Any, dict, float]:
        request_attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": kwargs["model"],
            "server.address": "api.openai.com",
            "server.port": 443,
        }
        attributes = dict(request_attributes)
        if "max_tokens" in kwargs:
            attributes["gen_ai.request.max_tokens"] = kwargs["max_tokens"]
        if kwargs.get("stream"):
            attributes["gen_ai.request.stream"] = True
        span = tracer.start_span(f"chat {kwargs['model']}", kind=SpanKind.CLIENT, attributes=attributes)
        return span, request_attributes, time.perf_counter()

    class Stream(wrapt.ObjectProxy):
        def __init__(self, wrapped: Any, span: Any, request_attributes: dict, started: float) -> None:
            super().__init__(wrapped)
            self._self_call = (span, request_attributes, started)
            self._self_first: float | None = None
            self._self_last: Any = None
            self._self_reasons: tuple = ()

        def __iter__(self) -> Stream:
            return self

        def __next__(self) -> Any:
            try:
                chunk = self.__wrapped__.__next__()
            except StopIteration:
                span, request_attributes, started = self._self_call
                last = self._self_last
                finish(span, started, last.id, last.model, self._self_reasons, last.usage, request_attributes,
                       self._self_first)
                raise
            if self._self_first is None:
                self._self_first = time.perf_counter()
            if chunk.choices and chunk.choices[0].finish_reason:
                self._self_reasons = (chunk.choices[0].finish_reason,)
            if chunk.usage is not None:
                self._self_last = chunk
                if not chunk.choices:
                    return self.__next__()  # otel-tokens hides the usage chunk it asked for
            return chunk

    def sync_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        span, request_attributes, started = start(kwargs)
        if kwargs.get("stream"):
            if not kwargs.get("stream_options"):
                kwargs = {**kwargs, "stream_options": {"include_usage": True}}
            return Stream(wrapped(*args, **kwargs), span, request_attributes, started)
        response = wrapped(*args, **kwargs)
        reasons = tuple(choice.finish_reason for choice in response.choices)
        finish(span, started, response.id, response.model, reasons, response.usage, request_attributes)
        return response

    async def async_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        span, request_attributes, started = start(kwargs)
        response = await wrapped(*args, **kwargs)
        reasons = tuple(choice.finish_reason for choice in response.choices)
        finish(span, started, response.id, response.model, reasons, response.usage, request_attributes)
        return response

    module = "openai.resources.chat.completions.completions"
    wrapt.wrap_function_wrapper(module, "Completions.create", sync_wrapper)
    wrapt.wrap_function_wrapper(module, "AsyncCompletions.create", async_wrapper)
