"""Budgets in USD: warn when spend nears a limit, and optionally block calls that would take it over.

A budget has a scope: ``agent``, ``workflow``, ``task`` or ``user`` (it counts the calls carrying that
label with its name), ``total`` (every call; the name is only a label) or ``request`` (an ad hoc
``otel_tokens.budget()`` in the context). A call counts against every budget that applies to it and is
blocked if any blocking one would pass its limit. A budget counts the settled cost over the process
lifetime or a rolling window (``30s``, ``15m``, ``1h``, ``1d``, ...). Calls with no known price add nothing;
a cost that is not a finite number >= 0 never enters a total.

With a store (``OTEL_TOKENS_STORE``, see ``budget_store``), spend outlives the process and is shared:
blocking budgets reserve and settle on the store, warn-only ones settle there too (batched in the
background on Redis), and the local counts carry on, and are reconciled, while the store is down.

Thresholds fire once per crossing: the call whose cost takes spend to ``warn_at`` of the limit logs one
WARNING, adds a ``otel_tokens.budget.warning`` event to its span and calls ``on_warning``; the call that
takes spend over the limit logs one ERROR, adds ``otel_tokens.budget.exceeded`` and calls
``on_exceeded``. When a rolling window drops spend back under a threshold, the next crossing fires again.
A blocking per-request budget only calls the callbacks it was given (its refusals are the app's to handle).

A ``block`` budget also checks each call before it is sent: the projected cost (prompt tokens at the input
rate plus the output tokens the call will likely produce at the output rate: the 95th percentile of what
this model produced lately (with a store, seeded once per model from what the fleet produced), capped by
the request's ``max_tokens``, ``default_max_output_tokens`` for a model never seen; see
``budgets.projection``; never less than the stated maximum alone) is added to
what was spent and to what calls in flight have reserved; if that exceeds the limit the call raises
:class:`BudgetExceededError` and is not sent. A model with no known price projects 0, so it is only
blocked once spend is already over the limit. Otherwise the projection is reserved until the call settles
and its actual cost replaces it, so concurrent calls cannot all pass on the same headroom. The first
blocked call of a window logs one ERROR.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import itertools
import logging
import math
import os
import re
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_tokens import semconv
from otel_tokens._internal.base.errors import BudgetExceededError, BudgetStoreUnavailableError, ConfigError
from otel_tokens._internal.base.formatting import format_usd
from otel_tokens._internal.base.instruments import observable_gauge
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Usage, valid_cost
from otel_tokens._internal.base.safety import guarded
from otel_tokens._internal.budgets.projection import (
    DEFAULT_OUTPUT_TOKENS,
    MAX_KEYS,
    OutputHistory,
    history_key,
)

if TYPE_CHECKING:  # the store module (sqlite3) loads only when a store is configured
    from otel_tokens._internal.budgets.store import Settle, SpendStore

_logger = logging.getLogger("otel_tokens")
# The accounts (_Account) of the per-request budgets around the current code, outermost first; set by
# budgets.request.budget, read by every reservation.
REQUEST_ACCOUNTS: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "otel_tokens_request_budgets", default=()
)

ACTION_WARN: Final = "warn"
ACTION_BLOCK: Final = "block"
ACTIONS: Final = (ACTION_WARN, ACTION_BLOCK)
# The budget window label (status "window", otel_tokens.budget.window) of a budget without a window.
WINDOW_LIFETIME: Final = semconv.BUDGET_WINDOW_LIFETIME
SCOPE_AGENT: Final = semconv.BUDGET_SCOPE_AGENT
SCOPE_TOTAL: Final = semconv.BUDGET_SCOPE_TOTAL
SCOPE_REQUEST: Final = semconv.BUDGET_SCOPE_REQUEST
# Scopes set_budget() takes; "request" budgets come only from otel_tokens.budget().
SCOPES: Final = semconv.BUDGET_SCOPES
STORE_FAILURE_OPEN: Final = "open"
STORE_FAILURE_CLOSED: Final = "closed"

# Budget event attributes. Not yet in semconv.py.
OTEL_TOKENS_BUDGET_SPENT_USD: Final = semconv.OTEL_TOKENS_BUDGET_SPENT_USD
OTEL_TOKENS_BUDGET_LIMIT_USD: Final = semconv.OTEL_TOKENS_BUDGET_LIMIT_USD
OTEL_TOKENS_BUDGET_UTILIZATION: Final = semconv.OTEL_TOKENS_BUDGET_UTILIZATION

_WINDOW_PATTERN: Final = re.compile(r"([1-9][0-9]*)([smhd])")
_WINDOW_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
# A rolling window keeps at most this many cost buckets (plus one); a call's cost may expire up to
# window / _WINDOW_BUCKETS late, never early.
_WINDOW_BUCKETS: Final = 1024
# Absorbs float rounding in sums of costs, so a call that exactly reaches the limit is not blocked.
_EPSILON_USD: Final = 1e-12
_FILE_KEYS: Final = ("action", "limit_usd", "name", "scope", "warn_at", "window")

# Output counts of finished calls waiting for the next settle or flush to take them to the store's history;
# past this, the oldest are dropped (the process's own rings keep them).
_MAX_PENDING_SAMPLES: Final = 1024
# A call's own settle takes the waiting counts along only once this many wait: written one by one they would
# add a page write to every SQLite settle; the background flush takes the rest within 0.25 s.
_SAMPLES_PER_SETTLE: Final = 16

_OK, _WARNING, _EXCEEDED = 0, 1, 2
_OP_EMBEDDINGS: Final = semconv.OP_EMBEDDINGS
_STATUS_NAMES: Final = ("ok", "warning", "exceeded")


class BudgetSpecError(ConfigError):
    """A budget that cannot be used; the message names the file (if any), the entry and the problem."""

    def __init__(self, problem: str, entry: str | None = None, path: str | None = None) -> None:
        self.problem = problem
        self.entry = entry
        self.path = path
        where = [part for part in (path, f"budget {entry!r}" if entry is not None else None) if part]
        super().__init__(": ".join([*where, problem]))


def window_seconds(window: str | None) -> int | None:
    """Seconds in a window such as ``"15m"``; None for the process lifetime. Raises ValueError."""
    if window is None:
        return None
    match = _WINDOW_PATTERN.fullmatch(window) if isinstance(window, str) else None
    if match is None:
        raise ValueError(
            f"window {window!r} is not a positive whole number followed by s, m, h or d (e.g. 30s, 15m, 1h, 30d)"
        )
    return int(match.group(1)) * _WINDOW_UNIT_SECONDS[match.group(2)]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem(
    agent: object, limit_usd: object, warn_at: object, action: object, window: object, scope: object = SCOPE_AGENT
) -> str | None:
    """What is wrong with a budget's fields, or None."""
    if scope not in SCOPES and scope != SCOPE_REQUEST:
        return f"scope must be one of {', '.join(SCOPES)}, got {scope!r}"
    if not isinstance(agent, str) or not agent.strip():
        return f"{'agent' if scope == SCOPE_AGENT else 'name'} must be a non-empty string, got {agent!r}"
    if not _is_number(limit_usd):
        return f"limit_usd {limit_usd!r} is not a number"
    if scope == SCOPE_REQUEST and limit_usd == math.inf:
        pass  # otel_tokens.budget() without a limit: a view of the calls inside, never a refusal
    elif not math.isfinite(limit_usd) or limit_usd < 0:  # type: ignore[arg-type]
        return f"limit_usd must be a finite number >= 0, got {limit_usd!r}"
    if not _is_number(warn_at):
        return f"warn_at {warn_at!r} is not a number"
    if not 0 < warn_at <= 1:  # type: ignore[operator]
        return f"warn_at must be in (0, 1], got {warn_at!r}"
    if action not in ACTIONS:
        return f"action must be 'warn' or 'block', got {action!r}"
    try:
        window_seconds(window)  # type: ignore[arg-type]
    except ValueError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class Budget:
    """A spending limit. ``agent`` is the budget's name in its ``scope`` (the agent, workflow, task or
    user name; a label for ``total``). ``window`` None counts the whole lifetime."""

    agent: str
    limit_usd: float
    warn_at: float = 0.9
    action: str = ACTION_WARN
    window: str | None = None
    scope: str = SCOPE_AGENT

    def __post_init__(self) -> None:
        problem = _problem(self.agent, self.limit_usd, self.warn_at, self.action, self.window, self.scope)
        if problem is not None:
            raise ConfigError(f"budget for {self.scope} {self.agent!r}: {problem}")

    @property
    def name(self) -> str:
        return self.agent

    @functools.cached_property
    def key(self) -> str:
        """The budget's key in statistics and stores: the agent's name for agent budgets (as before
        scopes existed), ``scope:name`` otherwise."""
        return self.agent if self.scope == SCOPE_AGENT else f"{self.scope}:{self.agent}"

    @functools.cached_property
    def store_key(self) -> str:
        """The key in a shared store: always ``scope:name``."""
        return f"{self.scope}:{self.agent}"


