"""Per-segment KPI audit of one period's assignments.

Population flows use the segmented population (customers with a purchase in the trailing window):

* **new**: segmented this month, not segmented last month. With a trailing window that means the
  customer's first purchase in the window is in this month (acquired, or reactivated after a full
  window without purchases). Null for the first month, when there is no previous month.
* **retained**: segmented this month and last month (in any segment).
* **lost** (churned): segmented last month, not this month: a full window without a purchase.
  Counted against the segment the customer was in last month.
"""

from __future__ import annotations

import polars as pl

from segflow.lib.exact import exact_mean, exact_sum
from segflow.lib.schema import CAMPAIGN_ARMS, CAMPAIGNS

KPI_COLUMNS = (
    "segment_id",
    "segment_name",
    "customers",
    "customer_share",
    "new_customers",
    "retained_customers",
    "lost_customers",
    "revenue",
    "revenue_share",
    "avg_order_value",
    "mean_frequency",
    "mean_recency_days",
    "median_recency_days",
    "return_rate",
    "email_open_rate",
    "email_click_rate",
    "sessions_per_month",
    "mean_churn_risk",
    "predicted_value",
    "predicted_value_share",
    "expected_purchases",
    "mean_p_alive",
    "treatment_exposed",
    "treatment_response_rate",
    "control_exposed",
    "control_response_rate",
)


def first_exposures(exposures: pl.DataFrame) -> pl.DataFrame:
    """One exposure per (campaign, customer), the first in file order: a customer counts once in a
    campaign's arm, however often the campaign reached them. ``exposures``: the month's cleaned
    exposures (``campaign_exposures``, from the profiles stage, whose row rules already dropped
    exposures without a campaign, customer, known arm or response)."""
    return exposures.select("campaign_id", "customer_id", "arm", "responded").unique(
        ["campaign_id", "customer_id"], keep="first", maintain_order=True
    )


def _mean_or_null(frame: pl.DataFrame, column: str) -> pl.Expr:
    if column in frame.columns:
        return exact_mean(pl.col(column).cast(pl.Float64).fill_nan(None)).alias(column)
    return pl.lit(None, dtype=pl.Float64).alias(column)


def _sum_or_null(frame: pl.DataFrame, column: str) -> pl.Expr:
    """The segment's total of a predicted column; null when the column is absent or all null (the
    model was withheld), so that a withheld prediction never reads as a prediction of zero."""
    if column not in frame.columns:
        return pl.lit(None, dtype=pl.Float64).alias(column)
    value = pl.col(column).cast(pl.Float64)
    return pl.when(value.is_not_null().any()).then(exact_sum(value)).alias(column)


def _share_of_total(frame: pl.DataFrame, column: str) -> pl.Expr:
    """The segment's share of the column's total over all segments; null without a positive total."""
    if column not in frame.columns or frame[column].null_count() == frame.height:
        return pl.lit(None, dtype=pl.Float64)
    total = frame.select(exact_sum(pl.col(column).cast(pl.Float64))).item()
    return pl.col(column) / total if total and total > 0 else pl.lit(None, dtype=pl.Float64)


