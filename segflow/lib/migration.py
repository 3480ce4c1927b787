"""Migration between consecutive months: counts and row-normalised transition probabilities.

States are the segments of each month, plus two pseudo-states: ``(new)`` (segmented this month,
not last month) as a source and ``(lost)`` (segmented last month, not this month) as a target.
P(i -> j) = count(i -> j) / count(i -> any), so each "from" row sums to 1 (``(new)`` included).
"""

from __future__ import annotations

import polars as pl

NEW, LOST = "(new)", "(lost)"

MIGRATION_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "from_segment": pl.String(),
    "to_segment": pl.String(),
    "customers": pl.Int64(),
    "probability": pl.Float64(),
    "from_customers": pl.Int64(),
}


def segment_label(frame: pl.DataFrame, kind: str) -> pl.Expr:
    """The display label of a customer's state: "id: name" for clusters, the name for RFM."""
    if kind == "cluster":
        return pl.format("{}: {}", pl.col("segment_id"), pl.col("segment_name")).alias("_state")
    return pl.col("rfm_segment").cast(pl.String).alias("_state")


def migration_matrix(previous: pl.DataFrame, current: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Long-form transition table for ``kind`` "cluster" (segment id and name) or "rfm" (rfm_segment).

    ``previous`` and ``current`` are assignments of consecutive months (one row per customer).
    Returns ``MIGRATION_SCHEMA`` rows sorted by from/to, only for observed transitions.
    """
    if kind not in ("cluster", "rfm"):
        raise ValueError(f"kind must be 'cluster' or 'rfm', not {kind!r}")
    before = previous.select("customer_id", segment_label(previous, kind).alias("from_segment"))
    after = current.select("customer_id", segment_label(current, kind).alias("to_segment"))
    pairs = before.join(after, on="customer_id", how="full", coalesce=True).with_columns(
        pl.col("from_segment").fill_null(NEW), pl.col("to_segment").fill_null(LOST)
    )
    if pairs.height == 0:
        return pl.DataFrame(schema=MIGRATION_SCHEMA)
    return (
        pairs.group_by("from_segment", "to_segment")
        .agg(pl.len().cast(pl.Int64).alias("customers"))
        .with_columns(pl.col("customers").sum().over("from_segment").cast(pl.Int64).alias("from_customers"))
        .with_columns(
            (pl.col("customers") / pl.col("from_customers")).alias("probability"), pl.lit(kind).alias("kind")
        )
        .select(list(MIGRATION_SCHEMA))
        .sort("from_segment", "to_segment")
    )


def stay_rate(matrix: pl.DataFrame) -> float | None:
    """Share of last month's segmented customers who are in the same segment this month."""
    existing = matrix.filter(pl.col("from_segment") != NEW)
    total = existing["customers"].sum()
    if not total:
        return None
    return existing.filter(pl.col("from_segment") == pl.col("to_segment"))["customers"].sum() / total
