"""Persona cards: what sets each segment apart, in aggregates only (never PII, never a customer id).

A card holds the segment's name, its top distinguishing features with effect sizes (Cohen's d of the
segment against all other customers, on the features' natural scale), its demographic and
geographic mix, its preferred channel, its preferred category (the category with the highest mean
share of the segment's spend, when the features carry a category mix), psychographic traits from
the survey answers, and its dominant RFM segment. Category shares describing fewer than
``min_cell`` customers are suppressed, like every small cell in the report.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segflow.lib.features.category_mix import OTHER, SHARE_PREFIX, share_column
from segflow.lib.profiles.bands import BAND_COLUMNS
from segflow.lib.schema import CHANNELS, SURVEY_QUESTIONS

# Numeric features a persona may be distinguished by, with a readable label.
DESCRIPTIVE: dict[str, str] = {
    "monetary": "net revenue in the window",
    "invoices_per_month": "purchases per month",
    "avg_order_value": "average order value",
    "recency_days": "days since last purchase",
    "return_rate": "share of revenue returned",
    "web_share": "share of purchases on the web",
    "store_share": "share of purchases in store",
    "app_share": "share of purchases in the app",
    "sessions_per_month": "web sessions per month",
    "pages_per_session": "pages per session",
    "email_open_rate": "e-mail open rate",
    "email_click_rate": "e-mail click rate",
    "campaign_response_rate": "campaign response rate",
    "income": "income",
    "age": "age",
}
TRAIT_WORDS = {  # survey question -> (above average, below average)
    "price_sensitivity": ("price-sensitive", "not price-driven"),
    "brand_loyalty": ("brand-loyal", "brand-agnostic"),
    "eco_conscious": ("eco-conscious", "not eco-minded"),
    "tech_savvy": ("tech-savvy", "not tech-minded"),
    "convenience": ("convenience-seeking", "not convenience-driven"),
}
TOP_FEATURES = 5
TRAIT_MIN_D = 0.3  # a psychographic trait is named when the segment's answers differ by this many sds


def _cohens_d(x: np.ndarray, inside: np.ndarray) -> float | None:
    a, b = x[inside & np.isfinite(x)], x[~inside & np.isfinite(x)]
    if len(a) < 2 or len(b) < 2:
        return None
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else None


def _mix(values: pl.Series, inside: np.ndarray, min_cell: int, top: int = 3) -> list[dict]:
    """The ``top`` most frequent known values inside the segment with their shares (small cells cut)."""
    known = values.filter(pl.Series(inside) & values.is_not_null())
    if known.is_empty():
        return []
    counts = known.value_counts(sort=True, name="n").sort(["n", values.name], descending=[True, False])
    total = known.len()
    return [
        {"value": str(v), "share": round(n / total, 4)}
        for v, n in counts.head(top).iter_rows()
        if n >= min_cell
    ]


def _category_labels(columns: list[str]) -> dict[str, str]:
    """Readable labels of the month's category share columns (their set is the data's, so it is
    read from the frame, never assumed: a month with other top categories gets other labels)."""
    other = share_column(OTHER)
    return {
        c: "share of spend outside the top categories"
        if c == other
        else f"share of spend on {_category_name(c)}"
        for c in columns
        if c.startswith(SHARE_PREFIX)
    }


def _category_name(column: str) -> str:
    return column.removeprefix(SHARE_PREFIX).replace("_", " ")


def _numeric(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame[column].cast(pl.Float64).fill_nan(None).fill_null(np.nan).to_numpy()


def build_personas(
    features: pl.DataFrame, labels: np.ndarray, names: dict[int, str], period: str, min_cell: int = 10
) -> dict[str, dict]:
    """A persona card per segment id (as a string key): aggregates of ``features`` rows by ``labels``.

    ``features`` is the customer feature table (one row per customer, aligned with ``labels``);
    ``period`` (YYYY-MM) turns birth years into ages.
    """
    frame = features
    if "birth_year" in frame.columns:
        frame = frame.with_columns((int(period[:4]) - pl.col("birth_year").cast(pl.Float64)).alias("age"))
    labels_of = {**{c: label for c, label in DESCRIPTIVE.items() if c in frame.columns},
                 **_category_labels(frame.columns)}  # fmt: skip
    numeric = {c: _numeric(frame, c) for c in labels_of}
    categories = [c for c in labels_of if c.startswith(SHARE_PREFIX) and c != share_column(OTHER)]
    surveys = {q: _numeric(frame, f"survey_{q}") for q in SURVEY_QUESTIONS if f"survey_{q}" in frame.columns}
    channel_known = _channel_known(numeric, len(labels))
    cards: dict[str, dict] = {}
    for segment in sorted(int(s) for s in np.unique(labels)):
        inside = labels == segment
        shares = _channel_shares(numeric, inside & channel_known, min_cell)
        # Mean share per named category (``other`` is not a category, so never the preferred one),
        # suppressed like any cell describing fewer than ``min_cell`` customers.
        spend = {
            _category_name(c): float(np.nanmean(numeric[c][inside]))
            for c in categories
            if np.isfinite(numeric[c][inside]).sum() >= min_cell
        }
        card = {
            "name": names[segment],
            "customers": int(inside.sum()),
            "top_features": _effects(numeric, labels_of, inside)[:TOP_FEATURES],
            "demographics": _demographics(frame, inside, min_cell),
            "geography": {c: _mix(frame[c].cast(pl.String), inside, min_cell)
                          for c in ("country", "region") if c in frame.columns},  # fmt: skip
            **_top("preferred_channel", frame, inside, min_cell, "preferred_channel"),
            "purchase_channel": max(shares, key=lambda c: shares[c]) if shares else None,
            "channel_shares": {c: round(v, 4) for c, v in shares.items()},
            **_preferred_category(spend),
            "psychographic_traits": _traits(surveys, inside, min_cell),
            **_top("rfm_segment", frame, inside, min_cell, "dominant_rfm_segment", "dominant_rfm_share"),
        }
        card["description"] = describe(card)
        cards[str(segment)] = card
    return cards


def _effects(numeric: dict[str, np.ndarray], labels_of: dict[str, str], inside: np.ndarray) -> list[dict]:
    """Every numeric feature's effect size for the segment, largest first (ties by feature)."""
    effects = []
    for column, x in numeric.items():
        d = _cohens_d(x, inside)
        if d is None:
            continue
        mean = np.nanmean(x[inside]) if np.isfinite(x[inside]).any() else None
        effects.append({
            "feature": column,
            "label": labels_of[column],
            "segment_mean": None if mean is None else round(float(mean), 4),
            "overall_mean": round(float(np.nanmean(x)), 4),
            "cohens_d": round(d, 3),
            "direction": "higher" if d > 0 else "lower",
        })  # fmt: skip
    effects.sort(key=lambda e: (-abs(e["cohens_d"]), e["feature"]))
    return effects


