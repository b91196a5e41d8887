"""Data files shipped with otel_tokens (the HTML report's chart library, the price index)."""
