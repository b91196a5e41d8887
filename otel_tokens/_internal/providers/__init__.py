"""One parse-only adapter per provider SDK: what a request asks and what a response or stream reports,
as records. Adapters never touch spans, meters or prices.

May import: base, pricing, calls.
"""
