"""How many output tokens a call will likely produce: a high quantile of what calls to the same model (by
the same agent) really produced in this process, or in the fleet when a store is configured.

A blocking budget projects a call's cost before it is sent. The prompt is counted; the answer is not known
yet. Assuming the request's ``max_tokens`` (or 4,096 when it sets none) refused calls far under their
limit: real answers are a small fraction of that. So every finished call adds its output tokens to a ring
of the last :data:`SAMPLES` calls of its model, and of its model and agent; the projection is the 95th
percentile of that ring (nearest rank, so with fewer than 20 calls it is the largest seen), capped by the
request's own maximum. A model never seen projects the default (``OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS``).

With a store, finished calls' counts also go to the store's history (by :func:`history_key`), and a
process about to project a model it has not seen yet first seeds its rings from there
(:meth:`OutputHistory.seed`), once; from then on it uses its own rings.

Each ring is a fixed-size list written in O(1) per call with no lock (a lost update under a race only
drops one sample); the quantile is sorted out of it on demand, only for calls a blocking budget checks,
and cached until the next sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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

    def seed(self, stored: Sequence[int]) -> None:
        """Put counts read from the store (oldest first) before the ones this ring saw itself."""
        count = min(self.count, SAMPLES)
        own = [self.values[(self.next - count + index) % SAMPLES] for index in range(count)]
        merged = [*stored, *own][-SAMPLES:]
        self.values = merged + [0] * (SAMPLES - len(merged))
        self.next = len(merged) % SAMPLES
        self.count = len(merged)
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

    def add(self, provider: str, model: str, agent: str | None, output_tokens: int) -> int:
        """One finished call's output tokens (O(1)). Returns how many rings took it: 0 (past MAX_KEYS), 1
        (the model's) or 2 (the model's and the agent's)."""
        ring = self._rings.get((provider, model)) or self._new_ring(provider, model)
        if ring is None:
            return 0
        ring.add(output_tokens)
        if not agent:
            return 1
        by_agent = ring.agents.get(agent) or self._new_ring(provider, model, agent)
        if by_agent is None:
            return 1
        by_agent.add(output_tokens)
        return 2

    def _new_ring(self, provider: str, model: str, agent: str | None = None) -> _Ring | None:
        if self._keys >= MAX_KEYS:
            return None
        self._keys += 1
        if agent is None:
            return self._rings.setdefault((provider, model), _Ring())
        return self._rings[(provider, model)].agents.setdefault(agent, _Ring())

    def seen(self, provider: str, model: str) -> bool:
        return (provider, model) in self._rings

    def seed(self, provider: str, model: str, agent: str | None, stored: Sequence[int],
             stored_by_agent: Sequence[int]) -> None:
        """The store's counts for this model (and agent), oldest first, in front of what this process saw."""
        if not stored:
            return
        ring = self._rings.get((provider, model)) or self._new_ring(provider, model)
        if ring is None:
            return
        ring.seed(stored)
        if agent and stored_by_agent:
            by_agent = ring.agents.get(agent) or self._new_ring(provider, model, agent)
            if by_agent is not None:
                by_agent.seed(stored_by_agent)

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


def history_key(provider: str, model: str, agent: str | None = None) -> str:
    """The store's name for a model's (or a model and agent's) history; JSON, so no name can pass for
    another (model names hold ``/`` and ``:``)."""
    return json.dumps([provider, model, agent] if agent else [provider, model], ensure_ascii=False)


__all__ = ["DEFAULT_OUTPUT_TOKENS", "QUANTILE", "SAMPLES", "OutputHistory", "history_key"]
