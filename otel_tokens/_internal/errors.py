"""The one exception otel-tokens raises into an application on purpose."""

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
