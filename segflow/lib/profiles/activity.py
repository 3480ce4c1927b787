"""The month's activity of each customer, one row per customer, joined onto the profiles.

Every source but the CRM contributes columns: purchases net of cancellations and returns (also per
product category, as ``CATEGORY_REVENUE``), engagement event counts, the latest survey answers and
campaign exposures, and the behaviour snapshot's totals (``snapshot_*``). A customer without
activity in a source gets zero counts and amounts, so the features stage can sum months blindly.
"""

from __future__ import annotations

import polars as pl

from segflow.lib.exact import exact_sum
from segflow.lib.profiles.cleaning import Cleaned, cancellation_expr
from segflow.lib.schema import CHANNELS, SURVEY_QUESTIONS

ACTIVITY_COUNTS = (
    "n_invoices", "purchase_days", "n_cancellations", "n_lines", "units",
    *(f"{c}_invoices" for c in CHANNELS),
    "sessions", "page_views", "email_sends", "email_opens", "email_clicks",
    "campaign_exposures", "campaign_responses",
)  # fmt: skip
ACTIVITY_AMOUNTS = ("gross_revenue", "returns_value", "net_revenue")
# The month's net revenue per product category, as a list of {category, net_revenue} per customer.
# A list column rather than one column per category or a separate long table: the set of categories
# is the data's, so wide columns would change the table's schema (and its contract) from month to
# month, while a long table would be a second asset the features stage must join on every read of
# its trailing window. The list keeps one row per (customer, period), the key every check and
# reader of profiles relies on, and a fixed schema the contract can type (`logicalType: array`).
CATEGORY_REVENUE = "category_revenue"
CATEGORY_REVENUE_TYPE = pl.List(pl.Struct({"category": pl.String(), "net_revenue": pl.Float64()}))


# Snapshot behaviour carried into profiles, prefixed so that it never mixes with the monthly
# activity columns (a snapshot's campaign responses cover its whole window, not the month).
SNAPSHOT_BEHAVIOUR = (
    "recency_days", "spend", "purchases", "web_purchases", "store_purchases", "catalog_purchases",
    "deal_purchases", "web_visits_per_month", "campaign_exposures", "campaign_responses", "complaints",
)  # fmt: skip
SNAPSHOT_DEMOGRAPHICS = ("marital_status", "children")


def snapshot_column(name: str) -> str:
    """The profile column of the snapshot's ``name`` (one of ``SNAPSHOT_BEHAVIOUR``)."""
    return f"snapshot_{name}"


def transaction_activity(tx: pl.DataFrame) -> pl.DataFrame:
    """Per customer, the month's accepted line items summed: invoices, purchase days, cancellations,
    lines, units, invoices per channel, gross and net revenue, returns, first and last purchase."""
    cancel = cancellation_expr(tx.columns)
    amount = pl.col("quantity") * pl.col("unit_price")
    purchase_invoice = pl.col("invoice_id").filter(~cancel)
    return tx.group_by("customer_id").agg(
        purchase_invoice.n_unique().alias("n_invoices"),
        # Distinct days with a purchase: the BTYD models count repeat purchases in days, as
        # lifetimes and pymc-marketing do, so several invoices on one day are one purchase.
        pl.col("invoiced_at").filter(~cancel).dt.date().n_unique().alias("purchase_days"),
        pl.col("invoice_id").filter(cancel).n_unique().alias("n_cancellations"),
        pl.len().alias("n_lines"),
        pl.col("quantity").filter(~cancel).sum().alias("units"),
        *[
            pl.col("invoice_id").filter(~cancel & (pl.col("channel") == c)).n_unique().alias(f"{c}_invoices")
            for c in CHANNELS
        ],
        exact_sum(amount.filter(~cancel)).alias("gross_revenue"),
        exact_sum(-amount.filter(cancel)).alias("returns_value"),
        exact_sum(amount).alias("net_revenue"),
        pl.col("invoiced_at").filter(~cancel).min().alias("first_purchase_at"),
        pl.col("invoiced_at").filter(~cancel).max().alias("last_purchase_at"),
    )


def category_revenue(tx: pl.DataFrame) -> pl.DataFrame:
    """Per customer, the month's net revenue by category (purchases minus cancellations and returns,
    as ``net_revenue``), sorted by category. Lines without a category (a source that maps none, or
    a blank cell) are left out rather than given a made-up one: ``net_revenue`` minus the list's sum
    is the month's uncategorised revenue, and a window without any category makes the features
    stage report the category mix unavailable instead of inventing shares."""
    category = pl.col("category").cast(pl.String).str.strip_chars()
    amount = (pl.col("quantity") * pl.col("unit_price")).alias("amount")
    lines = tx.select("customer_id", category.alias("category"), amount)
    per_category = (
        lines.filter(pl.col("category").is_not_null() & (pl.col("category") != ""))
        .group_by("customer_id", "category")
        .agg(exact_sum(pl.col("amount")).alias("net_revenue"))
    )
    return category_lists(per_category)


