"""Order-independent sums of money.

Polars sums floats in parallel chunks, so the same rows in a different order can differ in the
last bit, which breaks byte-identical rebuilds. Summing fixed-point micro-units as integers is
exact, so the result does not depend on row order or thread count.
"""

from __future__ import annotations

import polars as pl

MICRO = 1_000_000


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of a money expression, exact to a millionth of a unit."""
    return (expr * MICRO).round(0).cast(pl.Int64).sum() / MICRO
