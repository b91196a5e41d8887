"""The metric instruments, built once from a meter.

Only the semconv histograms (tokens, duration, cost) are recorded on the call path. The cumulative counters
(tokens by type, USD spend, unpriced calls) are observable: the recorder adds each call to ``CallTotals`` with one dict update,
and the SDK reads the totals when it collects. A synchronous ``Counter.add`` costs several microseconds
per point in the SDK; five of them per call would be most of our overhead. The GenAI conventions' newer
set (``LatestInstruments``, opted into) reads the same totals for its ``gen_ai.client.inference.usage.*``
counters, so it adds no counter on the call path either.
"""

from __future__ import annotations

import logging
import operator
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from otel_tokens import semconv
from otel_tokens._internal.base.records import CallRecord

_logger = logging.getLogger("otel_tokens")

# Series kept per counter before new attribute sets fold into one overflow series (as the SDK does).
MAX_SERIES = 2000
_OVERFLOW_KEY = (("otel.metric.overflow", True),)

# index of each total in a series' list
_INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING, _COST, _UNPRICED, _INVALID, _UNKNOWN, _INCOMPLETE = range(10)
_TOKEN_TYPES = (
    (semconv.TOKEN_TYPE_INPUT, _INPUT),
    (semconv.TOKEN_TYPE_OUTPUT, _OUTPUT),
    (semconv.TOKEN_TYPE_CACHE_READ, _CACHE_READ),
    (semconv.TOKEN_TYPE_CACHE_WRITE, _CACHE_WRITE),
    (semconv.TOKEN_TYPE_REASONING, _REASONING),
)
_MODALITIES = (
    ("text", semconv.TOKEN_MODALITY_TEXT),
    ("audio", semconv.TOKEN_MODALITY_AUDIO),
    ("image", semconv.TOKEN_MODALITY_IMAGE),
    ("video", semconv.TOKEN_MODALITY_VIDEO),
)
# The usage details (genai-prices usage keys) that break each total down by modality.
_MODALITY_KEYS: tuple[tuple[int, tuple[tuple[str, str], ...]], ...] = tuple(
    (index, tuple((pattern.format(name), modality) for name, modality in _MODALITIES))
    for index, pattern in (
        (_INPUT, "input_{}_tokens"),
        (_OUTPUT, "output_{}_tokens"),
        (_CACHE_READ, "cache_{}_read_tokens"),
        (_CACHE_WRITE, "cache_{}_write_tokens"),
        (_REASONING, "output_{}_reasoning_tokens"),
    )
)


def modality_split(usage: Any) -> tuple[tuple[int, str, int], ...]:
    """(total index, modality, tokens) for the parts of each total the usage's details attribute to a
    modality; a total whose parts exceed it is left unsplit (the rest of each total is ``unknown``)."""
    details = dict(usage.details)
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
              usage.reasoning_tokens)
    split: list[tuple[int, str, int]] = []
    for index, keys in _MODALITY_KEYS:
        parts = [(index, modality, details[key]) for key, modality in keys if details.get(key)]
        if parts and sum(part[2] for part in parts) <= counts[index]:
            split += parts
    return tuple(split)


