"""The metric instruments, built once from a meter."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter

from otel_tokens import semconv


@dataclass(frozen=True, slots=True)
class Instruments:
    token_usage: Histogram
    duration: Histogram
    time_to_first_chunk: Histogram
    cost: Counter
    token_count: Counter
    unpriced_calls: Counter

    @classmethod
    def create(cls, meter: Meter) -> Instruments:
        return cls(
            token_usage=meter.create_histogram(
                semconv.METRIC_TOKEN_USAGE,
                unit=semconv.UNIT_TOKEN,
                description="Number of input and output tokens used per operation.",
                explicit_bucket_boundaries_advisory=list(semconv.TOKEN_USAGE_BUCKETS),
            ),
            duration=meter.create_histogram(
                semconv.METRIC_OPERATION_DURATION,
                unit=semconv.UNIT_SECONDS,
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS),
            ),
            time_to_first_chunk=meter.create_histogram(
                semconv.METRIC_TIME_TO_FIRST_CHUNK,
                unit=semconv.UNIT_SECONDS,
                description="Time to receive the first chunk of a streamed response.",
                explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS),
            ),
            cost=meter.create_counter(
                semconv.METRIC_OPERATION_COST,
                unit=semconv.UNIT_USD,
                description="Cost of GenAI operations in US dollars.",
            ),
            token_count=meter.create_counter(
                semconv.METRIC_TOKEN_COUNT,
                unit=semconv.UNIT_TOKEN,
                description=(
                    "Tokens by type: input, output, and the subsets cache_read, cache_write (of input) "
                    "and reasoning (of output)."
                ),
            ),
            unpriced_calls=meter.create_counter(
                semconv.METRIC_UNPRICED_CALLS,
                unit=semconv.UNIT_CALL,
                description="Calls to models with no known price; their cost is not counted.",
            ),
        )
