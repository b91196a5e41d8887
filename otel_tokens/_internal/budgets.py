"""Per-agent budgets in USD: warn when an agent nears its limit, and optionally block calls that would
take it over.

A budget counts the settled cost of its agent's calls, over the process lifetime or a rolling window
(``30s``, ``15m``, ``1h``, ``1d``, ...). Calls with no known price add nothing.

Thresholds fire once per crossing: the call whose cost takes spend to ``warn_at`` of the limit logs one
WARNING, adds a ``otel_tokens.budget.warning`` event to its span and calls ``on_warning``; the call that
takes spend over the limit logs one ERROR, adds ``otel_tokens.budget.exceeded`` and calls
``on_exceeded``. When a rolling window drops spend back under a threshold, the next crossing fires again.

A ``block`` budget also checks each call before it is sent: the projected cost (prompt tokens at the input
rate plus the request's ``max_tokens``, or ``default_max_output_tokens``, at the output rate) is added to
what was spent and to what calls in flight have reserved; if that exceeds the limit the call raises
:class:`BudgetExceededError` and is not sent. A model with no known price projects 0, so it is only
blocked once spend is already over the limit. Otherwise the projection is reserved until the call settles
and its actual cost replaces it, so concurrent calls cannot all pass on the same headroom. The first
blocked call of a window logs one ERROR.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_tokens import semconv
from otel_tokens._internal.errors import BudgetExceededError, ConfigError
from otel_tokens._internal.formatting import format_usd
from otel_tokens._internal.instruments import observable_gauge
from otel_tokens._internal.records import CallRecord, Labels, Request, Usage
from otel_tokens._internal.safety import guarded

_logger = logging.getLogger("otel_tokens")

ACTION_WARN: Final = "warn"
ACTION_BLOCK: Final = "block"
ACTIONS: Final = (ACTION_WARN, ACTION_BLOCK)
# The budget window label (status "window", otel_tokens.budget.window) of a budget without a window.
WINDOW_LIFETIME: Final = semconv.BUDGET_WINDOW_LIFETIME

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
_FILE_KEYS: Final = ("action", "limit_usd", "warn_at", "window")

_OK, _WARNING, _EXCEEDED = 0, 1, 2
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


def _problem(agent: object, limit_usd: object, warn_at: object, action: object, window: object) -> str | None:
    """What is wrong with a budget's fields, or None."""
    if not isinstance(agent, str) or not agent.strip():
        return f"agent must be a non-empty string, got {agent!r}"
    if not _is_number(limit_usd):
        return f"limit_usd {limit_usd!r} is not a number"
    if not math.isfinite(limit_usd) or limit_usd < 0:  # type: ignore[arg-type]
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
    """A spending limit for one agent. ``window`` None counts the whole process lifetime."""

    agent: str
    limit_usd: float
    warn_at: float = 0.9
    action: str = ACTION_WARN
    window: str | None = None

    def __post_init__(self) -> None:
        problem = _problem(self.agent, self.limit_usd, self.warn_at, self.action, self.window)
        if problem is not None:
            raise ConfigError(f"budget for agent {self.agent!r}: {problem}")


def parse_budgets(spec: str) -> list[Budget]:
    """Budgets from the ``OTEL_TOKENS_BUDGETS`` form. Raises :class:`BudgetSpecError`.

    Grammar (spaces around entries and parts are ignored)::

        spec    := entry ("," entry)*          empty entries are skipped
        entry   := agent "=" limit [":" action] ["@" window]    the two suffixes in either order
        limit   := US dollars, a number >= 0   e.g. 0.50
        action  := "warn" (the default) | "block"
        window  := N "s" | N "m" | N "h" | N "d"   a rolling window, e.g. 30s, 15m, 1h, 30d;
                                               omitted: the process lifetime

    Example: ``researcher=0.50,writer=1.00:block@1d``. ``warn_at`` is 0.9 here; a budgets file sets it.
    """
    budgets: list[Budget] = []
    seen: set[str] = set()
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        agent, equals, rest = entry.partition("=")
        agent = agent.strip()
        if not equals or not agent:
            raise BudgetSpecError("expected agent=limit[:action][@window]", entry)
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
        budget = _budget(agent, limit, 0.9, fields.get("action", ACTION_WARN).lower(), fields.get("window"), entry)
        if agent in seen:
            raise BudgetSpecError(f"agent {agent!r} has more than one budget", entry)
        seen.add(agent)
        budgets.append(budget)
    return budgets