class CallTotals:
    """Cumulative per-attribute-set totals behind the observable counters. Never reset."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self._series: dict[tuple, list[float]] = {}
        self._priced: set[tuple] = set()
        # Per series, the tokens the usage details attributed to a modality: (total index, modality) -> n;
        # kept only once a counter by modality reads them (LatestInstruments).
        self._modal: dict[tuple, dict[tuple[int, str], int]] = {}
        self.by_modality = False
        self._lock = threading.Lock()
        self._max_series = max_series
        self._overflowed = False

    def add(self, attributes: dict[str, Any], record: CallRecord, key: tuple | None = None) -> None:
        """Add a call to its attribute set's totals; ``key`` is ``tuple(attributes.items())`` if the
        caller has it already."""
        usage = record.usage
        cost = record.cost_usd
        invalid, unknown = record.usage_invalid, record.usage_unknown
        # One tuple added with a C-level map (bools add as 0/1): no item update per total.
        if usage is None:
            if cost is None and not invalid and not unknown:
                return  # a failed call: nothing to add
            delta: tuple = (0, 0, 0, 0, 0, cost or 0.0, False, invalid, unknown, False)
        else:
            delta = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                     usage.reasoning_tokens, cost or 0.0, cost is None, invalid, unknown,
                     bool(record.unpriced_dimensions))
        split = modality_split(usage) if self.by_modality and usage is not None and usage.details else ()
        if key is None:
            key = tuple(attributes.items())
        with self._lock:
            totals = self._series.get(key)
            if totals is None:
                if len(self._series) >= self._max_series:
                    key = _OVERFLOW_KEY
                    self._note_overflow()
                totals = self._series.setdefault(key, [0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0])
            totals[:] = map(operator.add, totals, delta)
            if cost is not None:
                self._priced.add(key)
            if split:
                modal = self._modal.setdefault(key, {})
                for index, modality, tokens in split:
                    modal[index, modality] = modal.get((index, modality), 0) + tokens

    def _note_overflow(self) -> None:
        if not self._overflowed:
            self._overflowed = True
            _logger.warning(
                "more than %d metric attribute sets; further ones are counted under "
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

    def usage_by_modality(self, index: int) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """The callback of a ``gen_ai.client.inference.usage.*`` counter: one total (``_INPUT``...) by
        ``gen_ai.token.modality``, inference calls only (embeddings have their own metrics)."""

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                series = [(key, totals[index], dict(self._modal.get(key, ()))) for key, totals in self._series.items()]
            for key, total, modal in series:
                attributes = dict(key)
                if attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_EMBEDDINGS:
                    continue
                if not total and index not in (_INPUT, _OUTPUT):
                    continue  # subset counters appear once they are non-zero
                known = 0
                for (which, modality), tokens in modal.items():
                    if which == index:
                        known += tokens
                        yield Observation(tokens, {**attributes, semconv.GEN_AI_TOKEN_MODALITY: modality})
                if total - known or not known:
                    yield Observation(
                        total - known, {**attributes, semconv.GEN_AI_TOKEN_MODALITY: semconv.TOKEN_MODALITY_UNKNOWN})

        return observe

    def observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        for key, totals, priced in self._snapshot():
            if priced:
                yield Observation(totals[_COST], dict(key))

    def observe_unpriced(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(_UNPRICED)

    def observe_invalid(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(_INVALID)

    def observe_unknown(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(_UNKNOWN)

    def observe_incomplete(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(_INCOMPLETE)

    def _observe(self, index: int) -> list[Observation]:
        return [Observation(totals[index], dict(key)) for key, totals, _ in self._snapshot() if totals[index]]


class Relay:
    """An observable instrument's callback that reads whatever source is current. Instruments are
    registered once per meter (the SDK ignores a second registration's callbacks), while the runtime
    behind them may be rebuilt by uninstrument() and instrument()."""

    __slots__ = ("source",)

    def __init__(self) -> None:
        self.source: Callable[[CallbackOptions], Iterable[Observation]] | None = None

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        source = self.source
        return source(options) if source is not None else ()


_lock = threading.Lock()
_by_meter: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_relays: weakref.WeakKeyDictionary[Any, dict[str, Relay]] = weakref.WeakKeyDictionary()


def instruments_for(meter: Meter) -> Instruments:
    """The meter's instruments, created on first use; the same object for every later runtime, so
    cumulative counters continue across uninstrument()/instrument()."""
    with _lock:
        instruments = _by_meter.get(meter)
        if instruments is None:
            instruments = _by_meter[meter] = Instruments.create(meter)
        return instruments


def observable_gauge(meter: Meter, name: str, unit: str, description: str) -> Relay:
    """An observable gauge registered once per meter; point its relay's ``source`` at the data."""
    with _lock:
        relays = _relays.setdefault(meter, {})
        relay = relays.get(name)
        if relay is None:
            relay = relays[name] = Relay()
            meter.create_observable_gauge(name, callbacks=[relay], unit=unit, description=description)
        return relay


@dataclass(frozen=True, slots=True)
class Instruments:
    token_usage: Histogram
    duration: Histogram
    time_to_first_chunk: Histogram
    operation_cost: Histogram
    totals: CallTotals

    @classmethod
    def create(cls, meter: Meter) -> Instruments:
        totals = CallTotals()
        meter.create_observable_counter(
            semconv.METRIC_COST_USD,
            callbacks=[totals.observe_cost],
            unit=semconv.UNIT_USD,
            description="Cumulative cost of GenAI operations in US dollars.",
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
        for name, callback, description in (
            (semconv.METRIC_UNPRICED_CALLS, totals.observe_unpriced,
             "Calls to models with no known price; their cost is not counted."),
            (semconv.METRIC_USAGE_INVALID_CALLS, totals.observe_invalid,
             "Calls whose provider sent usage that is not finite, non-negative counts."),
            (semconv.METRIC_USAGE_UNKNOWN_CALLS, totals.observe_unknown,
             "Calls that succeeded with no token counts, exact or estimated."),
            (semconv.METRIC_COST_INCOMPLETE_CALLS, totals.observe_incomplete,
             "Calls whose response revealed a billing dimension no price covers; their cost is a lower bound."),
        ):
            meter.create_observable_counter(name, callbacks=[callback], unit=semconv.UNIT_CALL, description=description)
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
            operation_cost=meter.create_histogram(
                semconv.METRIC_OPERATION_COST,
                unit=semconv.UNIT_COST,
                description="Cost of a GenAI operation, in the currency gen_ai.usage.cost.currency names.",
                explicit_bucket_boundaries_advisory=list(semconv.COST_BUCKETS),
            ),
            time_to_first_chunk=meter.create_histogram(
                semconv.METRIC_TIME_TO_FIRST_CHUNK,
                unit=semconv.UNIT_SECONDS,
                description="Time to receive the first chunk of a streamed response.",
                explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS),
            ),
            totals=totals,
        )