def _traits(surveys: dict[str, np.ndarray], inside: np.ndarray, min_cell: int) -> list[dict]:
    """Psychographic traits: survey questions the segment answers at least ``TRAIT_MIN_D`` sds apart
    from everyone else, with enough respondents; largest first."""
    traits = []
    for q, x in surveys.items():
        answered = int(np.isfinite(x[inside]).sum())
        d = _cohens_d(x, inside) if answered >= min_cell else None
        if d is not None and abs(d) >= TRAIT_MIN_D:
            traits.append({"question": q, "trait": TRAIT_WORDS[q][0 if d > 0 else 1], "cohens_d": round(d, 3),
                           "respondents": answered})  # fmt: skip
    traits.sort(key=lambda t: (-abs(t["cohens_d"]), t["question"]))
    return traits


def _demographics(frame: pl.DataFrame, inside: np.ndarray, min_cell: int) -> dict:
    """Median age, income and household size, and the mix of gender, education, marital status and
    bands where the source delivers them; small cells suppressed."""
    demographics = {}
    for column in ("age", "income", "household_size"):
        if column in frame.columns:
            x = _numeric(frame, column)[inside]
            if np.isfinite(x).sum() >= min_cell:
                demographics[f"median_{column}"] = round(float(np.nanmedian(x)), 1)
    for column in ("gender", "education"):
        if column in frame.columns:
            demographics[column] = _mix(frame[column].cast(pl.String), inside, min_cell)
    # Marital status and bands, where the source delivers them: the segment's most common ones.
    for column in ("marital_status", *BAND_COLUMNS):
        if column in frame.columns and frame[column].is_not_null().any():
            demographics[column] = _mix(frame[column].cast(pl.String), inside, min_cell)
    return demographics


