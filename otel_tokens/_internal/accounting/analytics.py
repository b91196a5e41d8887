"""Answers from the statistics: efficiency figures, spend over time, and rule-based recommendations.

Everything here reads the statistics dict (``get_statistics()``, or ``stats_from_usage_lines`` for a
usage log) and adds to it; nothing here is on a call's hot path except :meth:`Activity.add`, which
counts what the ledger does not keep (spend per time bucket and error types per agent) in bounded tables.

Efficiency figures, in the totals and in every group entry (``None`` when their denominator is 0):

* ``avg_cost_per_call_usd``: cost over the calls with a known cost (calls minus unpriced calls);
* ``cost_per_1k_tokens_usd``: cost over the tokens of those calls, times 1,000;
* ``avg_tokens_per_call``, ``avg_duration_s``, ``error_rate``: over all calls;
* ``output_tokens_per_second``: output tokens over the time spent in calls;
* ``input_cost_usd`` / ``output_cost_usd`` / ``tool_calls``: sums the ledger keeps (the cost split by
  billed bucket: uncached input, cache read and cache write, plus any per-request fee, are input).

At the top level also ``period_s`` (first call's start to last call's end), ``cost_per_minute_usd`` and
``projected_monthly_usd``: the cost per minute times the minutes of a 30-day month, a projection at the
pace of the period so far, not a forecast; None until the period lasts ``MIN_PROJECTION_S`` (10 minutes):
a 0.3 s run extrapolated to a month says nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from otel_tokens import semconv
from otel_tokens._internal.base.errors import ConfigError

NONE_KEY: Final = semconv.KEY_NONE
OTHER_KEY: Final = semconv.KEY_OTHER
MINUTES_PER_MONTH: Final = 30 * 24 * 60
# The shortest period projected to a month; a shorter one shows "too short to project".
MIN_PROJECTION_S: Final = 600.0
# Group tables whose entries get the figures; the pair tables are {outer: {inner: entry}}.
PAIR_TABLES: Final = ("by_agent_model", "by_workflow_agent", "by_task_agent")

# Cheaper models a recommendation may suggest, per provider, in order of preference. A candidate is
# suggested only when the price book prices it; none is ever made up.
DEFAULT_CANDIDATES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "openai": ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano"),
    "azure.ai.openai": ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano"),
    "anthropic": ("claude-haiku-4-5", "claude-3-5-haiku-latest"),
    "gcp.gemini": ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
    "gcp.vertex_ai": ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
    "mistral_ai": ("mistral-small-latest",),
    "groq": ("llama-3.1-8b-instant",),
})
# Rules' thresholds: below these a pattern is noise, not something a team acts on.
MIN_CALLS: Final = 3
MIN_SAVING: Final = 0.30  # a cheaper model must save at least 30 %
CACHE_MIN_INPUT_TOKENS: Final = 1024  # the smallest prompt providers cache
CACHE_LOW_RATIO: Final = 0.10
ERROR_RATE_HIGH: Final = 0.05


def _div(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def efficiency(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The efficiency figures of one group entry (or of the totals, in entry shape)."""
    calls = entry.get("calls") or 0
    cost = float(entry.get("cost_usd") or 0.0)
    priced_calls = calls - (entry.get("unpriced_calls") or 0)
    duration = float(entry.get("duration_s") or 0.0)
    total_tokens = entry.get("total_tokens") or 0
    priced_tokens = entry.get("priced_tokens", total_tokens if not entry.get("unpriced_calls") else 0) or 0
    per_call_cost = _div(cost, priced_calls)
    per_token_cost = _div(cost, priced_tokens)
    return {
        "avg_cost_per_call_usd": per_call_cost,
        "cost_per_1k_tokens_usd": per_token_cost * 1000.0 if per_token_cost is not None else None,
        "avg_tokens_per_call": _div(total_tokens, calls),
        "output_tokens_per_second": _div(entry.get("output_tokens") or 0, duration),
        "avg_duration_s": _div(duration, calls),
        "input_cost_usd": float(entry.get("input_cost_usd") or 0.0),
        "output_cost_usd": float(entry.get("output_cost_usd") or 0.0),
        "tool_calls": int(entry.get("tool_calls") or 0),
        "error_rate": _div(entry.get("errors") or 0, calls),
    }


