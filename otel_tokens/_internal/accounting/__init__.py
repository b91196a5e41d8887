"""The books: running totals per agent, model, provider, workflow and user; efficiency analytics and
recommendations; the JSON-lines usage log and its export.

Owns: ``ledger``, ``analytics``, ``usage_log``, ``export``, ``batches`` (finished batches counted once).

May import: base, pricing.
"""
