"""Keys out of error text: a server error that echoes the API key must not reach a span, a log or a file.

:func:`redact` removes what looks like a key (provider key shapes, bearer tokens, ``api_key=...``), the
secrets it is given, and the values of environment variables named like secrets (``*_API_KEY``,
``*_TOKEN``, ``*_SECRET``, ``*_SECRET_ACCESS_KEY``), read at each call so a key set later is covered too.
:func:`error_text` is what telemetry says about an exception: its message, redacted, with the key the
failed request carried (its ``Authorization`` or ``x-api-key`` header) and the keys of SDK clients whose
calls failed (:func:`remember_client_secrets`: some SDKs add the key below the request object their errors
carry, and the error may reach an agent span too) among the secrets.

Errors are rare, so the work is done per call; text without a secret costs one regex scan and a pass
over the environment.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[REDACTED]"

# Secrets shorter than this are not looked for: "1" or "true" in an env var is not a key, and
# replacing every "1" in a message would make it unreadable.
_MIN_SECRET_LENGTH: Final = 8
_SECRET_ENV_SUFFIXES: Final = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_ACCESS_KEY")
_KEY_HEADERS: Final = ("authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization")
# Where SDK clients keep their key: on the client, or on the client a resource (``client.chat``) holds.
_KEY_ATTRIBUTES: Final = ("api_key", "_api_key", "auth_token", "_auth_token", "access_token", "token", "_token")
_CLIENT_ATTRIBUTES: Final = ("_client", "_api_client", "client", "_client_wrapper", "sdk_configuration", "security")
_REMEMBERED_MAX: Final = 32
_remembered: dict[str, None] = {}  # insertion-ordered: the oldest is dropped first

_KEY_CHARS = r"[A-Za-z0-9_\-]"
# (lower-case words that must be in the text, pattern): a pattern runs only when one of its words is
# there, so the common message without a key costs a few substring tests, not a regex scan.
_RULES: Final = tuple((words, re.compile(pattern)) for words, pattern in (
    (("sk-",), rf"\bsk-(?:ant-{_KEY_CHARS}{{8,}}|{_KEY_CHARS}{{16,}})"),  # Anthropic; OpenAI and its imitators
    (("gsk_",), rf"\bgsk_{_KEY_CHARS}{{16,}}"),  # Groq
    (("xai-",), rf"\bxai-{_KEY_CHARS}{{16,}}"),  # xAI
    (("aiza",), rf"\bAIza{_KEY_CHARS}{{30,}}"),  # Google API keys
    (("akia", "asia"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    # A bearer or basic credential after its scheme word.
    (("bearer", "basic"), r"(?i:\b(?:bearer|basic)\s+)(?P<credential>[A-Za-z0-9._~+/\-]{8,}=*)"),
    # A long key-like value after a key-ish name: api_key=..., key: ..., x-api-key: "...".
    (("key", "token", "secret"),
     r"(?i:\b(?:api[_-]?key|x-api-key|access[_-]?token|secret|token|key)[\"']?\s*[=:]\s*[\"']?)"
     r"(?P<value>[A-Za-z0-9._~+/\-]{16,})"),
))


def _replace(match: re.Match[str]) -> str:
    for group in ("credential", "value"):
        start = match.start(group) if group in match.re.groupindex else -1
        if start != -1:
            # Keep the scheme or the name, so the message still says what was there.
            return match.string[match.start():start] + REDACTED
    return REDACTED


def _env_secrets() -> list[str]:
    environ = os.environ
    return [value for name in environ
            if name.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value := environ[name]) >= _MIN_SECRET_LENGTH]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without anything that looks like a key, the given secrets, or secret env var values."""
    if not text:
        return text
    # Exact secrets first (longest first, so a key containing another is removed whole).
    known = {secret for secret in secrets if isinstance(secret, str) and len(secret) >= _MIN_SECRET_LENGTH}
    known.update(_env_secrets())
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    lower = text.lower()
    for words, pattern in _RULES:
        if any(word in lower for word in words):
            text = pattern.sub(_replace, text)
    return text


