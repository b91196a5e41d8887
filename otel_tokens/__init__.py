"""otel-tokens: exact LLM token counts, USD cost and per-agent budgets on OpenTelemetry.

    import otel_tokens

    otel_tokens.instrument()                       # every supported SDK that is installed
    otel_tokens.set_budget("researcher", limit_usd=0.50, action="block")
    with otel_tokens.agent("researcher"):
        client.chat.completions.create(...)
    print(otel_tokens.report())

Or, with no code change: ``import otel_tokens.auto``, or ``opentelemetry-instrument python app.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Any

from otel_tokens import semconv
from otel_tokens._internal.context import agent, task, user, workflow
from otel_tokens._internal.errors import BudgetExceededError, ConfigError
from otel_tokens.version import __version__

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "__version__",
    "agent",
    "get_statistics",
    "instrument",
    "remove_budget",
    "report",
    "reset",
    "semconv",
    "set_budget",
    "set_price",
    "task",
    "uninstrument",
    "user",
    "workflow",
]

_lock = threading.Lock()


# (module, class) of every instrumentor; importing them never imports the SDK itself.
_INSTRUMENTORS = (
    ("otel_tokens.instrumentation.openai", "OpenAIInstrumentor"),
    ("otel_tokens.instrumentation.anthropic", "AnthropicInstrumentor"),
    ("otel_tokens.instrumentation.google_genai", "GoogleGenAIInstrumentor"),
    ("otel_tokens.instrumentation.google_generativeai", "GoogleGenerativeAIInstrumentor"),
    ("otel_tokens.instrumentation.bedrock", "BedrockInstrumentor"),
    ("otel_tokens.instrumentation.mistral", "MistralInstrumentor"),
    ("otel_tokens.instrumentation.cohere", "CohereInstrumentor"),
    ("otel_tokens.instrumentation.ollama", "OllamaInstrumentor"),
)


def _instrumentors() -> list[Any]:
    return [getattr(importlib.import_module(module), name)() for module, name in _INSTRUMENTORS]


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:  # "google.genai" when no "google" package is installed
        return False


def instrument(tracer_provider: Any = None, meter_provider: Any = None, **settings: Any) -> None:
    """Instrument every supported SDK that is installed (now or when it is imported). Idempotent.

    ``settings`` override the ``OTEL_TOKENS_*`` environment (see the README), e.g. ``stream_usage=False``.
    A bad setting, prices file or budgets raises ``ConfigError`` naming the setting, or the file and entry.
    """
    from otel_tokens._internal.runtime import runtime_for

    with _lock:
        runtime = runtime_for(tracer_provider, meter_provider, **settings)
        for instrumentor in _instrumentors():
            if instrumentor.is_instrumented_by_opentelemetry:
                continue
            if not _installed(instrumentor.package):
                continue
            instrumentor.instrument(recorder=runtime.recorder, skip_dep_check=True)


def uninstrument() -> None:
    """Remove every patch; the next ``instrument()`` starts afresh. Idempotent."""
    from otel_tokens._internal.runtime import drop_runtime

    with _lock:
        for instrumentor in _instrumentors():
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        drop_runtime()


def _runtime() -> Any:
    from otel_tokens._internal.runtime import runtime_for

    return runtime_for(implicit=True)


def set_price(
    model: str,
    *,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_write: float | None = None,
    provider: str | None = None,
) -> None:
    """Price a model in USD per million tokens; overrides the bundled price database."""
    _runtime().price_book.set_price(
        model, input=input, output=output, cache_read=cache_read, cache_write=cache_write, provider=provider
    )


def set_budget(
    agent: str,
    limit_usd: float,
    warn_at: float = 0.9,
    action: str = "warn",
    window: str | None = None,
    on_warning: Any = None,
    on_exceeded: Any = None,
) -> None:
    """Set an agent's budget. ``action="block"`` stops calls that would pass the limit, before they are
    sent, by raising ``BudgetExceededError``. ``window`` is None (process lifetime) or e.g. ``"1h"``."""
    _runtime().budgets.set_budget(
        agent, limit_usd, warn_at=warn_at, action=action, window=window,
        on_warning=on_warning, on_exceeded=on_exceeded,
    )


def remove_budget(agent: str) -> None:
    _runtime().budgets.remove_budget(agent)


def get_statistics() -> dict[str, Any]:
    """Totals so far: calls, tokens by type, cost, and the same by agent, model, provider, operation,
    workflow, task and user, plus budget status. A plain dict, safe to serialise."""
    return _runtime().statistics()


def reset() -> None:
    """Clear the totals and budget spend (budgets themselves stay)."""
    runtime = _runtime()
    runtime.ledger.reset()
    runtime.budgets.reset()


def report(format: str = "text", *, what_if: tuple[str, ...] | list[str] = (), top: int = 5) -> str:
    """The report of everything recorded so far: ``text``, ``markdown``, ``json`` or ``csv``."""
    from otel_tokens._internal.report import render_report

    runtime = _runtime()
    return render_report(runtime.statistics(), format, what_if=tuple(what_if), price_book=runtime.price_book, top=top)
