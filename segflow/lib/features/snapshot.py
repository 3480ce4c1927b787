"""The snapshot feature set: demographic and behavioural features from a per-customer snapshot,
for data without transaction line items (``sources.transactions`` disabled, ``sources.snapshot`` on).

A snapshot (a CRM or loyalty export) reports, per customer, totals over its own window
(``features.snapshot_months``): spend, purchases per channel, recency, web visits, campaign
responses. There are no invoices or purchase dates, so there is no RFM: no quintile scores and no
named RFM segments. Everything else is computed from the current month's profiles only, because a
snapshot is cumulative already (summing a trailing window of snapshots would double-count).

Rates are per month of the snapshot window; shares are of the customer's purchases. Segments are
then fitted on behaviour and demographics together (``MODEL_FEATURES``).
"""

from __future__ import annotations

import polars as pl

from segflow.lib.features.category_mix import SHARE_PREFIX
from segflow.lib.profiles.activity import snapshot_column
from segflow.lib.schema import CHANNELS

# (feature, transform), as in segflow.lib.models.clustering.MODEL_FEATURES. log1p tames long right tails.
MODEL_FEATURES: tuple[tuple[str, str], ...] = (
    ("recency_days", "identity"),
    ("purchases_per_month", "log1p"),
    ("avg_order_value", "log1p"),
    ("deal_share", "identity"),
    ("digital_share", "identity"),
    ("catalog_share", "identity"),
    ("web_visits_per_month", "identity"),
    ("campaign_response_rate", "identity"),
    ("age", "identity"),
    ("income", "log1p"),
    ("children", "identity"),
)

# Naming phrases (above average, below average), as in segflow.lib.models.clustering._PHRASES.
PHRASES: dict[str, tuple[str, str]] = {
    "spend_per_month": ("High-spending", "Low-spending"),
    "purchases_per_month": ("Frequent", "Infrequent"),
    "avg_order_value": ("Big-basket", "Small-basket"),
    "recency_days": ("Lapsing", "Recently active"),
    "deal_share": ("Deal-seeking", "Full-price"),
    "digital_share": ("Web-first", "Store-first"),
    "catalog_share": ("Catalogue-buying", "Catalogue-averse"),
    "web_visits_per_month": ("Web-browsing", "Rarely browsing"),
    "campaign_response_rate": ("Campaign-responsive", "Campaign-indifferent"),
    "age": ("Older", "Younger"),
    "income": ("High-income", "Lower-income"),
    "children": ("Family", "Child-free"),
}
VALUE_COLUMN = "spend_per_month"  # segments are numbered by it, highest first

# Profile columns carried unchanged (demographics; never PII).
DEMOGRAPHICS = ("birth_year", "income", "education", "household_size", "marital_status", "children",
                "gender", "region", "country", "age_band", "income_band", "household_size_band")  # fmt: skip

# Column lineage: each feature and the profile columns it is computed from.
_CHANNELS = tuple(snapshot_column(c) for c in ("web_purchases", "store_purchases", "catalog_purchases"))
FEATURE_SOURCES: dict[str, tuple[str, ...]] = {
    "recency_days": (snapshot_column("recency_days"),),
    "invoices_window": (snapshot_column("purchases"),),
    "net_revenue_window": (snapshot_column("spend"),),
    "purchases_per_month": (snapshot_column("purchases"),),
    "spend_per_month": (snapshot_column("spend"),),
    "avg_order_value": (snapshot_column("spend"), snapshot_column("purchases")),
    "deal_share": (snapshot_column("deal_purchases"), snapshot_column("purchases")),
    "digital_share": _CHANNELS,
    "catalog_share": _CHANNELS,
    "store_share": _CHANNELS,
    "web_visits_per_month": (snapshot_column("web_visits_per_month"),),
    "campaign_response_rate": (snapshot_column("campaign_responses"), snapshot_column("campaign_exposures")),
    "complaints": (snapshot_column("complaints"),),
    "age": ("birth_year", "period"),
    **{d: (d,) for d in DEMOGRAPHICS},
}


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num.cast(pl.Float64) / den).otherwise(None)


def build_snapshot_features(current: pl.LazyFrame, period: str, snapshot_months: int) -> pl.DataFrame:
    """The snapshot feature table for ``period``: one row per customer in the snapshot, sorted by id.

    ``current`` is the month's customer profiles (with the ``snapshot_*`` columns). Customers whose
    snapshot row was quarantined have no snapshot values and are not segmented. ``invoices_window``
    and ``net_revenue_window`` hold the snapshot's purchases and spend, so that the KPI audit reads
    the same columns in both feature sets.
    """
    s = snapshot_column
    months = float(snapshot_months)
    channels = pl.col(s("web_purchases")) + pl.col(s("store_purchases")) + pl.col(s("catalog_purchases"))
    year = int(period[:4])
    frame = (
        current.filter(pl.col(s("purchases")).is_not_null())
        .select(
            pl.lit(period).alias("period"),
            "customer_id",
            pl.col(s("recency_days")).cast(pl.Int64).alias("recency_days"),
            pl.col(s("purchases")).cast(pl.Int64).alias("invoices_window"),
            pl.col(s("spend")).cast(pl.Float64).alias("net_revenue_window"),
            (pl.col(s("purchases")) / months).alias("purchases_per_month"),
            (pl.col(s("spend")) / months).alias("spend_per_month"),
            _ratio(pl.col(s("spend")), pl.col(s("purchases"))).alias("avg_order_value"),
            _ratio(pl.col(s("deal_purchases")), pl.col(s("purchases"))).alias("deal_share"),
            _ratio(pl.col(s("web_purchases")), channels).alias("digital_share"),
            _ratio(pl.col(s("catalog_purchases")), channels).alias("catalog_share"),
            _ratio(pl.col(s("store_purchases")), channels).alias("store_share"),
            pl.col(s("web_visits_per_month")).cast(pl.Float64).alias("web_visits_per_month"),
            _ratio(pl.col(s("campaign_responses")), pl.col(s("campaign_exposures"))).alias(
                "campaign_response_rate"
            ),
            pl.col(s("complaints")).cast(pl.Int64).alias("complaints"),
            (pl.lit(year) - pl.col("birth_year")).cast(pl.Int32).alias("age"),
            *[pl.col(d) for d in DEMOGRAPHICS],
        )
        .sort("customer_id")
    )
    return frame.collect()


