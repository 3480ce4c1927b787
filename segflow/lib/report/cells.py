"""Formatting and suppression of the report's cells.

The privacy rule is applied here once more, at the last step: any cell that describes fewer than
``min_cell`` customers is shown as "<k" or left out, and a segment smaller than ``min_cell`` is
not named anywhere (tables, charts, summary, index record).
"""

from __future__ import annotations

import polars as pl


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return {
        "int": f"{value:,.0f}",
        "pct": f"{100 * value:.1f}%",
        "money": f"{value:,.2f}",
        "num": f"{value:,.2f}",
        "pp": f"{100 * value:+.1f} pp",
        "p": "<0.001" if value < 0.001 else f"{value:.3f}",
        "psi": f"{value:.3f}",
    }[kind]


def _count(value, k: int) -> str:
    """A customer count, suppressed below k (zero is not a person and is shown)."""
    if value is None:
        return "–"
    return f"<{k}" if 0 < value < k else f"{value:,.0f}"


def _label(row: dict) -> str:
    return f"{row['segment_id']}: {row['segment_name']}"


def _visible(kpis: pl.DataFrame, k: int) -> pl.DataFrame:
    return kpis.filter(pl.col("customers") >= k)
