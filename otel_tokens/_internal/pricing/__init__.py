"""What a call costs: rates per token, genai-prices' data (the shipped or cached index, or genai-prices
itself), user overrides and price files, and offline token counts for calls without usage.

Owns: ``rates`` (Rates, RateTier, conversion from genai-prices), ``index`` (the compact price index and
its cache), ``book`` (PriceBook, overrides, price files), ``tokenizer``.

May import: base.
"""
