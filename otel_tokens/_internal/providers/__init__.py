"""Provider adapters: they only parse requests, responses and streams."""
