"""RFM on real data (UCI Online Retail II) against an independent computation in plain SQL (duckdb)."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from segflow.config import CleaningSettings
from segflow.config_sources import SourceSettings
from segflow.lib import periods
from segflow.lib.features.behaviour import build_features
from segflow.lib.profiles.profiles import RawSources, build_profiles
from segflow.lib.sources.ingest import period_filter_for, read_source

MAPPING = SourceSettings(
    location="unused",
    columns={"invoice_id": "Invoice", "customer_id": "Customer ID", "invoiced_at": "InvoiceDate",
             "product_id": "StockCode", "quantity": "Quantity", "unit_price": "Price"},
)  # fmt: skip
PERIOD = "2011-11"


def _profiles(path: str, period: str) -> pl.DataFrame:
    start, end = periods.bounds(period)
    split = period_filter_for("transactions", path, start, end, is_first_partition=False)
    raw = read_source("transactions", MAPPING, path, split).frame
    sources = RawSources(customers=None, transactions=raw, engagement=None, surveys=None, campaigns=None)
    return build_profiles(
        sources, period, start, end, CleaningSettings(max_abs_quantity=20_000), seed=0
    ).profiles


@pytest.fixture(scope="module")
def features(request) -> pl.DataFrame:
    from segflow_tests.conftest import ONLINE_RETAIL, require

    path = str(require(ONLINE_RETAIL))
    months = periods.month_range(periods.shift(PERIOD, -11), PERIOD)
    window = pl.concat([_profiles(path, m).lazy() for m in months], how="diagonal_relaxed")
    current = _profiles(path, PERIOD).lazy()
    return build_features(window, current, PERIOD, periods.as_of(PERIOD), "invoices", "sum")


SQL = """
WITH lines AS (
    SELECT DISTINCT Invoice, "Customer ID" AS customer, InvoiceDate, StockCode, Quantity, Price,
           date_trunc('month', InvoiceDate) AS month
    FROM read_parquet(?)
    WHERE InvoiceDate >= TIMESTAMP '2010-12-01' AND InvoiceDate < TIMESTAMP '2011-12-01'
), accepted AS (
    SELECT * FROM lines
    WHERE customer IS NOT NULL AND Price > 0 AND Quantity <> 0 AND Price <= 50000 AND abs(Quantity) <= 20000
      AND NOT (Quantity < 0 AND NOT starts_with(Invoice, 'C'))
      AND NOT (Quantity > 0 AND starts_with(Invoice, 'C'))
)
SELECT CAST(customer AS VARCHAR) AS customer_id,
       DATE '2011-12-01' - max(CAST(InvoiceDate AS DATE)) FILTER (WHERE NOT starts_with(Invoice, 'C')) AS recency_days,
       count(DISTINCT Invoice) FILTER (WHERE NOT starts_with(Invoice, 'C')) AS frequency,
       sum(Quantity * Price) AS monetary
FROM accepted GROUP BY customer
"""


@pytest.fixture(scope="module")
def expected() -> pl.DataFrame:
    from segflow_tests.conftest import ONLINE_RETAIL

    return pl.from_pandas(duckdb.execute(SQL, [str(ONLINE_RETAIL)]).df())


def test_rfm_matches_sql(features: pl.DataFrame, expected: pl.DataFrame) -> None:
    scored = expected.filter(pl.col("frequency") > 0).sort("customer_id")
    ours = features.select("customer_id", "recency_days", "frequency", "monetary").sort("customer_id")
    assert ours.height == scored.height > 4000
    assert ours["customer_id"].to_list() == scored["customer_id"].to_list()
    assert ours["recency_days"].to_list() == scored["recency_days"].cast(pl.Int64).to_list()
    assert ours["frequency"].to_list() == scored["frequency"].cast(pl.Int64).to_list()
    diff = (ours["monetary"] - scored["monetary"].cast(pl.Float64)).abs().max()
    assert diff < 1e-6


def test_cancellation_only_customers_are_not_scored(features: pl.DataFrame, expected: pl.DataFrame) -> None:
    only_cancellations = expected.filter(pl.col("frequency") == 0)["customer_id"]
    assert only_cancellations.len() > 0, "the window should hold customers with only cancellations"
    assert not features["customer_id"].is_in(only_cancellations.implode()).any()


def test_scores_and_named_segments(features: pl.DataFrame) -> None:
    assert features["r_score"].min() == 1 and features["r_score"].max() == 5
    counts = features.group_by("r_score").len()["len"]
    assert counts.max() - counts.min() <= 1  # ordinal ranks: quintiles differ by at most one customer
    best = features.filter(pl.col("r_score") == 5)["recency_days"].max()
    worst = features.filter(pl.col("r_score") == 1)["recency_days"].min()
    assert best <= worst
    assert features["rfm_segment"].null_count() == 0
    assert set(features["rfm_segment"]) <= {
        "Champions", "Loyal", "Potential Loyalists", "Recent", "Promising", "Needing Attention",
        "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
    }  # fmt: skip


def test_no_category_mapped_leaves_the_category_mix_unavailable(features: pl.DataFrame) -> None:
    """Online Retail II maps no category: no share columns, and the family is reported, not filled."""
    import dataclasses

    from segflow.config import ModelSettings
    from segflow.lib.models.design import fit_design

    assert not [c for c in features.columns if c.startswith("category_share_")]
    families = (*ModelSettings().feature_families, "category_mix")
    design = fit_design(features, dataclasses.replace(ModelSettings(), feature_families=families))
    assert (
        "no transaction line in the window carries a category"
        in design.params.unavailable_families["category_mix"]
    )
    assert design.params.features == fit_design(features).params.features  # the rest as by default
