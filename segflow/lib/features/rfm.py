"""RFM: recency, frequency and monetary value as of a partition's end, with quintile scores and
the 11 named segments.

Definitions (each a setting, stated in the report):
- the window is the ``window_months`` calendar months ending with the partition's month;
- recency is the number of days from the customer's last purchase date to the as-of date, the
  first day after the partition's month (so a purchase on the month's last day has recency 1);
- frequency counts distinct purchase invoices (``invoices``) or purchases after the first
  (``repeat``); cancellation invoices never count;
- monetary is net revenue (purchases minus cancellations and returns) in the window (``sum``) or
  net revenue per purchase invoice (``mean``).
Customers whose window holds no purchase invoice (only cancellations, or nothing) have no recency
and are left out of RFM scoring; their rows stay in the profiles and the quarantine accounting.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from segflow.lib.exact import exact_sum

SEGMENT_GRID: dict[str, tuple[str, ...]] = {
    "Champions": ("55", "54", "45"),
    "Loyal": ("53", "44", "35", "34"),
    "Potential Loyalists": ("52", "42", "33", "43"),
    "Recent": ("51",),
    "Promising": ("41", "31"),
    "Needing Attention": ("32", "23", "22"),
    "About to Sleep": ("21",),
    "At Risk": ("25", "24", "13"),
    "Can't Lose Them": ("15", "14"),
    "Hibernating": ("12",),
    "Lost": ("11",),
}
_CODE_TO_SEGMENT = {code: name for name, codes in SEGMENT_GRID.items() for code in codes}


def rfm_values(
    window: pl.LazyFrame, as_of: date, frequency: str = "invoices", monetary: str = "sum"
) -> pl.LazyFrame:
    """Per customer: ``recency_days``, ``frequency``, ``monetary`` from monthly profile rows.

    ``window`` holds the profile rows of every month in the window (columns customer_id,
    n_invoices, net_revenue, last_purchase_at).
    """
    totals = (
        window.group_by("customer_id")
        .agg(
            pl.col("n_invoices").sum().alias("invoices"),
            exact_sum(pl.col("net_revenue")).alias("net_revenue_window"),
            pl.col("last_purchase_at").max().alias("last_purchase_at"),
        )
        .filter(pl.col("invoices") > 0)
    )
    freq = pl.col("invoices") - 1 if frequency == "repeat" else pl.col("invoices")
    money = (
        pl.col("net_revenue_window") / pl.col("invoices")
        if monetary == "mean"
        else pl.col("net_revenue_window")
    )
    return totals.select(
        "customer_id",
        (pl.lit(as_of) - pl.col("last_purchase_at").dt.date())
        .dt.total_days()
        .cast(pl.Int64)
        .alias("recency_days"),
        freq.cast(pl.Int64).alias("frequency"),
        money.alias("monetary"),
        pl.col("invoices").cast(pl.Int64).alias("invoices_window"),
        pl.col("net_revenue_window"),
    )


def _quintile(value: pl.Expr, higher_is_better: bool) -> pl.Expr:
    # Rank on a stable sort, ties broken by customer id, so equal values never straddle
    # scores at random and the result is the same on every run (unlike qcut on tied values).
    goodness = value if higher_is_better else -value
    rank = pl.struct(goodness.alias("g"), pl.col("customer_id")).rank(method="ordinal") - 1
    return (rank * 5 // pl.len() + 1).cast(pl.Int8)


def score(rfm: pl.DataFrame) -> pl.DataFrame:
    """Add r/f/m scores (5 best), the RFM code and the named segment."""
    scored = rfm.with_columns(
        _quintile(pl.col("recency_days"), higher_is_better=False).alias("r_score"),
        _quintile(pl.col("frequency"), higher_is_better=True).alias("f_score"),
        _quintile(pl.col("monetary"), higher_is_better=True).alias("m_score"),
    )
    # FM is the mean of F and M rounded half up: (F + M + 1) // 2 in integers.
    fm = ((pl.col("f_score").cast(pl.Int32) + pl.col("m_score") + 1) // 2).cast(pl.Int8)
    code = pl.format("{}{}", pl.col("r_score"), fm)
    return scored.with_columns(
        pl.format("{}{}{}", "r_score", "f_score", "m_score").alias("rfm_code"),
        code.replace_strict(_CODE_TO_SEGMENT, return_dtype=pl.String).alias("rfm_segment"),
    )


def thresholds(scored: pl.DataFrame) -> pl.DataFrame:
    """The value range behind each score, for the report and metadata."""
    parts = []
    for metric, column in (("recency_days", "r_score"), ("frequency", "f_score"), ("monetary", "m_score")):
        parts.append(
            scored.group_by(pl.col(column).alias("score"))
            .agg(
                pl.col(metric).min().cast(pl.Float64).alias("min"),
                pl.col(metric).max().cast(pl.Float64).alias("max"),
                pl.len().alias("customers"),
            )
            .with_columns(pl.lit(metric).alias("metric"))
        )
    return pl.concat(parts).select("metric", "score", "min", "max", "customers").sort("metric", "score")
