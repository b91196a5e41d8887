"""How the long-running commands (``demo``, ``fake-server``, ``serve``) stop: SIGINT or SIGTERM sets an event,
so the command closes what it opened, flushes and exits 0.

Both handlers are set explicitly: a background job of a non-interactive shell starts with SIGINT ignored
(Python then leaves it so), and SIGTERM's default would skip the closing.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """Sets ``stop`` on the first SIGINT/SIGTERM and returns the handlers it replaced, for
    :func:`restore_signals`. A second signal acts as it did before, for a closing that hangs.
    Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        previous[signum] = handler if handler is not None else signal.SIG_DFL

    def first_signal(signum: int, frame: Any) -> None:
        stop.set()
        restore_signals(previous)

    for signum in previous:
        signal.signal(signum, first_signal)
    return previous


def restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
