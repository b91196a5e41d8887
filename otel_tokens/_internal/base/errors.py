"""Exceptions otel-tokens raises on purpose: a budget stop, and bad configuration at set-up."""

from __future__ import annotations

from typing import Any

from otel_tokens._internal.base.formatting import format_usd


class BudgetExceededError(Exception):
    """A blocking budget stopped a call before it was sent.

    ``scope`` is ``agent``, ``workflow``, ``task``, ``user``, ``total`` or ``request``; ``name`` the
    budget's name in that scope. ``agent`` is the same as ``name`` (kept from when budgets were per agent).
    """

    def __init__(
        self, agent: str, spent_usd: float, limit_usd: float, projected_usd: float, *, scope: str = "agent",
        window: str | None = None,
    ) -> None:
        self.agent = agent
        self.name = agent
        self.scope = scope
        self.window = window
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.projected_usd = projected_usd
        super().__init__(
            f"{_subject(scope, agent)} would be exceeded: spent {format_usd(spent_usd)} + projected "
            f"{format_usd(projected_usd)} > limit {format_usd(limit_usd)}; the call was not sent"
        )

    def to_dict(self) -> dict[str, Any]:
        """The details as a plain dict (e.g. for an HTTP 402 body)."""
        return {
            "scope": self.scope, "name": self.name, "window": self.window, "spent_usd": self.spent_usd,
            "limit_usd": self.limit_usd, "projected_usd": self.projected_usd,
        }


class BudgetStoreUnavailableError(BudgetExceededError):
    """``OTEL_TOKENS_STORE_FAILURE=closed``: a blocking budget's shared store is unreachable, so the call
    is refused (a BudgetExceededError, so one ``except`` handles both)."""

    def __init__(self, agent: str, spent_usd: float, limit_usd: float, *, scope: str, store: str) -> None:
        super().__init__(agent, spent_usd, limit_usd, 0.0, scope=scope)
        self.store = store
        self.args = (
            f"{_subject(scope, agent)} cannot be checked: the budget store {store} is unreachable and "
            "OTEL_TOKENS_STORE_FAILURE=closed; the call was not sent",
        )


def _subject(scope: str, name: str) -> str:
    if scope == "total":
        return f"total budget {name!r}"
    return f"budget for {scope} {name!r}"


class ConfigError(ValueError):
    """Bad configuration: a setting, a prices file or a budget. The message names which, and why."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting given a value of the wrong type (a ``ConfigError`` and a ``TypeError``)."""


class ReportedError(Exception):
    """A failure another instrumentation reported (its span's ``error.type``), recorded as that type."""

    def __init__(self, error_type: str, description: str | None = None) -> None:
        super().__init__(description or error_type)
        self.error_type = error_type
