"""The vocabulary everything shares: frozen call records, settings and their environment variables, errors,
the fail-open guard, redaction of keys, private files, number formatting and the metric instruments.

Owns: ``records`` (Request, Usage, Result, CallRecord, Labels), ``settings`` (every ``OTEL_TOKENS_*``
variable), ``errors``, ``safety`` (guarded, internal-error logging), ``redact``, ``files``, ``formatting``,
``instruments``.

May import: nothing of otel_tokens but ``otel_tokens.semconv`` and ``otel_tokens.version``.
"""