def parse_budgets(spec: str) -> list[Budget]:
    """Budgets from the ``OTEL_TOKENS_BUDGETS`` form. Raises :class:`BudgetSpecError`.

    Grammar (spaces around entries and parts are ignored)::

        spec    := entry ("," entry)*          empty entries are skipped
        entry   := [scope ":"] name "=" limit [":" action] ["@" window]    the suffixes in either order
        scope   := "agent" (the default) | "workflow" | "task" | "user" | "total"
                                               a bare name "total" is the total budget
        limit   := US dollars, a number >= 0   e.g. 0.50
        action  := "warn" (the default) | "block"
        window  := N "s" | N "m" | N "h" | N "d"   a rolling window, e.g. 30s, 15m, 1h, 30d;
                                               omitted: the process lifetime

    Example: ``researcher=0.50,workflow:research=5.00:block@1d,total=100:warn@30d``. ``warn_at`` is 0.9
    here; a budgets file sets it.
    """
    budgets: list[Budget] = []
    seen: set[tuple[str, str]] = set()
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        agent, equals, rest = entry.partition("=")
        agent = agent.strip()
        if not equals or not agent:
            raise BudgetSpecError("expected [scope:]name=limit[:action][@window]", entry)
        scope, colon, name = agent.partition(":")
        if colon:
            scope, agent = scope.strip().lower(), name.strip()
            if scope not in SCOPES:
                raise BudgetSpecError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}", entry)
        else:
            scope = SCOPE_TOTAL if agent == SCOPE_TOTAL else SCOPE_AGENT
        # rest is "limit" then ":action" / "@window" suffixes.
        parts = re.split(r"([:@])", rest)
        limit_text, suffixes = parts[0].strip(), parts[1:]
        fields: dict[str, str] = {}
        for marker, value in zip(suffixes[::2], suffixes[1::2], strict=True):
            name = "action" if marker == ":" else "window"
            if name in fields:
                raise BudgetSpecError(f"{name} given twice", entry)
            fields[name] = value.strip()
        try:
            limit = float(limit_text)
        except ValueError:
            raise BudgetSpecError(f"limit {limit_text!r} is not a number", entry) from None
        budget = _budget(
            agent, limit, 0.9, fields.get("action", ACTION_WARN).lower(), fields.get("window"), entry, scope=scope
        )
        if (scope, agent) in seen:
            raise BudgetSpecError(f"{scope} {agent!r} has more than one budget", entry)
        seen.add((scope, agent))
        budgets.append(budget)
    return budgets


def load_budgets_file(path: str | os.PathLike[str]) -> list[Budget]:
    """Budgets from a TOML file. Raises :class:`BudgetSpecError` naming the file and the entry.

    Shape (only ``limit_usd`` is required)::

        [budgets.researcher]
        scope = "agent"      # or workflow, task, user, total (the default: agent)
        name = "researcher"  # the name in the scope; omitted: the table's name
        limit_usd = 0.50
        warn_at = 0.9        # fraction of the limit, in (0, 1]
        action = "block"     # or "warn" (the default)
        window = "1d"        # rolling window; omitted: the process lifetime
    """
    import tomllib

    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise BudgetSpecError(f"cannot read the budgets file: {error.strerror or error}", path=name) from None
    except tomllib.TOMLDecodeError as error:
        raise BudgetSpecError(f"not valid TOML: {error}", path=name) from None
    unknown = sorted(set(data) - {"budgets"})
    if unknown:
        raise BudgetSpecError(f"unknown top-level key(s) {', '.join(unknown)}; expected [budgets.<agent>]", path=name)
    tables = data.get("budgets", {})
    if not isinstance(tables, dict):
        raise BudgetSpecError("'budgets' must be a table of [budgets.<agent>] tables", path=name)
    budgets = []
    seen: set[tuple[Any, Any]] = set()
    for agent, table in tables.items():
        if not isinstance(table, dict):
            raise BudgetSpecError("must be a table with limit_usd", agent, name)
        unknown = sorted(set(table) - set(_FILE_KEYS))
        if unknown:
            raise BudgetSpecError(
                f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_FILE_KEYS)}", agent, name
            )
        if "limit_usd" not in table:
            raise BudgetSpecError("limit_usd is required", agent, name)
        budget = _budget(
            table.get("name", agent),
            table["limit_usd"],
            table.get("warn_at", 0.9),
            table.get("action", ACTION_WARN),
            table.get("window"),
            agent,
            name,
            scope=table.get("scope", SCOPE_AGENT),
        )
        if (budget.scope, budget.agent) in seen:
            raise BudgetSpecError(f"{budget.scope} {budget.agent!r} has more than one budget", agent, name)
        seen.add((budget.scope, budget.agent))
        budgets.append(budget)
    return budgets


