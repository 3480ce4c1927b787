"""Numbers as people read them in the UI and in messages: 0.1684, not 0.16842105263157894.

Stored outputs keep full precision; only what is displayed is rounded.
"""

from __future__ import annotations

from typing import Any

SIGNIFICANT_DIGITS = 4  # below 1 (shares, rates, scores)
DECIMALS = 2  # from 1 up (money, days, counts per month)


def rounded(value: Any) -> Any:
    """``value`` with every float rounded for display, inside dicts and lists too (ints, booleans,
    strings, NaN and infinities unchanged)."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or value == 0:
            return value
        return round(value, DECIMALS) if abs(value) >= 1 else float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    # Plain tuples only: Dagster's metadata values are NamedTuple-based records, left as they are.
    if isinstance(value, list) or type(value) is tuple:
        return [rounded(v) for v in value]
    return value
