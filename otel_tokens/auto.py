"""``import otel_tokens.auto``: instrument every supported LLM SDK, with no other code change.

Uses the application's tracer and meter providers if it set them before this import; otherwise builds
them from the standard ``OTEL_*`` variables (see docs/configuration.md), exporting only when asked to.
The content event (content capture in events) goes to the global logger provider; one is built from
``OTEL_LOGS_EXPORTER`` or the OTLP endpoint only when none is set and content capture asks for events. A malformed
variable is logged and defaulted, never raised; shutting the providers built here down adds at most
``OTEL_TOKENS_SHUTDOWN_TIMEOUT`` seconds (default 3) to process exit.
"""

from otel_tokens import instrument as _instrument
from otel_tokens._internal.setup.telemetry import configure_logger_provider as _configure_logger_provider
from otel_tokens._internal.setup.telemetry import configure_providers as _configure_providers

_tracer_provider, _meter_provider = _configure_providers()
_instrument(tracer_provider=_tracer_provider, meter_provider=_meter_provider,
            logger_provider=_configure_logger_provider())