def _budget(
    agent: str, limit: Any, warn_at: Any, action: Any, window: Any, entry: str, path: str | None = None,
    *, scope: Any = SCOPE_AGENT,
) -> Budget:
    problem = _problem(agent, limit, warn_at, action, window, scope)
    if problem is None and scope not in SCOPES:
        problem = f"scope must be one of {', '.join(SCOPES)}, got {scope!r}"
    if problem is not None:
        raise BudgetSpecError(problem, entry, path)
    return Budget(agent, limit, warn_at, action, window, scope)


# -- the manager -----------------------------------------------------------------------------------


class _Rates(Protocol):
    def cost(self, usage: Usage) -> float: ...


class _PriceBook(Protocol):
    def rates(self, provider: str | None, model: str | None) -> _Rates | None: ...

    def gateway_route(self, provider: str | None, model: str, server_address: str | None) -> tuple[str, str] | None: ...


StatusCallback = Callable[[dict[str, Any]], None]


class _Account:
    """One budget's mutable state; every field is guarded by the manager's lock.

    ``spent`` is the settled spend: counted here, or (``shared``) the store's figure as last read, with
    ``pending`` the costs settled here that the store has not confirmed yet.
    """

    __slots__ = (
        "budget", "window_s", "on_warning", "on_exceeded", "spent", "buckets", "reserved", "in_flight",
        "blocked_calls", "level", "block_logged", "generation", "shared", "pending", "pending_calls", "ledger",
    )

    def __init__(self, budget: Budget, on_warning: StatusCallback | None, on_exceeded: StatusCallback | None,
                 shared: bool = False):
        self.budget = budget
        self.window_s = window_seconds(budget.window)
        self.on_warning = on_warning
        self.on_exceeded = on_exceeded
        self.spent = 0.0
        # Rolling windows: [first_time, last_time, cost] buckets, oldest first.
        self.buckets: deque[list[float]] = deque()
        self.reserved = 0.0
        self.in_flight = 0
        self.blocked_calls = 0
        # The highest threshold already announced (_OK, _WARNING, _EXCEEDED) in this window.
        self.level = _OK
        self.block_logged = False
        # Bumped by reset(), so reservations made before it do not release what reset() zeroed.
        self.generation = 0
        self.shared = shared
        self.pending = 0.0
        self.pending_calls = 0
        # Per-request budgets: the calls made inside, counted like the process's ledger counts them.
        self.ledger: Any = None

    @property
    def view(self) -> float:
        return self.spent + self.pending

    @property
    def store_key(self) -> tuple[str, int | None]:
        return (self.budget.store_key, self.window_s)


# Makes the ledger of a per-request budget (the runtime binds accounting's Ledger; budgets may not import
# accounting); None before any runtime exists.
_request_ledger: Callable[[], Any] | None = None


def use_request_ledger(factory: Callable[[], Any] | None) -> None:
    """Count the calls inside each per-request budget with ``factory()`` (``record``, ``statistics``)."""
    global _request_ledger
    _request_ledger = factory


def new_ledger() -> Any:
    """A fresh ledger of the kind per-request budgets use, or None before any runtime exists."""
    factory = _request_ledger
    return factory() if factory is not None else None


def new_account(
    budget: Budget, on_warning: StatusCallback | None = None, on_exceeded: StatusCallback | None = None
) -> _Account:
    """An unregistered account, for a per-request budget; its ledger is made by its first call."""
    return _Account(budget, on_warning, on_exceeded)


class _Reservation:
    __slots__ = ("entries", "projected", "stored", "reservation_id", "settled")

    def __init__(self, entries: tuple[tuple[_Account, float, int], ...], projected: float) -> None:
        # (account, projected for it: 0 for warn-only budgets, the account's generation)
        self.entries = entries
        self.projected = projected
        # The shared accounts whose store holds this reservation, under reservation_id.
        self.stored: tuple[_Account, ...] = ()
        self.reservation_id: str | None = None
        self.settled = False


class _Pending:
    """A settle the store has not confirmed; ``attempted`` once it was sent (its id then stays fixed)."""

    __slots__ = ("entry", "accounts", "cost", "attempted")

    def __init__(self, entry: Settle, accounts: tuple[_Account, ...], cost: float) -> None:
        self.entry = entry
        self.accounts = accounts
        self.cost = cost
        self.attempted = False


class _StoreHealth:
    """Whether the store answered last time: one ERROR per outage, a counter per failure."""

    def __init__(self, store: SpendStore, failure: str, logger: logging.Logger) -> None:
        self.store = store
        self.failure = failure
        self.logger = logger
        self.up = True
        self.last_failure = 0.0
        self.counter: Any = None
        self._lock = threading.Lock()

    def failed(self, error: BaseException, operation: str) -> None:
        counter = self.counter
        if counter is not None:
            guarded("counting a store error", counter.add, 1, {
                semconv.OTEL_TOKENS_STORE_KIND: self.store.kind, semconv.OTEL_TOKENS_STORE_OPERATION: operation,
            })
        with self._lock:
            first = self.up
            self.up = False
            self.last_failure = time.monotonic()
        if first:
            then = "let calls through" if self.failure == STORE_FAILURE_OPEN else "refuse calls"
            self.logger.error(
                "the budget store %s is unreachable (%s: %s); LLM calls go on and spend is "
                "counted locally and reconciled when the store returns; meanwhile blocking budgets %s "
                "(OTEL_TOKENS_STORE_FAILURE=%s)",
                self.store.description, type(error).__name__, error, then, self.failure,
            )

    def ok(self) -> None:
        if self.up:
            return
        with self._lock:
            was_down, self.up = not self.up, True
        if was_down:
            self.logger.warning("the budget store %s is reachable again", self.store.description)


