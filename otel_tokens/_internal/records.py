"""Frozen records that flow from adapters (parsing) to the recorder (telemetry) and the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in semconv terms: input includes cache reads and writes, output includes reasoning."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Request:
    """What an adapter reads from a call before it is sent."""

    provider: str
    operation: str
    model: str | None
    server_address: str | None = None
    server_port: int | None = None
    stream: bool = False
    # Request parameters as semconv span attributes (gen_ai.request.max_tokens, ...), only those given.
    attributes: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Result:
    """What an adapter reads from a response or a finished stream."""

    usage: Usage | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    # A cost the provider reported itself (OpenRouter usage.cost); used as is.
    provider_cost_usd: float | None = None
    # Output text, kept only when content capture or estimation needs it.
    output_text: str | None = None


@dataclass(frozen=True, slots=True)
class Labels:
    """Who a call is for: the innermost agent, workflow, task and user in context."""

    agent: str | None = None
    workflow: str | None = None
    task: str | None = None
    user: str | None = None


NO_LABELS = Labels()


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A finished call: everything the ledger, usage log and budgets need, independent of spans."""

    request: Request
    result: Result | None
    labels: Labels = NO_LABELS
    duration_s: float = 0.0
    end_time_unix: float = 0.0
    time_to_first_chunk_s: float | None = None
    error_type: str | None = None
    cost_usd: float | None = None
    cost_source: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)

    @property
    def usage(self) -> Usage | None:
        return self.result.usage if self.result is not None else None

    @property
    def model(self) -> str | None:
        """The model that served the call (response model, else the requested one)."""
        if self.result is not None and self.result.response_model:
            return self.result.response_model
        return self.request.model