def load_budgets_file(path: str | os.PathLike[str]) -> list[Budget]:
    """Budgets from a TOML file. Raises :class:`BudgetSpecError` naming the file and the entry.

    Shape (only ``limit_usd`` is required)::

        [budgets.researcher]
        limit_usd = 0.50
        warn_at = 0.9        # fraction of the limit, in (0, 1]
        action = "block"     # or "warn" (the default)
        window = "1d"        # rolling window; omitted: the process lifetime
    """
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
        budgets.append(
            _budget(
                agent,
                table["limit_usd"],
                table.get("warn_at", 0.9),
                table.get("action", ACTION_WARN),
                table.get("window"),
                agent,
                name,
            )
        )
    return budgets


def _budget(
    agent: str, limit: Any, warn_at: Any, action: Any, window: Any, entry: str, path: str | None = None
) -> Budget:
    problem = _problem(agent, limit, warn_at, action, window)
    if problem is not None:
        raise BudgetSpecError(problem, entry, path)
    return Budget(agent, limit, warn_at, action, window)


# -- the manager -----------------------------------------------------------------------------------


class _Rates(Protocol):
    def cost(self, usage: Usage) -> float: ...


class _PriceBook(Protocol):
    def rates(self, provider: str | None, model: str | None) -> _Rates | None: ...


StatusCallback = Callable[[dict[str, Any]], None]


class _Account:
    """One budget's mutable state; every field is guarded by the manager's lock."""

    __slots__ = (
        "budget", "window_s", "on_warning", "on_exceeded", "spent", "buckets", "reserved", "in_flight",
        "blocked_calls", "level", "block_logged", "generation",
    )

    def __init__(self, budget: Budget, on_warning: StatusCallback | None, on_exceeded: StatusCallback | None):
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


class _Reservation:
    __slots__ = ("account", "projected", "generation", "settled")

    def __init__(self, account: _Account, projected: float) -> None:
        self.account = account
        self.projected = projected
        self.generation = account.generation
        self.settled = False


