"""Order-independent sums of money.

Polars sums floats in parallel chunks, so the same rows in a different order can differ in the
last bit, which breaks byte-identical rebuilds. Summing fixed-point micro-units as integers is
exact, so the result does not depend on row order or thread count.
"""

from __future__ import annotations

import polars as pl

MICRO = 1_000_000
# Micro-units back to units by multiplying with this double, not dividing by MICRO: polars divides
# a column by a constant as a multiplication by its reciprocal in some code paths (a group-by over
# many groups) and truly in others (one group), so "/ MICRO" is not one operation. A product by
# this constant is, in every engine (the Spark line-item stage uses it too), to the last bit.
PER_MICRO = 1 / MICRO


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of a money expression, exact to a millionth of a unit."""
    return (expr * MICRO).round(0).cast(pl.Int64).sum() * PER_MICRO


def exact_mean(expr: pl.Expr) -> pl.Expr:
    """Mean of the non-null values, from an exact sum (to a millionth): a float mean in a group-by
    differs in the last bit with polars' thread count, and so between backfill worker layouts."""
    count = expr.count()
    return pl.when(count > 0).then(exact_sum(expr) / count).otherwise(None)
