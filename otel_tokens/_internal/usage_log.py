"""The usage log: one JSON line per finished call (``OTEL_TOKENS_LOG=usage.jsonl``), and its reader.

A line, keys in this order::

    {"time": "2026-11-22T10:00:00.123456Z", "provider": "openai", "model": "gpt-4o-mini-2024-07-18",
     "request_model": "gpt-4o-mini", "agent": "planner", "workflow": null, "task": null, "user": null,
     "operation": "chat", "input_tokens": 1215, "output_tokens": 45, "cache_read_tokens": 1152,
     "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.000072, "cost_source": "local",
     "estimated": false, "duration_s": 0.412, "ttfc_s": null, "error": null}

``time`` is when the call ended (UTC); ``model`` is the model that answered, ``request_model`` the one
asked for. Token counts follow the semconv: input includes cache reads and writes, output includes
reasoning. They are null when the call produced no usage (an error before any answer). ``cost_usd`` is
null when the model has no known price; ``cost_source`` is ``local`` (our price book) or ``provider``.

The writer opens the file once with ``O_APPEND`` and writes each line with one ``os.write`` of the whole
encoded line, so lines from concurrent threads or processes never interleave and a killed process
leaves only whole lines. The reader skips (and counts) anything that is not a whole, valid line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from otel_tokens._internal.records import CallRecord
from otel_tokens._internal.safety import log_internal_error, raise_internal_errors

_logger = logging.getLogger("otel_tokens")

LINE_KEYS: Final = (
    "time", "provider", "model", "request_model", "agent", "workflow", "task", "user", "operation",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_usd", "cost_source", "estimated", "usage_invalid", "duration_s", "ttfc_s", "error",
)
TOKEN_KEYS: Final = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
# A line without these is not a call we can count.
REQUIRED_KEYS: Final = frozenset({"time", "provider", "operation", "input_tokens", "output_tokens"})
_STRING_KEYS: Final = ("provider", "model", "request_model", "agent", "workflow", "task", "user", "operation",
                       "cost_source", "error")


def format_time(unix_seconds: float) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``: sorts as text and parses with ``fromisoformat``."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """Unix seconds from an ISO-8601 time; a time without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def record_to_line(record: CallRecord) -> str:
    """One call as a JSON object on one line (no trailing newline)."""
    usage = record.usage
    request = record.request
    labels = record.labels
    end = record.end_time_unix or time.time()
    line: dict[str, Any] = {
        "time": format_time(end),
        "provider": request.provider,
        "model": record.model,
        "request_model": request.model,
        "agent": labels.agent,
        "workflow": labels.workflow,
        "task": labels.task,
        "user": labels.user,
        "operation": request.operation,
    }
    for key in TOKEN_KEYS:
        line[key] = getattr(usage, key) if usage is not None else None
    line["cost_usd"] = record.cost_usd
    line["cost_source"] = record.cost_source if record.cost_usd is not None else None
    line["estimated"] = bool(usage is not None and usage.estimated)
    line["usage_invalid"] = record.usage_invalid
    line["duration_s"] = round(record.duration_s, 6)
    ttfc = record.time_to_first_chunk_s
    line["ttfc_s"] = round(ttfc, 6) if ttfc is not None else None
    line["error"] = record.error_type
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

    The constructor fails loudly: a path that cannot be opened for appending raises ``ValueError``.
    After that, an I/O error is logged once as a warning and the line is dropped (``dropped_lines``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd: int | None = os.open(self.path, flags, 0o644)
        except OSError as err:
            raise ValueError(f"cannot open the usage log {self.path!r} for appending: {err.strerror or err}") from err
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
                    _logger.warning("otel_tokens: cannot write to the usage log %r (%s); dropping lines",
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

    Keys a line lacks that are not required get their empty value (0 for cache and reasoning tokens,
    null otherwise); unknown keys are kept, so newer writers stay readable.
    """
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not REQUIRED_KEYS <= value.keys():
        return None
    time_text = value["time"]
    if not isinstance(time_text, str):
        return None
    try:
        value["_unix_time"] = parse_time(time_text)
    except ValueError:
        return None
    for key in TOKEN_KEYS:
        count = value.get(key, 0 if key not in ("input_tokens", "output_tokens") else None)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            return None
        value[key] = count
    for key in ("cost_usd", "duration_s", "ttfc_s"):
        number = value.get(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)
                                   or number != number or number < 0):
            return None
        value[key] = number
    for key in _STRING_KEYS:
        text_value = value.get(key)
        if text_value is not None and not isinstance(text_value, str):
            return None
        value[key] = text_value
    if not isinstance(value["provider"], str) or not isinstance(value["operation"], str):
        return None
    value["estimated"] = value.get("estimated") is True
    value["usage_invalid"] = value.get("usage_invalid") is True
    return value


def read_usage_log(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """All valid lines of a usage log, and how many non-blank lines were skipped as invalid.

    Each line comes back normalised by :func:`parse_line` and carries ``_unix_time`` (float). Raises
    ``OSError`` (``FileNotFoundError``) only when the file cannot be opened.
    """
    lines: list[dict[str, Any]] = []
    skipped = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            parsed = parse_line(raw)
            if parsed is None:
                skipped += 1
                parsed = _recover_glued(raw)
            if parsed is not None:
                lines.append(parsed)
    return lines, skipped


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
    "UsageLogWriter",
    "format_time",
    "lines_from_records",
    "parse_line",
    "parse_time",
    "read_usage_log",
    "record_to_line",
]
