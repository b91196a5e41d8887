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
import sys
import threading
from typing import Any

from otel_tokens import semconv
from otel_tokens._internal.base.errors import BudgetExceededError, BudgetStoreUnavailableError, ConfigError
from otel_tokens._internal.budgets.request import budget
from otel_tokens._internal.calls.context import agent, task, user, workflow
from otel_tokens.version import __version__

__all__ = [
    "BudgetExceededError",
    "BudgetStoreUnavailableError",
    "ConfigError",
    "GenAISpanProcessor",
    "__version__",
    "agent",
    "budget",
    "estimate_cost",
    "get_statistics",
    "instrument",
    "record_usage",
    "remove_budget",
    "report",
    "reset",
    "semconv",
    "serve",
    "set_budget",
    "set_price",
    "task",
    "uninstrument",
    "user",
    "workflow",
]

_lock = threading.Lock()


# (SDK package, instrumentor module, class) of every instrumentor; importing one never imports its SDK,
# and instrument() imports only those of installed SDKs.
_INSTRUMENTORS = (
    ("openai", "otel_tokens.instrumentation.openai", "OpenAIInstrumentor"),
    ("anthropic", "otel_tokens.instrumentation.anthropic", "AnthropicInstrumentor"),
    ("google.genai", "otel_tokens.instrumentation.google_genai", "GoogleGenAIInstrumentor"),
    ("google.ai.generativelanguage", "otel_tokens.instrumentation.google_generativeai",
     "GoogleGenerativeAIInstrumentor"),
    ("botocore", "otel_tokens.instrumentation.bedrock", "BedrockInstrumentor"),
    ("mistralai", "otel_tokens.instrumentation.mistral", "MistralInstrumentor"),
    ("cohere", "otel_tokens.instrumentation.cohere", "CohereInstrumentor"),
    ("ollama", "otel_tokens.instrumentation.ollama", "OllamaInstrumentor"),
    ("groq", "otel_tokens.instrumentation.groq", "GroqInstrumentor"),
    ("litellm", "otel_tokens.instrumentation.litellm", "LiteLLMInstrumentor"),
    ("crewai", "otel_tokens.instrumentation.crewai", "CrewAIInstrumentor"),
)


def _instrumentors(*, imported_only: bool = False) -> list[Any]:
    """Instrumentors of installed SDKs (``imported_only``: of those whose module is loaded already,
    the only ones that can be instrumented)."""
    found = []
    for package, module, name in _INSTRUMENTORS:
        if imported_only:
            if module not in sys.modules:
                continue
        elif not _installed(package):
            continue
        found.append(getattr(importlib.import_module(module), name)())
    return found


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:  # "google.genai" when no "google" package is installed
        return False


def instrument(
    tracer_provider: Any = None, meter_provider: Any = None, logger_provider: Any = None, **settings: Any
) -> None:
    """Instrument every supported SDK that is installed (now or when it is imported). Idempotent.

    Telemetry goes through these OpenTelemetry providers, or the global ones; ``logger_provider`` carries
    the content event (``gen_ai.client.inference.operation.details``) when content capture asks for events.

    ``settings`` override the ``OTEL_TOKENS_*`` environment (see docs/configuration.md), e.g. ``stream_usage=False``;
    ``span_processor=True`` also counts other instrumentations' GenAI spans (``GenAISpanProcessor``).
    A bad setting, prices file or budgets raises ``ConfigError`` naming the setting, or the file and entry.
    """
    from otel_tokens._internal.setup.runtime import runtime_for

    with _lock:
        runtime = runtime_for(tracer_provider, meter_provider, logger_provider, **settings)
        for instrumentor in _instrumentors():
            if instrumentor.is_instrumented_by_opentelemetry:
                continue
            instrumentor.instrument(recorder=runtime.recorder, skip_dep_check=True)