def feature_families(
    feature_set: str,
    enabled: dict[str, bool],
    model_features: list[str],
    unavailable: dict[str, str] | None = None,
    features: pl.DataFrame | None = None,
) -> list[dict]:
    """Which feature families the month's features could draw on, where each came from, and whether
    the model used any of its features. ``enabled`` maps source name to whether it is configured;
    ``unavailable`` is the model's ``unavailable_families`` (family -> reason). ``features``, the
    month's feature table, decides what the source delivers: a configured source without a
    category or channel column offers no category or channel mix (see ``delivered``)."""
    snapshot = feature_set == "snapshot"
    unavailable = unavailable or {}
    categories = not snapshot and enabled.get("transactions", False) and "category_mix" not in unavailable
    demographic = {"age", "income", "children", "birth_year", "household_size"}
    behaviour = {
        "recency_days", "invoices_per_month", "avg_order_value", "return_rate", "digital_share",
        "purchases_per_month", "deal_share", "catalog_share", "web_visits_per_month",
    }  # fmt: skip
    rows = [
        {
            "family": "rfm",
            "available": not snapshot,
            "source": "transactions (line items)" if not snapshot else "none: no transaction line items",
            "note": "recency, frequency and monetary quintile scores and the 11 named RFM segments"
            if not snapshot
            else "not available: RFM needs invoices and purchase dates; the snapshot has totals only",
        },
        {
            "family": "behaviour",
            "available": True,
            "source": "snapshot (per-customer totals)" if snapshot else "transactions (line items)",
            "note": "recency, purchase rate, basket size, deal and channel mix, web visits"
            if snapshot
            else "purchase rate, order value, returns",
        },
        {
            "family": "category_mix",
            "available": categories,
            "source": "transactions (line item categories)" if categories else "none",
            "note": "revenue shares of the top categories and the rest"
            if categories
            else unavailable.get("category_mix", "not available: no transaction line items with a category"),
        },
        {
            "family": "engagement",
            "available": enabled.get("engagement", False),
            "source": "engagement events" if enabled.get("engagement") else "none",
            "note": "sessions, email open and click rates",
        },
        {
            "family": "surveys",
            "available": enabled.get("surveys", False),
            "source": "survey answers" if enabled.get("surveys") else "none",
            "note": "Likert answers (profiled, not modelled)",
        },
        {
            "family": "campaigns",
            "available": enabled.get("campaigns", False) or snapshot,
            "source": "snapshot (campaign responses)"
            if snapshot
            else ("campaign exposures" if enabled.get("campaigns") else "none"),
            "note": "response rate to campaigns",
        },
        {
            "family": "demographics",
            "available": enabled.get("customers", False),
            "source": "CRM customers" + (" and snapshot" if snapshot else "")
            if enabled.get("customers")
            else "none",
            "note": "age, income, children, education, marital status"
            if snapshot
            else "birth year, gender, income, education, household size (profiled, not modelled)",
        },
    ]
    used = set(model_features)
    if not snapshot:  # recency is the R of RFM when it comes from line items
        behaviour = behaviour - {"recency_days"}
    families_of = {
        "behaviour": behaviour,
        "engagement": {"sessions_per_month", "email_open_rate", "email_click_rate"},
        "campaigns": {"campaign_response_rate"},
        "demographics": demographic,
        "rfm": set() if snapshot else {"recency_days"},
        "surveys": set(),
    }
    families_of["category_mix"] = {f for f in used if f.startswith(SHARE_PREFIX)}
    if not snapshot:
        rows.insert(2, _channel_row(features))
        families_of["channel_mix"] = {f"{c}_share" for c in CHANNELS} | {"digital_share"}
        families_of["behaviour"] -= families_of["channel_mix"]
    if features is not None and not snapshot and not delivered(features)["category_mix"]:
        rows[3] = {**rows[3], "available": False, "source": "none",
                   "note": "not available: the transactions carry no product category"}  # fmt: skip
    for row in rows:
        row["used_in_model"] = bool(used & families_of[row["family"]]) and row["available"]
    return rows


def delivered(features: pl.DataFrame) -> dict[str, bool]:
    """What the month's feature table holds data for, not just columns: a category share column
    exists only when some line item had a category; channel shares exist always, but are all zero
    when no line item had a channel."""
    channels = [f"{c}_share" for c in CHANNELS if f"{c}_share" in features.columns]
    known = features.select(pl.sum_horizontal(channels).fill_null(0).gt(0).any()).item() if channels else False
    return {"category_mix": any(c.startswith(SHARE_PREFIX) for c in features.columns), "channel_mix": bool(known)}


def _channel_row(features: pl.DataFrame | None) -> dict:
    """The channel-mix family of the transactions feature set: there when purchases carry a channel."""
    available = features is None or delivered(features)["channel_mix"]
    return {
        "family": "channel_mix",
        "available": available,
        "source": "transactions (line item channel)" if available else "none",
        "note": "share of purchases per channel (web, store, app)"
        if available
        else "not available: the transactions carry no channel, so no persona names a channel",
    }
