"""The per-call export: a usage log as one row per call, in CSV (for a spreadsheet) or JSON lines.

CSV is written to open in a spreadsheet as is: a UTF-8 byte-order mark (so Excel reads names right),
CRLF line ends, times as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (which spreadsheets parse as dates), plain
decimals (never ``1e-06``), ``TRUE``/``FALSE``, empty cells for unknown values, and text that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

FORMATS: Final = ("csv", "jsonl")
COLUMNS: Final = (
    "time_utc", "provider", "operation", "model", "request_model", "agent", "workflow", "task", "user",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens",
    "cost_usd", "input_cost_usd", "output_cost_usd", "cost_source", "estimated", "tool_calls", "duration_s",
    "ttfc_s", "error", "tier", "tool_fee_usd", "server_tool_calls", "unpriced_dimensions",
)
_TEXT: Final = frozenset({"provider", "operation", "model", "request_model", "agent", "workflow", "task", "user",
                          "cost_source", "error", "tier", "unpriced_dimensions"})
_MONEY: Final = frozenset({"cost_usd", "input_cost_usd", "output_cost_usd", "tool_fee_usd"})
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def call_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """One parsed usage-log line as an export row (``COLUMNS``, values as in the log)."""
    row: dict[str, Any] = {"time_utc": line.get("time")}
    for key in COLUMNS[1:]:
        row[key] = line.get(key)
    if line.get("input_tokens") is not None or line.get("output_tokens") is not None:
        row["total_tokens"] = (line.get("input_tokens") or 0) + (line.get("output_tokens") or 0)
    row["estimated"] = line.get("estimated") is True
    row["tool_calls"] = int(line.get("tool_calls") or 0)
    row["server_tool_calls"] = int(line.get("server_tool_calls") or 0)
    unpriced = line.get("unpriced_dimensions") or []
    row["unpriced_dimensions"] = " ".join(unpriced) if unpriced else None
    return row


def _csv_cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key == "time_utc":
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if key in _MONEY:
        return f"{float(value):.12f}".rstrip("0").rstrip(".") or "0"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    text = str(value)
    if key in _TEXT and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def render_csv(lines: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for line in lines:
        row = call_row(line)
        writer.writerow([_csv_cell(key, row[key]) for key in COLUMNS])
    return buffer.getvalue()


def render_jsonl(lines: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(call_row(line), ensure_ascii=False, allow_nan=False) + "\n" for line in lines)


def render_export(lines: Iterable[Mapping[str, Any]], fmt: str = "csv") -> str:
    """Every call of a usage log (parsed lines, as ``read_usage_log`` returns them) in ``fmt``."""
    if fmt == "csv":
        return render_csv(lines)
    if fmt == "jsonl":
        return render_jsonl(lines)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


__all__ = ["COLUMNS", "FORMATS", "call_row", "render_export"]
