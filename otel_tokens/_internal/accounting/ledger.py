"""The ledger: running totals of calls, tokens and cost per agent, model, provider, operation, workflow,
task and user, for the report and ``otel_tokens.statistics()``.

It is fed by the recorder: every finished call reaches :meth:`Ledger.record` as a :class:`CallRecord`,
whatever the sampler decided and whatever survived the span's attribute limits, so totals are exact.
Operations without usage (agent and workflow scopes) never count.

Memory is bounded: each dimension keeps at most ``max_keys`` distinct keys; calls for further keys are
counted under ``"(other)"`` (with one WARNING per dimension). Calls without a label count under
``"(none)"``. Neither of those two buckets counts towards ``max_keys``.

For the report's "most expensive" sections and the efficiency breakdowns the statistics also carry
``by_agent_model`` (``{agent: {model: entry}}``), ``by_workflow_agent`` and ``by_task_agent``, one
entry per pair of keys above, rolled up from the same rows (so they cost the hot path nothing), and ``top_calls``: the ``TOP_CALLS_KEPT`` most expensive
priced calls, kept in a min-heap that a call only touches when it costs more than the cheapest one kept
(O(log n)); of equally expensive calls, the earliest are kept.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import operator
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

from otel_tokens import semconv
from otel_tokens._internal.base.records import CallRecord
from otel_tokens._internal.base.safety import log_internal_error, raise_internal_errors

_logger = logging.getLogger("otel_tokens")

NONE_KEY: Final = "(none)"
OTHER_KEY: Final = "(other)"

# Dimensions, in the order a call's keys are given to _add.
DIMENSIONS: Final = semconv.STATISTICS_DIMENSIONS  # ..., "user", "tier" (the service tier that served)

# Positions in a row of sums (a list, so one row is updated in place with a C-level map).
_CALLS, _INPUT, _OUTPUT, _CACHE_READ, _CACHE_WRITE, _REASONING = 0, 1, 2, 3, 4, 5
_COST, _UNPRICED, _ERRORS, _ESTIMATED, _DURATION = 6, 7, 8, 9, 10
_USAGE_INVALID, _USAGE_UNKNOWN = 11, 12
# For the efficiency figures: tool calls asked for, the cost split, and the tokens of priced calls.
_TOOL_CALLS, _INPUT_COST, _OUTPUT_COST, _PRICED_TOKENS = 13, 14, 15, 16
# Billing beyond tokens: per-call server-tool fees (USD, in the cost), server-tool calls billed per call,
# and calls whose cost is incomplete (a revealed dimension no price covers).
_TOOL_FEES, _SERVER_TOOL_CALLS, _COST_INCOMPLETE = 17, 18, 19
_ROW_LENGTH: Final = 20
# Usage details that count server-tool calls billed per call.
_SERVER_TOOL_KEYS: Final = frozenset({"web_searches", "storage_searches"})
# Nested tables {outer: {inner: entry}}: (statistics key, outer and inner positions in DIMENSIONS).
PAIRS: Final = (("by_agent_model", 0, 1), ("by_workflow_agent", 4, 0), ("by_task_agent", 5, 0))

# Label combinations kept as rows; bounds memory. A call with a new combination beyond this folds the
# oldest row into the tables (nine row additions), so no call ever pays for more than one.
_MAX_COMBINATIONS: Final = 1024
# The most expensive calls kept for the report (which shows 5 by default).
TOP_CALLS_KEPT: Final = 20


def _empty_row() -> list[Any]:
    row: list[Any] = [0] * _ROW_LENGTH
    row[_COST] = 0.0
    row[_DURATION] = 0.0
    row[_INPUT_COST] = 0.0
    row[_OUTPUT_COST] = 0.0
    row[_TOOL_FEES] = 0.0
    return row


def _key(value: Any) -> str:
    if value is None or value == "":
        return NONE_KEY
    return value if isinstance(value, str) else str(value)


class Ledger:
    """Exact running totals of LLM calls, fed by the recorder."""

    def __init__(self, max_keys: int = 1000) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys <= 0:
            raise ValueError(f"max_keys must be a positive integer, got {max_keys!r}")
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        # A call adds to one row: that of its label combination (raw keys -> (row, folded names)). Rows are
        # rolled up into the totals and per-dimension tables when statistics are read; beyond
        # _MAX_COMBINATIONS the oldest row is folded in to make room, one per new combination.
        self._combinations: OrderedDict[tuple[Any, ...], tuple[list[Any], tuple[str, ...]]] = OrderedDict()
        self._totals = _empty_row()
        self._tables: tuple[dict[str, list[Any]], ...] = tuple({} for _ in DIMENSIONS)
        self._pairs: tuple[dict[str, dict[str, list[Any]]], ...] = tuple({} for _ in PAIRS)
        # Min-heap of (cost, total tokens, -sequence, call), the cheapest kept call at [0]; the sequence
        # makes items unique, so the call tuples are never compared.
        self._top_calls: list[tuple[float, int, int, tuple[Any, ...]]] = []
        self._sequence = itertools.count()
        # Real keys kept per dimension ("(none)" and "(other)" are not counted).
        self._seen: tuple[set[str], ...] = tuple(set() for _ in DIMENSIONS)
        self._overflowed = [False] * len(DIMENSIONS)
        self._first_call_time: float | None = None
        self._last_call_time: float | None = None

    # -- the recorder's path ------------------------------------------------------------------------
    def record(self, record: CallRecord) -> None:
        """Count a finished call; thread-safe, O(1), never raises."""
        try:
            self._count_record(record)
        except Exception:
            log_internal_error("counting a call in the ledger")
            if raise_internal_errors():
                raise

    def _count_record(self, record: CallRecord) -> None:
        request = record.request
        if request.operation not in semconv.USAGE_OPERATIONS:
            return
        usage = record.usage
        cost = record.cost_usd
        result = record.result
        # Flags are added as bools (0 + True == 1): no conditional per field on the hot path.
        if usage is None:
            delta = (
                1, 0, 0, 0, 0, 0, cost or 0.0, False, record.error_type is not None, False, record.duration_s,
                record.usage_invalid, record.usage_unknown, result.tool_calls if result is not None else 0,
                record.input_cost_usd or 0.0, record.output_cost_usd or 0.0, 0, 0.0, 0, False,
            )
            tier = None
        else:
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
            delta = (
                1, input_tokens, output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                usage.reasoning_tokens, cost or 0.0, cost is None, record.error_type is not None, usage.estimated,
                record.duration_s, record.usage_invalid, False, result.tool_calls if result is not None else 0,
                record.input_cost_usd or 0.0, record.output_cost_usd or 0.0,
                input_tokens + output_tokens if cost is not None else 0,
                record.tool_fee_usd,
                sum(value for key, value in usage.details if key in _SERVER_TOOL_KEYS) if usage.details else 0,
                bool(record.unpriced_dimensions),
            )
            tier = usage.service_tier
        labels = record.labels
        keys = (labels.agent, record.model, request.provider, request.operation, labels.workflow, labels.task,
                labels.user, tier)
        end = record.end_time_unix or None
        self._add(keys, delta, None if end is None else end - record.duration_s, end, cost, record.error_type)

    def _add(
        self,
        keys: tuple[Any, ...],
        delta: tuple[Any, ...],
        start: float | None,
        end: float | None,
        cost: float | None,
        error: Any,
    ) -> None:
        overflowed: list[int] = []
        with self._lock:
            combination = self._combinations.get(keys)
            if combination is None:
                self._new_combination(keys, delta, overflowed)
            else:
                row = combination[0]
                row[:] = map(operator.add, row, delta)
            if start is not None and (self._first_call_time is None or start < self._first_call_time):
                self._first_call_time = start
            if end is not None and (self._last_call_time is None or end > self._last_call_time):
                self._last_call_time = end
            if cost is not None:
                top = self._top_calls
                # One float comparison for the usual call: no dearer than the cheapest kept, it stays out
                # (so of equally expensive calls the earliest are kept).
                if len(top) < TOP_CALLS_KEPT:
                    heapq.heappush(top, (cost, delta[_INPUT] + delta[_OUTPUT], -next(self._sequence),
                                         (keys, delta, end, error)))
                elif cost > top[0][0]:
                    heapq.heapreplace(top, (cost, delta[_INPUT] + delta[_OUTPUT], -next(self._sequence),
                                            (keys, delta, end, error)))
        for index in overflowed:
            _logger.warning(
                "more than %d distinct %s values; further ones are counted under %r "
                "(raise OTEL_TOKENS_MAX_KEYS to keep more)",
                self._max_keys, DIMENSIONS[index], OTHER_KEY,
            )

    def _new_combination(self, keys: tuple[Any, ...], delta: tuple[Any, ...], overflowed: list[int]) -> None:
        """A row for a label combination that has none; called under the lock."""
        # Summed first, so a malformed delta raises before anything is stored.
        row = list(map(operator.add, _empty_row(), delta))
        if len(self._combinations) >= _MAX_COMBINATIONS:
            oldest = self._combinations.popitem(last=False)[1]
            _roll_up((oldest,), self._totals, self._tables, self._pairs)
        names = []
        for index, key in enumerate(keys):
            name = _key(key)
            if name != NONE_KEY:
                seen = self._seen[index]
                if name not in seen:
                    if len(seen) >= self._max_keys:
                        name = OTHER_KEY
                        if not self._overflowed[index]:
                            self._overflowed[index] = True
                            overflowed.append(index)
                    else:
                        seen.add(name)
            names.append(name)
        self._combinations[keys] = (row, tuple(names))

    # -- reading -----------------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """A snapshot: grand totals, one table per dimension, and ``"budgets": {}`` for the caller."""
        with self._lock:
            totals = list(self._totals)
            tables = tuple({name: list(row) for name, row in table.items()} for table in self._tables)
            pairs = tuple(
                {outer: {inner: list(row) for inner, row in inners.items()} for outer, inners in table.items()}
                for table in self._pairs
            )
            combinations = [(list(row), names) for row, names in self._combinations.values()]
            top_calls = sorted(self._top_calls, reverse=True)
            first, last = self._first_call_time, self._last_call_time
        _roll_up(combinations, totals, tables, pairs)
        statistics: dict[str, Any] = {
            "total_calls": totals[_CALLS],
            "total_tokens": totals[_INPUT] + totals[_OUTPUT],
            "input_tokens": totals[_INPUT],
            "output_tokens": totals[_OUTPUT],
            "cache_read_tokens": totals[_CACHE_READ],
            "cache_write_tokens": totals[_CACHE_WRITE],
            "reasoning_tokens": totals[_REASONING],
            "total_cost_usd": totals[_COST],
            "unpriced_calls": totals[_UNPRICED],
            "errors": totals[_ERRORS],
            "estimated_calls": totals[_ESTIMATED],
            "usage_invalid_calls": totals[_USAGE_INVALID],
            "usage_unknown_calls": totals[_USAGE_UNKNOWN],
            "duration_s": totals[_DURATION],
            "first_call_time": first,
            "last_call_time": last,
            "tool_calls": totals[_TOOL_CALLS],
            "input_cost_usd": totals[_INPUT_COST],
            "output_cost_usd": totals[_OUTPUT_COST],
            "priced_tokens": totals[_PRICED_TOKENS],
            "tool_fee_usd": totals[_TOOL_FEES],
            "server_tool_calls": totals[_SERVER_TOOL_CALLS],
            "cost_incomplete_calls": totals[_COST_INCOMPLETE],
        }
        for dimension, table in zip(DIMENSIONS, tables, strict=True):
            statistics[f"by_{dimension}"] = {name: _entry(row) for name, row in table.items()}
        for (key, _outer, _inner), table in zip(PAIRS, pairs, strict=True):
            statistics[key] = {
                outer: {inner: _entry(row) for inner, row in inners.items()} for outer, inners in table.items()
            }
        statistics["top_calls"] = [_top_call(cost, call) for cost, _tokens, _order, call in top_calls]
        statistics["budgets"] = {}
        return statistics

    @property
    def has_calls(self) -> bool:
        """True once a call was recorded (since the last reset)."""
        return self._first_call_time is not None

    def reset(self) -> None:
        """Forget every total (and the overflow warnings)."""
        with self._lock:
            self._reset_locked()


def _roll_up(
    combinations: Iterable[tuple[list[Any], tuple[str, ...]]],
    totals: list[Any],
    tables: tuple[dict[str, list[Any]], ...],
    pairs: tuple[dict[str, dict[str, list[Any]]], ...],
) -> None:
    add = operator.add
    for row, names in combinations:
        totals[:] = map(add, totals, row)
        for table, name in zip(tables, names, strict=True):
            entry = table.get(name)
            if entry is None:
                table[name] = list(row)
            else:
                entry[:] = map(add, entry, row)
        for (_key_name, outer, inner), table in zip(PAIRS, pairs, strict=True):
            inners = table.setdefault(names[outer], {})
            entry = inners.get(names[inner])
            if entry is None:
                inners[names[inner]] = list(row)
            else:
                entry[:] = map(add, entry, row)


def _top_call(cost: float, call: tuple[Any, ...]) -> dict[str, Any]:
    """A kept call in the shape of ``stats_from_usage_lines``' ``top_calls`` (real names, never folded)."""
    keys, delta, end, error = call
    return {
        "time": _format_time(end) if end is not None else None,
        "agent": _key(keys[0]),
        "model": _key(keys[1]),
        "provider": _key(keys[2]),
        "operation": keys[3],
        "input_tokens": delta[_INPUT],
        "output_tokens": delta[_OUTPUT],
        "total_tokens": delta[_INPUT] + delta[_OUTPUT],
        "cost_usd": cost,
        "duration_s": round(delta[_DURATION], 6),
        "error": error,
    }


