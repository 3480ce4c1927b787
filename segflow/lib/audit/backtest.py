"""Out-of-time backtest: do the segments assigned at month T predict behaviour in (T, T+h]?

Each customer segmented at T is scored on what they did in the h following months, read from the
monthly profiles: net revenue, purchase invoices, and whether they bought at all. Customers with no
profile row in a month did nothing that month (0). The spread between segments is tested with the
Kruskal-Wallis H test on net revenue per customer (rank-based, so a few big spenders do not drive
it); a small p-value means the segments separate future value.
"""

from __future__ import annotations

import polars as pl

from segflow.lib.exact import exact_mean, exact_sum

BACKTEST_SCHEMA: dict[str, pl.DataType] = {
    "assigned_period": pl.String(),
    "horizon_months": pl.Int64(),
    "months_observed": pl.Int64(),
    "segment_id": pl.Int64(),
    "segment_name": pl.String(),
    "customers": pl.Int64(),
    "mean_future_revenue": pl.Float64(),
    "median_future_revenue": pl.Float64(),
    "mean_future_invoices": pl.Float64(),
    "purchase_rate": pl.Float64(),
    "kruskal_h": pl.Float64(),
    "kruskal_p": pl.Float64(),
}


def future_value(customers: pl.DataFrame, profiles: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """``customers`` (a ``customer_id`` column, and any others) with ``future_revenue`` and
    ``future_invoices`` summed over the given months' profiles, in ``customers``' row order; 0 for a
    customer with no profile row in them."""
    frames = [p.select("customer_id", "net_revenue", "n_invoices") for _, p in sorted(profiles.items())]
    if not frames:
        return customers.with_columns(
            pl.lit(0.0).alias("future_revenue"), pl.lit(0, dtype=pl.Int64).alias("future_invoices")
        )
    future = (
        pl.concat(frames, how="diagonal_relaxed")
        .group_by("customer_id")
        .agg(
            exact_sum(pl.col("net_revenue").cast(pl.Float64)).alias("future_revenue"),
            pl.col("n_invoices").cast(pl.Int64).sum().alias("future_invoices"),
        )
    )
    return customers.join(future, on="customer_id", how="left", maintain_order="left").with_columns(
        pl.col("future_revenue").fill_null(0.0), pl.col("future_invoices").fill_null(0)
    )


def realised_outcomes(assignments: pl.DataFrame, profiles: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Per assigned customer: ``future_revenue``, ``future_invoices`` summed over the given months."""
    base = assignments.select("customer_id", pl.col("segment_id").cast(pl.Int64), "segment_name")
    return future_value(base, profiles)


def backtest(
    assignments: pl.DataFrame, profiles: dict[str, pl.DataFrame], assigned_period: str, horizon: int
) -> pl.DataFrame:
    """Per segment of ``assignments`` (month ``assigned_period``): realised outcomes over the months in
    ``profiles`` (ideally the h months after it), and the Kruskal-Wallis test across segments."""
    from scipy import stats

    outcomes = realised_outcomes(assignments, profiles)
    groups = [g["future_revenue"].to_numpy() for _, g in outcomes.group_by("segment_id", maintain_order=True)]
    groups = [g for g in groups if len(g) >= 2]
    h_stat = p_value = None
    if len(groups) >= 2 and len({float(v) for g in groups for v in g}) > 1:
        result = stats.kruskal(*groups)
        h_stat, p_value = float(result.statistic), float(result.pvalue)
    return (
        outcomes.group_by("segment_id", "segment_name")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            # Exact sums: a float mean's last bit depends on polars' thread count (backfill workers).
            exact_mean(pl.col("future_revenue")).alias("mean_future_revenue"),
            pl.col("future_revenue").median().alias("median_future_revenue"),
            pl.col("future_invoices").cast(pl.Float64).mean().alias("mean_future_invoices"),
            (pl.col("future_invoices") > 0).cast(pl.Float64).mean().alias("purchase_rate"),
        )
        .with_columns(
            pl.lit(assigned_period).alias("assigned_period"),
            pl.lit(horizon, dtype=pl.Int64).alias("horizon_months"),
            pl.lit(len(profiles), dtype=pl.Int64).alias("months_observed"),
            pl.lit(h_stat, dtype=pl.Float64).alias("kruskal_h"),
            pl.lit(p_value, dtype=pl.Float64).alias("kruskal_p"),
        )
        .select(list(BACKTEST_SCHEMA))
        .cast(BACKTEST_SCHEMA)
        .sort("segment_id")
    )
