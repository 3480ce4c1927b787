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

# (feature, transform), as in segflow.lib.models.design.MODEL_FEATURES. log1p tames long right tails.
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

# Naming phrases (above average, below average), as in segflow.lib.models.naming._PHRASES.
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
    rows = [
        _rfm_row(snapshot),
        _behaviour_row(snapshot),
        *([] if snapshot else [_channel_row(features)]),
        _category_row(snapshot, enabled, unavailable or {}, features),
        _source_row(
            "engagement",
            enabled.get("engagement", False),
            "engagement events",
            "sessions, email open and click rates",
        ),
        _source_row(
            "surveys",
            enabled.get("surveys", False),
            "survey answers",
            "Likert answers (profiled, not modelled)",
        ),
        _campaigns_row(snapshot, enabled),
        _demographics_row(snapshot, enabled),
    ]
    used = set(model_features)
    members = _family_features(snapshot, used)
    for row in rows:
        row["used_in_model"] = bool(used & members[row["family"]]) and row["available"]
    return rows


def _family_row(family: str, available: bool, source: str, note: str) -> dict:
    return {"family": family, "available": available, "source": source, "note": note}


def _source_row(family: str, available: bool, source: str, note: str) -> dict:
    """A family that is there exactly when its own source is configured."""
    return _family_row(family, available, source if available else "none", note)


def _rfm_row(snapshot: bool) -> dict:
    if snapshot:
        return _family_row(
            "rfm",
            False,
            "none: no transaction line items",
            "not available: RFM needs invoices and purchase dates; the snapshot has totals only",
        )
    return _family_row(
        "rfm",
        True,
        "transactions (line items)",
        "recency, frequency and monetary quintile scores and the 11 named RFM segments",
    )


def _behaviour_row(snapshot: bool) -> dict:
    if snapshot:
        return _family_row(
            "behaviour",
            True,
            "snapshot (per-customer totals)",
            "recency, purchase rate, basket size, deal and channel mix, web visits",
        )
    return _family_row("behaviour", True, "transactions (line items)", "purchase rate, order value, returns")


def _channel_row(features: pl.DataFrame | None) -> dict:
    """The channel-mix family of the transactions feature set: there when purchases carry a channel."""
    if features is None or delivered(features)["channel_mix"]:
        return _family_row(
            "channel_mix",
            True,
            "transactions (line item channel)",
            "share of purchases per channel (web, store, app)",
        )
    return _family_row(
        "channel_mix",
        False,
        "none",
        "not available: the transactions carry no channel, so no persona names a channel",
    )


def _category_row(
    snapshot: bool, enabled: dict[str, bool], unavailable: dict[str, str], features: pl.DataFrame | None
) -> dict:
    """The category-mix family: line items with a category, unless the model found it unavailable."""
    if features is not None and not snapshot and not delivered(features)["category_mix"]:
        return _family_row(
            "category_mix", False, "none", "not available: the transactions carry no product category"
        )
    available = not snapshot and enabled.get("transactions", False) and "category_mix" not in unavailable
    if available:
        return _family_row(
            "category_mix",
            available,
            "transactions (line item categories)",
            "revenue shares of the top categories and the rest",
        )
    return _family_row(
        "category_mix",
        available,
        "none",
        unavailable.get("category_mix", "not available: no transaction line items with a category"),
    )


def _campaigns_row(snapshot: bool, enabled: dict[str, bool]) -> dict:
    """Campaign responses: from the exposures, or the snapshot's totals when it stands in."""
    if snapshot:
        return _family_row("campaigns", True, "snapshot (campaign responses)", "response rate to campaigns")
    return _source_row(
        "campaigns", enabled.get("campaigns", False), "campaign exposures", "response rate to campaigns"
    )


def _demographics_row(snapshot: bool, enabled: dict[str, bool]) -> dict:
    source = "CRM customers" + (" and snapshot" if snapshot else "")
    note = (
        "age, income, children, education, marital status"
        if snapshot
        else "birth year, gender, income, education, household size (profiled, not modelled)"
    )
    return _source_row("demographics", enabled.get("customers", False), source, note)


def _family_features(snapshot: bool, used: set[str]) -> dict[str, set[str]]:
    """The model features that belong to each family, for ``used_in_model``: the category shares
    are those of ``used``, since the top categories are the data's."""
    behaviour = {
        "recency_days", "invoices_per_month", "avg_order_value", "return_rate", "digital_share",
        "purchases_per_month", "deal_share", "catalog_share", "web_visits_per_month",
    }  # fmt: skip
    if not snapshot:  # recency is the R of RFM when it comes from line items
        behaviour = behaviour - {"recency_days"}
    members = {
        "behaviour": behaviour,
        "engagement": {"sessions_per_month", "email_open_rate", "email_click_rate"},
        "campaigns": {"campaign_response_rate"},
        "demographics": {"age", "income", "children", "birth_year", "household_size"},
        "rfm": set() if snapshot else {"recency_days"},
        "surveys": set(),
        "category_mix": {f for f in used if f.startswith(SHARE_PREFIX)},
    }
    if not snapshot:
        members["channel_mix"] = {f"{c}_share" for c in CHANNELS} | {"digital_share"}
        members["behaviour"] -= members["channel_mix"]
    return members


def delivered(features: pl.DataFrame) -> dict[str, bool]:
    """What the month's feature table holds data for, not just columns: a category share column
    exists only when some line item had a category; channel shares exist always, but are all zero
    when no line item had a channel."""
    channels = [f"{c}_share" for c in CHANNELS if f"{c}_share" in features.columns]
    known = (
        features.select(pl.sum_horizontal(channels).fill_null(0).gt(0).any()).item() if channels else False
    )
    return {
        "category_mix": any(c.startswith(SHARE_PREFIX) for c in features.columns),
        "channel_mix": bool(known),
    }
