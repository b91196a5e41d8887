"""The usage report: statistics in, text / markdown / json / csv out.

The input is the statistics dict that ``otel_tokens.get_statistics()`` returns (the ledger's totals plus
budget states). :func:`stats_from_usage_lines` builds the same dict from usage-log lines, with two
optional extras the live ledger does not keep: ``by_agent_model`` (``{agent: {model: entry}}``) and
``top_calls`` (the most expensive calls). The report shows them when present.

Sections: summary, one table per ``by`` dimension, budgets, the most expensive items, and what-if
repricing ("the same usage on model X would cost $Y"). CSV carries only the summary and the group
tables (one row per group, a ``section`` column), so it loads into a spreadsheet as one table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from otel_tokens import semconv
from otel_tokens._internal.base.formatting import format_usd, machine_text, machine_values

FORMATS: Final = ("text", "markdown", "json", "csv", "html")
DIMENSIONS: Final = semconv.STATISTICS_DIMENSIONS
DEFAULT_BY: Final = ("agent", "model", "provider", "operation")
NONE_KEY: Final = semconv.KEY_NONE
TOKEN_FIELDS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
ENTRY_FIELDS: Final = (
    "calls", *TOKEN_FIELDS, "total_tokens", "cost_usd", "unpriced_calls", "errors", "duration_s",
)
# Sums the efficiency figures need (otel_tokens._internal.accounting.analytics); not columns of the group tables.
EXTRA_FIELDS: Final = ("priced_tokens", "input_cost_usd", "output_cost_usd", "tool_calls", "tool_fee_usd",
                        "server_tool_calls", "cost_incomplete_calls")
# Nested tables {outer: {inner: entry}} by two dimensions.
PAIR_TABLES: Final = (("by_agent_model", "agent", "model"), ("by_workflow_agent", "workflow", "agent"),
                      ("by_task_agent", "task", "agent"))
# Per-group figures from otel_tokens._internal.accounting.analytics.efficiency().
EFFICIENCY_FIELDS: Final = (
    "avg_cost_per_call_usd", "cost_per_1k_tokens_usd", "avg_tokens_per_call", "output_tokens_per_second",
    "avg_duration_s", "input_cost_usd", "output_cost_usd", "tool_calls", "error_rate",
)
# Stored top calls per log; more than any report shows.
_TOP_CALLS_KEPT: Final = 100
_NAME_WIDTH: Final = 32
_EPSILON_USD: Final = 1e-12


# -- statistics from usage-log lines ---------------------------------------------------------------
def _empty_entry() -> dict[str, Any]:
    entry: dict[str, Any] = dict.fromkeys((*ENTRY_FIELDS, *EXTRA_FIELDS), 0)
    for key in ("cost_usd", "duration_s", "input_cost_usd", "output_cost_usd", "tool_fee_usd"):
        entry[key] = 0.0
    return entry


def _add(entry: dict[str, Any], delta: Mapping[str, Any]) -> None:
    for key in entry:
        entry[key] += delta[key]


def _key(value: Any) -> str:
    return NONE_KEY if value is None or value == "" else str(value)


def _line_time(line: Mapping[str, Any]) -> float | None:
    unix = line.get("_unix_time")
    if isinstance(unix, int | float):
        return float(unix)
    text = line.get("time")
    if isinstance(text, str):
        from otel_tokens._internal.accounting.usage_log import parse_time

        try:
            return parse_time(text)
        except ValueError:
            return None
    return None


def stats_from_usage_lines(lines: Iterable[Mapping[str, Any]], *, top_calls: int = _TOP_CALLS_KEPT) -> dict[str, Any]:
    """Aggregate usage-log lines (as :func:`read_usage_log` returns them) into the statistics dict.

    Counted as the ledger counts: only usage operations (chat, text_completion, generate_content,
    embeddings); a call is unpriced when it has usage but no cost; ``first_call_time`` is when the
    earliest call started (its end time minus its duration) and ``last_call_time`` when the last ended.
    """
    totals = _empty_entry()
    tables: dict[str, dict[str, dict[str, Any]]] = {dimension: {} for dimension in DIMENSIONS}
    pairs: dict[str, dict[str, dict[str, dict[str, Any]]]] = {table: {} for table, _outer, _inner in PAIR_TABLES}
    calls: list[dict[str, Any]] = []
    lines = list(lines)
    estimated = invalid = unknown = 0
    first: float | None = None
    last: float | None = None
    for line in lines:
        operation = line.get("operation")
        if operation not in semconv.USAGE_OPERATIONS:
            continue
        tokens = {key: line.get(key) or 0 for key in TOKEN_FIELDS}
        cost = line.get("cost_usd")
        duration = float(line.get("duration_s") or 0.0)
        has_usage = line.get("input_tokens") is not None or line.get("output_tokens") is not None
        delta = {
            "calls": 1,
            **tokens,
            "total_tokens": tokens["input_tokens"] + tokens["output_tokens"],
            "cost_usd": float(cost or 0.0),
            "unpriced_calls": 1 if cost is None and has_usage else 0,
            "errors": 1 if line.get("error") else 0,
            "duration_s": duration,
            "priced_tokens": tokens["input_tokens"] + tokens["output_tokens"] if cost is not None else 0,
            "input_cost_usd": float(line.get("input_cost_usd") or 0.0),
            "output_cost_usd": float(line.get("output_cost_usd") or 0.0),
            "tool_calls": int(line.get("tool_calls") or 0),
            "tool_fee_usd": float(line.get("tool_fee_usd") or 0.0),
            "server_tool_calls": int(line.get("server_tool_calls") or 0),
            "cost_incomplete_calls": 1 if line.get("unpriced_dimensions") else 0,
        }
        _add(totals, delta)
        estimated += 1 if line.get("estimated") is True else 0
        invalid += 1 if line.get("usage_invalid") is True else 0
        unknown += 1 if not has_usage and not line.get("error") else 0
        model = line.get("model") or line.get("request_model")
        keys = {
            "agent": line.get("agent"),
            "model": model,
            "provider": line.get("provider"),
            "operation": operation,
            "workflow": line.get("workflow"),
            "task": line.get("task"),
            "user": line.get("user"),
            "tier": line.get("tier"),
        }
        for dimension, value in keys.items():
            _add(tables[dimension].setdefault(_key(value), _empty_entry()), delta)
        for table, outer, inner in PAIR_TABLES:
            _add(pairs[table].setdefault(_key(keys[outer]), {}).setdefault(_key(keys[inner]), _empty_entry()), delta)
        end = _line_time(line)
        if end is not None:
            start = end - duration
            first = start if first is None or start < first else first
            last = end if last is None or end > last else last
        if top_calls > 0 and cost is not None:
            calls.append({
                "time": line.get("time"),
                "agent": _key(keys["agent"]),
                "model": _key(model),
                "provider": _key(keys["provider"]),
                "operation": operation,
                "input_tokens": tokens["input_tokens"],
                "output_tokens": tokens["output_tokens"],
                "total_tokens": delta["total_tokens"],
                "cost_usd": float(cost),
                "duration_s": duration,
                "error": line.get("error"),
            })
    calls.sort(key=lambda call: (-call["cost_usd"], -call["total_tokens"], call["time"] or ""))
    stats: dict[str, Any] = {
        "total_calls": totals["calls"],
        "total_tokens": totals["total_tokens"],
        **{key: totals[key] for key in TOKEN_FIELDS},
        "total_cost_usd": totals["cost_usd"],
        "unpriced_calls": totals["unpriced_calls"],
        "errors": totals["errors"],
        "estimated_calls": estimated,
        "usage_invalid_calls": invalid,
        "usage_unknown_calls": unknown,
        "duration_s": totals["duration_s"],
        "first_call_time": first,
        "last_call_time": last,
        **{key: totals[key] for key in EXTRA_FIELDS},
    }
    for dimension in DIMENSIONS:
        stats[f"by_{dimension}"] = tables[dimension]
    stats["budgets"] = {}
    stats.update(pairs)
    stats["top_calls"] = calls[:top_calls]
    from otel_tokens._internal.accounting.analytics import activity_from_lines, add_efficiency

    stats.update(activity_from_lines(lines))
    return add_efficiency(stats)


def budgets_from_usage_lines(lines: Sequence[Mapping[str, Any]], budgets: Iterable[Any]) -> dict[str, Any]:
    """Budget states for a usage log, in the ``stats["budgets"]`` shape.

    ``budgets`` are objects with ``agent`` (the name), ``limit_usd``, ``warn_at``, ``action``, ``window``
    and ``scope`` (``otel_tokens._internal.budgets.manager.Budget``): a call counts when its label of that scope
    is the name, or always for ``total``. A windowed budget counts the calls that ended within the
    window before the log's last call; the others count the whole log.
    """
    from otel_tokens._internal.budgets.manager import window_seconds

    ends = [(line, _line_time(line)) for line in lines if line.get("operation") in semconv.USAGE_OPERATIONS]
    last = max((end for _line, end in ends if end is not None), default=None)
    states: dict[str, Any] = {}
    for budget in budgets:
        scope = getattr(budget, "scope", "agent")
        window = window_seconds(budget.window)
        since = None if window is None or last is None else last - window
        spent = 0.0
        for line, end in ends:
            if (scope != "total" and _key(line.get(scope)) != budget.agent) or line.get("cost_usd") is None:
                continue
            if since is not None and (end is None or end <= since):
                continue
            spent += float(line["cost_usd"])
        limit = float(budget.limit_usd)
        if spent > limit + _EPSILON_USD:
            status = "exceeded"
        elif spent > 0 and spent >= budget.warn_at * limit - _EPSILON_USD:
            status = "warning"
        else:
            status = "ok"
        states[budget.key if hasattr(budget, "key") else budget.agent] = {
            "scope": scope,
            "name": budget.agent,
            "limit_usd": limit,
            "spent_usd": spent,
            "utilization": spent / limit if limit > 0 else (0.0 if spent <= 0 else math.inf),
            "status": status,
            "window": budget.window or "lifetime",
            "action": budget.action,
            "blocked_calls": 0,
        }
    return states


# -- what-if repricing -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WhatIf:
    """The priced usage of a report, repriced on one target model."""

    model: str
    provider: str | None
    cost_usd: float | None  # None: the target model has no known price
    baseline_usd: float  # what the repriced calls actually cost
    calls: int  # calls repriced
    excluded_calls: int  # calls left out: unpriced, or embeddings vs inference

    @property
    def change_pct(self) -> float | None:
        if self.cost_usd is None or self.baseline_usd <= 0:
            return None
        return (self.cost_usd - self.baseline_usd) / self.baseline_usd * 100.0

    @property
    def current_change_pct(self) -> float | None:
        """The other way round: what the current models cost against the target (-60: 60 % less)."""
        if self.cost_usd is None or self.cost_usd <= 0:
            return None
        return (self.baseline_usd - self.cost_usd) / self.cost_usd * 100.0

    def sentence(self) -> str:
        """Both ways: ``The same usage on gpt-4o would cost $0.00109 instead of $0.00043: 152 % more on
        gpt-4o, 60 % less on the current models, over 4 calls.``"""
        target = f"{self.model} ({self.provider})" if self.provider else self.model
        if self.cost_usd is None:
            return f"{target}: no known price, cannot reprice."
        if self.calls == 0:
            return f"{target}: no priced calls to reprice."
        change, current = self.change_pct, self.current_change_pct
        if change is None:  # nothing spent now (self-hosted): no ratio either way
            text = f"The same usage on {target} would cost {format_usd(self.cost_usd)} (now {format_usd(self.baseline_usd)})"
        else:
            text = (f"The same usage on {target} would cost {format_usd(self.cost_usd)} instead of "
                    f"{format_usd(self.baseline_usd)}")
        if change is not None and abs(change) < 0.05:
            text += ": the same"
        elif change is not None and current is not None:
            text += f": {_change(change)} on {self.model}, {_change(current)} on the current models"
        elif change is not None:
            text += f": {_change(change)} on {self.model}"
        text += f", over {self.calls:,} call{'s' if self.calls != 1 else ''}"
        if self.excluded_calls:
            text += f"; {self.excluded_calls:,} call{'s' if self.excluded_calls != 1 else ''} left out"
        return text + "."


def _change(pct: float) -> str:
    """``-60.4`` -> ``60 % less``; one decimal under 10 %."""
    size = abs(pct)
    return f"{size:.1f} % {'less' if pct < 0 else 'more'}" if size < 10 else \
        f"{size:,.0f} % {'less' if pct < 0 else 'more'}"


def parse_model_ref(spec: str) -> tuple[str, str | None]:
    """``"gpt-4o-mini@openai"`` -> ``("gpt-4o-mini", "openai")``; no ``@`` -> provider None."""
    model, at, provider = spec.strip().rpartition("@")
    if not at:
        return spec.strip(), None
    if not model or not provider:
        raise ValueError(f"expected MODEL or MODEL@PROVIDER, got {spec!r}")
    return model, provider


def _is_embedding_model(name: str) -> bool:
    return "embed" in name.lower()


def reprice(stats: Mapping[str, Any], target: str, price_book: Any) -> WhatIf:
    """Reprice every priced model's usage on ``target`` (``MODEL`` or ``MODEL@provider``).

    Per model, the average call (its exact tokens divided by its calls, not rounded) is priced once and
    multiplied by the priced calls: for per-token prices that is the exact totals priced, and tiered prices
    apply at the size of a call rather than of the whole total. Models
    without a price are left out, as are embedding models when the target is not one (and the reverse).
    """
    from otel_tokens._internal.base.records import Usage

    model, provider = parse_model_ref(target)
    target_is_embedding = _is_embedding_model(model)
    baseline = 0.0
    projected: float | None = 0.0
    repriced = excluded = 0
    for name, entry in (stats.get("by_model") or {}).items():
        calls = int(entry.get("calls") or 0)
        priced_calls = calls - int(entry.get("unpriced_calls") or 0)
        if calls <= 0:
            continue
        if priced_calls <= 0 or _is_embedding_model(name) != target_is_embedding:
            excluded += calls
            continue
        excluded += calls - priced_calls
        average = Usage(**{key: (entry.get(key) or 0) / calls for key in TOKEN_FIELDS})
        cost = price_book.cost(provider, model, average)
        if cost is None:
            projected = None
            break
        projected += cost * priced_calls
        baseline += float(entry.get("cost_usd") or 0.0)
        repriced += priced_calls
    return WhatIf(model=model, provider=provider, cost_usd=projected, baseline_usd=baseline, calls=repriced,
                  excluded_calls=excluded)


def _default_price_book() -> Any:
    from otel_tokens._internal.pricing.book import PriceBook

    return PriceBook()


# -- formatting helpers ----------------------------------------------------------------------------
def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{minutes}m {rest:02d}s"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h {rest // 60:02d}m"


def _format_time(unix: float | None) -> str:
    if unix is None:
        return "n/a"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a" if value is None else "inf"
    return f"{value:.1f}%"


def _int(value: Any) -> str:
    return f"{int(value or 0):,}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _short(name: str, width: int = _NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "~"


def _finite(value: Any) -> Any:
    """JSON has no infinity (an infinite utilization, a $0 limit overspent, becomes null) and no float
    noise."""
    return machine_values(value)


# -- the report model ------------------------------------------------------------------------------
def _rows(table: Mapping[str, Mapping[str, Any]], total_cost: float) -> list[dict[str, Any]]:
    rows = []
    for name, entry in table.items():
        row: dict[str, Any] = {"name": str(name)}
        for key in ENTRY_FIELDS:
            row[key] = float(entry.get(key) or 0.0) if key in ("cost_usd", "duration_s") else int(entry.get(key) or 0)
        for key in EFFICIENCY_FIELDS:
            row[key] = entry.get(key)
        if not entry.get("total_tokens"):
            row["total_tokens"] = row["input_tokens"] + row["output_tokens"]
        row["share_pct"] = row["cost_usd"] / total_cost * 100.0 if total_cost > 0 else None
        rows.append(row)
    rows.sort(key=lambda r: (-r["cost_usd"], -r["total_tokens"], r["name"]))
    return rows


def _summary(stats: Mapping[str, Any]) -> dict[str, Any]:
    first, last = stats.get("first_call_time"), stats.get("last_call_time")
    period = last - first if first is not None and last is not None else None
    calls = int(stats.get("total_calls") or 0)
    cost = float(stats.get("total_cost_usd") or 0.0)
    tokens = {key: int(stats.get(key) or 0) for key in TOKEN_FIELDS}
    total_tokens = int(stats.get("total_tokens") or tokens["input_tokens"] + tokens["output_tokens"])
    rate_ok = period is not None and period > 0
    return {
        "first_call_time": _iso(first),
        "last_call_time": _iso(last),
        "period_s": period,
        "calls": calls,
        "errors": int(stats.get("errors") or 0),
        "unpriced_calls": int(stats.get("unpriced_calls") or 0),
        "estimated_calls": int(stats.get("estimated_calls") or 0),
        "total_tokens": total_tokens,
        **tokens,
        "cost_usd": cost,
        "call_duration_s": float(stats.get("duration_s") or 0.0),
        "tokens_per_s": total_tokens / period if rate_ok else None,
        "cost_per_minute_usd": cost / (period / 60.0) if rate_ok else None,
        **{key: stats.get(key) for key in EFFICIENCY_FIELDS},
        "projected_monthly_usd": stats.get("projected_monthly_usd"),
        "tool_fee_usd": float(stats.get("tool_fee_usd") or 0.0),
        "server_tool_calls": int(stats.get("server_tool_calls") or 0),
        "cost_incomplete_calls": int(stats.get("cost_incomplete_calls") or 0),
        # (tier, calls, cost) for calls whose response named the tier that served them, dearest first.
        "tiers": sorted(
            ((str(name), int(entry.get("calls") or 0), float(entry.get("cost_usd") or 0.0))
             for name, entry in (stats.get("by_tier") or {}).items() if name != NONE_KEY),
            key=lambda row: (-row[2], row[0]),
        ),
    }


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    from otel_tokens._internal.accounting.usage_log import format_time

    return format_time(unix)


def _top_agent_models(stats: Mapping[str, Any], top: int, total_cost: float) -> list[dict[str, Any]] | None:
    nested = stats.get("by_agent_model")
    if not isinstance(nested, Mapping):
        return None
    rows = []
    for agent, models in nested.items():
        for model, entry in (models or {}).items():
            rows.append({
                "agent": str(agent),
                "model": str(model),
                "calls": entry.get("calls", 0),
                "total_tokens": entry.get("total_tokens", 0),
                "cost_usd": entry.get("cost_usd", 0.0),
                "share_pct": entry.get("cost_usd", 0.0) / total_cost * 100.0 if total_cost > 0 else None,
            })
    rows.sort(key=lambda r: (-r["cost_usd"], -r["total_tokens"], r["agent"], r["model"]))
    return rows[:top]


def _self_hosted_rows(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Usage of self-hosted providers (Ollama), listed apart: it has no per-token price, so its cost is
    0 unless the user priced its models; what-if repricing shows what it would cost hosted."""
    from otel_tokens._internal.pricing.book import SELF_HOSTED_PROVIDERS

    providers = stats.get("by_provider") or {}
    return _rows({name: entry for name, entry in providers.items() if name in SELF_HOSTED_PROVIDERS},
                 float(stats.get("total_cost_usd") or 0.0))


