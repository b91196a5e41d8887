"""The usage log: one JSON line per finished call (``OTEL_TOKENS_LOG=usage.jsonl``), and its reader.

A line, keys in this order::

    {"time": "2026-11-22T10:00:00.123456Z", "provider": "openai", "model": "gpt-4o-mini-2024-07-18",
     "request_model": "gpt-4o-mini", "agent": "planner", "workflow": null, "task": null, "user": null,
     "operation": "chat", "input_tokens": 1215, "output_tokens": 45, "cache_read_tokens": 1152,
     "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.000072, "cost_source": "local",
     "estimated": false, "usage_invalid": false, "duration_s": 0.412, "ttfc_s": null, "error": null,
     "input_cost_usd": 0.000045, "output_cost_usd": 0.000027, "tool_calls": 0, "source": null,
     "tier": "default", "tool_fee_usd": 0.0, "server_tool_calls": 0, "unpriced_dimensions": [],
     "batch_id": null}

``time`` is when the call ended (UTC); ``model`` is the model that answered, ``request_model`` the one
asked for. Token counts follow the semconv: input includes cache reads and writes, output includes
reasoning. They are null when the call produced no usage (an error before any answer) and when the
provider sent counts that are not token counts (then ``usage_invalid`` is true). ``cost_usd`` is
null when the model has no known price; ``cost_source`` is ``local`` (our price book), ``provider`` or
``self_hosted`` (a self-hosted model with no price set: cost 0). ``input_cost_usd``/``output_cost_usd``
split a cost we computed by billed bucket (null for a provider's cost); ``tool_calls`` counts the tool
calls the model asked for; ``source`` names the instrumentation whose span the call was read from
(``GenAISpanProcessor``), null for otel-tokens' own calls; ``tier`` is the service tier that served the
call, as the provider named it (null when the response does not say); ``tool_fee_usd`` the per-call server-tool fees within
``cost_usd``; ``server_tool_calls`` the web and file searches billed per call; ``unpriced_dimensions``
the billing dimensions the response revealed that no price covers (then ``cost_usd`` counts what is
known: a lower bound); ``batch_id`` the batch a call ran in (null for a call made directly), which also
keeps a finished batch from being counted again by another process (``accounting.batches``).

Writer and reader agree on one definition of a valid line (:data:`_FIELDS`): the writer turns every
record into a valid line (counts non-negative ints or null, amounts finite and non-negative or null,
text as strings, error text redacted), and the reader accepts exactly those lines. A line the reader
cannot accept (torn, hand-edited, from another program) is skipped, counted and named in one warning.

The file is created 0600 and never through a symlink. The writer opens it once with ``O_APPEND`` and
writes each line with one ``os.write`` of the whole encoded line, so lines from concurrent threads or
processes never interleave and a killed process leaves only whole lines.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from otel_tokens import semconv
from otel_tokens._internal.base.files import open_private_append
from otel_tokens._internal.base.formatting import machine_float
from otel_tokens._internal.base.records import INVALID, MAX_TOKENS, CallRecord, count, valid_cost
from otel_tokens._internal.base.redact import redact
from otel_tokens._internal.base.safety import log_internal_error, raise_internal_errors

_logger = logging.getLogger("otel_tokens")

LINE_KEYS: Final = (
    "time", "provider", "model", "request_model", "agent", "workflow", "task", "user", "operation",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_usd", "cost_source", "estimated", "usage_invalid", "duration_s", "ttfc_s", "error", "input_cost_usd",
    "output_cost_usd", "tool_calls", "source", "tier", "tool_fee_usd", "server_tool_calls", "unpriced_dimensions",
    "batch_id",
)
TOKEN_KEYS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
# A line without these is not a call we can count.
REQUIRED_KEYS: Final = frozenset({"time", "provider", "operation", "input_tokens", "output_tokens"})
_STRING_KEYS: Final = ("provider", "model", "request_model", "agent", "workflow", "task", "user", "operation",
                       "cost_source", "error", "source", "tier", "batch_id")


def format_time(unix_seconds: float) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``: sorts as text and parses with ``fromisoformat``."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """Unix seconds from an ISO-8601 time; a time without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- one definition of a valid line, used by the writer (to make one) and the reader (to check one) ---
def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS


