"""Settings, parsed once from ``OTEL_TOKENS_*`` variables; code arguments win over the environment.

A malformed boolean or number is logged and replaced by its documented default, as the OpenTelemetry
SDK does. Files named by variables (prices, budgets) are validated where they are loaded, and a bad one
stops start-up with an error naming the file and the entry.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

_logger = logging.getLogger("otel_tokens")

# -- environment variable names (documented in the README) ----------------------------------------
OTEL_TOKENS_PRICES = "OTEL_TOKENS_PRICES"
"""Path of a TOML or JSON file of price overrides (USD per million tokens)."""
OTEL_TOKENS_BUDGETS = "OTEL_TOKENS_BUDGETS"
"""Budgets as ``agent=limit[:block|:warn][@window],...``, e.g. ``researcher=0.50,writer=1.00:block``."""
OTEL_TOKENS_BUDGETS_FILE = "OTEL_TOKENS_BUDGETS_FILE"
"""Path of a TOML file of budgets."""
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
"""Output tokens a blocking budget assumes when a request sets no maximum (default 4096)."""
OTEL_TOKENS_ANTHROPIC_SDK_SPANS = "OTEL_TOKENS_ANTHROPIC_SDK_SPANS"
"""``false`` (default): turn off the anthropic SDK's own spans for clients otel-tokens instruments, so a
call yields one LLM span; ``true`` keeps both."""
OTEL_TOKENS_CANDIDATE_MODELS = "OTEL_TOKENS_CANDIDATE_MODELS"
"""Cheaper models recommendations may suggest, as ``MODEL@PROVIDER,...`` in order of preference (default:
a short list per provider); only models with a known price are suggested."""
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Content capture: ``false``/``NO_CONTENT`` (default), ``true``/``SPAN_ONLY``, ``EVENT_ONLY``,
``SPAN_AND_EVENT``."""

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
    default_max_output_tokens: int = 4096
    anthropic_sdk_spans: bool = False
    candidate_models: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment, then apply code arguments (which win). Unknown arguments raise."""
        env = os.environ if env is None else env
        settings = cls(
            capture_content=_content_capture(env.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)),
            stream_usage=_bool(env, OTEL_TOKENS_STREAM_USAGE, True),
            estimate=_bool(env, OTEL_TOKENS_ESTIMATE, True),
            prices_file=env.get(OTEL_TOKENS_PRICES) or None,
            budgets=env.get(OTEL_TOKENS_BUDGETS) or None,
            budgets_file=env.get(OTEL_TOKENS_BUDGETS_FILE) or None,
            usage_log=env.get(OTEL_TOKENS_LOG) or None,
            report=env.get(OTEL_TOKENS_REPORT) or None,
            max_keys=_positive_int(env, OTEL_TOKENS_MAX_KEYS, 1000),
            default_max_output_tokens=_positive_int(env, OTEL_TOKENS_DEFAULT_MAX_OUTPUT_TOKENS, 4096),
            anthropic_sdk_spans=_bool(env, OTEL_TOKENS_ANTHROPIC_SDK_SPANS, False),
            candidate_models=env.get(OTEL_TOKENS_CANDIDATE_MODELS) or None,
        )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown otel_tokens setting(s): {', '.join(unknown)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(given.get("capture_content"), (str, bool)):
            given["capture_content"] = _content_capture(str(given["capture_content"]), strict=True)
        return replace(settings, **given) if given else settings


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


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        _logger.warning("%s=%r is not a positive integer; using the default %d", name, raw, default)
        return default
    return value


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
            raise ValueError(f"capture_content={raw!r} is not one of: {allowed}") from None
        _logger.warning(
            "%s=%r is not one of %s; capturing no content",
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, raw, allowed,
        )
        return ContentCapture.NO_CONTENT
