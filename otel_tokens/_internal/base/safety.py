"""Fail open: observing a call must never break it.

Internal errors are logged and swallowed. With ``OTEL_TOKENS_RAISE_INTERNAL_ERRORS=1`` (the test suite
sets it) they are re-raised, so our bugs fail tests while users never see them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

_logger = logging.getLogger("otel_tokens")


def raise_internal_errors() -> bool:
    return os.environ.get("OTEL_TOKENS_RAISE_INTERNAL_ERRORS") == "1"


def log_internal_error(what: str) -> None:
    """Log the exception being handled; call from an ``except`` block."""
    _logger.exception("internal error while %s; the application call is unaffected", what)


def guarded(what: str, func: Callable[..., Any], *args: Any) -> Any:
    """Run observing code; on error log it, return None (or re-raise under the test switch)."""
    try:
        return func(*args)
    except Exception:
        log_internal_error(what)
        if raise_internal_errors():
            raise
        return None


class OnceEach:
    """Which keys of each kind were announced already: a warning per key, bounded.

    The first ``max_keys`` keys of a kind each get one announcement; after that at most one per
    ``quiet_s`` seconds for the rest, so ever-new keys (100k model names) neither grow memory nor flood
    the log.
    """

    def __init__(self, max_keys: int = 1024, quiet_s: float = 60.0) -> None:
        self._max_keys = max_keys
        self._quiet_s = quiet_s
        self._seen: dict[str, set[Any]] = {}
        self._last_overflow: dict[str, float] = {}
        self._lock = threading.Lock()

    def first(self, kind: str, key: Any) -> bool:
        seen = self._seen.get(kind)
        if seen is not None and key in seen:  # the common case, without the lock
            return False
        with self._lock:
            seen = self._seen.setdefault(kind, set())
            if key in seen:
                return False
            if len(seen) < self._max_keys:
                seen.add(key)
                return True
            now = time.monotonic()
            if now - self._last_overflow.get(kind, -math.inf) >= self._quiet_s:
                self._last_overflow[kind] = now
                return True
            return False