def _is_amount(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


# key -> (valid non-null value?, may it be null?)
_FIELDS: Final[dict[str, tuple[Callable[[Any], bool], bool]]] = {
    "time": (_is_text, False),
    **{key: (_is_text, key not in ("provider", "operation")) for key in _STRING_KEYS},
    **{key: (_is_count, True) for key in TOKEN_KEYS},
    "cost_usd": (_is_amount, True),
    "duration_s": (_is_amount, True),
    "ttfc_s": (_is_amount, True),
    "estimated": (lambda value: type(value) is bool, False),
    "usage_invalid": (lambda value: type(value) is bool, False),
    "input_cost_usd": (_is_amount, True),
    "output_cost_usd": (_is_amount, True),
    "tool_calls": (_is_count, False),
    "tool_fee_usd": (_is_amount, True),
    "server_tool_calls": (_is_count, False),
    "unpriced_dimensions": (lambda value: type(value) is list and all(isinstance(item, str) for item in value), False),
}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _amount(value: Any, decimals: int | None = None) -> float | None:
    number = valid_cost(value)
    if number is None:
        return None
    return machine_float(number) if decimals is None else round(number, decimals)


def _end_time(value: Any) -> str:
    if type(value) in (int, float) and math.isfinite(value) and value > 0:
        try:
            return format_time(value)
        except (OverflowError, OSError, ValueError):  # beyond datetime's years
            pass
    return format_time(time.time())


def record_to_line(record: CallRecord) -> str:
    """One call as a valid JSON line (no trailing newline), whatever the record holds."""
    usage = record.usage
    request = record.request
    labels = record.labels
    line: dict[str, Any] = {
        "time": _end_time(record.end_time_unix),
        "provider": _text(request.provider) or "",
        "model": _text(record.model),
        "request_model": _text(request.model),
        "agent": _text(labels.agent),
        "workflow": _text(labels.workflow),
        "task": _text(labels.task),
        "user": _text(labels.user),
        "operation": _text(request.operation) or "",
    }
    counts = [count(getattr(usage, key, None)) for key in TOKEN_KEYS] if usage is not None else [None] * 5
    bad_counts = usage is not None and (getattr(usage, "invalid", False) is True or INVALID in counts)
    for key, number in zip(TOKEN_KEYS, counts, strict=True):
        # One count that is not a token count makes none of them trusted (as in records.make_usage).
        line[key] = None if bad_counts else number
    cost = _amount(record.cost_usd)
    line["cost_usd"] = cost
    line["cost_source"] = _text(record.cost_source) if cost is not None else None
    line["estimated"] = bool(usage is not None and usage.estimated is True and not bad_counts)
    # The recorder flags a provider's invalid usage and may estimate instead: then the counts are the estimate.
    line["usage_invalid"] = bad_counts or getattr(record, "usage_invalid", False) is True
    line["duration_s"] = _amount(record.duration_s, 6)
    line["ttfc_s"] = _amount(record.time_to_first_chunk_s, 6)
    error = _text(record.error_type)
    line["error"] = redact(error) if error else error
    # Newer keys last, so older readers' key order still holds.
    line["input_cost_usd"] = _amount(record.input_cost_usd) if cost is not None else None
    line["output_cost_usd"] = _amount(record.output_cost_usd) if cost is not None else None
    tool_calls = getattr(record.result, "tool_calls", 0)
    line["tool_calls"] = tool_calls if _is_count(tool_calls) else 0
    # Another instrumentation's span the call was read from (GenAISpanProcessor); null for our own calls.
    line["source"] = _text(getattr(request, "source", None))
    line["tier"] = None if usage is None or bad_counts else _text(getattr(usage, "service_tier", None))
    line["tool_fee_usd"] = _amount(record.tool_fee_usd) if cost is not None else None
    details = getattr(usage, "details", ()) if usage is not None and not bad_counts else ()
    server_tools = sum(value for key, value in details if key in ("web_searches", "storage_searches"))
    line["server_tool_calls"] = server_tools if _is_count(server_tools) else 0
    line["unpriced_dimensions"] = [str(name) for name in record.unpriced_dimensions] if cost is not None else []
    line["batch_id"] = _text(request.attributes.get(semconv.OTEL_TOKENS_BATCH_ID)) if request.attributes else None
    # ensure_ascii keeps every line pure ASCII, so a byte count is a character count.
    return json.dumps(line, ensure_ascii=True, separators=(", ", ": "), allow_nan=False)


# Writers alive in this process, so a fork can give each child a fresh lock.
_writers: weakref.WeakSet[UsageLogWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class UsageLogWriter:
    """Appends one line per call to a file; thread-safe, fork-safe, and ``write`` never raises.

    The constructor fails loudly: a path that cannot be opened for appending, a symlink or anything but
    a regular file raises ``ValueError`` naming ``setting``. A new file is created 0600.
    After that, an I/O error is logged once as a warning and the line is dropped (``dropped_lines``).
    """

    def __init__(self, path: str | os.PathLike[str], setting: str = "OTEL_TOKENS_LOG") -> None:
        self.path = os.fspath(path)
        try:
            self._fd: int | None = open_private_append(self.path, setting)
        except OSError as err:
            raise ValueError(f"cannot open the usage log {self.path!r} ({setting}) for appending: "
                             f"{err.strerror or err}") from err
        self._lock = threading.Lock()
        self._failed = False
        self.dropped_lines = 0
        _writers.add(self)

    def write(self, record: CallRecord) -> None:
        """Append one call; a record we cannot format is an internal error, logged like any other."""
        try:
            line = record_to_line(record)
        except Exception:
            log_internal_error("formatting a usage-log line")
            if raise_internal_errors():
                raise
            self.dropped_lines += 1
            return
        self.write_line(line)

    def write_line(self, line: str) -> bool:
        """Append an already formatted line (the newline is added here); False if it was dropped."""
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        with self._lock:
            fd = self._fd
            if fd is None:
                self.dropped_lines += 1
                return False
            try:
                written = os.write(fd, data)
                while written < len(data):
                    # Only on a full disk or a signal: the line is no longer atomic, but stays whole.
                    written += os.write(fd, data[written:])
            except OSError as err:
                self.dropped_lines += 1
                if not self._failed:
                    self._failed = True
                    _logger.warning("cannot write to the usage log %r (%s); dropping lines",
                                    self.path, err.strerror or err)
                return False
        return True

    def close(self) -> None:
        """Close the file; later writes are dropped. Idempotent."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> UsageLogWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def parse_line(text: str | bytes) -> dict[str, Any] | None:
    """One log line as a dict with every key of :data:`LINE_KEYS`, or None if it is not a valid line.

    Valid is what the writer writes (:data:`_FIELDS`). Keys a line lacks that are not required get
    their empty value (0 for cache and reasoning tokens, false for the flags, null otherwise); unknown
    keys are kept, so newer writers stay readable.
    """
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not REQUIRED_KEYS <= value.keys():
        return None
    for key, (valid, nullable) in _FIELDS.items():
        if key not in value:
            value[key] = _MISSING.get(key)
            continue
        field = value[key]
        if field is None:
            if not nullable:
                return None
        elif not valid(field):
            return None
    try:
        value["_unix_time"] = parse_time(value["time"])
    except ValueError:
        return None
    return value


# What a line that lacks an optional key means.
_MISSING: Final = {"cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "estimated": False,
                   "usage_invalid": False, "tool_calls": 0, "server_tool_calls": 0}


@dataclass(frozen=True, slots=True)
class LogScan:
    """A usage log read whole: its valid lines and the numbers (from 1) of the lines skipped."""

    lines: list[dict[str, Any]]
    bad_line_numbers: list[int]

    def describe_skipped(self, path: str | os.PathLike[str]) -> str:
        numbers = self.bad_line_numbers
        shown = ", ".join(str(number) for number in numbers[:_LINES_NAMED])
        more = f" and {len(numbers) - _LINES_NAMED} more" if len(numbers) > _LINES_NAMED else ""
        return (f"skipped {len(numbers)} corrupted line(s) in {os.fspath(path)} "
                f"(line{'s' if len(numbers) != 1 else ''} {shown}{more})")


_LINES_NAMED: Final = 10


def scan_usage_log(path: str | os.PathLike[str]) -> LogScan:
    """Every valid line of a usage log and where the invalid ones are; raises ``OSError`` only when the
    file cannot be opened or read."""
    lines: list[dict[str, Any]] = []
    bad: list[int] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            parsed = parse_line(raw)
            if parsed is None:
                bad.append(number)
                parsed = _recover_glued(raw)
            if parsed is not None:
                lines.append(parsed)
    return LogScan(lines, bad)


def read_usage_log(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """All valid lines of a usage log, and how many non-blank lines were skipped as invalid.

    Each line comes back normalised by :func:`parse_line` and carries ``_unix_time`` (float). Skipped
    lines are named in one WARNING. Raises ``OSError`` (``FileNotFoundError``) only when the file cannot
    be opened.
    """
    scan = scan_usage_log(path)
    if scan.bad_line_numbers:
        _logger.warning(scan.describe_skipped(path))
    return scan.lines, len(scan.bad_line_numbers)


# Every line starts with this; inside a JSON string the quotes would be escaped, so it marks a record.
_LINE_START: Final = b'{"time": '


def _recover_glued(raw: bytes) -> dict[str, Any] | None:
    """A writer killed mid-write can leave a torn line; the next append then follows it on the same
    line. The torn part is lost (counted as skipped); the complete line after it is recovered."""
    start = raw.rfind(_LINE_START)
    return parse_line(raw[start:]) if start > 0 else None


def lines_from_records(records: Iterable[CallRecord]) -> list[dict[str, Any]]:
    """Records as parsed log lines, as if written and read back (for tests and in-memory reports)."""
    parsed = [parse_line(record_to_line(record)) for record in records]
    return [line for line in parsed if line is not None]


__all__ = [
    "LINE_KEYS",
    "LogScan",
    "UsageLogWriter",
    "format_time",
    "lines_from_records",
    "parse_line",
    "parse_time",
    "read_usage_log",
    "record_to_line",
    "scan_usage_log",
]
