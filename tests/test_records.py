"""The usage contract the recorder's fast path relies on: counts are validated once, by make_usage."""

from __future__ import annotations

import ast
import itertools
import math
from pathlib import Path

import pytest

import otel_tokens
from otel_tokens._internal.base.records import INVALID_USAGE, MAX_TOKENS, Usage, make_usage, tokens
from otel_tokens._internal.calls.recorder import _is_valid

PACKAGE = Path(otel_tokens.__file__).resolve().parent
ADAPTER_FILES = sorted((PACKAGE / "_internal" / "providers").glob("*.py")) + sorted((PACKAGE / "instrumentation").glob("*.py"))


def _direct_usage_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == "Usage" or getattr(node.func, "attr", None) == "Usage")
    ]


def test_the_adapters_are_found() -> None:
    assert len(ADAPTER_FILES) > 20 and any(path.name == "openai.py" for path in ADAPTER_FILES)


@pytest.mark.parametrize("path", ADAPTER_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_adapters_build_usage_only_with_make_usage(path):
    # The recorder trusts Usage objects that are not flagged invalid (no second range check per call).
    assert _direct_usage_calls(path) == [], f"{path.name} builds Usage directly: use make_usage()"


RAW = (None, 0, 1, 417, MAX_TOKENS, MAX_TOKENS + 1, -1, 2.0, 2.5, math.nan, math.inf, -math.inf, True, "12", [3])


def test_make_usage_gives_valid_counts_invalid_or_none():
    for values in itertools.product(RAW, RAW, RAW[:6], (None, 3, -3, math.nan), (None, 5, "5")):
        usage = make_usage(*values)
        if usage is None:
            assert values[0] is None and values[1] is None
        elif usage.invalid:
            assert usage is INVALID_USAGE
        else:
            assert _is_valid(usage), values
            assert usage.input_tokens == round(values[0] or 0) and usage.output_tokens == round(values[1] or 0)


def test_make_usage_fast_path_matches_the_general_rules():
    assert make_usage(1250, 42, 1024, None, 0) == Usage(1250, 42, 1024, 0, 0)
    assert make_usage(1250, 42, -1) is INVALID_USAGE
    assert make_usage(MAX_TOKENS + 1, 42) is INVALID_USAGE
    assert make_usage(1250, None) == Usage(1250, 0)
    assert make_usage(None, None, 5) is None
    assert make_usage(True, 1) is INVALID_USAGE  # a bool is not a count
    assert make_usage(tokens(100, 20, 3), 7) == Usage(123, 7)