def totals_entry(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics' totals in the shape of a group entry."""
    return {
        "calls": stats.get("total_calls") or 0,
        "input_tokens": stats.get("input_tokens") or 0,
        "output_tokens": stats.get("output_tokens") or 0,
        "total_tokens": stats.get("total_tokens") or 0,
        "priced_tokens": stats.get("priced_tokens", stats.get("total_tokens") if not stats.get("unpriced_calls")
                                   else 0),
        "cost_usd": stats.get("total_cost_usd") or 0.0,
        "input_cost_usd": stats.get("input_cost_usd") or 0.0,
        "output_cost_usd": stats.get("output_cost_usd") or 0.0,
        "tool_calls": stats.get("tool_calls") or 0,
        "unpriced_calls": stats.get("unpriced_calls") or 0,
        "errors": stats.get("errors") or 0,
        "duration_s": stats.get("duration_s") or 0.0,
    }


def add_efficiency(stats: dict[str, Any]) -> dict[str, Any]:
    """Add the efficiency figures to the totals and every group entry, in place; returns ``stats``."""
    stats.update(efficiency(totals_entry(stats)))
    first, last = stats.get("first_call_time"), stats.get("last_call_time")
    period = last - first if first is not None and last is not None else None
    stats["period_s"] = period
    per_minute = float(stats.get("total_cost_usd") or 0.0) / (period / 60.0) if period and period > 0 else None
    stats["cost_per_minute_usd"] = per_minute
    long_enough = per_minute is not None and period is not None and period >= MIN_PROJECTION_S
    stats["projected_monthly_usd"] = per_minute * MINUTES_PER_MONTH if long_enough else None
    for dimension in semconv.STATISTICS_DIMENSIONS:
        for entry in (stats.get(f"by_{dimension}") or {}).values():
            entry.update(efficiency(entry))
    for table in PAIR_TABLES:
        for inner in (stats.get(table) or {}).values():
            for entry in inner.values():
                entry.update(efficiency(entry))
    return stats


# -- what the ledger does not keep -----------------------------------------------------------------
class Activity:
    """Spend per time bucket and agent, and error types per agent, for charts and recommendations.

    Bounded: at most ``max_buckets`` buckets (their width doubles, merging neighbours, when calls span
    more), ``max_agents`` agents per table (later ones under ``"(other)"``) and ``max_error_types`` error
    types per agent. ``add`` is O(1) amortised, thread-safe and never raises for numbers.
    """

    def __init__(self, *, bucket_s: float = 1.0, max_buckets: int = 120, max_agents: int = 20,
                 max_error_types: int = 10) -> None:
        if not bucket_s > 0 or max_buckets < 2 or max_agents < 1 or max_error_types < 1:
            raise ValueError("Activity needs bucket_s > 0, max_buckets >= 2, max_agents >= 1, max_error_types >= 1")
        self._initial_bucket_s = float(bucket_s)
        self._max_buckets = max_buckets
        self._max_agents = max_agents
        self._max_error_types = max_error_types
        self._max_models = 1000
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._bucket_s = self._initial_bucket_s
            self._origin: float | None = None
            # bucket index -> {agent: [cost, calls]}
            self._buckets: dict[int, dict[str, list[float]]] = {}
            self._agents: set[str] = set()
            self._errors: dict[str, dict[str, int]] = {}
            # model -> the provider that served it, so recommendations reprice on that provider's models
            self._providers: dict[str, str] = {}

    def add_record(self, record: Any) -> None:
        """A recorder sink: one finished call."""
        if record.request.operation not in semconv.USAGE_OPERATIONS:
            return
        self.add(record.end_time_unix, record.labels.agent, record.cost_usd, record.error_type,
                 record.model, record.request.provider)

    def add_line(self, line: Mapping[str, Any]) -> None:
        """One parsed usage-log line."""
        if line.get("operation") not in semconv.USAGE_OPERATIONS:
            return
        self.add(line.get("_unix_time"), line.get("agent"), line.get("cost_usd"), line.get("error"),
                 line.get("model") or line.get("request_model"), line.get("provider"))

    def add(self, end_time: float | None, agent: str | None, cost: float | None, error: str | None,
            model: str | None = None, provider: str | None = None) -> None:
        with self._lock:
            if model and provider and model not in self._providers and len(self._providers) < self._max_models:
                self._providers[model] = provider
            name = agent or NONE_KEY
            if name not in self._agents and name != NONE_KEY:
                name = self._agent_key(name)
            if error:
                types = self._errors.setdefault(name, {})
                if error not in types and len(types) >= self._max_error_types:
                    error = OTHER_KEY
                types[error] = types.get(error, 0) + 1
            if not end_time:
                return
            if self._origin is None:
                # Whole multiples of the width, so two processes' buckets line up.
                self._origin = math.floor(end_time / self._bucket_s) * self._bucket_s
            while True:
                index = math.floor((end_time - self._origin) / self._bucket_s)
                if index < 0:
                    self._shift(index)
                    continue
                if index >= self._max_buckets:
                    self._widen()
                    continue
                break
            bucket = self._buckets.get(index)
            if bucket is None:
                bucket = self._buckets[index] = {}
            cell = bucket.get(name)
            if cell is None:
                cell = bucket[name] = [0.0, 0]
            cell[0] += cost or 0.0
            cell[1] += 1

    def _agent_key(self, agent: str | None) -> str:
        name = agent if agent else NONE_KEY
        if name in self._agents or name == NONE_KEY:
            return name
        if len(self._agents) >= self._max_agents:
            return OTHER_KEY
        self._agents.add(name)
        return name

    def _shift(self, index: int) -> None:
        """A call earlier than the first bucket: move the origin back (widening if needed)."""
        last = max(self._buckets, default=0)
        if last - index >= self._max_buckets:
            self._widen()
            return
        self._origin += index * self._bucket_s  # type: ignore[operator]
        self._buckets = {key - index: value for key, value in self._buckets.items()}

    def _widen(self) -> None:
        """Double the bucket width, merging pairs, keeping the origin on a multiple of the new width."""
        width = self._bucket_s * 2
        origin = math.floor(self._origin / width) * width  # type: ignore[operator]
        offset = round((self._origin - origin) / self._bucket_s)  # type: ignore[operator]
        merged: dict[int, dict[str, list[float]]] = {}
        for index, cells in self._buckets.items():
            target = merged.setdefault((index + offset) // 2, {})
            for name, (cost, calls) in cells.items():
                cell = target.setdefault(name, [0.0, 0])
                cell[0] += cost
                cell[1] += calls
        self._origin, self._bucket_s, self._buckets = origin, width, merged

    def snapshot(self) -> dict[str, Any]:
        """``{"timeline": {...}, "error_types": {agent: {type: calls}}, "model_providers": {model: provider}}``;
        the timeline lists every bucket
        from the first to the last (empty ones too), with cost and calls per agent."""
        with self._lock:
            buckets = {index: {name: list(cell) for name, cell in cells.items()}
                       for index, cells in self._buckets.items()}
            origin, width = self._origin, self._bucket_s
            errors = {agent: dict(types) for agent, types in self._errors.items()}
            providers = dict(self._providers)
        timeline: dict[str, Any] = {"bucket_s": width, "start": origin, "agents": {}}
        if buckets:
            last = max(buckets)
            agents = sorted({name for cells in buckets.values() for name in cells})
            timeline["agents"] = {
                name: {
                    "cost_usd": [buckets.get(i, {}).get(name, (0.0, 0))[0] for i in range(last + 1)],
                    "calls": [int(buckets.get(i, {}).get(name, (0.0, 0))[1]) for i in range(last + 1)],
                }
                for name in agents
            }
        return {"timeline": timeline, "error_types": errors, "model_providers": providers}


def activity_from_lines(lines: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    activity = Activity()
    for line in lines:
        activity.add_line(line)
    return activity.snapshot()


# -- recommendations -------------------------------------------------------------------------------
def candidate_models(spec: str | None) -> dict[str, tuple[str, ...]] | None:
    """``"gpt-4o-mini@openai,claude-haiku-4-5@anthropic"`` -> ``{provider: models}``; None for no spec."""
    if not spec or not spec.strip():
        return None
    table: dict[str, list[str]] = {}
    for part in spec.split(","):
        model, at, provider = part.strip().rpartition("@")
        if not at or not model or not provider:
            raise ConfigError(
                f"candidate_models / OTEL_TOKENS_CANDIDATE_MODELS: expected MODEL@PROVIDER,..., got {part.strip()!r}"
            )
        table.setdefault(provider, []).append(model)
    return {provider: tuple(models) for provider, models in table.items()}


def _average_usage(entry: Mapping[str, Any]) -> Any:
    from otel_tokens._internal.base.records import Usage

    calls = entry.get("calls") or 0
    # Float averages: calls x cost(average call) is exact for per-token prices and per-request fees,
    # and tiered prices apply at the size of the average call.
    return Usage(**{key: (entry.get(key) or 0) / calls for key in (
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")})


def _is_embedding(model: str) -> bool:
    return "embed" in model.lower()


def _cheaper_model(agent: str, model: str, entry: Mapping[str, Any], provider: str | None, price_book: Any,
                   candidates: Mapping[str, Sequence[str]]) -> dict[str, Any] | None:
    calls = entry.get("calls") or 0
    if provider is None or calls < MIN_CALLS or entry.get("unpriced_calls") or model in (NONE_KEY, OTHER_KEY):
        return None
    cost = float(entry.get("cost_usd") or 0.0)
    if cost <= 0:
        return None
    average = _average_usage(entry)
    current_rates = price_book.rates(provider, model)
    for candidate in candidates.get(provider, ()):
        if _is_embedding(candidate) != _is_embedding(model):
            continue
        rates = price_book.rates(provider, candidate)
        if rates is None or rates == current_rates:  # unpriced, or the same model under another name
            continue
        projected = rates.cost(average) * calls
        if projected <= cost * (1.0 - MIN_SAVING):
            saving = (cost - projected) / cost
            avg_output = (entry.get("output_tokens") or 0) / calls
            return {
                "kind": "cheaper_model", "agent": agent, "model": model, "provider": provider,
                "calls": calls, "avg_output_tokens": avg_output, "cost_usd": cost, "candidate": candidate,
                "candidate_cost_usd": projected, "saving_usd": cost - projected, "saving_pct": saving * 100.0,
                "text": (f"{agent}: {calls:,} calls on {model} averaging {avg_output:,.0f} output tokens; the same "
                         f"usage on {candidate} would cost {_usd(projected)} instead of {_usd(cost)} "
                         f"({saving * 100.0:.0f} % less)"),
            }
    return None


def _usd(value: float) -> str:
    from otel_tokens._internal.base.formatting import format_usd

    return format_usd(value)


def recommendations(
    stats: Mapping[str, Any],
    price_book: Any = None,
    *,
    candidates: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Rule-based advice from the statistics, each with the numbers behind it (``text`` says it).

    Rules: a cheaper model of the same provider for an agent's usage of a model (needs ``price_book``
    and ``model_providers`` in the statistics), a low cache hit ratio on large prompts, a high error
    rate, calls to unpriced models, and budgets at their warning level or over.
    """
    found: list[dict[str, Any]] = []
    candidates = DEFAULT_CANDIDATES if candidates is None else candidates
    providers = dict(stats.get("model_providers") or {})
    single = list((stats.get("by_provider") or {}).keys())
    if price_book is not None:
        for agent, models in (stats.get("by_agent_model") or {}).items():
            for model, entry in models.items():
                provider = providers.get(model) or (single[0] if len(single) == 1 else None)
                advice = _cheaper_model(agent, model, entry, provider, price_book, candidates)
                if advice is not None:
                    found.append(advice)
    error_types = stats.get("error_types") or {}
    for agent, entry in sorted((stats.get("by_agent") or {}).items()):
        calls = entry.get("calls") or 0
        input_tokens = entry.get("input_tokens") or 0
        if calls >= MIN_CALLS and input_tokens / calls >= CACHE_MIN_INPUT_TOKENS:
            ratio = (entry.get("cache_read_tokens") or 0) / input_tokens
            if ratio < CACHE_LOW_RATIO:
                found.append({
                    "kind": "low_cache_hit", "agent": agent, "calls": calls, "cache_hit_ratio": ratio,
                    "avg_input_tokens": input_tokens / calls,
                    "text": (f"{agent}: cache hit ratio {ratio * 100.0:.0f} % over {calls:,} calls averaging "
                             f"{input_tokens / calls:,.0f} input tokens; put the prompt's stable part first "
                             "(or turn on prompt caching) so the provider can cache it"),
                })
        errors = entry.get("errors") or 0
        if calls and errors and errors / calls >= ERROR_RATE_HIGH:
            types = error_types.get(agent) or {}
            kinds = ", ".join(f"{name} x{count}" for name, count in sorted(types.items(), key=lambda kv: -kv[1]))
            found.append({
                "kind": "high_error_rate", "agent": agent, "calls": calls, "errors": errors,
                "error_rate": errors / calls, "error_types": dict(types),
                "text": f"{agent}: {errors / calls * 100.0:.0f} % of calls failed ({errors:,} of {calls:,}"
                        + (f": {kinds})" if kinds else ")"),
            })
    unpriced = {model: entry.get("unpriced_calls") for model, entry in (stats.get("by_model") or {}).items()
                if entry.get("unpriced_calls")}
    if unpriced:
        total = sum(unpriced.values())
        names = ", ".join(f"{model} x{count}" for model, count in sorted(unpriced.items(), key=lambda kv: -kv[1]))
        found.append({
            "kind": "unpriced_models", "calls": total, "models": unpriced,
            "text": (f"{total:,} call{'s' if total != 1 else ''} to unpriced models ({names}): set a price with "
                     "otel_tokens.set_price() or OTEL_TOKENS_PRICES"),
        })
    for agent, state in sorted((stats.get("budgets") or {}).items()):
        if state.get("status") in ("warning", "exceeded"):
            utilization = state.get("utilization")
            used = f"{utilization * 100.0:.0f} %" if isinstance(utilization, float) and math.isfinite(utilization) \
                else "all"
            found.append({
                "kind": "budget", "agent": agent, "status": state.get("status"),
                "spent_usd": state.get("spent_usd"), "limit_usd": state.get("limit_usd"), "utilization": utilization,
                "text": (f"{agent}: spent {_usd(state.get('spent_usd') or 0.0)}, {used} of its "
                         f"{_usd(state.get('limit_usd') or 0.0)} budget ({state.get('window') or 'lifetime'})"),
            })
    return _most_important(found)


# Each kind is listed by impact; beyond this many a list stops being read.
MAX_PER_KIND: Final = 5
_IMPACT: Final = {
    "cheaper_model": lambda item: item["saving_usd"],
    "low_cache_hit": lambda item: item["avg_input_tokens"] * item["calls"],
    "high_error_rate": lambda item: item["errors"],
    "budget": lambda item: item["spent_usd"] / item["limit_usd"] if item["limit_usd"] else math.inf,
}


def _most_important(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_PER_KIND of each kind, the largest impact first; kinds keep their order."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for item in found:
        kinds.setdefault(item["kind"], []).append(item)
    kept = []
    for kind, items in kinds.items():
        impact = _IMPACT.get(kind)
        if impact is not None:
            items.sort(key=impact, reverse=True)  # stable: ties keep their (alphabetical) order
        kept += items[:MAX_PER_KIND]
    return kept


def enrich(
    stats: dict[str, Any],
    price_book: Any = None,
    *,
    activity: Mapping[str, Any] | None = None,
    candidates: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Efficiency figures, the timeline and error types (from ``activity``), and recommendations."""
    add_efficiency(stats)
    if activity is not None:
        stats.update(activity)
    stats.setdefault("timeline", {"bucket_s": None, "start": None, "agents": {}})
    stats.setdefault("error_types", {})
    stats.setdefault("model_providers", {})
    stats["recommendations"] = recommendations(stats, price_book, candidates=candidates)
    return stats


__all__ = [
    "DEFAULT_CANDIDATES",
    "Activity",
    "activity_from_lines",
    "add_efficiency",
    "candidate_models",
    "efficiency",
    "enrich",
    "recommendations",
]