def segment_kpis(
    assignments: pl.DataFrame,
    features: pl.DataFrame | None = None,
    previous: pl.DataFrame | None = None,
    exposures: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per segment: size and flows, value, behaviour, engagement, churn risk and campaign response.

    ``assignments``: one row per customer (``customer_id``, ``segment_id``, ``segment_name``,
    ``net_revenue_window``, ``invoices_window``, ``recency_days``; ``churn_risk`` when the model
    provides it; ``predicted_value``, ``expected_purchases`` and ``p_alive`` when the CLV model
    does). ``features``: the month's customer features (return and engagement columns).
    ``previous``: last month's assignments, or None for the first month. ``exposures``: the month's cleaned
    exposures (``campaign_id, customer_id, arm, responded``).

    ``revenue`` is net revenue in the window; ``avg_order_value`` is revenue per purchase invoice of
    the segment as a whole; ``return_rate`` is returned value over gross revenue of the segment;
    engagement rates are means of the customers' window rates; response rates are responders over
    exposures per arm; ``predicted_value`` and ``expected_purchases`` are the segment's totals over
    the CLV horizon, ``predicted_value_share`` its share of all predicted value. Counts are Int64, rates Float64 (null when undefined).
    """
    frame = _with_previous(_with_features(assignments, features), previous)
    kpis = _segment_totals(frame, assignments)
    kpis = _with_lost(kpis, assignments, previous)
    kpis = kpis.join(_arm_response(assignments, exposures), on="segment_id", how="left").with_columns(
        pl.col("treatment_exposed", "control_exposed").fill_null(0)
    )
    return kpis.select(
        pl.col("segment_id").cast(pl.Int64),
        pl.col("segment_name").cast(pl.String),
        *[pl.col(c) for c in KPI_COLUMNS[2:]],
    ).sort("segment_id")


def _with_features(assignments: pl.DataFrame, features: pl.DataFrame | None) -> pl.DataFrame:
    """The assignments with the features' return and engagement columns they lack."""
    if features is None:
        return assignments
    extra = [
        c
        for c in (
            "gross_revenue_window",
            "returns_value_window",
            "email_open_rate",
            "email_click_rate",
            "sessions_per_month",
        )
        if c in features.columns and c not in assignments.columns
    ]
    return assignments.join(features.select("customer_id", *extra), on="customer_id", how="left")


def _with_previous(frame: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """``_was``: whether the customer was segmented last month (null in the first month)."""
    if previous is not None:
        return frame.with_columns(
            pl.col("customer_id").is_in(previous["customer_id"].implode()).alias("_was")
        )
    return frame.with_columns(pl.lit(None, dtype=pl.Boolean).alias("_was"))


def _return_rate(frame: pl.DataFrame) -> pl.Expr:
    if {"returns_value_window", "gross_revenue_window"} <= set(frame.columns):
        return (exact_sum(pl.col("returns_value_window")) / exact_sum(pl.col("gross_revenue_window"))).alias(
            "return_rate"
        )
    return pl.lit(None, dtype=pl.Float64).alias("return_rate")


def _segment_totals(frame: pl.DataFrame, assignments: pl.DataFrame) -> pl.DataFrame:
    """Per segment: size, flows in, value, behaviour, engagement, churn risk and predicted value."""
    total_customers = assignments.height
    total_revenue = assignments.select(exact_sum(pl.col("net_revenue_window"))).item()
    return (
        frame.group_by("segment_id", "segment_name")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            (~pl.col("_was")).sum().cast(pl.Int64).alias("new_customers"),
            pl.col("_was").sum().cast(pl.Int64).alias("retained_customers"),
            exact_sum(pl.col("net_revenue_window")).alias("revenue"),
            pl.col("invoices_window").sum().alias("invoices"),
            pl.col("invoices_window").cast(pl.Float64).mean().alias("mean_frequency"),
            pl.col("recency_days").cast(pl.Float64).mean().alias("mean_recency_days"),
            pl.col("recency_days").cast(pl.Float64).median().alias("median_recency_days"),
            _return_rate(frame),
            _mean_or_null(frame, "email_open_rate"),
            _mean_or_null(frame, "email_click_rate"),
            _mean_or_null(frame, "sessions_per_month"),
            _mean_or_null(frame, "churn_risk").alias("mean_churn_risk"),
            _sum_or_null(frame, "predicted_value"),
            _sum_or_null(frame, "expected_purchases"),
            _mean_or_null(frame, "p_alive").alias("mean_p_alive"),
        )
        .with_columns(
            (pl.col("customers") / total_customers).alias("customer_share"),
            (pl.col("revenue") / total_revenue if total_revenue else pl.lit(None, dtype=pl.Float64)).alias(
                "revenue_share"
            ),
            _share_of_total(frame, "predicted_value").alias("predicted_value_share"),
            pl.when(pl.col("invoices") > 0)
            .then(pl.col("revenue") / pl.col("invoices"))
            .alias("avg_order_value"),
        )
    )


def _with_lost(kpis: pl.DataFrame, assignments: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """Customers lost since last month, counted against last month's segment; flows are null in
    the first month, when there is no last month."""
    if previous is None:
        return kpis.with_columns(
            pl.lit(None, dtype=pl.Int64).alias("new_customers"),
            pl.lit(None, dtype=pl.Int64).alias("retained_customers"),
            pl.lit(None, dtype=pl.Int64).alias("lost_customers"),
        )
    lost = (
        previous.filter(~pl.col("customer_id").is_in(assignments["customer_id"].implode()))
        .group_by("segment_id")
        .agg(pl.len().cast(pl.Int64).alias("lost_customers"))
    )
    return kpis.join(lost, on="segment_id", how="left").with_columns(pl.col("lost_customers").fill_null(0))


def _arm_response(assignments: pl.DataFrame, exposures: pl.DataFrame | None) -> pl.DataFrame:
    schema = {"segment_id": assignments.schema["segment_id"]}
    columns = {}
    for arm in CAMPAIGN_ARMS:
        columns[f"{arm}_exposed"] = pl.Int64
        columns[f"{arm}_response_rate"] = pl.Float64
    exposures = first_exposures(exposures if exposures is not None else pl.DataFrame(schema=CAMPAIGNS))
    joined = exposures.join(assignments.select("customer_id", "segment_id"), on="customer_id", how="inner")
    if joined.height == 0:
        return pl.DataFrame(schema={**schema, **columns})
    aggs = []
    for arm in CAMPAIGN_ARMS:
        in_arm = pl.col("arm") == arm
        aggs += [
            in_arm.sum().cast(pl.Int64).alias(f"{arm}_exposed"),
            pl.col("responded").filter(in_arm).cast(pl.Float64).mean().alias(f"{arm}_response_rate"),
        ]
    return joined.group_by("segment_id").agg(*aggs)