def uninstrument() -> None:
    """Remove every patch; the next ``instrument()`` starts afresh. Idempotent."""
    from otel_tokens._internal.setup.runtime import drop_runtime

    with _lock:
        for instrumentor in _instrumentors(imported_only=True):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        drop_runtime()


def __getattr__(name: str) -> Any:
    # GenAISpanProcessor loads the runtime's modules; ``import otel_tokens`` stays light without it.
    if name == "GenAISpanProcessor":
        from otel_tokens._internal.setup.processor import GenAISpanProcessor

        return GenAISpanProcessor
    raise AttributeError(f"module 'otel_tokens' has no attribute {name!r}")


def _runtime() -> Any:
    from otel_tokens._internal.setup.runtime import runtime_for

    return runtime_for(implicit=True)


def _configure(change: Any) -> None:
    """Apply ``change(runtime)``; before instrument(), also keep it for the runtime instrument() builds."""
    runtime = _runtime()
    change(runtime)
    if runtime.implicit:
        runtime.configuration.append(change)


def set_price(
    model: str,
    *,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_write: float | None = None,
    provider: str | None = None,
    cache_write_1h: float | None = None,
    input_audio: float | None = None,
    output_audio: float | None = None,
    cache_audio_read: float | None = None,
    input_image: float | None = None,
    output_image: float | None = None,
    input_video: float | None = None,
    output_video: float | None = None,
    web_search: float | None = None,
    file_search: float | None = None,
    tiers: dict[str, dict[str, float]] | None = None,
) -> None:
    """Price a model in USD per million tokens; overrides the bundled price database.

    Beyond input, output and cache prices: the 1-hour cache write, audio, image and video tokens (USD per
    million tokens), ``web_search`` and ``file_search`` (USD per 1,000 calls), and ``tiers``, prices per
    service tier by the name the response gives (``{"flex": {"input": 0.625, "output": 5}}``).
    """
    _configure(lambda runtime: runtime.price_book.set_price(
        model, input=input, output=output, cache_read=cache_read, cache_write=cache_write, provider=provider,
        cache_write_1h=cache_write_1h, input_audio=input_audio, output_audio=output_audio,
        cache_audio_read=cache_audio_read, input_image=input_image, output_image=output_image,
        input_video=input_video, output_video=output_video, web_search=web_search, file_search=file_search,
        tiers=tiers,
    ))  # fmt: skip


def set_budget(
    agent: str,
    limit_usd: float,
    warn_at: float = 0.9,
    action: str = "warn",
    window: str | None = None,
    on_warning: Any = None,
    on_exceeded: Any = None,
    scope: str = "agent",
) -> None:
    """Set a budget. ``scope`` is ``agent`` (the default), ``workflow``, ``task``, ``user`` (the first
    argument is then that name) or ``total`` (every call; the name is a label). ``action="block"`` stops
    calls that would pass the limit, before they are sent, by raising ``BudgetExceededError``. ``window``
    is None (lifetime) or e.g. ``"1h"``. For a limit per request, see :func:`budget`."""
    _configure(lambda runtime: runtime.budgets.set_budget(
        agent, limit_usd, warn_at=warn_at, action=action, window=window,
        on_warning=on_warning, on_exceeded=on_exceeded, scope=scope,
    ))


def remove_budget(agent: str, scope: str = "agent") -> None:
    _configure(lambda runtime: runtime.budgets.remove_budget(agent, scope))


def get_statistics() -> dict[str, Any]:
    """Totals so far: calls, tokens by type, cost, and the same by agent, model, provider, operation,
    workflow, task and user, plus budget status. A plain dict, safe to serialise."""
    return _runtime().statistics()


def reset() -> None:
    """Clear the totals and budget spend (budgets themselves stay)."""
    runtime = _runtime()
    runtime.ledger.reset()
    runtime.budgets.reset()
    runtime.activity.reset()


