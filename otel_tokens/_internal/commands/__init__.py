"""The ``otel-tokens`` command and what it runs: the demo and the fake LLM server.

Owns: ``cli``, ``demo``, ``fake_server``, ``stopping`` (how the long-running commands stop).

May import: everything, the public ``otel_tokens`` API included.
"""
