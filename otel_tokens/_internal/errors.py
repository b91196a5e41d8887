"""The one exception otel-tokens raises into an application on purpose."""

from __future__ import annotations


class BudgetExceededError(Exception):
    """A blocking budget stopped a call before it was sent."""

    def __init__(self, agent: str, spent_usd: float, limit_usd: float, projected_usd: float) -> None:
        self.agent = agent
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.projected_usd = projected_usd
        super().__init__(
            f"budget for agent {agent!r} would be exceeded: spent ${spent_usd:.6f} + projected "
            f"${projected_usd:.6f} > limit ${limit_usd:.6f}; the call was not sent"
        )