def _top(
    column: str, frame: pl.DataFrame, inside: np.ndarray, min_cell: int, key: str, share_key: str | None = None
) -> dict:
    """The segment's most common value of ``column`` as ``key``, and its share as ``share_key``
    (``<key>_share`` by default); None when the column is absent or the cell too small."""
    top = _mix(frame[column].cast(pl.String), inside, min_cell, top=1) if column in frame.columns else []
    return {key: top[0]["value"] if top else None, share_key or f"{key}_share": top[0]["share"] if top else None}


def _preferred_category(spend: dict[str, float]) -> dict:
    """The category with the highest mean share of spend (ties by name), and every category's share."""
    preferred = min(spend, key=lambda c: (-spend[c], c)) if spend else None
    return {
        "preferred_category": preferred,
        "preferred_category_share": round(spend[preferred], 4) if preferred else None,
        "category_shares": {c: round(v, 4) for c, v in spend.items()},
    }


def _channel_known(numeric: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Customers whose purchases carry a channel. Without a channel column every channel's share
    is 0, which is not "0% web": it is unknown, and a persona must not claim a channel then."""
    columns = [numeric[f"{c}_share"] for c in CHANNELS if f"{c}_share" in numeric]
    if not columns:
        return np.zeros(n, dtype=bool)
    return np.nansum(np.column_stack(columns), axis=1) > 0


def _channel_shares(numeric: dict[str, np.ndarray], rows: np.ndarray, min_cell: int) -> dict[str, float]:
    """Mean purchase share per channel over ``rows`` (customers with a known channel), or nothing
    when fewer than ``min_cell`` such customers are in the segment."""
    if rows.sum() < min_cell:
        return {}
    return {c: float(np.nanmean(numeric[f"{c}_share"][rows])) for c in CHANNELS if f"{c}_share" in numeric}


def describe(card: dict) -> str:
    """One readable sentence from a persona card (what the report shows under the segment's name)."""
    # Effect sizes (Cohen's d) are in the report's appendix: the sentence says what, not how much.
    parts = [f"{e['direction']} {e['label']}" for e in card["top_features"][:3]]
    text = "Distinguished by " + ", ".join(parts) if parts else "No feature sets this segment apart"
    demo = card["demographics"]
    who = []
    if "median_age" in demo:
        who.append(f"median age {demo['median_age']:.0f}")
    if "median_income" in demo:
        who.append(f"median income {demo['median_income']:,.0f}")
    band_words = {"age_band": "aged", "income_band": "income", "household_size_band": "household of"}
    for column, words in band_words.items():
        if demo.get(column):  # the most common band, where the source gives bands
            top = demo[column][0]
            who.append(f"most often {words} {top['value']} ({top['share']:.0%})")
    if who:
        text += "; " + ", ".join(who)
    if card["purchase_channel"]:
        text += f"; buys mostly via {card['purchase_channel']}"
    if card.get("preferred_category"):
        text += f"; spends most on {card['preferred_category']} ({card['preferred_category_share']:.0%})"
    if card["psychographic_traits"]:
        text += "; " + ", ".join(t["trait"] for t in card["psychographic_traits"][:2])
    if card["dominant_rfm_segment"]:
        text += f"; mostly {card['dominant_rfm_segment']} ({card['dominant_rfm_share']:.0%})"
    return text + "."
