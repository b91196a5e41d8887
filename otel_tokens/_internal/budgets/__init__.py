"""Budgets: limits per agent, workflow, user, fleet or request; their projections before a call and their
settling after it; shared spend in SQLite or Redis.

Owns: ``manager`` (BudgetManager, Budget, budget specs and files), ``store`` (SQLite and Redis spend stores),
``request`` (``otel_tokens.budget()``), ``projection`` (the output tokens a call will likely produce).

May import: base, pricing.
"""
