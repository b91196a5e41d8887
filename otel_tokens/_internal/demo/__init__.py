"""The demo: a loopback fake LLM server and the scripted run behind ``otel-tokens demo``."""
