"""One call's journey: the patch table and wrappers, attribution labels, streams, and the recorder that turns
a finished call into a span, metrics, ledger rows, budget settles and sink lines.

Owns: ``engine`` (patches, wrappers, the adapter contract), ``context`` (agent/workflow/task/user labels and
agent spans), ``threads`` (labels and per-request budgets that follow threads), ``streams``, ``recorder`` (the
only writer of telemetry), ``manual`` (``record_usage``), ``spans`` (other instrumentations' GenAI spans read
into calls: the span processor).

May import: base, pricing, budgets, accounting.
"""
