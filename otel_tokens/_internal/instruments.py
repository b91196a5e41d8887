"""The metric instruments, built once from a meter.

Only the semconv histograms are recorded on the call path. The cumulative counters (tokens by type,
cost, unpriced calls) are observable: the recorder adds each call to ``CallTotals`` with one dict update,
and the SDK reads the totals when it collects. A synchronous ``Counter.add`` costs several microseconds
per point in the SDK; five of them per call would be most of our overhead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from otel_tokens import semconv
from otel_tokens._internal.records import Usage

_logger = logging.getLogger("otel_tokens")

# Series kept per counter before new attribute sets fold into one overflow series (as the SDK does).
MAX_SERIES = 2000
_OVERFLOW_KEY = (("otel.metric.overflow", True),)

# index of each total in a series' list
_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING, _COST, _UNPRICED = range(7)
_TOKEN_TYPES = (
    (semconv.TOKEN_TYPE_INPUT, _INPUT),
    (semconv.TOKEN_TYPE_OUTPUT, _OUTPUT),
    (semconv.TOKEN_TYPE_CACHE_READ, _CACHE_READ),
    (semconv.TOKEN_TYPE_CACHE_WRITE, _CACHE_WRITE),
    (semconv.TOKEN_TYPE_REASONING, _REASONING),
)


class CallTotals:
    """Cumulative per-attribute-set totals behind the observable counters. Never reset."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self._series: dict[tuple, list[float]] = {}
        self._priced: set[tuple] = set()
        self._lock = threading.Lock()
        self._max_series = max_series
        self._overflowed = False

    def add(self, attributes: dict[str, Any], usage: Usage, cost: float | None) -> None:
        key = tuple(attributes.items())
        with self._lock:
            totals = self._series.get(key)
            if totals is None:
                if len(self._series) >= self._max_series:
                    key = _OVERFLOW_KEY
                    self._note_overflow()
                totals = self._series.setdefault(key, [0, 0, 0, 0, 0, 0.0, 0])
            totals[_INPUT] += usage.input_tokens
            totals[_OUTPUT] += usage.output_tokens
            totals[_CACHE_READ] += usage.cache_read_tokens
            totals[_CACHE_WRITE] += usage.cache_write_tokens
            totals[_REASONING] += usage.reasoning_tokens
            if cost is None:
                totals[_UNPRICED] += 1
            else:
                totals[_COST] += cost
                self._priced.add(key)

    def add_cost(self, attributes: dict[str, Any], cost: float) -> None:
        """A provider-reported cost with no token usage."""
        self.add(attributes, Usage(), cost)

    def _note_overflow(self) -> None:
        if not self._overflowed:
            self._overflowed = True
            _logger.warning(
                "otel_tokens: more than %d metric attribute sets; further ones are counted under "
                "otel.metric.overflow=true", self._max_series,
            )

    def _snapshot(self) -> list[tuple[tuple, list[float], bool]]:
        with self._lock:
            return [(key, list(totals), key in self._priced) for key, totals in self._series.items()]

    def observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        for key, totals, _ in self._snapshot():
            for token_type, index in _TOKEN_TYPES:
                # Subset types appear once they are non-zero; input and output always do.
                if totals[index] or index in (_INPUT, _OUTPUT):
                    yield Observation(totals[index], {**dict(key), semconv.GEN_AI_TOKEN_TYPE: token_type})

    def observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        for key, totals, priced in self._snapshot():
            if priced:
                yield Observation(totals[_COST], dict(key))

    def observe_unpriced(self, options: CallbackOptions) -> Iterable[Observation]:
        for key, totals, _ in self._snapshot():
            if totals[_UNPRICED]:
                yield Observation(totals[_UNPRICED], dict(key))


@dataclass(frozen=True, slots=True)
class Instruments:
    token_usage: Histogram
    duration: Histogram
    time_to_first_chunk: Histogram
    totals: CallTotals

    @classmethod
    def create(cls, meter: Meter) -> Instruments:
        totals = CallTotals()
        meter.create_observable_counter(
            semconv.METRIC_OPERATION_COST,
            callbacks=[totals.observe_cost],
            unit=semconv.UNIT_USD,
            description="Cost of GenAI operations in US dollars.",
        )
        meter.create_observable_counter(
            semconv.METRIC_TOKEN_COUNT,
            callbacks=[totals.observe_tokens],
            unit=semconv.UNIT_TOKEN,
            description=(
                "Tokens by type: input, output, and the subsets cache_read, cache_write (of input) "
                "and reasoning (of output)."
            ),
        )
        meter.create_observable_counter(
            semconv.METRIC_UNPRICED_CALLS,
            callbacks=[totals.observe_unpriced],
            unit=semconv.UNIT_CALL,
            description="Calls to models with no known price; their cost is not counted.",
        )
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
            totals=totals,
        )
