"""``python -m otel_tokens``: the ``otel-tokens`` command."""

from otel_tokens._internal.commands.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
