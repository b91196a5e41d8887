"""otel-tokens internals: not a public API."""
