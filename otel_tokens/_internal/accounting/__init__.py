"""The books: running totals per agent, model, provider, workflow and user; efficiency analytics and
recommendations; the JSON-lines usage log and its export.

Owns: ``ledger``, ``analytics``, ``usage_log``, ``export``.

May import: base, pricing.
"""
