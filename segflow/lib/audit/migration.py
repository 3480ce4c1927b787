"""Migration between consecutive months: counts and row-normalised transition probabilities.

States are the segments of each month, plus two pseudo-states: ``(new)`` (segmented this month,
not last month) as a source and ``(lost)`` (segmented last month, not this month) as a target.
P(i -> j) = count(i -> j) / count(i -> any), so each "from" row sums to 1 (``(new)`` included).

Cluster states also carry their segment ids (``from_id``, ``to_id``): a customer stayed when the
aligned id is the same in both months, whatever the segment is called, so the stay rate and the
heatmap's diagonal are computed from ids, never from the display labels.
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
    "from_id": pl.Int64(),  # cluster segment id last month; null for (new) and for RFM states
    "to_id": pl.Int64(),  # cluster segment id this month; null for (lost) and for RFM states
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
    ids = kind == "cluster"
    before = previous.select(
        "customer_id",
        segment_label(previous, kind).alias("from_segment"),
        (pl.col("segment_id") if ids else pl.lit(None)).cast(pl.Int64).alias("from_id"),
    )
    after = current.select(
        "customer_id",
        segment_label(current, kind).alias("to_segment"),
        (pl.col("segment_id") if ids else pl.lit(None)).cast(pl.Int64).alias("to_id"),
    )
    pairs = before.join(after, on="customer_id", how="full", coalesce=True).with_columns(
        pl.col("from_segment").fill_null(NEW), pl.col("to_segment").fill_null(LOST)
    )
    if pairs.height == 0:
        return pl.DataFrame(schema=MIGRATION_SCHEMA)
    return (
        pairs.group_by("from_segment", "to_segment", "from_id", "to_id")
        .agg(pl.len().cast(pl.Int64).alias("customers"))
        .with_columns(pl.col("customers").sum().over("from_segment").cast(pl.Int64).alias("from_customers"))
        .with_columns(
            (pl.col("customers") / pl.col("from_customers")).alias("probability"), pl.lit(kind).alias("kind")
        )
        .select(list(MIGRATION_SCHEMA))
        .sort("from_id", "from_segment", "to_id", "to_segment", nulls_last=True)
    )


def stayed(matrix: pl.DataFrame) -> pl.Expr:
    """The cells of customers who stayed: same cluster id both months (same name for RFM states)."""
    if "from_id" in matrix.columns and matrix["from_id"].is_not_null().any():
        return pl.col("from_id").is_not_null() & (pl.col("from_id") == pl.col("to_id"))
    return pl.col("from_segment") == pl.col("to_segment")


def stay_rate(matrix: pl.DataFrame) -> float | None:
    """Share of last month's segmented customers who are in the same segment this month."""
    existing = matrix.filter(pl.col("from_segment") != NEW)
    total = existing["customers"].sum()
    if not total:
        return None
    return existing.filter(stayed(existing))["customers"].sum() / total