def category_lists(per_category: pl.DataFrame) -> pl.DataFrame:
    """One row per customer from (customer_id, category, net_revenue) rows: the categories as a
    ``CATEGORY_REVENUE`` list, sorted by name (another engine's per-category sums come here too)."""
    return (
        per_category.sort("customer_id", "category")
        .group_by("customer_id", maintain_order=True)
        .agg(pl.struct("category", "net_revenue").alias(CATEGORY_REVENUE))
    )


def _engagement_activity(events: pl.DataFrame) -> pl.DataFrame:
    names = {"session": "sessions", "page_view": "page_views", "email_send": "email_sends",
             "email_open": "email_opens", "email_click": "email_clicks"}  # fmt: skip
    return events.group_by("customer_id").agg(
        [(pl.col("event_type") == t).sum().cast(pl.Int64).alias(n) for t, n in names.items()]
    )


def _survey_answers(answers: pl.DataFrame) -> pl.DataFrame:
    latest = (
        answers.sort("answered_at", "customer_id", "question_id")
        .group_by("customer_id", "question_id", maintain_order=True)
        .last()
    )
    wide = latest.pivot(on="question_id", index="customer_id", values="answer")
    return wide.select(
        "customer_id",
        *[
            (pl.col(q) if q in wide.columns else pl.lit(None)).cast(pl.Int32).alias(f"survey_{q}")
            for q in SURVEY_QUESTIONS
        ],
    )


def _campaign_activity(exposures: pl.DataFrame) -> pl.DataFrame:
    return exposures.group_by("customer_id").agg(
        pl.len().cast(pl.Int64).alias("campaign_exposures"),
        pl.col("responded").sum().cast(pl.Int64).alias("campaign_responses"),
    )


def snapshot_activity(snapshot: pl.DataFrame) -> pl.DataFrame:
    """The snapshot's accepted rows as profile columns: behaviour prefixed, demographics as they are."""
    return snapshot.select(
        "customer_id",
        *[pl.col(c).alias(snapshot_column(c)) for c in SNAPSHOT_BEHAVIOUR],
        *SNAPSHOT_DEMOGRAPHICS,
    )


def month_activity(
    results: dict[str, Cleaned],
    tx_activity: pl.DataFrame,
    categories: pl.DataFrame,
    snapshot: pl.DataFrame | None,
) -> list[pl.DataFrame]:
    """Per source, the month's activity tables to join onto the customers, in column order: the
    line items' sums (``transaction_activity``, ``category_revenue``) always, the other sources
    where they were cleaned, and the snapshot's behaviour (``snapshot_activity``)."""
    activity = [tx_activity, categories]
    if "engagement" in results:
        activity.append(_engagement_activity(results["engagement"].accepted))
    if "surveys" in results:
        activity.append(_survey_answers(results["surveys"].accepted))
    if "campaigns" in results:
        activity.append(_campaign_activity(results["campaigns"].accepted))
    if snapshot is not None:
        activity.append(snapshot.drop(*SNAPSHOT_DEMOGRAPHICS))
    return activity


def with_activity(customers: pl.DataFrame, activity: list[pl.DataFrame], period: str) -> pl.DataFrame:
    """The profiles: ``customers`` with every ``activity`` table left-joined on, no activity counted
    as zero (a source that is off as zero too; an unasked survey question as null), sorted by id,
    ``customer_id`` and ``period`` first."""
    profiles = customers
    for part in activity:
        profiles = profiles.join(part, on="customer_id", how="left")
    fill = [pl.col(c).fill_null(0).cast(pl.Int64) for c in ACTIVITY_COUNTS if c in profiles.columns]
    fill += [pl.col(c).fill_null(0.0).cast(pl.Float64) for c in ACTIVITY_AMOUNTS]
    fill.append(pl.col(CATEGORY_REVENUE).cast(CATEGORY_REVENUE_TYPE).fill_null([]))
    missing = [pl.lit(0, dtype=pl.Int64).alias(c) for c in ACTIVITY_COUNTS if c not in profiles.columns]
    missing += [
        pl.lit(None, dtype=pl.Int32).alias(f"survey_{q}")
        for q in SURVEY_QUESTIONS
        if f"survey_{q}" not in profiles.columns
    ]
    return (
        profiles.with_columns(*fill, *missing, pl.lit(period).alias("period"))
        .sort("customer_id")
        .select("customer_id", "period", pl.exclude("customer_id", "period"))
    )
