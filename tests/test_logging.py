"""Log lines carry one prefix: the logger's name says where a line comes from, the message does not repeat it."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import otel_tokens

PACKAGE = Path(otel_tokens.__file__).parent
_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def _log_call_messages() -> list[tuple[str, int, str]]:
    """(file, line, the literal start of the message) of every logging call in the package."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _LOG_METHODS and node.args):
                continue
            message = node.args[1] if node.func.attr == "log" and len(node.args) > 1 else node.args[0]
            if isinstance(message, ast.JoinedStr) and message.values:
                message = message.values[0]
            if isinstance(message, ast.Constant) and isinstance(message.value, str):
                found.append((str(path.relative_to(PACKAGE)), node.lineno, message.value))
    return found


def test_no_log_message_repeats_the_logger_name() -> None:
    messages = _log_call_messages()
    assert len(messages) > 30  # the scan sees the package's log calls
    repeated = [(path, line) for path, line, text in messages
                if text.lower().startswith(("otel_tokens:", "otel-tokens:", "[otel"))]
    assert repeated == []


def test_a_budget_warning_has_one_prefix(instrumented, caplog) -> None:
    otel_tokens.set_budget("researcher", 1.0, warn_at=0.5)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"), otel_tokens.agent("researcher"):
        otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=300_000, output_tokens=0)
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    (line,) = [formatter.format(record) for record in caplog.records if "budget" in record.getMessage()]
    assert line.startswith("WARNING otel_tokens: agent 'researcher' has spent $0.75 of its $1.00 budget")
    assert line.count("otel_tokens") == 1