def _build(
    stats: Mapping[str, Any], by: Sequence[str], what_ifs: Sequence[str], price_book: Any, top: int
) -> dict[str, Any]:
    summary = _summary(stats)
    total_cost = summary["cost_usd"]
    groups = {dimension: _rows(stats.get(f"by_{dimension}") or {}, total_cost) for dimension in by}
    budgets = []
    for agent, state in sorted((stats.get("budgets") or {}).items()):
        budgets.append({"agent": agent, **{key: state.get(key) for key in (
            "limit_usd", "spent_usd", "utilization", "status", "window", "action", "blocked_calls")},
            "scope": state.get("scope", "agent"), "name": state.get("name", agent)})
    top_calls = stats.get("top_calls")
    model: dict[str, Any] = {
        "summary": summary,
        "groups": groups,
        "budgets": budgets,
        "budget_store": stats.get("budget_store"),
        "top_agent_models": _top_agent_models(stats, top, total_cost) if top > 0 else None,
        "top_calls": list(top_calls[:top]) if isinstance(top_calls, list) and top > 0 else None,
        "self_hosted": _self_hosted_rows(stats),
        "gateway_prices": list(stats.get("gateway_prices") or []),
        "what_if": [],
        "recommendations": list(stats.get("recommendations") or []),
    }
    if what_ifs:
        book = price_book if price_book is not None else _default_price_book()
        for target in what_ifs:
            result = reprice(stats, target, book)
            model["what_if"].append({
                "model": result.model,
                "provider": result.provider,
                "cost_usd": result.cost_usd,
                "baseline_usd": result.baseline_usd,
                "change_pct": result.change_pct,
                "current_change_pct": result.current_change_pct,
                "calls": result.calls,
                "excluded_calls": result.excluded_calls,
                "text": result.sentence(),
            })
    return model


