"""Settings, parsed once from ``OTEL_TOKENS_*`` variables; code arguments win over the environment.

A malformed boolean or number in the environment is logged (a WARNING naming the variable) and replaced
by its documented default, as the OpenTelemetry SDK does. Code arguments are strict: a wrong type or value
raises :class:`ConfigError` naming the setting (a ``TypeError`` too, for a wrong type). Files named by
variables (prices, budgets) are validated where they are loaded, and a bad one stops start-up with a
``ConfigError`` naming the file and the entry.
"""

from __future__ import annotations

import enum
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from otel_tokens._internal.base.errors import ConfigError, ConfigTypeError

N = TypeVar("N", int, float)

_logger = logging.getLogger("otel_tokens")

# -- environment variable names (documented in docs/configuration.md) -----------------------------------
OTEL_TOKENS_PRICES = "OTEL_TOKENS_PRICES"
"""Path of a TOML or JSON file of price overrides (USD per million tokens)."""
OTEL_TOKENS_BUDGETS = "OTEL_TOKENS_BUDGETS"
"""Budgets as ``[scope:]name=limit[:block|:warn][@window],...``, e.g.
``researcher=0.50,workflow:research=5.00:block@1d,total=100:warn@30d``."""
OTEL_TOKENS_BUDGETS_FILE = "OTEL_TOKENS_BUDGETS_FILE"
"""Path of a TOML file of budgets."""
OTEL_TOKENS_STORE = "OTEL_TOKENS_STORE"
"""Where budget spend is kept and shared: ``sqlite:///path/spend.db`` (one host, survives restarts) or
``redis://[:password@]host:port/db`` / ``rediss://...`` (a fleet). Unset: in memory, per process."""
OTEL_TOKENS_STORE_FAILURE = "OTEL_TOKENS_STORE_FAILURE"
"""``open`` (default): while the store is unreachable, blocking budgets decide on local counts and let
calls through; ``closed``: they refuse calls (``BudgetStoreUnavailableError``)."""
OTEL_TOKENS_LOG = "OTEL_TOKENS_LOG"
"""Path of a JSON-lines usage log; one line is appended per finished call."""
OTEL_TOKENS_REPORT = "OTEL_TOKENS_REPORT"
"""``stderr`` or a path: print or write the report when the process exits."""
OTEL_TOKENS_STREAM_USAGE = "OTEL_TOKENS_STREAM_USAGE"
"""``true`` (default): ask OpenAI-style chat streams for usage and hide the extra chunk; ``false`` for
servers that reject ``stream_options``."""
OTEL_TOKENS_ESTIMATE = "OTEL_TOKENS_ESTIMATE"
"""``true`` (default): count tokens with tiktoken when a provider sends no usage, marked estimated."""
OTEL_TOKENS_MAX_KEYS = "OTEL_TOKENS_MAX_KEYS"
"""Distinct keys the ledger keeps per dimension before folding into an overflow bucket (default 1000)."""
OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS = "OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS"
"""Output tokens a blocking budget projects for a model never seen in this process (default 1024); a model
seen projects the 95th percentile of its recent output (see budgets.projection)."""
OTEL_TOKENS_ANTHROPIC_SDK_SPANS = "OTEL_TOKENS_ANTHROPIC_SDK_SPANS"
"""``false`` (default): turn off the anthropic SDK's own spans for clients otel-tokens instruments, so a
call yields one LLM span; ``true`` keeps both."""
OTEL_TOKENS_CANDIDATE_MODELS = "OTEL_TOKENS_CANDIDATE_MODELS"
"""Cheaper models recommendations may suggest, as ``MODEL@PROVIDER,...`` in order of preference (default:
a short list per provider); only models with a known price are suggested."""
OTEL_TOKENS_SHUTDOWN_TIMEOUT = "OTEL_TOKENS_SHUTDOWN_TIMEOUT"
"""Seconds that shutting down the providers ``import otel_tokens.auto`` built may add to process exit
(default 3); telemetry not exported by then is dropped."""
OTEL_TOKENS_CACHE_DIR = "OTEL_TOKENS_CACHE_DIR"
"""Where price indexes built for a genai-prices newer than the shipped one are cached (default
``$XDG_CACHE_HOME/otel-tokens``, else ``~/.cache/otel-tokens``); ``otel-tokens prepare`` fills it."""
OTEL_TOKENS_SERVE_TOKEN = "OTEL_TOKENS_SERVE_TOKEN"
"""A token the live page (``serve()``, ``otel-tokens serve``) requires on every request, as ``?token=`` or
``Authorization: Bearer``; unset: none (loopback only answers its own host names either way)."""
OTEL_TOKENS_SPAN_PROCESSOR = "OTEL_TOKENS_SPAN_PROCESSOR"
"""``true``: add a ``GenAISpanProcessor`` to the tracer provider, so inference spans of other instrumentations
(contrib, OpenInference, pydantic-ai, agent frameworks) are counted, priced and budgeted too; ``false``
(default): only otel-tokens' own instrumentors count."""
OTEL_TOKENS_GATEWAYS = "OTEL_TOKENS_GATEWAYS"
"""Gateways and proxies by base URL or host, and the provider whose prices their ``vendor/model`` names use:
``https://llm-proxy.internal/v1=openrouter,gw.example.com=deepseek``; unset: OpenRouter's URL (or none)
uses OpenRouter's prices, any other the vendor's own."""
OTEL_TOKENS_THREAD_CONTEXT = "OTEL_TOKENS_THREAD_CONTEXT"
"""``true`` (default): labels and per-request budgets in force follow calls into threads started and
executor tasks submitted inside them (``Thread.start``, ``ThreadPoolExecutor.submit``, ``run_in_executor``);
``false`` leaves threads alone."""
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Content capture: ``false``/``NO_CONTENT`` (default), ``true``/``SPAN_ONLY``, ``EVENT_ONLY``,
``SPAN_AND_EVENT``; an event is the log-based ``gen_ai.client.inference.operation.details``."""
OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
"""OpenTelemetry's comma-separated opt-in list; with ``gen_ai_latest_experimental`` in it, the metrics follow
the GenAI conventions' newest names (``gen_ai.client.inference.*``) instead of core v1.37-v1.41's."""
GEN_AI_LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class ContentCapture(enum.Enum):
    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def enabled(self) -> bool:
        return self is not ContentCapture.NO_CONTENT


@dataclass(frozen=True)
class Settings:
    capture_content: ContentCapture = ContentCapture.NO_CONTENT
    stream_usage: bool = True
    estimate: bool = True
    prices_file: str | None = None
    budgets: str | None = None
    budgets_file: str | None = None
    usage_log: str | None = None
    report: str | None = None
    max_keys: int = 1000
    default_max_output_tokens: int = 1024
    anthropic_sdk_spans: bool = False
    store: str | None = None
    store_failure: str = "open"
    candidate_models: str | None = None
    span_processor: bool = False
    thread_context: bool = True
    gateways: str | None = None
    latest_semconv: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment, then apply code arguments (which win). Unknown arguments raise."""
        env = os.environ if env is None else env
        settings = cls(
            capture_content=_content_capture(env.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)),
            stream_usage=_bool(env, OTEL_TOKENS_STREAM_USAGE, True),
            estimate=_bool(env, OTEL_TOKENS_ESTIMATE, True),
            prices_file=_text(env, OTEL_TOKENS_PRICES),
            budgets=_text(env, OTEL_TOKENS_BUDGETS),
            budgets_file=_text(env, OTEL_TOKENS_BUDGETS_FILE),
            usage_log=_text(env, OTEL_TOKENS_LOG),
            report=_text(env, OTEL_TOKENS_REPORT),
            max_keys=_positive_int(env, OTEL_TOKENS_MAX_KEYS, 1000),
            default_max_output_tokens=_positive_int(env, OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS, 1024),
            anthropic_sdk_spans=_bool(env, OTEL_TOKENS_ANTHROPIC_SDK_SPANS, False),
            store=_text(env, OTEL_TOKENS_STORE),
            store_failure=_choice(env, OTEL_TOKENS_STORE_FAILURE, ("open", "closed"), "open"),
            candidate_models=env.get(OTEL_TOKENS_CANDIDATE_MODELS) or None,
            span_processor=_bool(env, OTEL_TOKENS_SPAN_PROCESSOR, False),
            thread_context=_bool(env, OTEL_TOKENS_THREAD_CONTEXT, True),
            gateways=_text(env, OTEL_TOKENS_GATEWAYS),
            latest_semconv=_opted_in(env, GEN_AI_LATEST_EXPERIMENTAL),
        )
        given = validated_overrides(overrides)
        return replace(settings, **given) if given else settings

    def __post_init__(self) -> None:
        for name in _CHECKS:
            _check(name, getattr(self, name))


