"""Exceptions otel-tokens raises on purpose: a budget stop, and bad configuration at set-up."""

from __future__ import annotations

from otel_tokens._internal.formatting import format_usd


class BudgetExceededError(Exception):
    """A blocking budget stopped a call before it was sent."""

    def __init__(self, agent: str, spent_usd: float, limit_usd: float, projected_usd: float) -> None:
        self.agent = agent
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.projected_usd = projected_usd
        super().__init__(
            f"budget for agent {agent!r} would be exceeded: spent {format_usd(spent_usd)} + projected "
            f"{format_usd(projected_usd)} > limit {format_usd(limit_usd)}; the call was not sent"
        )


class ConfigError(ValueError):
    """Bad configuration: a setting, a prices file or a budget. The message names which, and why."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting given a value of the wrong type (a ``ConfigError`` and a ``TypeError``)."""