# -- renderers -------------------------------------------------------------------------------------
_TITLES = {
    "agent": "agent", "model": "model", "provider": "provider", "operation": "operation",
    "workflow": "workflow", "task": "task", "user": "user", "tier": "service tier",
}


def _group_columns(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(header, key) pairs; errors and unpriced columns appear only when some call has them."""
    columns = [("Calls", "calls"), ("Input", "input_tokens"), ("Cache read", "cache_read_tokens"),
               ("Cache write", "cache_write_tokens"), ("Output", "output_tokens"), ("Reasoning", "reasoning_tokens"),
               ("Total", "total_tokens"), ("Cost", "cost_usd"), ("Share", "share_pct")]
    if summary["unpriced_calls"]:
        columns.append(("Unpriced", "unpriced_calls"))
    if summary["errors"]:
        columns.append(("Errors", "errors"))
    return columns


def _cell(key: str, value: Any) -> str:
    if key in ("cost_usd", "limit_usd", "spent_usd"):
        return format_usd(value)
    if key in ("share_pct",):
        return _pct(value)
    if key == "utilization":
        return _pct(value * 100.0) if isinstance(value, int | float) else "n/a"
    if key in ("duration_s",):
        return format_duration(value)
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return _int(value)
    return str(value)


def _group_cell(key: str, row: Mapping[str, Any]) -> str:
    # A group whose every call is unpriced has no cost, not a cost of $0.
    if key in ("cost_usd", "share_pct") and row["unpriced_calls"] and row["unpriced_calls"] == row["calls"]:
        return "n/a"
    return _cell(key, row[key])


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> list[str]:
    out = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
           "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"]
    out.extend("| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows)
    return out


def _summary_pairs(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    first, last = summary["first_call_time"], summary["last_call_time"]
    period = (f"{_format_time(_unix(first))} to {_format_time(_unix(last))} ({format_duration(summary['period_s'])})"
              if first and last else "n/a")
    notes = []
    for key, word in (("errors", "error"), ("unpriced_calls", "unpriced"), ("estimated_calls", "estimated")):
        if summary[key]:
            notes.append(f"{summary[key]:,} {word}{'s' if word == 'error' and summary[key] != 1 else ''}")
    calls = f"{summary['calls']:,}" + (f" ({', '.join(notes)})" if notes else "")
    tokens = (f"{summary['total_tokens']:,} (input {summary['input_tokens']:,}, of which cache read "
              f"{summary['cache_read_tokens']:,} and cache write {summary['cache_write_tokens']:,}; output "
              f"{summary['output_tokens']:,}, of which reasoning {summary['reasoning_tokens']:,})")
    throughput = "n/a"
    if summary["tokens_per_s"] is not None:
        throughput = (f"{summary['tokens_per_s']:,.1f} tokens/s, "
                      f"{format_usd(summary['cost_per_minute_usd'])}/min")
    cost = format_usd(summary["cost_usd"])
    if summary["unpriced_calls"]:
        cost += f" (plus {summary['unpriced_calls']:,} unpriced call{'s' if summary['unpriced_calls'] != 1 else ''})"
    pairs = [("Period", period), ("Calls", calls), ("Tokens", tokens), ("Cost", cost), ("Throughput", throughput),
             ("Time in calls", format_duration(summary["call_duration_s"]))]
    if summary.get("avg_cost_per_call_usd") is not None:
        pairs.append(("Efficiency", (
            f"{format_usd(summary['avg_cost_per_call_usd'])}/call, "
            f"{format_usd(summary['cost_per_1k_tokens_usd'])}/1K tokens, input {format_usd(summary['input_cost_usd'])}"
            f" + output {format_usd(summary['output_cost_usd'])}, {summary['tool_calls'] or 0:,} tool calls")))
    billing = []
    if summary.get("tiers"):
        billing.append("by service tier: " + ", ".join(
            f"{name} {format_usd(cost)} ({calls:,} call{'s' if calls != 1 else ''})" for name, calls, cost in summary["tiers"]))
    if summary.get("server_tool_calls") or summary.get("tool_fee_usd"):
        billing.append(f"server-tool fees {format_usd(summary['tool_fee_usd'])} "
                       f"({summary['server_tool_calls']:,} web/file searches)")
    if summary.get("cost_incomplete_calls"):
        count = summary["cost_incomplete_calls"]
        billing.append(f"{count:,} call{'s' if count != 1 else ''} with a billing dimension no price covers "
                       "(counted at the known prices)")
    if billing:
        pairs.append(("Billing", "; ".join(billing)))
    if summary.get("projected_monthly_usd") is not None:
        pairs.append(("Projection", f"{format_usd(summary['projected_monthly_usd'])} per 30-day month at the pace "
                                    "of this period (not a forecast)"))
    elif summary.get("period_s") is not None and summary["calls"]:
        pairs.append(("Projection", f"too short to project ({format_duration(summary['period_s'])}; "
                                    "shown from 10 minutes)"))
    return pairs


def _unix(iso: str | None) -> float | None:
    if iso is None:
        return None
    from otel_tokens._internal.accounting.usage_log import parse_time

    return parse_time(iso)


def _sections(model: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]], list[bool]]]:
    """Every table after the summary as (title, headers, rows, numeric flags)."""
    summary = model["summary"]
    sections = []
    columns = _group_columns(summary)
    for dimension, rows in model["groups"].items():
        if not rows:
            continue
        headers = [_TITLES[dimension].capitalize()] + [h for h, _k in columns]
        cells = [[_short(r["name"])] + [_group_cell(k, r) for _h, k in columns] for r in rows]
        sections.append((f"By {_TITLES[dimension]}", headers, cells, [False] + [True] * len(columns)))
    for dimension, rows in model["groups"].items():
        if not rows:
            continue
        headers = [f"{_TITLES[dimension].capitalize()}", "Avg/call", "Per 1K tokens", "Avg tokens", "Output tok/s",
                   "Avg duration", "Input cost", "Output cost", "Tool calls", "Error rate"]
        cells = [[_short(r["name"]), format_usd(r["avg_cost_per_call_usd"]), format_usd(r["cost_per_1k_tokens_usd"]),
                  _number(r["avg_tokens_per_call"]), _number(r["output_tokens_per_second"]),
                  format_duration(r["avg_duration_s"]), format_usd(r["input_cost_usd"]),
                  format_usd(r["output_cost_usd"]), _int(r["tool_calls"]),
                  _pct(r["error_rate"] * 100.0 if r["error_rate"] is not None else None)] for r in rows]
        sections.append((f"Efficiency by {_TITLES[dimension]}", headers, cells, [False] + [True] * 9))
    if model["self_hosted"]:
        headers = ["Provider", "Calls", "Input", "Output", "Total", "Cost"]
        cells = [[_short(r["name"]), _int(r["calls"]), _int(r["input_tokens"]), _int(r["output_tokens"]),
                  _int(r["total_tokens"]), format_usd(r["cost_usd"])] for r in model["self_hosted"]]
        sections.append(("Self-hosted (no per-token price)", headers, cells, [False] + [True] * 5))
    if model.get("gateway_prices"):
        headers = ["Model", "Sent to", "Priced as", "Price of"]
        cells = [[_short(g["model"]), _short(str(g.get("server_address") or g.get("provider"))),
                  _short(str(g["price_model"])), str(g["price_provider"])] for g in model["gateway_prices"]]
        sections.append(("Gateway names priced as", headers, cells, [False, False, False, False]))
    if model["budgets"]:
        headers = ["Budget", "Limit", "Spent", "Used", "Status", "Window", "Action", "Blocked"]
        cells = [[_short(b["agent"]), _cell("limit_usd", b["limit_usd"]), _cell("spent_usd", b["spent_usd"]),
                  _cell("utilization", b["utilization"]), str(b["status"]), str(b["window"] or "lifetime"),
                  str(b["action"]), _int(b["blocked_calls"])] for b in model["budgets"]]
        sections.append((_budgets_title(model.get("budget_store")), headers, cells, [False, True, True, True, False, False, False, True]))
    if model["top_agent_models"]:
        headers = ["Agent", "Model", "Calls", "Tokens", "Cost", "Share"]
        cells = [[_short(r["agent"]), _short(r["model"]), _int(r["calls"]), _int(r["total_tokens"]),
                  format_usd(r["cost_usd"]), _pct(r["share_pct"])] for r in model["top_agent_models"]]
        sections.append(("Most expensive agent x model", headers, cells,
                         [False, False, True, True, True, True]))
    if model["top_calls"]:
        headers = ["Time", "Agent", "Model", "Operation", "Tokens", "Cost", "Duration"]
        cells = [[_format_time(_unix(c.get("time"))) if c.get("time") else "n/a", _short(str(c.get("agent"))),
                  _short(str(c.get("model"))), str(c.get("operation")), _int(c.get("total_tokens")),
                  format_usd(c.get("cost_usd")), format_duration(c.get("duration_s"))]
                 for c in model["top_calls"]]
        sections.append(("Most expensive calls", headers, cells,
                         [False, False, False, False, True, True, True]))
    return sections


def _budgets_title(store: Mapping[str, Any] | None) -> str:
    """Budgets, and where their spend comes from when a store keeps it."""
    if not store:
        return "Budgets"
    reach = "fleet-wide" if store.get("kind") == "redis" else "all processes on this host"
    state = "" if store.get("available", True) else "; unreachable now, local counts shown"
    return f"Budgets (spent from the {store.get('kind')} store {store.get('url')}: {reach}{state})"


def _render_text(model: Mapping[str, Any]) -> str:
    out = ["otel-tokens usage report", "=" * 24, ""]
    if not model["summary"]["calls"]:
        out += ["No LLM calls recorded.", ""]
    pairs = _summary_pairs(model["summary"])
    width = max(len(k) for k, _v in pairs)
    out += ["Summary", "-" * 7] + [f"{k.ljust(width)}  {v}" for k, v in pairs] + [""]
    for title, headers, rows, numeric in _sections(model):
        out += [title, "-" * len(title), *_text_table(headers, rows, numeric), ""]
    if model["recommendations"]:
        out += ["Recommendations", "-" * 15] + [f"- {r['text']}" for r in model["recommendations"]] + [""]
    if model["what_if"]:
        out += ["What if", "-" * 7] + [w["text"] for w in model["what_if"]] + [""]
    return "\n".join(out)


def _render_markdown(model: Mapping[str, Any]) -> str:
    out = ["# otel-tokens usage report", ""]
    if not model["summary"]["calls"]:
        out += ["No LLM calls recorded.", ""]
    out += ["## Summary", "", *_md_table(["Metric", "Value"], [list(p) for p in _summary_pairs(model["summary"])],
                                         [False, False]), ""]
    for title, headers, rows, numeric in _sections(model):
        out += [f"## {title}", "", *_md_table(headers, rows, numeric), ""]
    if model["recommendations"]:
        out += ["## Recommendations", ""] + [f"- {_md_escape(r['text'])}" for r in model["recommendations"]] + [""]
    if model["what_if"]:
        out += ["## What if", ""] + [f"- {_md_escape(w['text'])}" for w in model["what_if"]] + [""]
    return "\n".join(out)


def _render_json(model: Mapping[str, Any]) -> str:
    return json.dumps(_finite(dict(model)), indent=2, allow_nan=False) + "\n"


CSV_COLUMNS: Final = ("section", "name", *ENTRY_FIELDS, "share_pct")


def _render_csv(model: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    summary = model["summary"]
    total = {"name": "all", "calls": summary["calls"], **{k: summary[k] for k in TOKEN_FIELDS},
             "total_tokens": summary["total_tokens"], "cost_usd": summary["cost_usd"],
             "unpriced_calls": summary["unpriced_calls"], "errors": summary["errors"],
             "duration_s": summary["call_duration_s"], "share_pct": 100.0 if summary["cost_usd"] > 0 else None}
    for section, rows in [("total", [total]), *model["groups"].items()]:
        for row in rows:
            writer.writerow([section, row["name"], *(_csv_value(k, row[k]) for k in CSV_COLUMNS[2:])])
    return buffer.getvalue()


def _csv_value(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key == "cost_usd":
        return machine_text(float(value))
    if key in ("share_pct",):
        return f"{float(value):.2f}"
    if key == "duration_s":
        return f"{float(value):.6f}"
    return str(int(value))


_RENDERERS = {"text": _render_text, "markdown": _render_markdown, "json": _render_json, "csv": _render_csv}


def render_report(
    stats: Mapping[str, Any],
    fmt: str = "text",
    *,
    by: Sequence[str] = DEFAULT_BY,
    what_if: Sequence[str] = (),
    price_book: Any = None,
    top: int = 5,
) -> str:
    """The report for ``stats`` in ``fmt`` (text, markdown, json or csv).

    ``by`` picks the group tables (agent, model, provider, operation, workflow, task, user); ``what_if``
    lists target models (``MODEL`` or ``MODEL@provider``) to reprice the usage on, with ``price_book``
    (any object with ``cost(provider, model, usage)``; by default otel-tokens' own); ``top`` is how many
    of the most expensive items to show (0 for none).
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None and fmt != "html":
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if isinstance(by, str):
        by = tuple(part.strip() for part in by.split(",") if part.strip())
    unknown = [dimension for dimension in by if dimension not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown report dimension(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(DIMENSIONS)}")
    if isinstance(what_if, str):
        what_if = (what_if,)
    stats = with_recommendations(stats, price_book)
    model = _build(stats, tuple(dict.fromkeys(by)), tuple(what_if), price_book, max(int(top), 0))
    if renderer is None:
        from otel_tokens._internal.outputs.html_report import render_html

        return render_html(stats, what_if=[item["text"] for item in model["what_if"]])
    return renderer(model)


def with_recommendations(stats: Mapping[str, Any], price_book: Any) -> Mapping[str, Any]:
    """Statistics with their recommendations (a usage log's are made here, after its budgets are known)."""
    if "recommendations" in stats:
        return stats
    from otel_tokens._internal.accounting.analytics import add_efficiency, recommendations

    enriched = dict(stats)
    if "avg_cost_per_call_usd" not in enriched:
        add_efficiency(enriched)
    book = price_book if price_book is not None else _default_price_book()
    enriched["recommendations"] = recommendations(enriched, book)
    return enriched


__all__ = [
    "DIMENSIONS",
    "FORMATS",
    "WhatIf",
    "budgets_from_usage_lines",
    "format_usd",
    "parse_model_ref",
    "render_report",
    "reprice",
    "stats_from_usage_lines",
    "with_recommendations",
]