def check_arguments(
    tracer_provider: Any, meter_provider: Any, overrides: Mapping[str, Any], logger_provider: Any = None
) -> None:
    """``instrument()``'s arguments, checked even when they would be ignored (already configured)."""
    for name, value, method in (("tracer_provider", tracer_provider, "get_tracer"),
                                ("meter_provider", meter_provider, "get_meter"),
                                ("logger_provider", logger_provider, "get_logger")):
        if value is not None and not callable(getattr(value, method, None)):
            raise ConfigTypeError(f"otel_tokens {name} must be an OpenTelemetry {name.replace('_', ' ')}, "
                                  f"got {type(value).__name__} {value!r}")
    validated_overrides(overrides)


def validated_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Code arguments as settings values; None means "not given". Raises ConfigError naming the setting."""
    unknown = sorted(set(overrides) - {f.name for f in fields(Settings)})
    if unknown:
        raise ConfigTypeError(f"unknown otel_tokens setting(s): {', '.join(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(given.get("capture_content"), (str, bool)):
        given["capture_content"] = _content_capture(str(given["capture_content"]), strict=True)
    for name in _PATHS:
        if isinstance(given.get(name), os.PathLike):
            given[name] = os.fspath(given[name])
    for name, value in given.items():
        _check(name, value)
    return given


def _check(name: str, value: Any) -> None:
    problem = _CHECKS[name](value)
    if problem is not None:
        error, text = problem
        raise error(f"otel_tokens setting {name}: {text}")


_Problem = tuple[type[ConfigError], str] | None


def _is_bool(value: Any) -> _Problem:
    if isinstance(value, bool):
        return None
    return ConfigTypeError, f"must be True or False, got {type(value).__name__} {value!r}"


def _is_positive_int(value: Any) -> _Problem:
    if isinstance(value, bool) or not isinstance(value, int):
        return ConfigTypeError, f"must be a positive integer, got {type(value).__name__} {value!r}"
    if value <= 0:
        return ConfigError, f"must be a positive integer, got {value!r}"
    return None


def _is_text(value: Any) -> _Problem:
    if value is None:
        return None
    if not isinstance(value, str):
        return ConfigTypeError, f"must be a string, got {type(value).__name__} {value!r}"
    if not value.strip():
        return ConfigError, "must not be empty"
    return None


def _is_capture(value: Any) -> _Problem:
    if isinstance(value, ContentCapture):
        return None
    return ConfigTypeError, f"must be a ContentCapture, a bool or its name, got {type(value).__name__} {value!r}"


_PATHS = ("prices_file", "budgets_file", "usage_log", "report")
def _is_store_failure(value: Any) -> _Problem:
    if value in ("open", "closed"):
        return None
    return ConfigError, f"must be 'open' or 'closed', got {value!r}"


_CHECKS: dict[str, Callable[[Any], _Problem]] = {
    "capture_content": _is_capture,
    "stream_usage": _is_bool,
    "estimate": _is_bool,
    "prices_file": _is_text,
    "budgets": _is_text,
    "budgets_file": _is_text,
    "usage_log": _is_text,
    "report": _is_text,
    "max_keys": _is_positive_int,
    "default_max_output_tokens": _is_positive_int,
    "anthropic_sdk_spans": _is_bool,
    "store": _is_text,
    "store_failure": _is_store_failure,
    "candidate_models": _is_text,
    "span_processor": _is_bool,
    "thread_context": _is_bool,
    "latest_semconv": _is_bool,
    "gateways": _is_text,
}


def _text(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw if raw and raw.strip() else None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _logger.warning("%s=%r is not a boolean (true/false); using the default %s", name, raw, default)
    return default


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in allowed:
        return value
    _logger.warning("%s=%r is not one of %s; using the default %s", name, raw, ", ".join(allowed), default)
    return default


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return env_number(env, name, default, int, "a positive integer")


def env_number(
    env: Mapping[str, str], name: str, default: N, parse: Callable[[str], N], meaning: str,
    low: float = 0, high: float = math.inf,
) -> N:
    """A number from the environment, ``low < value <= high``; otherwise a WARNING and the default."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except (ValueError, OverflowError):
        value = None
    if value is None or not low < value <= high or (isinstance(value, float) and not math.isfinite(value)):
        _logger.warning("%s=%r is not %s; using the default %s", name, raw, meaning, default)
        return default
    return value


def _opted_in(env: Mapping[str, str], token: str) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``token`` (exact, spaces ignored, as contrib reads it)."""
    raw = env.get(OTEL_SEMCONV_STABILITY_OPT_IN) or ""
    return token in (part.strip() for part in raw.split(","))


def _content_capture(raw: str | None, *, strict: bool = False) -> ContentCapture:
    if raw is None or raw.strip() == "":
        return ContentCapture.NO_CONTENT
    value = raw.strip().upper()
    if value in ("TRUE", "1", "YES", "ON"):
        return ContentCapture.SPAN_ONLY
    if value in ("FALSE", "0", "NO", "OFF"):
        return ContentCapture.NO_CONTENT
    try:
        return ContentCapture(value)
    except ValueError:
        allowed = "true, false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT"
        if strict:
            raise ConfigError(f"otel_tokens setting capture_content: {raw!r} is not one of: {allowed}") from None
        _logger.warning(
            "%s=%r is not one of %s; capturing no content",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, raw, allowed,
        )
        return ContentCapture.NO_CONTENT