class BudgetManager:
    """Budgets by scope; implements the recorder's ``Budgets`` protocol (``reserve`` and ``settle``).

    ``price_book`` (``rates(provider, model)``) and ``count_tokens(text, model)`` are only used to project
    the cost of a call against a ``block`` budget. ``clock`` (seconds, monotonic) drives rolling windows
    of budgets counted here. ``store`` (see ``budget_store.open_store``) keeps and shares spend.
    """

    def __init__(
        self,
        *,
        price_book: _PriceBook | None = None,
        count_tokens: Callable[[str, str], int] | None = None,
        default_max_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = _logger,
        store: SpendStore | None = None,
        store_failure: str = STORE_FAILURE_OPEN,
        flush_interval_s: float = 0.25,
        retry_interval_s: float = 1.0,
        max_history_keys: int = 1000,
    ) -> None:
        if (
            isinstance(default_max_output_tokens, bool)
            or not isinstance(default_max_output_tokens, int)
            or default_max_output_tokens < 0
        ):
            raise ValueError(
                f"default_max_output_tokens must be a non-negative integer, got {default_max_output_tokens!r}"
            )
        if store_failure not in (STORE_FAILURE_OPEN, STORE_FAILURE_CLOSED):
            raise ConfigError(f"store_failure must be 'open' or 'closed', got {store_failure!r}")
        self._price_book = price_book
        self._count_tokens = count_tokens
        self._default_max_output_tokens = default_max_output_tokens
        self._outputs = OutputHistory()
        # With a store: (provider, model, agent, output tokens) of finished calls not yet in the store's
        # history; the models whose stored history this process read; the history keys it writes
        # (at most max_history_keys, OTEL_TOKENS_MAX_KEYS).
        self._samples: deque[tuple[str, str, str | None, int]] = deque(maxlen=_MAX_PENDING_SAMPLES)
        self._history_read: set[tuple[str, str]] = set()
        self._history_keys: dict[tuple[str, str, str | None], str] = {}
        self._max_history_keys = max_history_keys
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        # ((scope, {name: account}), ...) of the scopes that have budgets; replaced, never mutated, so
        # reserve() reads it without the lock.
        self._index: tuple[tuple[str, dict[str, _Account]], ...] = ()
        self._shared_blocking = False
        self._store = store
        self._health = _StoreHealth(store, store_failure, logger) if store is not None else None
        self._queue: list[_Pending] = []
        self._flush_lock = threading.Lock()
        self._flush_interval_s = flush_interval_s
        self._retry_interval_s = retry_interval_s
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        # False while the flusher only carries output counts to the history (no queued settle yet): it
        # then sends those alone instead of reading every budget's spend each round.
        self._flusher_reads = False
        self._stop = threading.Event()
        self._invalid_cost_logged = False
        if store is not None:
            _STORE_MANAGERS.add(self)

    @property
    def store(self) -> SpendStore | None:
        return self._store

    def store_status(self) -> dict[str, Any] | None:
        """``{kind, url, available, pending_settles}`` of the shared store, or None without one."""
        if self._store is None or self._health is None:
            return None
        with self._lock:
            pending = len(self._queue)
        return {"kind": self._store.kind, "url": self._store.description, "available": self._health.up,
                "pending_settles": pending}

    # -- configuration -----------------------------------------------------------------------------
    def set_budget(
        self,
        agent: str,
        limit_usd: float,
        warn_at: float = 0.9,
        action: str = ACTION_WARN,
        window: str | None = None,
        on_warning: StatusCallback | None = None,
        on_exceeded: StatusCallback | None = None,
        scope: str = SCOPE_AGENT,
    ) -> Budget:
        """Add or replace a budget. Spend so far is kept; thresholds are announced afresh."""
        if scope not in SCOPES:
            raise ConfigError(f"budget for {scope} {agent!r}: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        budget = Budget(agent, limit_usd, warn_at, action, window, scope)
        for name, callback in (("on_warning", on_warning), ("on_exceeded", on_exceeded)):
            if callback is not None and not callable(callback):
                raise ConfigError(f"budget for {scope} {agent!r}: {name} must be callable, got {callback!r}")
        shared = self._store is not None
        with self._lock:
            account = self._accounts.get(budget.key)
            if account is None:
                account = _Account(budget, on_warning, on_exceeded, shared)
                self._accounts[budget.key] = account
                self._reindex()
            else:
                window_s = window_seconds(window)
                if shared:
                    account.spent = 0.0  # read afresh below: the store keeps one total per window
                elif account.window_s is None and window_s is not None and account.spent > 0:
                    # Lifetime spend has no times; count it as spent now, so it stays until the window passes.
                    now = self._clock()
                    account.buckets.append([now, now, account.spent])
                elif window_s is None:
                    account.buckets.clear()
                account.budget = budget
                account.window_s = window_s
                account.on_warning = on_warning
                account.on_exceeded = on_exceeded
                account.level = _OK
                account.block_logged = False
                self._reindex()
        if shared:
            # Continue from the stored spend (a restart, another worker), not from zero.
            self._refresh([account])
        return budget

    def set_budgets(self, budgets: Iterable[Budget]) -> None:
        """Apply budgets from :func:`parse_budgets` or :func:`load_budgets_file`."""
        for budget in budgets:
            self.set_budget(budget.agent, budget.limit_usd, budget.warn_at, budget.action, budget.window,
                            scope=budget.scope)

    def remove_budget(self, agent: str, scope: str = SCOPE_AGENT) -> bool:
        """Stop a budget; False if there was none. Calls in flight settle harmlessly."""
        key = agent if scope == SCOPE_AGENT else f"{scope}:{agent}"
        with self._lock:
            removed = self._accounts.pop(key, None) is not None
            self._reindex()
        return removed

    def reset(self) -> None:
        """Forget this process's spend, reservations and blocked-call counts; the budgets stay. Spend
        kept in a shared store is not touched (other processes count on it)."""
        with self._lock:
            for account in self._accounts.values():
                account.spent = 0.0
                account.buckets.clear()
                account.reserved = 0.0
                account.in_flight = 0
                account.blocked_calls = 0
                account.level = _OK
                account.block_logged = False
                account.generation += 1
        if self._store is not None:
            self._refresh(list(self._accounts.values()))

    def _reindex(self) -> None:
        tables: dict[str, dict[str, _Account]] = {}
        for account in self._accounts.values():
            tables.setdefault(account.budget.scope, {})[account.budget.agent] = account
        self._index = tuple((scope, tables[scope]) for scope in SCOPES if scope in tables)
        self._shared_blocking = any(
            account.shared and account.budget.action == ACTION_BLOCK for account in self._accounts.values()
        )

    # -- reading -----------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """``{key: {scope, name, limit_usd, spent_usd, utilization, status, window, action, blocked_calls}}``.

        ``key`` is the agent's name for agent budgets and ``scope:name`` for the others. ``status`` is
        ``"ok"``, ``"warning"`` (at or over ``warn_at``) or ``"exceeded"`` (over the limit); ``window`` is
        the window string or ``"lifetime"``. ``utilization`` is spent / limit (for a limit of 0: 0.0 when
        nothing was spent, else infinity). With a shared store, spent is the fleet's, read now.
        """
        if self._store is not None:
            self._refresh(list(self._accounts.values()))
        with self._lock:
            now = self._clock()
            snapshot = []
            for key, account in self._accounts.items():
                self._expire(account, now)
                snapshot.append((key, account.budget, account.view, account.blocked_calls))
        return {key: _status(budget, spent, blocked) for key, budget, spent, blocked in snapshot}

    def budgets(self) -> dict[str, dict[str, Any]]:
        """The same as :meth:`status`."""
        return self.status()

    # -- the recorder's protocol -------------------------------------------------------------------
    def reserve(
        self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None, *, enforce: bool = True
    ) -> _Reservation | None:
        """Before a call is sent. Raises BudgetExceededError if a block budget would be exceeded, unless
        ``enforce`` is False: a call that already happened (``record_usage``) is counted, not stopped."""
        requests = REQUEST_ACCOUNTS.get()
        index = self._index
        if not index and not requests:
            return None  # the common case: no budget at all, two loads and a branch
        accounts = self._applicable(index, requests, labels)
        if not accounts:
            return None
        if enforce and self._store is not None and self._history_wanted(request, accounts):
            self._read_history(request, labels)
        reservation, shared, projected = self._reserve_here(accounts, request, labels, prompt_text, enforce)
        if shared:
            self._reserve_in_store(reservation, shared, projected)
        return reservation

    async def reserve_async(
        self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None
    ) -> _Reservation | None:
        """:meth:`reserve` for async callers: the store round trips (the reserve; the history of a model
        not seen yet) run in a worker thread, never on the event loop (asyncio, uvloop or trio; under any
        other loop they run here, blocking but counted)."""
        if self._store is None:
            return self.reserve(request, labels, prompt_text)
        accounts = self._applicable(self._index, REQUEST_ACCOUNTS.get(), labels)
        if not accounts:
            return None
        if self._history_wanted(request, accounts):
            await _off_loop(functools.partial(self._read_history, request, labels), _nothing)
        # Projecting (which may load the tokenizer) stays on this thread: nothing is imported on a worker.
        reservation, shared, projected = self._reserve_here(accounts, request, labels, prompt_text, True)
        if shared:
            await _off_loop(functools.partial(self._reserve_in_store, reservation, shared, projected),
                            functools.partial(self.settle, reservation, None))
        return reservation

    @staticmethod
    def _applicable(
        index: tuple[tuple[str, dict[str, _Account]], ...], requests: tuple[_Account, ...], labels: Labels
    ) -> list[_Account]:
        """The accounts of every budget that applies to a call with these labels."""
        accounts: list[_Account] = []
        for scope, table in index:
            if scope == SCOPE_TOTAL:
                accounts.extend(table.values())
                continue
            name = getattr(labels, scope)
            if name is not None:
                account = table.get(name)
                if account is not None:
                    accounts.append(account)
        accounts.extend(requests)
        return accounts

    def _reserve_here(
        self, accounts: list[_Account], request: Request, labels: Labels, prompt_text: Callable[[], str] | None,
        enforce: bool,
    ) -> tuple[_Reservation | None, tuple[_Account, ...], float]:
        """Everything but the store round trip: (the reservation, the shared blocking accounts the store
        must still check, the projected cost)."""
        blocking = [account for account in accounts if account.budget.action == ACTION_BLOCK] if enforce else []
        projected = 0.0
        if blocking:
            projected = guarded(
                "projecting a call's cost for its budget", self._project, request, labels, prompt_text
            ) or 0.0
        shared = tuple(account for account in blocking if account.shared)
        health = self._health
        use_store = bool(shared) and health is not None and health.up
        if shared and not use_store and health is not None and health.failure == STORE_FAILURE_CLOSED:
            self._refuse_unavailable(shared[0])
        reservation = self._reserve_locally(accounts, blocking, projected, skip=shared if use_store else ())
        return reservation, shared if use_store else (), projected

    def _reserve_locally(
        self, accounts: list[_Account], blocking: list[_Account], projected: float, skip: tuple[_Account, ...]
    ) -> _Reservation:
        """Check the blocking budgets not checked by the store (``skip``) and reserve on all, or raise."""
        with self._lock:
            now = self._clock()
            for account in blocking:
                if account in skip:
                    continue
                self._expire(account, now)
                spent, reserved = account.view, account.reserved
                if spent + reserved + projected > account.budget.limit_usd + _EPSILON_USD:
                    first_block = self._count_block(account)
                    break
            else:
                entries = []
                for account in accounts:
                    share = projected if account.budget.action == ACTION_BLOCK else 0.0
                    account.reserved += share
                    account.in_flight += 1
                    entries.append((account, share, account.generation))
                return _Reservation(tuple(entries), projected)
        self._blocked(account, spent, reserved, projected, first_block)

    def _reserve_in_store(self, reservation: _Reservation, shared: tuple[_Account, ...], projected: float) -> None:
        store, health = self._store, self._health
        assert store is not None and health is not None
        if self._queue:
            # Settles queued on an event loop go first, so the store decides on the spend they add.
            guarded("flushing budget spend to the store", self.flush)
        reservation_id = _next_id()
        items = [(*account.store_key, account.budget.limit_usd) for account in shared]
        try:
            failed, spent, reserved = store.reserve(items, projected, reservation_id, store.reservation_ttl_s)
        except Exception as error:
            health.failed(error, "reserve")
            self.settle(reservation, None)
            if health.failure == STORE_FAILURE_CLOSED:
                self._refuse_unavailable(shared[0])
            # Open: decide on the local counts, as while the store is down.
            accounts = [account for account, _projected, _generation in reservation.entries]
            blocking = [account for account in accounts if account.budget.action == ACTION_BLOCK]
            fallback = self._reserve_locally(accounts, blocking, projected, skip=())
            reservation.entries, reservation.settled = fallback.entries, False
            return
        health.ok()
        with self._lock:
            for account, value in zip(shared, spent, strict=True):
                account.spent = value
        if failed < 0:
            reservation.stored = shared
            reservation.reservation_id = reservation_id
            return
        self.settle(reservation, None)
        account = shared[failed]
        with self._lock:
            first_block = self._count_block(account)
        self._blocked(account, spent[failed], reserved[failed], projected, first_block)

    @staticmethod
    def _count_block(account: _Account) -> bool:
        account.blocked_calls += 1
        first_block = not account.block_logged
        account.block_logged = True
        return first_block

    def _blocked(self, account: _Account, spent: float, reserved: float, projected: float, first: bool) -> None:
        budget = account.budget
        if first:
            # Per-request budgets come and go with requests: their blocks are the app's business.
            level = logging.DEBUG if budget.scope == SCOPE_REQUEST else logging.ERROR
            self._logger.log(
                level,
                "%s %r is blocked by its %s budget%s: spent %s, in flight %s, "
                "next call projected %s; calls raise BudgetExceededError and are not sent",
                budget.scope, budget.agent, format_usd(budget.limit_usd), _window_text(budget), format_usd(spent),
                format_usd(reserved), format_usd(projected),
            )
        # spent_usd includes what calls in flight reserved: that is what the projection was added to.
        raise BudgetExceededError(budget.agent, spent + reserved, budget.limit_usd, projected,
                                  scope=budget.scope, window=budget.window)

    def _refuse_unavailable(self, account: _Account) -> None:
        with self._lock:
            account.blocked_calls += 1
            spent = account.view
        budget = account.budget
        raise BudgetStoreUnavailableError(budget.agent, spent, budget.limit_usd, scope=budget.scope,
                                          store=self._store.description if self._store else "")

    def settle(
        self, reservation: _Reservation | None, record: CallRecord | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """When the call finished (record) or never started (None): replace the reservation by the actual
        cost. Returns the span events for thresholds this call crossed."""
        if reservation is None:
            return []
        cost = record.cost_usd if record is not None else None
        if cost is not None and valid_cost(cost) is None:
            # The recorder passes only valid costs; this guard keeps any other caller out of the totals.
            self._invalid_cost(cost)
            cost = None
        touched = []
        ledgers = []
        with self._lock:
            if reservation.settled:
                return []
            reservation.settled = True
            now = self._clock()
            for account, projected, generation in reservation.entries:
                if generation == account.generation:
                    account.in_flight -= 1
                    # Exactly zero once nothing is in flight, so float residue cannot accumulate.
                    account.reserved = max(account.reserved - projected, 0.0) if account.in_flight else 0.0
                if record is None or not self._active(account):
                    continue
                if account.budget.scope == SCOPE_REQUEST:
                    if account.ledger is None:
                        account.ledger = new_ledger()
                    if account.ledger is not None:
                        ledgers.append(account.ledger)
                self._expire(account, now)
                if cost:
                    if account.shared:
                        account.pending += cost
                        account.pending_calls += 1
                    else:
                        self._add_cost(account, now, cost)
                touched.append(account)
        for ledger in ledgers:
            ledger.record(record)
        shared = tuple(account for account in touched if account.shared)
        if reservation.reservation_id is not None or (shared and cost):
            self._settle_in_store(reservation, shared, cost or 0.0)
        return self._thresholds(touched)

    def _settle_in_store(self, reservation: _Reservation, shared: tuple[_Account, ...], cost: float) -> None:
        from otel_tokens._internal.budgets.store import Settle

        keyed = {account.store_key: account for account in (*reservation.stored, *shared)}
        entry = Settle(_next_id(), tuple(keyed), cost, reservation.reservation_id)
        pending = _Pending(entry, shared if cost else (), cost)
        store, health = self._store, self._health
        assert store is not None and health is not None
        batched = store.batch_warn_settles and reservation.reservation_id is None
        if health.up and not batched and _async_library() is None:
            self._apply([pending], (), samples=len(self._samples) >= _SAMPLES_PER_SETTLE)
        else:
            self._enqueue(pending)

    def _thresholds(self, touched: list[_Account]) -> list[tuple[str, dict[str, Any]]]:
        announcements = []
        with self._lock:
            for account in touched:
                budget, spent = account.budget, account.view
                level = _level(budget, spent)
                if level > account.level:
                    announcements.append((account, budget, spent, account.blocked_calls,
                                          range(account.level + 1, level + 1)))
                    account.level = level
        events: list[tuple[str, dict[str, Any]]] = []
        for account, budget, spent, blocked, crossed in announcements:
            # A blocking per-request budget answers with BudgetExceededError, the app's business: only the
            # callbacks it was given hear of its thresholds (a log line per request would be noise).
            quiet = budget.scope == SCOPE_REQUEST and budget.action == ACTION_BLOCK
            events += self._announce(account, budget, spent, blocked, crossed, quiet)
        return events

    def _active(self, account: _Account) -> bool:
        return account.budget.scope == SCOPE_REQUEST or self._accounts.get(account.budget.key) is account

    def _invalid_cost(self, cost: object) -> None:
        if self._invalid_cost_logged:
            return
        self._invalid_cost_logged = True
        self._logger.warning("a call's cost %r is not a finite number >= 0; budgets ignore it", cost)

    # -- the store ---------------------------------------------------------------------------------
    def _apply(self, batch: list[_Pending], accounts: Iterable[_Account], samples: bool = True) -> bool:
        """Send settles (and, with ``samples``, the output counts waiting for the history) to the store and
        read back the spent of their budgets and of ``accounts``. On failure the settles wait in the queue
        for the next flush; the counts are dropped (the process's rings keep them)."""
        store, health = self._store, self._health
        assert store is not None and health is not None
        readers: dict[tuple[str, int | None], list[_Account]] = {}
        for account in (*accounts, *(a for p in batch for a in p.accounts)):
            readers.setdefault(account.store_key, []).append(account)
        for item in batch:
            item.attempted = True
        try:
            spent = store.settle([item.entry for item in batch], list(readers),
                                 self._take_samples() if samples else ())
        except Exception as error:
            health.failed(error, "settle" if batch else "read" if readers else "history")
            if batch:
                with self._lock:
                    self._queue[:0] = batch
                self._ensure_flusher()
            return False
        health.ok()
        with self._lock:
            for item in batch:
                for account in item.accounts:
                    account.pending_calls -= 1
                    account.pending = account.pending - item.cost if account.pending_calls > 0 else 0.0
            for (key, _window_s), owners in readers.items():
                for account in owners:
                    account.spent = spent[key]
        return True

    def _refresh(self, accounts: list[_Account]) -> None:
        """Read the store's spend now (skipped while it is down, between retries). Queued settles go
        first, so the figures read back include them."""
        if any(account.shared for account in accounts):
            guarded("reading budget spend from the store", self.flush)

    def _store_due(self) -> bool:
        health = self._health
        return health is not None and (
            health.up or time.monotonic() - health.last_failure >= self._retry_interval_s
        )

    def _enqueue(self, pending: _Pending) -> None:
        with self._lock:
            queue = self._queue
            last = queue[-1] if queue else None
            if (last is not None and not last.attempted and pending.entry.reservation_id is None
                    and last.entry.reservation_id is None and last.entry.keys == pending.entry.keys
                    and last.accounts == pending.accounts):
                # Never sent yet, so merging cannot count anything twice; it keeps the queue short.
                last.entry = replace(last.entry, cost=last.entry.cost + pending.cost)
                last.cost += pending.cost
                for account in pending.accounts:
                    account.pending_calls -= 1
            else:
                queue.append(pending)
        self._ensure_flusher()

    def flush(self) -> bool:
        """Send queued settles and read back every shared budget's spend. True if the store answered."""
        if self._store is None:
            return True
        with self._flush_lock:
            if not self._store_due():
                return False
            with self._lock:
                batch, self._queue = self._queue, []
                accounts = [account for account in self._accounts.values() if account.shared]
            if not batch and not accounts and not self._samples:
                return True
            return self._apply(batch, accounts)

    def _ensure_flusher(self, reads: bool = True) -> None:
        if reads:
            self._flusher_reads = True
        pid = os.getpid()
        if self._flusher is not None and self._flusher_pid == pid:
            return
        with self._lock:
            if self._flusher is not None and self._flusher_pid == pid:
                return
            self._stop.clear()
            self._flusher_pid = pid
            self._flusher = threading.Thread(target=self._flush_loop, name="otel-tokens-budget-store", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            guarded("flushing budget spend to the store", self._background_flush)

    def _background_flush(self) -> None:
        if self._flusher_reads:
            self.flush()
        elif self._samples and self._store_due():
            with self._flush_lock:
                self._apply([], ())

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the background flusher after a last flush (bounded by the store's timeouts)."""
        if self._store is None:
            return
        self._stop.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread() and self._flusher_pid == os.getpid():
            flusher.join(timeout_s)
        self._flusher = None
        guarded("flushing budget spend to the store", self.flush)
        _STORE_MANAGERS.discard(self)
        guarded("closing the budget store", self._store.close)

    def _after_fork(self) -> None:
        # The parent still owns its queued settles and its thread: the child starts with neither.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._queue = []
        self._samples = deque(maxlen=_MAX_PENDING_SAMPLES)
        self._flusher = None
        self._flusher_reads = False
        for account in self._accounts.values():
            account.pending, account.pending_calls = 0.0, 0
            account.reserved, account.in_flight = 0.0, 0
            account.generation += 1

    # -- metrics -----------------------------------------------------------------------------------
    def register_metrics(self, meter: Meter) -> None:
        """Observable gauges of each budget's limit, spend and utilization; the store error counter."""
        for name, unit, field, description in (
            (semconv.METRIC_BUDGET_LIMIT, semconv.UNIT_USD, "limit_usd", "Budget limit in US dollars."),
            (semconv.METRIC_BUDGET_SPENT, semconv.UNIT_USD, "spent_usd", "Budget spend in US dollars."),
            (semconv.METRIC_BUDGET_UTILIZATION, semconv.UNIT_RATIO, "utilization", "Budget spent / limit."),
        ):
            # Registered once per meter; a later runtime's manager takes over the same gauges.
            observable_gauge(meter, name, unit, description).source = self._observer(field)
        if self._health is not None:
            self._health.counter = meter.create_counter(
                semconv.METRIC_STORE_ERRORS, unit=semconv.UNIT_ERROR,
                description="Failed operations on the budget store (spend is counted locally meanwhile).",
            )

    def _observer(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            statuses = guarded("observing budgets", self.status) or {}
            return [Observation(entry[field], _gauge_attributes(entry)) for entry in statuses.values()]

        return observe

    # -- internals ---------------------------------------------------------------------------------
    def _project(self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None) -> float:
        """The call's likely cost: its prompt at the input rate plus the output tokens it will likely produce
        (see ``budgets.projection``) at the output rate; never less than its stated maximum output alone."""
        model = request.model
        if self._price_book is None or not model:
            return 0.0
        rates = self._price_book.rates(request.provider, model)
        if rates is None and "/" in model:
            route = self._price_book.gateway_route(request.provider, model, request.server_address)
            rates = self._price_book.rates(*route) if route is not None else None
        if rates is None:
            return 0.0
        prompt_tokens = 0
        if prompt_text is not None and self._count_tokens is not None:
            prompt = prompt_text()  # the text, or the adapter's chat-format count
            prompt_tokens = prompt if type(prompt) is int else self._count_tokens(prompt, model)
        if request.operation == semconv.OP_EMBEDDINGS:
            return rates.cost(Usage(input_tokens=prompt_tokens))
        max_tokens = request.attributes.get(semconv.GEN_AI_REQUEST_MAX_TOKENS)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
            max_tokens = None
        likely = self._outputs.estimate(request.provider, model, labels.agent)
        if likely is None:
            likely = self._default_max_output_tokens
        if max_tokens is not None and likely > max_tokens:
            likely = max_tokens
        projected = rates.cost(Usage(input_tokens=prompt_tokens, output_tokens=likely))
        if max_tokens is not None:
            # A call whose stated maximum alone would pass what is left is refused, whatever the history says.
            projected = max(projected, rates.cost(Usage(output_tokens=max_tokens)))
        return projected

    def observe(self, record: CallRecord) -> None:
        """A finished call's output tokens, for the projections of the next calls (O(1), every call). With
        a store they also wait for the background flush (within 0.25 s), or a settle once
        _SAMPLES_PER_SETTLE wait, to take them to the store's history: no round trip per call."""
        usage = record.usage
        if usage is None or record.error_type is not None or usage.invalid:
            return
        request = record.request
        if request.model and request.operation != _OP_EMBEDDINGS:
            agent = record.labels.agent
            kept = self._outputs.add(request.provider, request.model, agent, usage.output_tokens)
            if kept and self._store is not None:
                self._samples.append((request.provider, request.model, agent if kept == 2 else None,
                                      usage.output_tokens))
                if self._flusher is None:
                    # The counts reach the store with the background flush, batched.
                    self._ensure_flusher(reads=False)

    def _history_wanted(self, request: Request, accounts: list[_Account]) -> bool:
        """Whether this call's projection should first read the store's history: a blocking budget checks
        it, its model was never seen here nor read yet, and the store is up (or due for a retry)."""
        model = request.model
        return (
            bool(model) and request.operation != _OP_EMBEDDINGS
            and any(account.budget.action == ACTION_BLOCK for account in accounts)
            and not self._outputs.seen(request.provider, model)
            and (request.provider, model) not in self._history_read
            and len(self._history_read) < MAX_KEYS
            and self._store_due()
        )

    def _read_history(self, request: Request, labels: Labels) -> None:
        """Seed this process's rings for the call's model (and agent) from the store, once per model. A
        failure is counted and leaves the default in place; it is tried again once the store is due."""
        store, health = self._store, self._health
        assert store is not None and health is not None
        provider, model, agent = request.provider, request.model or "", labels.agent
        keys = [history_key(provider, model), *([history_key(provider, model, agent)] if agent else [])]
        try:
            stored = store.history(keys)
        except Exception as error:
            health.failed(error, "history")
            return
        health.ok()
        self._history_read.add((provider, model))
        counts = [[count for count in values if type(count) is int and count >= 0] for values in stored]
        self._outputs.seed(provider, model, agent, counts[0], counts[1] if agent else ())

    def _take_samples(self) -> list[tuple[str, int]]:
        """The pending output counts as (history key, tokens), for one settle; at most max_history_keys
        distinct keys are ever written by this process."""
        samples, known, pending = [], self._history_keys, self._samples
        while pending:
            try:
                provider, model, agent, tokens = pending.popleft()
            except IndexError:  # taken by another thread meanwhile
                break
            names = [(provider, model, None)]
            if agent:
                names.append((provider, model, agent))
            for name in names:
                key = known.get(name)
                if key is None:
                    if len(known) >= self._max_history_keys:
                        continue
                    key = known[name] = history_key(*name)
                samples.append((key, tokens))
        return samples

    @staticmethod
    def _add_cost(account: _Account, now: float, cost: float) -> None:
        account.spent += cost
        if account.window_s is None:
            return
        buckets = account.buckets
        if buckets and now - buckets[-1][0] < account.window_s / _WINDOW_BUCKETS:
            last = buckets[-1]
            last[1] = now
            last[2] += cost
        else:
            buckets.append([now, now, cost])

    @staticmethod
    def _expire(account: _Account, now: float) -> None:
        """Drop rolling-window spend older than the window; re-arm thresholds spend fell back under."""
        if account.window_s is None:
            return
        buckets = account.buckets
        cutoff = now - account.window_s
        dropped = False
        while buckets and buckets[0][1] <= cutoff:
            account.spent -= buckets.popleft()[2]
            dropped = True
        if not dropped:
            if account.shared and account.level > _OK:
                # The store expires shared spend: re-arm when its figure fell back under a threshold.
                level = _level(account.budget, account.view)
                if level < account.level:
                    account.level = level
                    account.block_logged = False
            return
        if not buckets:
            account.spent = 0.0
        account.level = min(account.level, _level(account.budget, account.spent))
        account.block_logged = False

    def _announce(
        self, account: _Account, budget: Budget, spent: float, blocked: int, crossed: range, quiet: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        status = {"agent": budget.agent, **_status(budget, spent, blocked)}
        attributes = {
            **_gauge_attributes(status),
            OTEL_TOKENS_BUDGET_SPENT_USD: spent,
            OTEL_TOKENS_BUDGET_LIMIT_USD: budget.limit_usd,
            OTEL_TOKENS_BUDGET_UTILIZATION: status["utilization"],
        }
        percent = status["utilization"] * 100
        events = []
        for level in crossed:
            if level == _WARNING:
                if not quiet:
                    self._logger.warning(
                        "%s %r has spent %s of its %s budget%s (%.0f%%)",
                        budget.scope, budget.agent, format_usd(spent), format_usd(budget.limit_usd),
                        _window_text(budget), percent,
                    )
                    events.append((semconv.EVENT_BUDGET_WARNING, attributes))
                self._call(account.on_warning, "on_warning", status)
            else:
                if not quiet:
                    self._logger.error(
                        "%s %r has exceeded its %s budget%s: spent %s (%.0f%%)",
                        budget.scope, budget.agent, format_usd(budget.limit_usd), _window_text(budget),
                        format_usd(spent), percent,
                    )
                    events.append((semconv.EVENT_BUDGET_EXCEEDED, dict(attributes)))
                self._call(account.on_exceeded, "on_exceeded", status)
        return events

    def _call(self, callback: StatusCallback | None, name: str, status: dict[str, Any]) -> None:
        if callback is None:
            return
        # User code: its errors are logged and never reach the LLM call, even under the test switch.
        try:
            callback(dict(status))
        except Exception:
            self._logger.exception(
                "the %s callback for %s %r raised", name, status["scope"], status["agent"]
            )


# Managers with a store, so a forked child drops the parent's queued settles (see _after_fork).
_STORE_MANAGERS: weakref.WeakSet[BudgetManager] = weakref.WeakSet()


class _Ids:
    """Ids unique across a fleet and cheap per call: a random prefix per process and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = uuid.uuid4().hex[:16]
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self.counter)}"


_next_id = _Ids()


def _after_fork_in_child() -> None:
    _next_id.reset()
    for manager in list(_STORE_MANAGERS):
        manager._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    # Batched warn-only settles still queued reach the store before the process ends.
    for manager in list(_STORE_MANAGERS):
        manager.close(timeout_s=1.0)


def _nothing() -> None:
    pass


def _async_library() -> str | None:
    """``"asyncio"`` (uvloop too) or ``"trio"`` when this thread runs that event loop, else None: a store
    round trip here would stall every task. Only modules already imported are looked at (a running loop
    imported its own), so nothing is imported here."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
            return "asyncio"
        except RuntimeError:
            pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
            return "trio"
        except RuntimeError:
            pass
    return None


async def _off_loop(func: Callable[[], object], release: Callable[[], object]) -> None:
    """Run ``func`` in a worker thread while the event loop goes on; on this thread under a loop we do not
    know. Once started, ``func`` runs to its end; if the caller is cancelled, ``release`` runs after it (at
    once if it never started), so what ``func`` reserves is never held by a caller that has gone."""
    library = _async_library()
    if library == "trio":
        try:
            # Not abandoned on cancel: once the thread started, trio waits for it to end.
            await sys.modules["trio"].to_thread.run_sync(func)
        except BaseException:
            # Cancelled before the thread started, or func raised (and released already).
            guarded("releasing a budget reservation", release)
            raise
    elif library == "asyncio":
        asyncio = sys.modules["asyncio"]
        future = asyncio.get_running_loop().run_in_executor(None, func)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread cannot be stopped: release what it reserves once it is done.
            future.add_done_callback(lambda _future: guarded("releasing a budget reservation", release))
            raise
    else:
        func()


def _gauge_attributes(status: dict[str, Any]) -> dict[str, Any]:
    """Agent budgets keep gen_ai.agent.name (the shipped alert rules match on it); every budget says
    its scope and name."""
    attributes = {
        semconv.OTEL_TOKENS_BUDGET_SCOPE: status["scope"],
        semconv.OTEL_TOKENS_BUDGET_NAME: status["name"],
        semconv.OTEL_TOKENS_BUDGET_WINDOW: status["window"],
    }
    if status["scope"] == SCOPE_AGENT:
        attributes[semconv.GEN_AI_AGENT_NAME] = status["name"]
    return attributes


def _utilization(limit: float, spent: float) -> float:
    if limit > 0:
        return spent / limit
    return 0.0 if spent <= 0 else math.inf


def _level(budget: Budget, spent: float) -> int:
    if spent > budget.limit_usd + _EPSILON_USD:
        return _EXCEEDED
    if spent > 0 and spent >= budget.warn_at * budget.limit_usd - _EPSILON_USD:
        return _WARNING
    return _OK


def _status(budget: Budget, spent: float, blocked_calls: int) -> dict[str, Any]:
    return {
        "scope": budget.scope,
        "name": budget.agent,
        "limit_usd": budget.limit_usd,
        "spent_usd": spent,
        "utilization": _utilization(budget.limit_usd, spent),
        "status": _STATUS_NAMES[_level(budget, spent)],
        "window": budget.window or WINDOW_LIFETIME,
        "action": budget.action,
        "blocked_calls": blocked_calls,
    }


def _window_text(budget: Budget) -> str:
    return f" for the last {budget.window}" if budget.window else ""


__all__ = [
    "ACTIONS",
    "SCOPES",
    "Budget",
    "BudgetExceededError",
    "BudgetManager",
    "BudgetSpecError",
    "BudgetStoreUnavailableError",
    "WINDOW_LIFETIME",
    "load_budgets_file",
    "parse_budgets",
    "window_seconds",
]
