"""The ``otel-tokens`` command and what it runs: the demo and the fake LLM server.

Owns: ``cli``, ``demo``, ``fake_server``.

May import: everything, the public ``otel_tokens`` API included.
"""