def request_secrets(error: BaseException) -> list[str]:
    """The credentials the failed request carried, from the error's (or its response's) request headers
    (httpx and requests both expose them); empty when there is no such request."""
    found: list[str] = []
    for request in (getattr(error, "request", None), getattr(getattr(error, "response", None), "request", None)):
        found += _header_secrets(getattr(request, "headers", None))
    return found


def _header_secrets(headers: object) -> list[str]:
    """The credentials in a headers mapping (``Authorization``, ``x-api-key`` ...), with and without scheme."""
    found: list[str] = []
    if headers is None:
        return found
    for name in _KEY_HEADERS:
        try:
            value = headers.get(name)  # type: ignore[attr-defined]
        except Exception:  # an unusual headers object: nothing to take from it
            value = None
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and value:
            found.append(value)
            scheme, _space, credential = value.partition(" ")
            if credential and scheme.isalpha():
                found.append(credential.strip())
    return found


def client_secrets(instance: object) -> list[str]:
    """The keys an SDK client, or the resource of one a patched method was called on, holds: as text
    (``api_key``, ``auth_token`` ...) or in its default headers, on it or on what it holds (its client,
    configuration), three levels down. Never raises."""
    found: list[str] = []
    objects, seen = [instance], set()
    for _depth in range(4):
        following = []
        for holder in objects:
            if holder is None or id(holder) in seen:
                continue
            seen.add(id(holder))
            try:
                for name in _KEY_ATTRIBUTES:
                    value = getattr(holder, name, None)
                    if isinstance(value, str) and value:
                        found.append(value)
                found += _header_secrets(getattr(holder, "headers", None))
                following += [getattr(holder, name, None) for name in _CLIENT_ATTRIBUTES]
            except Exception:  # a property that fails: nothing to take from it
                continue
        objects = following
    return found


def remember_client_secrets(instance: object) -> None:
    """Keep the keys of the client a failed call went through, so the error's text never shows them (the
    most recent few; in memory only, where the client holds them anyway). Never raises."""
    for secret in client_secrets(instance):
        if len(secret) >= _MIN_SECRET_LENGTH:
            _remembered.pop(secret, None)
            _remembered[secret] = None
    while len(_remembered) > _REMEMBERED_MAX:
        _remembered.pop(next(iter(_remembered)), None)


def error_text(error: BaseException) -> str:
    """The message telemetry records for an exception: ``str(error)``, redacted of anything that looks like
    a key, the request's credentials and the remembered client keys. Never raises."""
    try:
        return redact(str(error), [*request_secrets(error), *list(_remembered)])
    except Exception:  # a __str__ that fails: the type says enough
        return type(error).__name__


class RedactingFilter(logging.Filter):
    """Redacts otel-tokens' own log records, tracebacks included: an internal error logged while an SDK
    error is handled shows that error (and the key it may echo) as its context."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            secrets = _chain_secrets(record.exc_info[1] if record.exc_info else None)
            message = record.getMessage()
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
            if record.exc_info and not record.exc_text:
                # The Formatter uses exc_text when it is set, so the traceback is formatted once, redacted.
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
        except Exception:  # never lose a log line over its redaction
            pass
        return True


def _chain_secrets(error: BaseException | None) -> list[str]:
    """The request credentials of an exception and of those it was raised from or while handling."""
    found: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found += request_secrets(error)
        error = error.__cause__ or error.__context__
    return found


def redact_logs(logger: logging.Logger) -> None:
    """Redact every record ``logger`` itself emits (idempotent)."""
    if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
        logger.addFilter(RedactingFilter())


redact_logs(logging.getLogger("otel_tokens"))


__all__ = [
    "REDACTED", "RedactingFilter", "client_secrets", "error_text", "redact", "redact_logs",
    "remember_client_secrets", "request_secrets",
]
