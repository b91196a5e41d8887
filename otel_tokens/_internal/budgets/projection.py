"""How many output tokens a call will likely produce: a high quantile of what calls to the same model (by
the same agent) really produced in this process.

A blocking budget projects a call's cost before it is sent. The prompt is counted; the answer is not known
yet. Assuming the request's ``max_tokens`` (or 4,096 when it sets none) refused calls far under their
limit: real answers are a small fraction of that. So every finished call adds its output tokens to a ring
of the last :data:`SAMPLES` calls of its model, and of its model and agent; the projection is the 95th
percentile of that ring (nearest rank, so with fewer than 20 calls it is the largest seen), capped by the
request's own maximum. A model never seen projects the default (``OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS``).

Each ring is a fixed-size list written in O(1) per call with no lock (a lost update under a race only
drops one sample); the quantile is sorted out of it on demand, only for calls a blocking budget checks,
and cached until the next sample.
"""

from __future__ import annotations

import math
from typing import Final

# The ring of recent output token counts kept per model and per (model, agent).
SAMPLES: Final = 64
QUANTILE: Final = 0.95
# Output tokens projected for a model never seen (OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS): a long answer, a
# quarter of the 4,096 once assumed; the first call's own answer replaces it.
DEFAULT_OUTPUT_TOKENS: Final = 1024
# Distinct rings kept; past it, new (model, agent) pairs fall back on the model's ring, and new models on
# the default: label values come from the app and must not grow memory without bound.
MAX_KEYS: Final = 4096


class _Ring:
    """The last SAMPLES output counts of one model (``agents``: of each of its agents, rings too)."""

    __slots__ = ("values", "next", "count", "cached", "agents")

    def __init__(self) -> None:
        self.values = [0] * SAMPLES
        self.next = 0
        self.count = 0
        self.cached: int | None = None
        self.agents: dict[str, _Ring] = {}

    def add(self, tokens: int) -> None:
        slot = self.next
        self.values[slot] = tokens
        self.next = (slot + 1) % SAMPLES
        self.count += 1
        self.cached = None

    def quantile(self) -> int:
        cached = self.cached
        if cached is None:
            count = min(self.count, SAMPLES)
            ordered = sorted(self.values[:count])
            cached = self.cached = ordered[max(math.ceil(QUANTILE * count) - 1, 0)]
        return cached


class OutputHistory:
    """Output tokens of recent calls, by (provider, model) and, within it, by agent."""

    __slots__ = ("_rings", "_keys")

    def __init__(self) -> None:
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._keys = 0

    def add(self, provider: str, model: str, agent: str | None, output_tokens: int) -> None:
        """One finished call's output tokens (O(1))."""
        ring = self._rings.get((provider, model))
        if ring is None:
            if self._keys >= MAX_KEYS:
                return
            self._keys += 1
            ring = self._rings.setdefault((provider, model), _Ring())
        ring.add(output_tokens)
        if agent:
            by_agent = ring.agents.get(agent)
            if by_agent is None:
                if self._keys >= MAX_KEYS:
                    return
                self._keys += 1
                by_agent = ring.agents.setdefault(agent, _Ring())
            by_agent.add(output_tokens)

    def estimate(self, provider: str, model: str, agent: str | None) -> int | None:
        """The 95th percentile of the output tokens seen for this model and agent (else this model), or
        None for a model never seen."""
        ring = self._rings.get((provider, model))
        if ring is None:
            return None
        by_agent = ring.agents.get(agent) if agent else None
        return (by_agent or ring).quantile()

    def clear(self) -> None:
        self._rings = {}
        self._keys = 0


__all__ = ["DEFAULT_OUTPUT_TOKENS", "QUANTILE", "SAMPLES", "OutputHistory"]
