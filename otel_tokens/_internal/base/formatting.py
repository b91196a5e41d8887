"""How numbers leave otel-tokens: dollars for people, clean floats for machines.

People read dollars through :func:`format_usd` only (reports, the CLI, the demo, budget messages and log
lines), so one amount always reads the same. Machine outputs (JSON, CSV, statistics, the usage log) go
through :func:`machine_float` / :func:`machine_values`: sums of float costs carry noise in the 17th digit
(``0.00020800000000000001``), which rounding to 12 decimal places removes without changing any amount by
more than 1e-12 USD; a non-finite number becomes None, so the output is strict JSON.
"""

from __future__ import annotations

import math
from typing import Any, Final

# Decimal places kept in machine outputs: below a millionth of a cent, far below any price step.
MACHINE_DECIMALS: Final = 12
_SIGNIFICANT: Final = 4
_SMALLEST: Final = 0.000_001


def format_usd(value: float | None) -> str:
    """Dollars for people: four significant digits and never fewer than cents, trailing zeros past the
    cents dropped; thousands separated; below a millionth of a dollar ``<$0.000001``; None and
    non-finite amounts ``n/a``.

    ``$1,234.57``, ``$2.50``, ``$1.875``, ``$0.50``, ``$0.018``, ``$0.0087``, ``$0.000208``.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    amount = abs(float(value))
    if amount == 0:
        return "$0.00"
    if amount < _SMALLEST:
        return f"{sign}<${_SMALLEST:.6f}"  # exact amounts are in the machine formats
    decimals = max(2, _SIGNIFICANT - 1 - math.floor(math.log10(amount)))
    text = f"{amount:,.{decimals}f}"
    whole, _dot, fraction = text.partition(".")
    fraction = fraction[:2] + fraction[2:].rstrip("0")
    return f"{sign}${whole}.{fraction}"


def machine_float(value: float | None) -> float | None:
    """A float for JSON/CSV: rounded to 12 decimal places; None for None, NaN and infinities."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), MACHINE_DECIMALS)


def machine_values(value: Any) -> Any:
    """``value`` with every float passed through :func:`machine_float`, in nested dicts, lists and
    tuples (as lists); everything else as it is. The result passes ``json.dumps(allow_nan=False)``
    when the input holds only JSON types."""
    if isinstance(value, float):
        return machine_float(value)
    if isinstance(value, dict):
        return {key: machine_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [machine_values(item) for item in value]
    return value


def machine_text(value: float | None) -> str:
    """A float for CSV: fixed-point, 12 decimal places at most, no exponent; empty for None/non-finite."""
    number = machine_float(value)
    if number is None:
        return ""
    text = f"{number:.{MACHINE_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


__all__ = ["MACHINE_DECIMALS", "format_usd", "machine_float", "machine_text", "machine_values"]
