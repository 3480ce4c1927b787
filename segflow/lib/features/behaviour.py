"""Behavioural and engagement features over the trailing window, plus the full feature table.

Rates are per month of tenure inside the window (from the first month the customer is seen in
the window, up to the partition's month), so a customer who signed up two months ago is not
mistaken for an infrequent one.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from segflow.lib.exact import exact_sum
from segflow.lib.features import rfm
from segflow.lib.features.category_mix import CategoryMix, category_mix
from segflow.lib.schema import CHANNELS, SURVEY_QUESTIONS

# Demographics carried from the current month's profile, for personas and audits (never PII).
DEMOGRAPHICS = ("birth_year", "gender", "income", "education", "household_size", "marital_status",
                "age_band", "income_band", "household_size_band", "region", "country",
                "preferred_channel", "marketing_opt_in")  # fmt: skip

# Engagement and campaign rates over the window, null where the denominator is zero:
# (numerator, denominator), which are also the rate's column lineage.
_EVENT_RATES: dict[str, tuple[str, str]] = {
    "pages_per_session": ("page_views", "sessions"),
    "email_open_rate": ("email_opens", "email_sends"),
    "email_click_rate": ("email_clicks", "email_opens"),
    "campaign_response_rate": ("campaign_responses", "campaign_exposures"),
}


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(None)


def _latest_answer(question: str, names: list[str]) -> pl.Expr:
    """The customer's latest answer in the window, preferring one they gave over one imputed.

    A partly answered survey in March has its other questions imputed; an answer the customer
    gave in January to one of those questions is still theirs, so it wins over March's estimate.
    Months written before the flags existed count as answered.
    """
    column = f"survey_{question}"
    flag = f"{column}_imputed"
    # Sorted by (given, period), the last non-null value is the latest given answer, if any.
    keys = [~pl.col(flag).fill_null(False), "period"] if flag in names else ["period"]
    return pl.col(column).sort_by(keys).drop_nulls().last().alias(column)


def behaviour_features(window: pl.LazyFrame, period: str) -> pl.LazyFrame:
    """Per customer: tenure, purchase rate, order value, returns, channel mix and engagement."""
    names = window.collect_schema().names()
    month_index = (
        pl.col("period").str.to_date("%Y-%m").dt.year() * 12
        + pl.col("period").str.to_date("%Y-%m").dt.month()
    )
    current = int(period[:4]) * 12 + int(period[5:7])
    sums = window.group_by("customer_id").agg(
        (pl.lit(current) - month_index.min() + 1).alias("tenure_months"),
        *[exact_sum(pl.col(c)).alias(c) for c in ("gross_revenue", "returns_value", "net_revenue")],
        *[
            pl.col(c).sum()
            for c in (
                "n_invoices",
                "n_cancellations",
                "sessions",
                "page_views",
                "email_sends",
                "email_opens",
                "email_clicks",
                "campaign_exposures",
                "campaign_responses",
            )
        ],
        *[pl.col(f"{c}_invoices").sum() for c in CHANNELS],
        pl.col("period").filter(pl.col("n_invoices") > 0).n_unique().alias("active_months"),
        # Latest answer in the window; sorted by period because scan order across files is not fixed.
        *[_latest_answer(q, names) for q in SURVEY_QUESTIONS],
    )
    tenure = pl.col("tenure_months").cast(pl.Float64)
    return sums.select(
        "customer_id",
        pl.col("tenure_months").cast(pl.Int32),
        pl.col("active_months").cast(pl.Int32),
        (pl.col("n_invoices") / tenure).alias("invoices_per_month"),
        _ratio(pl.col("net_revenue"), pl.col("n_invoices")).alias("avg_order_value"),
        _ratio(pl.col("returns_value"), pl.col("gross_revenue")).fill_null(0.0).alias("return_rate"),
        pl.col("gross_revenue").alias("gross_revenue_window"),
        pl.col("returns_value").alias("returns_value_window"),
        _ratio(pl.col("web_invoices") + pl.col("app_invoices"), pl.col("n_invoices")).alias("digital_share"),
        *[_ratio(pl.col(f"{c}_invoices"), pl.col("n_invoices")).alias(f"{c}_share") for c in CHANNELS],
        (pl.col("sessions") / tenure).alias("sessions_per_month"),
        *[_ratio(pl.col(num), pl.col(den)).alias(rate) for rate, (num, den) in _EVENT_RATES.items()],
        *[pl.col(f"survey_{q}") for q in SURVEY_QUESTIONS],
    )


def build_features(
    window: pl.LazyFrame,
    current: pl.LazyFrame,
    period: str,
    as_of: date,
    frequency: str,
    monetary: str,
    category_top_n: int = 8,
    categories: CategoryMix | None = None,
) -> pl.DataFrame:
    """The customer feature table for ``period``: RFM scores, behaviour, category mix and demographics.

    One row per customer with at least one purchase invoice in the window, sorted by id. The
    ``category_share_*`` columns (segflow.lib.features.category_mix) are absent when the window has no
    category; pass ``categories`` when it is already computed (the asset records it).
    """
    values = rfm.rfm_values(window, as_of, frequency=frequency, monetary=monetary)
    behaviour = behaviour_features(window, period)
    demographics = current.select("customer_id", *DEMOGRAPHICS)
    categories = categories if categories is not None else category_mix(window, category_top_n)
    joined = (
        values.join(behaviour, on="customer_id", how="left")
        .join(categories.shares.lazy(), on="customer_id", how="left")
        .join(demographics, on="customer_id", how="left")
        .sort("customer_id")
        .collect()
    )
    scored = rfm.score(joined)
    return scored.select(pl.lit(period).alias("period"), pl.all())


# Column lineage of the feature table: each feature and the profile columns it is computed from
# (the data-dependent category shares: segflow.lib.features.category_mix.lineage).
FEATURE_SOURCES: dict[str, tuple[str, ...]] = {
    "recency_days": ("last_purchase_at",),
    "frequency": ("n_invoices",),
    "monetary": ("net_revenue", "n_invoices"),
    "invoices_window": ("n_invoices",),
    "net_revenue_window": ("net_revenue",),
    "tenure_months": ("period",),
    "active_months": ("period", "n_invoices"),
    "invoices_per_month": ("n_invoices", "period"),
    "avg_order_value": ("net_revenue", "n_invoices"),
    "return_rate": ("returns_value", "gross_revenue"),
    "gross_revenue_window": ("gross_revenue",),
    "returns_value_window": ("returns_value",),
    "digital_share": ("web_invoices", "app_invoices", "n_invoices"),
    **{f"{c}_share": (f"{c}_invoices", "n_invoices") for c in CHANNELS},
    "sessions_per_month": ("sessions", "period"),
    **_EVENT_RATES,
    **{f"survey_{q}": (f"survey_{q}", f"survey_{q}_imputed", "period") for q in SURVEY_QUESTIONS},
    **{d: (d,) for d in DEMOGRAPHICS},
    "r_score": ("last_purchase_at",),
    "f_score": ("n_invoices",),
    "m_score": ("net_revenue",),
    "rfm_code": ("last_purchase_at", "n_invoices", "net_revenue"),
    "rfm_segment": ("last_purchase_at", "n_invoices", "net_revenue"),
}
