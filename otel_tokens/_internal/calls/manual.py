"""The manual API: record a call otel-tokens did not patch, and price usage without a call.

``record_usage`` builds the same :class:`Request` and :class:`Result` an adapter would and drives the
same recorder (``start`` then ``finish``), so the call gets the same span, metric points, ledger totals,
budget spend and usage-log line as a patched call with that usage. Token counts go through
``make_usage`` like a provider's: absent counts are not zero, invalid ones are flagged.
"""

from __future__ import annotations

import math
from typing import Any

from otel_tokens._internal.base.records import Labels, Request, Result, make_usage, valid_cost
from otel_tokens._internal.calls.context import current_labels


def _name(what: str, value: Any, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value

def call_records(
    *,
    model: str,
    provider: str,
    input_tokens: Any,
    output_tokens: Any,
    cache_read_tokens: Any,
    cache_write_tokens: Any,
    reasoning_tokens: Any,
    duration_s: float,
    agent: str | None,
    workflow: str | None,
    task: str | None,
    user: str | None,
    operation: str,
    response_model: str | None,
    tool_calls: int,
    cost_usd: float | None,
    server_address: str | None = None,
    server_port: int | None = None,
) -> tuple[Request, Result, Labels]:
    """Validate the arguments of ``record_usage`` (ValueError) and build its records."""
    _name("model", model, required=True)
    _name("provider", provider, required=True)
    _name("operation", operation, required=True)
    _name("response_model", response_model, required=False)
    for what, value in (("agent", agent), ("workflow", workflow), ("task", task), ("user", user)):
        _name(what, value, required=False)
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float) or not (
            math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be a finite number of seconds >= 0, got {duration_s!r}")
    if isinstance(tool_calls, bool) or not isinstance(tool_calls, int) or tool_calls < 0:
        raise ValueError(f"tool_calls must be an integer >= 0, got {tool_calls!r}")
    _name("server_address", server_address, required=False)
    if server_port is not None and (isinstance(server_port, bool) or not isinstance(server_port, int)
                                    or not 0 < server_port <= 65535):
        raise ValueError(f"server_port must be a port number (1-65535), got {server_port!r}")
    if cost_usd is not None and valid_cost(cost_usd) is None:
        raise ValueError(f"cost_usd must be a finite amount >= 0, got {cost_usd!r}")
    context = current_labels()
    labels = Labels(
        agent=agent or context.agent,
        workflow=workflow or context.workflow,
        task=task or context.task,
        user=user or context.user,
    )
    request = Request(provider=provider, operation=operation, model=model, server_address=server_address,
                      server_port=server_port)
    usage = make_usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    result = Result(usage=usage, response_model=response_model, provider_cost_usd=valid_cost(cost_usd),
                    tool_calls=tool_calls)
    return request, result, labels

def record(recorder: Any, request: Request, result: Result, labels: Labels, duration_s: float,
           error: BaseException | None) -> float | None:
    invocation = recorder.start(request, labels, elapsed_s=float(duration_s))
    finished = recorder.finish(invocation, result, error)
    return finished.cost_usd if finished is not None else None

def estimate(price_book: Any, model: str, provider: str | None, input_tokens: int, output_tokens: int,
             cache_read_tokens: int, cache_write_tokens: int, reasoning_tokens: int) -> float | None:
    _name("model", model, required=True)
    _name("provider", provider, required=False)
    usage = make_usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    if usage is None or usage.invalid:
        raise ValueError(
            "token counts must be whole numbers >= 0 (input_tokens and output_tokens at least one given), got "
            f"input={input_tokens!r}, output={output_tokens!r}, cache_read={cache_read_tokens!r}, "
            f"cache_write={cache_write_tokens!r}, reasoning={reasoning_tokens!r}")
    return price_book.cost(provider, model, usage)


__all__ = ["call_records", "estimate", "record"]
