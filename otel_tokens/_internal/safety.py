"""Fail open: observing a call must never break it.

Internal errors are logged and swallowed. With ``OTEL_TOKENS_RAISE_INTERNAL_ERRORS=1`` (the test suite
sets it) they are re-raised, so our bugs fail tests while users never see them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

_logger = logging.getLogger("otel_tokens")


def raise_internal_errors() -> bool:
    return os.environ.get("OTEL_TOKENS_RAISE_INTERNAL_ERRORS") == "1"


def log_internal_error(what: str) -> None:
    """Log the exception being handled; call from an ``except`` block."""
    _logger.exception("otel_tokens: internal error while %s; the application call is unaffected", what)


def guarded(what: str, func: Callable[..., Any], *args: Any) -> Any:
    """Run observing code; on error log it, return None (or re-raise under the test switch)."""
    try:
        return func(*args)
    except Exception:
        log_internal_error(what)
        if raise_internal_errors():
            raise
        return None
