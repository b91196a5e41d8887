"""otel-tokens' machinery, in packages by concern; the public API is ``otel_tokens`` and its modules.

Layers, lowest first; a package imports only from the rows above it (its ``__init__`` says which, and
``tests/test_layout.py`` holds the code to both)::

    base                   records, settings, errors, safety, redaction, files, formatting, instruments
    pricing                rates, price index, price book, tokenizer
    budgets | accounting   limits and shared spend | totals, analytics, usage log, export
    calls                  engine, context, streams, recorder, manual, spans (the span processor)
    providers | outputs    SDK adapters | report, HTML report, live page
    setup                  runtime, telemetry providers
    commands               cli, demo, fake server

See ARCHITECTURE.md for one call's journey through them.
"""