class BudgetManager:
    """Budgets per agent; implements the recorder's ``Budgets`` protocol (``reserve`` and ``settle``).

    ``price_book`` (``rates(provider, model)``) and ``count_tokens(text, model)`` are only used to project
    the cost of a call against a ``block`` budget. ``clock`` (seconds, monotonic) drives rolling windows.
    """

    def __init__(
        self,
        *,
        price_book: _PriceBook | None = None,
        count_tokens: Callable[[str, str], int] | None = None,
        default_max_output_tokens: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = _logger,
    ) -> None:
        if (
            isinstance(default_max_output_tokens, bool)
            or not isinstance(default_max_output_tokens, int)
            or default_max_output_tokens < 0
        ):
            raise ValueError(
                f"default_max_output_tokens must be a non-negative integer, got {default_max_output_tokens!r}"
            )
        self._price_book = price_book
        self._count_tokens = count_tokens
        self._default_max_output_tokens = default_max_output_tokens
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}

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
    ) -> Budget:
        """Add or replace an agent's budget. Spend so far is kept; thresholds are announced afresh."""
        budget = Budget(agent, limit_usd, warn_at, action, window)
        for name, callback in (("on_warning", on_warning), ("on_exceeded", on_exceeded)):
            if callback is not None and not callable(callback):
                raise ConfigError(f"budget for agent {agent!r}: {name} must be callable, got {callback!r}")
        with self._lock:
            account = self._accounts.get(agent)
            if account is None:
                self._accounts[agent] = _Account(budget, on_warning, on_exceeded)
                return budget
            window_s = window_seconds(window)
            if account.window_s is None and window_s is not None and account.spent > 0:
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
        return budget

    def set_budgets(self, budgets: Iterable[Budget]) -> None:
        """Apply budgets from :func:`parse_budgets` or :func:`load_budgets_file`."""
        for budget in budgets:
            self.set_budget(budget.agent, budget.limit_usd, budget.warn_at, budget.action, budget.window)

    def remove_budget(self, agent: str) -> bool:
        """Stop budgeting an agent; False if it had no budget. Calls in flight settle harmlessly."""
        with self._lock:
            return self._accounts.pop(agent, None) is not None

    def reset(self) -> None:
        """Forget all spend, reservations and blocked-call counts; the budgets stay."""
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

    # -- reading -----------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """``{agent: {limit_usd, spent_usd, utilization, status, window, action, blocked_calls}}``.

        ``status`` is ``"ok"``, ``"warning"`` (at or over ``warn_at``) or ``"exceeded"`` (over the limit);
        ``window`` is the window string or ``"lifetime"``. ``utilization`` is spent / limit (for a limit
        of 0: 0.0 when nothing was spent, else infinity).
        """
        with self._lock:
            now = self._clock()
            snapshot = []
            for agent, account in self._accounts.items():
                self._expire(account, now)
                snapshot.append((agent, account.budget, account.spent, account.blocked_calls))
        return {agent: _status(budget, spent, blocked) for agent, budget, spent, blocked in snapshot}

    def budgets(self) -> dict[str, dict[str, Any]]:
        """The same as :meth:`status`."""
        return self.status()

    # -- the recorder's protocol -------------------------------------------------------------------
    def reserve(
        self, request: Request, labels: Labels, prompt_text: Callable[[], str] | None, *, enforce: bool = True
    ) -> _Reservation | None:
        """Before a call is sent. Raises BudgetExceededError if a block budget would be exceeded, unless
        ``enforce`` is False: a call that already happened (``record_usage``) is counted, not stopped."""
        agent = labels.agent
        account = self._accounts.get(agent) if agent is not None else None
        if account is None:
            return None
        if account.budget.action != ACTION_BLOCK or not enforce:
            # Warn-only budgets project nothing (no tokenizing); the reservation just routes the cost.
            with self._lock:
                account.in_flight += 1
                return _Reservation(account, 0.0)
        projected = guarded("projecting a call's cost for its budget", self._project, request, prompt_text) or 0.0
        with self._lock:
            budget = account.budget
            self._expire(account, self._clock())
            spent, reserved = account.spent, account.reserved
            if budget.action != ACTION_BLOCK or spent + reserved + projected <= budget.limit_usd + _EPSILON_USD:
                account.reserved = reserved + projected
                account.in_flight += 1
                return _Reservation(account, projected)
            account.blocked_calls += 1
            first_block = not account.block_logged
            account.block_logged = True
        if first_block:
            self._logger.error(
                "otel_tokens: agent %r is blocked by its %s budget%s: spent %s, in flight %s, "
                "next call projected %s; calls raise BudgetExceededError and are not sent",
                agent, format_usd(budget.limit_usd), _window_text(budget), format_usd(spent), format_usd(reserved),
                format_usd(projected),
            )
        # spent_usd includes what calls in flight reserved: that is what the projection was added to.
        raise BudgetExceededError(agent, spent + reserved, budget.limit_usd, projected)

    def settle(
        self, reservation: _Reservation | None, record: CallRecord | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """When the call finished (record) or never started (None): replace the reservation by the actual
        cost. Returns the span events for thresholds this call crossed."""
        if reservation is None:
            return []
        account = reservation.account
        cost = record.cost_usd if record is not None else None
        with self._lock:
            if reservation.settled:
                return []
            reservation.settled = True
            if reservation.generation == account.generation:
                account.in_flight -= 1
                # Exactly zero once nothing is in flight, so float residue cannot accumulate.
                account.reserved = max(account.reserved - reservation.projected, 0.0) if account.in_flight else 0.0
            if record is None or self._accounts.get(account.budget.agent) is not account:
                return []
            now = self._clock()
            self._expire(account, now)
            if cost:
                self._add_cost(account, now, cost)
            budget, spent = account.budget, account.spent
            level = _level(budget, spent)
            crossed = range(account.level + 1, level + 1)
            if level > account.level:
                account.level = level
            blocked = account.blocked_calls
        if not crossed:
            return []
        return self._announce(account, budget, spent, blocked, crossed)

    # -- metrics -----------------------------------------------------------------------------------
    def register_metrics(self, meter: Meter) -> None:
        """Observable gauges of each budget's limit, spend and utilization."""
        for name, unit, field, description in (
            (semconv.METRIC_BUDGET_LIMIT, semconv.UNIT_USD, "limit_usd", "Budget limit per agent in US dollars."),
            (semconv.METRIC_BUDGET_SPENT, semconv.UNIT_USD, "spent_usd", "Budget spend per agent in US dollars."),
            (semconv.METRIC_BUDGET_UTILIZATION, semconv.UNIT_RATIO, "utilization", "Budget spent / limit per agent."),
        ):
            # Registered once per meter; a later runtime's manager takes over the same gauges.
            observable_gauge(meter, name, unit, description).source = self._observer(field)

    def _observer(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            statuses = guarded("observing budgets", self.status) or {}
            return [
                Observation(
                    entry[field],
                    {semconv.GEN_AI_AGENT_NAME: agent, semconv.OTEL_TOKENS_BUDGET_WINDOW: entry["window"]},
                )
                for agent, entry in statuses.items()
            ]

        return observe

    # -- internals ---------------------------------------------------------------------------------
    def _project(self, request: Request, prompt_text: Callable[[], str] | None) -> float:
        model = request.model
        if self._price_book is None or not model:
            return 0.0
        rates = self._price_book.rates(request.provider, model)
        if rates is None:
            return 0.0
        prompt_tokens = 0
        if prompt_text is not None and self._count_tokens is not None:
            prompt_tokens = self._count_tokens(prompt_text(), model)
        output_tokens = 0
        if request.operation != semconv.OP_EMBEDDINGS:
            output_tokens = request.attributes.get(semconv.GEN_AI_REQUEST_MAX_TOKENS)
            if not isinstance(output_tokens, int) or isinstance(output_tokens, bool) or output_tokens <= 0:
                output_tokens = self._default_max_output_tokens
        return rates.cost(Usage(input_tokens=prompt_tokens, output_tokens=output_tokens))

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
            return
        if not buckets:
            account.spent = 0.0
        account.level = min(account.level, _level(account.budget, account.spent))
        account.block_logged = False

    def _announce(
        self, account: _Account, budget: Budget, spent: float, blocked: int, crossed: range
    ) -> list[tuple[str, dict[str, Any]]]:
        status = {"agent": budget.agent, **_status(budget, spent, blocked)}
        attributes = {
            semconv.GEN_AI_AGENT_NAME: budget.agent,
            OTEL_TOKENS_BUDGET_SPENT_USD: spent,
            OTEL_TOKENS_BUDGET_LIMIT_USD: budget.limit_usd,
            OTEL_TOKENS_BUDGET_UTILIZATION: status["utilization"],
            semconv.OTEL_TOKENS_BUDGET_WINDOW: status["window"],
        }
        percent = status["utilization"] * 100
        events = []
        for level in crossed:
            if level == _WARNING:
                self._logger.warning(
                    "otel_tokens: agent %r has spent %s of its %s budget%s (%.0f%%)",
                    budget.agent, format_usd(spent), format_usd(budget.limit_usd), _window_text(budget), percent,
                )
                events.append((semconv.EVENT_BUDGET_WARNING, attributes))
                self._call(account.on_warning, "on_warning", status)
            else:
                self._logger.error(
                    "otel_tokens: agent %r has exceeded its %s budget%s: spent %s (%.0f%%)",
                    budget.agent, format_usd(budget.limit_usd), _window_text(budget), format_usd(spent), percent,
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
            self._logger.exception("otel_tokens: the %s callback for agent %r raised", name, status["agent"])


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
    "Budget",
    "BudgetExceededError",
    "BudgetManager",
    "BudgetSpecError",
    "WINDOW_LIFETIME",
    "load_budgets_file",
    "parse_budgets",
    "window_seconds",
]