def _entry(row: list[Any]) -> dict[str, Any]:
    return {
        "calls": row[_CALLS],
        "input_tokens": row[_INPUT],
        "output_tokens": row[_OUTPUT],
        "cache_read_tokens": row[_CACHE_READ],
        "cache_write_tokens": row[_CACHE_WRITE],
        "reasoning_tokens": row[_REASONING],
        "total_tokens": row[_INPUT] + row[_OUTPUT],
        "cost_usd": row[_COST],
        "unpriced_calls": row[_UNPRICED],
        "errors": row[_ERRORS],
        "duration_s": row[_DURATION],
        "tool_calls": row[_TOOL_CALLS],
        "input_cost_usd": row[_INPUT_COST],
        "output_cost_usd": row[_OUTPUT_COST],
        "priced_tokens": row[_PRICED_TOKENS],
        "tool_fee_usd": row[_TOOL_FEES],
        "server_tool_calls": row[_SERVER_TOOL_CALLS],
        "cost_incomplete_calls": row[_COST_INCOMPLETE],
    }


__all__ = ["DIMENSIONS", "NONE_KEY", "OTHER_KEY", "TOP_CALLS_KEPT", "Ledger"]


def _format_time(unix: float) -> str:
    from otel_tokens._internal.accounting.usage_log import (
        format_time,  # the log's module loads only when read
    )

    return format_time(unix)
