"""Per-segment KPI audit of one period's assignments."""

from __future__ import annotations

import polars as pl

from segflow.lib.exact import exact_sum


def segment_kpis(assignments: pl.DataFrame) -> pl.DataFrame:
    """Per segment: customers, share, revenue and its share, order value, frequency, recency.

    ``revenue`` is net revenue in the RFM window; ``avg_order_value`` is revenue per purchase
    invoice of the segment as a whole (not a mean of customer means).
    """
    total_customers = assignments.height
    total_revenue = assignments.select(exact_sum(pl.col("net_revenue_window"))).item()
    return (
        assignments.group_by("segment_id", "segment_name")
        .agg(
            pl.len().alias("customers"),
            exact_sum(pl.col("net_revenue_window")).alias("revenue"),
            pl.col("invoices_window").sum().alias("invoices"),
            pl.col("invoices_window").mean().alias("mean_frequency"),
            pl.col("recency_days").mean().alias("mean_recency_days"),
            pl.col("recency_days").median().alias("median_recency_days"),
        )
        .with_columns(
            (pl.col("customers") / total_customers).alias("customer_share"),
            (pl.col("revenue") / total_revenue if total_revenue else pl.lit(None, dtype=pl.Float64)).alias(
                "revenue_share"
            ),
            (pl.col("revenue") / pl.col("invoices")).alias("avg_order_value"),
        )
        .select(
            "segment_id", "segment_name", "customers", "customer_share", "revenue", "revenue_share",
            "avg_order_value", "mean_frequency", "mean_recency_days", "median_recency_days",
        )  # fmt: skip
        .sort("segment_id")
    )
