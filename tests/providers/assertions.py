"""Assertions the provider tests share."""

from __future__ import annotations

import genai_prices
import pytest

from otel_tokens import semconv as A
from otel_tokens._internal.base.records import Usage


def only_llm_span(telemetry):
    spans = telemetry.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def assert_usage(span, input, output, cache_read=0, cache_write=0, reasoning=0):
    """Exact provider counts on the span, not estimates."""
    attrs = span.attributes
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == input
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == output
    assert attrs.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0) == cache_read
    assert attrs.get(A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, 0) == cache_write
    assert attrs.get(A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, 0) == reasoning
    assert A.OTEL_TOKENS_USAGE_ESTIMATED not in attrs


def reference_cost(model: str, usage: Usage, provider_id: str) -> float:
    """genai-prices' own (slow) answer, to hold our fast path to. Its ``input_tokens`` includes cache
    reads and writes, as ours does."""
    calculation = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            **dict(usage.details),
        ),
        model,
        provider_id=provider_id,
        price_context=dict(usage.price_context) or None,
    )
    return float(calculation.total_price)


def all_attribute_text(telemetry) -> str:
    """Every span and event attribute as text, to search for content or secrets that must not be there."""
    parts = []
    for span in telemetry.spans():
        parts += [f"{k}={v}" for k, v in span.attributes.items()]
        for event in span.events:
            parts += [f"{k}={v}" for k, v in event.attributes.items()]
    return "\n".join(parts)


def assert_local_cost(span, runtime, provider: str, provider_id: str, model: str, usage: Usage) -> float:
    """The span's cost is the price book's, which is genai-prices' own answer, and not zero."""
    expected = runtime.price_book.cost(provider, model, usage)
    assert expected is not None and expected > 0
    assert expected == pytest.approx(reference_cost(model, usage, provider_id), abs=1e-9)
    attrs = span.attributes
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-9)
    assert attrs[A.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert attrs[A.GEN_AI_USAGE_COST_SOURCE] == "local"
    return expected


def assert_token_metrics(telemetry, usage: Usage) -> None:
    """Both token metrics carry exactly these counts, by token type."""
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="input") == usage.input_tokens
    assert telemetry.sum_of(A.METRIC_TOKEN_USAGE, gen_ai__token__type="output") == usage.output_tokens
    for token_type, value in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("reasoning", usage.reasoning_tokens),
    ):
        assert telemetry.sum_of(A.METRIC_TOKEN_COUNT, gen_ai__token__type=token_type) == value, token_type


def assert_instrument_twice_and_unpatch(telemetry, owner, name: str, call) -> None:
    """instrument() twice records a call once; uninstrument() puts the SDK's own attribute back."""
    import otel_tokens

    original = getattr(owner, name)
    for _ in range(2):
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert getattr(owner, name) is not original
    call()
    assert len(telemetry.llm_spans()) == 1
    otel_tokens.uninstrument()
    assert getattr(owner, name) is original
    call()
    assert len(telemetry.llm_spans()) == 1
