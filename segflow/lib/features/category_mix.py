"""Category mix: each customer's net revenue shares by product category over the trailing window.

The categories are the data's, so the feature columns are too: the top ``top_n`` categories by net
revenue in the window (ties broken by name) each get a column ``category_share_<slug>``, and every
other category is summed into ``category_share_other``. The set is bounded and deterministic for a
given window, and the record says which category each column holds.

Shares: per customer and category, net revenue (purchases minus cancellations and returns) is
clipped at 0 (a category whose returns exceed its purchases in the window counts as no spend, not
as negative spend), then divided by the sum over categories. They lie in 0..1 and sum to 1. A
customer with no positive categorised net revenue in the window (everything returned, or only
lines without a category) has null shares: the mix is undefined, as channel shares are without
invoices, and the model fills them like any other missing rate.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import polars as pl

from segflow.lib.exact import exact_sum
from segflow.lib.profiles.activity import CATEGORY_REVENUE

SHARE_PREFIX = "category_share_"
OTHER = "other"
NO_CATEGORY = (
    "no transaction line in the window carries a category (is sources.transactions.columns.category mapped?)"
)


@dataclass(frozen=True)
class CategoryMix:
    shares: pl.DataFrame  # customer_id and the share columns (only customer_id when unavailable)
    record: dict  # available, top_n, categories [{category, column, window_net_revenue}], other, reason

    @property
    def columns(self) -> list[str]:
        return [c for c in self.shares.columns if c != "customer_id"]


def slug(category: str) -> str:
    """A column-name-safe form of a category: ASCII lower case, other characters runs as ``_``."""
    ascii_text = unicodedata.normalize("NFKD", category).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_") or "category"


def share_column(category_slug: str) -> str:
    return SHARE_PREFIX + category_slug


def _columns(top: list[str]) -> dict[str, str]:
    """Category -> share column, in rank order. ``other`` is reserved for the rest, so a category
    whose slug collides with it, or with a higher-ranked category's, takes a numbered suffix."""
    used, out = {OTHER}, {}
    for category in top:
        base = name = slug(category)
        n = 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[category] = share_column(name)
    return out


def _unavailable(reason: str, top_n: int) -> CategoryMix:
    return CategoryMix(
        pl.DataFrame(schema={"customer_id": pl.String()}),
        {"available": False, "reason": reason, "top_n": top_n},
    )


def category_mix(window: pl.LazyFrame, top_n: int) -> CategoryMix:
    """Category revenue shares per customer over ``window`` (monthly profiles with ``category_revenue``).

    Returns one row per customer with any categorised line in the window, sorted by id, with
    ``top_n`` + 1 share columns; or no share columns and the reason when the window has no category.
    """
    if top_n < 1:
        raise ValueError(f"features.category_top_n must be at least 1, got {top_n}")
    if CATEGORY_REVENUE not in window.collect_schema().names():
        return _unavailable(f"customer_profiles carry no {CATEGORY_REVENUE} column", top_n)
    per_category = (
        window.select("customer_id", CATEGORY_REVENUE)
        .explode(CATEGORY_REVENUE)
        .drop_nulls(CATEGORY_REVENUE)
        .unnest(CATEGORY_REVENUE)
        .group_by("customer_id", "category")
        .agg(exact_sum(pl.col("net_revenue")).alias("net_revenue"))
        .collect()
    )
    if per_category.is_empty():
        return _unavailable(NO_CATEGORY, top_n)
    totals = (
        per_category.group_by("category")
        .agg(exact_sum(pl.col("net_revenue")).alias("window_net_revenue"))
        .sort(["window_net_revenue", "category"], descending=[True, False])
    )
    columns = _columns(totals["category"].head(top_n).to_list())
    other = share_column(OTHER)
    order = [*columns.values(), other]
    spend = (
        per_category.with_columns(
            pl.col("category").replace_strict(columns, default=other, return_dtype=pl.String).alias("column"),
            pl.col("net_revenue").clip(lower_bound=0.0).alias("spend"),
        )
        .group_by("customer_id", "column")
        .agg(exact_sum(pl.col("spend")).alias("spend"))
    )
    total = spend.group_by("customer_id").agg(exact_sum(pl.col("spend")).alias("_total"))
    wide = spend.pivot(on="column", index="customer_id", values="spend").join(total, on="customer_id")
    shares = wide.select(
        "customer_id",
        *[
            pl.when(pl.col("_total") > 0)
            .then((pl.col(c).fill_null(0.0) if c in wide.columns else pl.lit(0.0)) / pl.col("_total"))
            .otherwise(None)
            .cast(pl.Float64)
            .alias(c)
            for c in order
        ],
    ).sort("customer_id")
    rest = totals.slice(top_n)
    record = {
        "available": True,
        "top_n": top_n,
        "categories": [
            {"category": c, "column": columns[c], "window_net_revenue": r}
            for c, r in totals.head(top_n).iter_rows()
        ],
        "other": {
            "column": other,
            "categories": rest.height,
            "window_net_revenue": float(rest.select(exact_sum(pl.col("window_net_revenue"))).item() or 0.0),
        },
        "customers_without_shares": int(shares[other].null_count()),
        "definition": "net revenue per category clipped at 0, over the sum across categories",
    }
    return CategoryMix(shares, record)


def lineage(columns: list[str]) -> dict[str, tuple[str, ...]]:
    """Column lineage of the share columns: every one is computed from ``category_revenue``."""
    return {c: (CATEGORY_REVENUE,) for c in columns if c.startswith(SHARE_PREFIX)}