_latest_lock = threading.Lock()
_latest_by_meter: weakref.WeakKeyDictionary[Any, LatestInstruments] = weakref.WeakKeyDictionary()


def latest_instruments_for(meter: Meter) -> LatestInstruments:
    """The GenAI conventions' newer instruments on this meter, created on first use (opted into)."""
    instruments = instruments_for(meter)
    with _latest_lock:
        latest = _latest_by_meter.get(meter)
        if latest is None:
            latest = _latest_by_meter[meter] = LatestInstruments.create(meter, instruments.totals)
        return latest


@dataclass(frozen=True, slots=True)
class LatestInstruments:
    """``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``: written instead of the core histograms
    (token usage, duration, time to first chunk); the cost histogram and our counters stay. Every call we
    record is embeddings or inference (any other operation name is a call with tokens: inference)."""

    inference_duration: Histogram
    embeddings_duration: Histogram
    time_to_first_chunk: Histogram
    input_tokens: Histogram
    output_tokens: Histogram
    embeddings_input_tokens: Histogram

    @classmethod
    def create(cls, meter: Meter, totals: CallTotals) -> LatestInstruments:
        totals.by_modality = True
        for name, index, description in (
            (semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS, _INPUT,
             "The number of input (prompt) tokens used, including cached tokens."),
            (semconv.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS, _OUTPUT,
             "The number of output (completion) tokens used, including reasoning tokens."),
            (semconv.METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS, _CACHE_READ,
             "The number of input tokens served from a provider-managed cache."),
            (semconv.METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS, _CACHE_WRITE,
             "The number of input tokens written to a provider-managed cache."),
            (semconv.METRIC_INFERENCE_USAGE_REASONING_TOKENS, _REASONING,
             "The number of output tokens used for reasoning."),
        ):
            meter.create_observable_counter(
                name, callbacks=[totals.usage_by_modality(index)], unit=semconv.UNIT_TOKEN, description=description)

        seconds, tokens = semconv.UNIT_SECONDS, semconv.UNIT_TOKEN
        durations, token_buckets = semconv.DURATION_BUCKETS, semconv.TOKEN_USAGE_BUCKETS
        histograms = {
            field: meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets))
            for field, name, unit, buckets, description in (
                ("inference_duration", semconv.METRIC_INFERENCE_DURATION, seconds, durations,
                 "GenAI inference operation duration."),
                ("embeddings_duration", semconv.METRIC_EMBEDDINGS_DURATION, seconds, durations,
                 "GenAI client embeddings operation duration."),
                ("time_to_first_chunk", semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK, seconds, durations,
                 "Time to receive the first chunk of a streamed response."),
                ("input_tokens", semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS, tokens, token_buckets,
                 "The number of input (prompt) tokens used per inference operation."),
                ("output_tokens", semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, tokens, token_buckets,
                 "The number of output (completion) tokens used per inference operation."),
                ("embeddings_input_tokens", semconv.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS, tokens, token_buckets,
                 "The number of input tokens used per embeddings operation."),
            )
        }
        return cls(**histograms)
