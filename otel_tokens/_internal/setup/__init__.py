"""Wiring: the process's runtime (settings, price book, ledger, budgets, usage log and recorder built once
and bound to the telemetry providers), and the OpenTelemetry providers ``otel_tokens.auto`` builds from
``OTEL_*`` variables.

Owns: ``runtime``, ``processor`` (the public ``GenAISpanProcessor``, bound to the runtime), ``telemetry``.

May import: base, pricing, budgets, accounting, calls, outputs.
"""
