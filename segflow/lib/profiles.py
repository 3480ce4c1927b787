"""Cleaned, typed, one-row-per-customer monthly profiles built from the five raw sources.

A profile row holds the customer's demographics as of the month's end (PII removed, invalid
values recoded to null and then imputed, with flags) and the month's activity: purchases net of
cancellations and returns, engagement, survey answers and campaign exposures. The features stage
sums these monthly rows over its trailing window, so it never needs the line items again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from segflow.config import CleaningSettings
from segflow.lib import cleaning
from segflow.lib.cleaning import Cleaned
from segflow.lib.exact import exact_sum
from segflow.lib.imputation import CATEGORICAL, NUMERIC, impute_demographics, imputed_flag
from segflow.lib.schema import CHANNELS, CUSTOMERS, PII_COLUMNS, SURVEY_QUESTIONS

GENDERS = ("F", "M", "X")
EDUCATION_LEVELS = ("basic", "secondary", "bachelor", "master", "phd")
ACTIVITY_COUNTS = (
    "n_invoices", "n_cancellations", "n_lines", "units",
    *(f"{c}_invoices" for c in CHANNELS),
    "sessions", "page_views", "email_sends", "email_opens", "email_clicks",
    "campaign_exposures", "campaign_responses",
)  # fmt: skip
ACTIVITY_AMOUNTS = ("gross_revenue", "returns_value", "net_revenue")


@dataclass(frozen=True)
class RawSources:
    customers: pl.DataFrame | None
    transactions: pl.DataFrame
    engagement: pl.DataFrame | None
    surveys: pl.DataFrame | None
    campaigns: pl.DataFrame | None


@dataclass(frozen=True)
class ProfileBuild:
    profiles: pl.DataFrame
    quarantined: pl.DataFrame
    accounting: dict[str, dict[str, int]]  # per source: raw, accepted, quarantined, duplicates
    recoded: dict[str, int]  # invalid demographic values recoded to null before imputation


def _recode_invalid(
    customers: pl.DataFrame, year: int, settings: CleaningSettings
) -> tuple[pl.DataFrame, dict]:
    """Null out impossible demographic values so imputation treats them as missing."""
    valid = {
        "birth_year": pl.col("birth_year").is_between(1900, year - settings.min_age_years),
        "income": pl.col("income").is_between(0, 10_000_000) & pl.col("income").is_finite(),
        "household_size": pl.col("household_size").is_between(1, 15),
        "gender": pl.col("gender").is_in(GENDERS),
        "education": pl.col("education").is_in(EDUCATION_LEVELS),
    }
    counts = customers.select(
        [(pl.col(c).is_not_null() & ~expr.fill_null(False)).sum().alias(c) for c, expr in valid.items()]
    ).row(0, named=True)
    recoded = customers.with_columns(
        [pl.when(expr.fill_null(False)).then(pl.col(c)).otherwise(None).alias(c) for c, expr in valid.items()]
    )
    return recoded, {k: int(v) for k, v in counts.items()}


def _customers_from_transactions(transactions: pl.DataFrame) -> pl.DataFrame:
    """When there is no CRM source, the customers are the ids seen in accepted transactions."""
    ids = transactions.select(pl.col("customer_id").unique().sort())
    return ids.with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in CUSTOMERS.items() if c != "customer_id"]
    )


def _transaction_activity(tx: pl.DataFrame) -> pl.DataFrame:
    cancel = cleaning.cancellation_expr(tx.columns)
    amount = pl.col("quantity") * pl.col("unit_price")
    purchase_invoice = pl.col("invoice_id").filter(~cancel)
    return tx.group_by("customer_id").agg(
        purchase_invoice.n_unique().alias("n_invoices"),
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


def _clean(frame: pl.DataFrame | None, source: str, rules: list, period: str) -> Cleaned | None:
    if frame is None:
        return None
    return cleaning.apply_rules(cleaning.normalise_codes(frame, source), rules, source, period)


def build_profiles(
    raw: RawSources, period: str, start: datetime, end: datetime, settings: CleaningSettings, seed: int
) -> ProfileBuild:
    """Validate every source, quarantine bad rows, and build the month's customer profiles."""
    results: dict[str, Cleaned] = {}
    known: pl.Series | None = None
    recoded: dict[str, int] = {}
    if raw.customers is not None:
        customers_clean = _clean(raw.customers, "customers", cleaning.customer_rules(start, end), period)
        results["customers"] = customers_clean
        known = customers_clean.accepted["customer_id"]
    rules = {
        "transactions": cleaning.transaction_rules(start, end, settings, known, raw.transactions.columns),
        "engagement": cleaning.engagement_rules(start, end, known),
        "surveys": cleaning.survey_rules(start, end, known),
        "campaigns": cleaning.campaign_rules(start, end, known),
    }
    for source, source_rules in rules.items():
        cleaned = _clean(getattr(raw, source), source, source_rules, period)
        if cleaned is not None:
            results[source] = cleaned

    tx = results["transactions"].accepted
    if "customers" in results:
        customers = results["customers"].accepted.drop(
            *PII_COLUMNS, "_source_file", "_source_row", "_parse_error"
        )
        customers, recoded = _recode_invalid(customers, start.year, settings)
        customers = impute_demographics(customers.sort("customer_id"), seed)
    else:
        customers = _customers_from_transactions(tx).drop(*PII_COLUMNS)
        customers = customers.with_columns(
            [pl.lit(False).alias(imputed_flag(c)) for c in (*NUMERIC, *CATEGORICAL)]
        )

    activity = [_transaction_activity(tx)]
    if "engagement" in results:
        activity.append(_engagement_activity(results["engagement"].accepted))
    if "surveys" in results:
        activity.append(_survey_answers(results["surveys"].accepted))
    if "campaigns" in results:
        activity.append(_campaign_activity(results["campaigns"].accepted))

    profiles = customers
    for part in activity:
        profiles = profiles.join(part, on="customer_id", how="left")
    fill = [pl.col(c).fill_null(0).cast(pl.Int64) for c in ACTIVITY_COUNTS if c in profiles.columns]
    fill += [pl.col(c).fill_null(0.0).cast(pl.Float64) for c in ACTIVITY_AMOUNTS]
    missing = [pl.lit(0, dtype=pl.Int64).alias(c) for c in ACTIVITY_COUNTS if c not in profiles.columns]
    missing += [
        pl.lit(None, dtype=pl.Int32).alias(f"survey_{q}")
        for q in SURVEY_QUESTIONS
        if f"survey_{q}" not in profiles.columns
    ]
    profiles = (
        profiles.with_columns(*fill, *missing, pl.lit(period).alias("period"))
        .sort("customer_id")
        .select("customer_id", "period", pl.exclude("customer_id", "period"))
    )
    quarantined = pl.concat([r.quarantined for r in results.values()], how="vertical")
    accounting = {source: r.accounting() for source, r in results.items()}
    return ProfileBuild(profiles, quarantined, accounting, recoded)
