"""What people read: the text, Markdown, JSON and CSV report, the HTML report and the live page.

Owns: ``report``, ``html_report``, ``serve``.

May import: base, pricing, budgets, accounting.
"""
