"""Finished batches counted once: a batch read again (polled, listed, read by another process) is not
counted again.

A batch is known by its provider and id (``openai:batch_abc``, ``gcp.gemini:batches/123``). This
process remembers the last 10,000 it saw. Where a budget store is configured, the store is asked too
(an atomic claim: SQLite ``INSERT OR IGNORE``, Redis ``SET NX``), and where a usage log is, the ids in
its lines (``batch_id``), read from where the last look stopped. These are asked only when a batch is
seen finished, never on an ordinary call. A backend that cannot answer is logged once and left out:
the batch is then counted once in this process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol

from otel_tokens._internal.accounting.usage_log import parse_line

_logger = logging.getLogger("otel_tokens")

MAX_BATCHES_SEEN: Final = 10_000


def batch_key(provider: str, batch_id: str) -> str:
    return f"{provider}:{batch_id}"


class BatchIds(Protocol):
    """Somewhere batch ids outlive the process (the budget store, the usage log)."""

    description: str

    def claim_batch(self, key: str) -> bool:
        """True if ``key`` was not seen before (it is from now on); raises when it cannot tell."""


class SeenBatches:
    """The recorder's ``batches``: whether a finished batch is seen for the first time."""

    def __init__(self, backends: Sequence[BatchIds] = (), max_ids: int = MAX_BATCHES_SEEN) -> None:
        self._backends = tuple(backends)
        self._max_ids = max_ids
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def first_sighting(self, provider: str, batch_id: str) -> bool:
        key = batch_key(provider, batch_id)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            # Remembered before the backends answer: another thread reading the same batch now counts nothing.
            self._seen[key] = None
            if len(self._seen) > self._max_ids:
                self._seen.popitem(last=False)
        for backend in self._backends:
            try:
                if not backend.claim_batch(key):
                    return False
            except Exception as error:
                if backend.description not in self._failed:
                    self._failed.add(backend.description)
                    _logger.warning(
                        "cannot check finished batches against %s (%s: %s); each batch is counted once "
                        "in this process, and may be counted again by another", backend.description,
                        type(error).__name__, error,
                    )
        return True


class LoggedBatchIds:
    """The batch ids in a usage log's lines, any process's: read from where the last look stopped (the
    whole file the first time), so lines appended since by other processes are seen. Not a lock: two
    processes reading one batch at the same moment may both count it (a store's claim is atomic)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"the usage log {path}"
        self._offset = 0
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def claim_batch(self, key: str) -> bool:
        with self._lock:
            self._read_new_lines()
            if key in self._ids:
                return False
            self._ids.add(key)
            return True

    def _read_new_lines(self) -> None:
        with open(self.path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size < self._offset:  # truncated or replaced: read it afresh
                self._offset = 0
            handle.seek(self._offset)
            for raw in handle:
                if not raw.endswith(b"\n"):  # a line being written: read next time
                    break
                self._offset += len(raw)
                if b'"batch_id": "' not in raw:  # most lines: no JSON parsing
                    continue
                line = parse_line(raw)
                if line is not None and isinstance(line.get("batch_id"), str):
                    self._ids.add(batch_key(line["provider"], line["batch_id"]))


__all__ = ["MAX_BATCHES_SEEN", "BatchIds", "LoggedBatchIds", "SeenBatches", "batch_key"]
