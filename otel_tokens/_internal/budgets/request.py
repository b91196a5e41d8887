"""Per-request budgets: ``with otel_tokens.budget(limit_usd=0.10) as b:``, or ``with otel_tokens.budget() as
b:`` for a view of the calls inside with no limit.

An ad hoc budget that lives in a ``ContextVar``: it follows async tasks (asyncio, trio) and threads started
with a copied context, and nests (a call counts against every enclosing per-request budget, and is blocked if
any would pass). It is in memory only and is never shared or reported; it ends with its block.
``b.statistics()`` counts the calls made inside like ``get_statistics()`` counts the process's.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, TypeVar

from otel_tokens._internal.base.errors import ConfigError
from otel_tokens._internal.base.formatting import machine_values
from otel_tokens._internal.budgets.manager import (
    ACTION_WARN,
    REQUEST_ACCOUNTS,
    SCOPE_REQUEST,
    Budget,
    new_account,
    new_ledger,
)

F = TypeVar("F", bound=Callable[..., Any])


class budget:  # noqa: N801 - reads like contextlib's helpers at the call site
    """A per-request budget in USD, as ``with``, ``async with`` or a decorator.

    ``action="block"`` (the default) makes a call that would pass ``limit_usd`` raise
    ``BudgetExceededError`` (``scope == "request"``) before it is sent; it is otherwise quiet, but calls
    the callbacks it is given. ``"warn"`` lets calls through and warns like ``set_budget()``: the call
    whose cost reaches ``warn_at`` of the limit logs a WARNING, adds the span event
    ``otel_tokens.budget.warning`` and calls ``on_warning``; the call that takes spend over the limit logs
    an ERROR, adds ``otel_tokens.budget.exceeded`` and calls ``on_exceeded``; each once per use. The
    callbacks get the budget's status dict (``scope``, ``name``, ``limit_usd``, ``spent_usd``, ...).
    ``spent_usd`` and ``remaining_usd`` read the spend of the innermost active (or last) use.

    Without ``limit_usd`` it never refuses or warns: ``statistics()`` is then the point, the totals of the
    calls made inside (``remaining_usd`` is infinite, ``limit_usd`` None).
    """

    __slots__ = ("_budget", "_unlimited", "_on_warning", "_on_exceeded", "_entries", "_last")

    def __init__(self, limit_usd: float | None = None, action: str = "block", *, warn_at: float = 0.9,
                 name: str = "request", on_warning: Callable[[dict[str, Any]], None] | None = None,
                 on_exceeded: Callable[[dict[str, Any]], None] | None = None) -> None:
        # Validates like set_budget() and raises ValueError for a bad limit, action, warn_at or callback.
        self._unlimited = limit_usd is None
        if self._unlimited:
            self._budget = Budget(name, math.inf, warn_at, ACTION_WARN, None, scope=SCOPE_REQUEST)
        else:
            self._budget = Budget(name, limit_usd, warn_at, action, None, scope=SCOPE_REQUEST)  # type: ignore[arg-type]
        for label, callback in (("on_warning", on_warning), ("on_exceeded", on_exceeded)):
            if callback is not None and not callable(callback):
                raise ConfigError(f"budget for request {name!r}: {label} must be callable, got {callback!r}")
        self._on_warning = on_warning
        self._on_exceeded = on_exceeded
        self._entries: list[tuple[Any, contextvars.Token]] = []
        self._last: Any = None

    @property
    def limit_usd(self) -> float | None:
        return None if self._unlimited else self._budget.limit_usd

    def _account(self) -> Any:
        return self._entries[-1][0] if self._entries else self._last

    @property
    def spent_usd(self) -> float:
        """Settled cost of the calls made inside (so far)."""
        account = self._account()
        return account.spent if account is not None else 0.0

    def statistics(self) -> dict[str, Any]:
        """The calls made inside the innermost active (or last) use, so far, as ``get_statistics()`` counts
        the process's: ``total_calls``, tokens by type, ``total_cost_usd``, ``by_agent``, ``by_model``,
        ``by_provider``, ``by_operation``, ``by_workflow``, ``by_task``, ``by_user``, ``top_calls``, ...
        A call counts in every enclosing budget. Only this request's calls: no budgets, no process totals."""
        account = self._account()
        ledger = account.ledger if account is not None else None
        if ledger is None:
            ledger = new_ledger()
            if ledger is None:  # no runtime yet, so no call was recorded
                return {}
        statistics = ledger.statistics()
        statistics.pop("budgets", None)
        return machine_values(statistics)

    @property
    def remaining_usd(self) -> float:
        return max(self._budget.limit_usd - self.spent_usd, 0.0)

    def __enter__(self) -> budget:
        account = new_account(self._budget, self._on_warning, self._on_exceeded)
        token = REQUEST_ACCOUNTS.set((*REQUEST_ACCOUNTS.get(), account))
        self._entries.append((account, token))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        account, token = self._entries.pop()
        self._last = account
        try:
            REQUEST_ACCOUNTS.reset(token)
        except ValueError:  # left in another context than it was entered (a generator moved)
            REQUEST_ACCOUNTS.set(tuple(a for a in REQUEST_ACCOUNTS.get() if a is not account))

    async def __aenter__(self) -> budget:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        """A fresh budget for every call of ``func`` (a function or a coroutine function)."""
        spec = self._budget

        def fresh() -> budget:
            return budget(None if self._unlimited else spec.limit_usd, spec.action, warn_at=spec.warn_at, name=spec.agent,
                          on_warning=self._on_warning, on_exceeded=self._on_exceeded)

        if inspect.iscoroutinefunction(func):

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return await func(*args, **kwargs)

            return functools.wraps(func)(run_async)  # type: ignore[return-value]

        def run(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return functools.wraps(func)(run)  # type: ignore[return-value]