def report(
    format: str = "text",
    *,
    by: tuple[str, ...] | list[str] | str | None = None,
    what_if: tuple[str, ...] | list[str] = (),
    top: int = 5,
) -> str:
    """The report of everything recorded so far: ``text``, ``markdown``, ``json``, ``csv`` or ``html`` (one
    self-contained page with charts). ``by`` picks the group tables, like the command's ``--by``; by
    default agent, model, provider and operation, plus workflow and task when some call carries one of
    those labels (CrewAI tasks, ``otel_tokens.task()``)."""
    from otel_tokens._internal.outputs.report import DEFAULT_BY, render_report

    runtime = _runtime()
    statistics = runtime.statistics()
    if by is None:
        labelled = [d for d in ("workflow", "task") if set(statistics.get(f"by_{d}") or ()) - {semconv.KEY_NONE}]
        by = (*DEFAULT_BY, *labelled)
    return render_report(statistics, format, by=by, what_if=tuple(what_if), price_book=runtime.price_book, top=top)


def record_usage(
    *,
    model: str,
    provider: str,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    duration_s: float = 0.0,
    agent: str | None = None,
    workflow: str | None = None,
    task: str | None = None,
    user: str | None = None,
    operation: str = "chat",
    response_model: str | None = None,
    tool_calls: int = 0,
    cost_usd: float | None = None,
    error: BaseException | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
) -> float | None:
    """Record a call otel-tokens did not patch (another SDK, a custom HTTP client) through the same
    recorder as a patched call: span, metrics, totals, budgets and usage log. Returns its USD cost (None
    when unknown).

    Token counts are the provider's, in semconv terms (input includes cache reads and writes, output
    includes reasoning). Labels default to the enclosing ``agent()``/``workflow()``/... scopes. A blocking
    budget counts the call but cannot stop it (it already happened). ``cost_usd`` is a cost the provider
    reported; ``error`` the exception the call ended with; ``server_address``/``server_port`` the endpoint.
    Bad arguments raise ``ValueError``.
    """
    from otel_tokens._internal.base.safety import guarded
    from otel_tokens._internal.calls.manual import call_records, record

    request, result, labels = call_records(
        model=model, provider=provider, input_tokens=input_tokens, output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens, duration_s=duration_s, agent=agent, workflow=workflow, task=task,
        user=user, operation=operation, response_model=response_model, tool_calls=tool_calls, cost_usd=cost_usd,
        server_address=server_address, server_port=server_port,
    )
    if error is not None and not isinstance(error, BaseException):
        raise ValueError(f"error must be an exception, got {error!r}")
    return guarded("recording a call", record, _runtime().recorder, request, result, labels, duration_s, error)


def estimate_cost(
    model: str,
    provider: str | None = None,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float | None:
    """What this usage costs in USD on ``model`` (overrides included), without a call; None when the model
    has no known price. Counts as in ``record_usage``; bad ones raise ``ValueError``."""
    from otel_tokens._internal.calls.manual import estimate

    return estimate(_runtime().price_book, model, provider, input_tokens, output_tokens, cache_read_tokens,
                    cache_write_tokens, reasoning_tokens)


def serve(port: int = 8765, *, host: str = "127.0.0.1", interval_s: float = 5.0,
          token: str | None = None) -> Any:
    """Serve the live page of this process's usage on ``http://host:port/`` in a background thread, with
    ``GET /api/statistics`` and ``GET /api/report?format=...``. Returns a handle: ``.url``, ``.page_url``
    (with the token), ``.close()``. Loopback only unless ``host`` says otherwise, answering only its own
    host names; ``port=0`` picks a free port. ``token`` (default ``OTEL_TOKENS_SERVE_TOKEN``) is then
    required on every request, as ``?token=`` or ``Authorization: Bearer``."""
    from otel_tokens._internal.outputs.serve import serve_runtime

    return serve_runtime(_runtime, port=port, host=host, interval_s=interval_s, token=token)
