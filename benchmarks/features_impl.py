"""The features stage of one month three ways: segflow's own lib functions, plain pandas, and duckdb SQL.

The baselines implement the transaction-side definitions for a one-month window, on a typed
Parquet transactions file (the synthetic landing zone's ``transactions/{period}.parquet``):

- codes normalised (ids trimmed, channel trimmed and lower-cased); a line is a cancellation when its
  invoice id starts with "C";
- exact duplicates over the eight canonical columns dropped, the first in file order kept;
- a line is rejected if it breaks any transaction rule of ``segflow.lib.profiles.cleaning.transaction_rules``
  with the default settings and no CRM (so no orphan rule): missing invoice id, adjustment ("A")
  invoice, missing or out-of-month timestamp, missing quantity, missing or non-finite price, zero
  quantity, negative quantity off a cancellation, zero or negative price, positive quantity on a
  cancellation, missing customer, a customer other than the invoice's first line's (nulls compare
  as unknown, so never a conflict), unknown channel, |quantity| > 1000, price > 50,000. Typed
  Parquet has no unparseable values, so the parse rule cannot fire and is left out;
- per customer with at least one purchase invoice: RFM values (recency in days from the last
  purchase date to the as-of date, frequency = distinct purchase invoices, monetary = net revenue)
  with quintile scores (ordinal rank on value, ties by customer id), the RFM code and named segment;
  and the transaction-side behaviour features (invoices per month, average order value, return
  rate, gross and returns value, digital and per-channel invoice shares, active months).
- money is summed in exact micro-units (round half to even), as ``segflow.lib.exact`` does.

The segflow side runs the whole stage for a transactions-only configuration (``read_source``,
``build_profiles`` with no CRM, engagement, survey or campaign source, then ``build_features``), so
it does strictly more than the baselines (quarantine records with their JSON, accounting, the
engagement and survey features as nulls); the ratios are therefore conservative for segflow.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from segflow.lib import periods
from segflow.lib.features.rfm import SEGMENT_GRID
from segflow.lib.schema import CHANNELS, TRANSACTIONS

# The per-customer columns every implementation returns, in this order, sorted by customer id.
COLUMNS = (
    "customer_id", "recency_days", "frequency", "monetary", "invoices_window", "net_revenue_window",
    "r_score", "f_score", "m_score", "rfm_code", "rfm_segment", "active_months", "invoices_per_month",
    "avg_order_value", "return_rate", "gross_revenue_window", "returns_value_window", "digital_share",
    *(f"{c}_share" for c in CHANNELS),
)  # fmt: skip
IMPLEMENTATIONS = ("segflow", "pandas", "duckdb")
MAX_ABS_QUANTITY = 1_000  # CleaningSettings defaults, asserted equal in the smoke test
MAX_UNIT_PRICE = 50_000.0
MICRO = 1_000_000
_CODE_TO_SEGMENT = {code: name for name, codes in SEGMENT_GRID.items() for code in codes}


def segflow_features(path: str, period: str) -> pl.DataFrame:
    from segflow.config import load_settings
    from segflow.lib.features.behaviour import build_features
    from segflow.lib.profiles.profiles import RawSources, build_profiles
    from segflow.lib.sources.ingest import read_source

    settings = load_settings()
    start, end = periods.bounds(period)
    tx = read_source("transactions", settings.sources["transactions"], path).frame
    raw = RawSources(customers=None, transactions=tx, engagement=None, surveys=None, campaigns=None)
    profiles = build_profiles(raw, period, start, end, settings.cleaning, 42).profiles.lazy()
    features = build_features(profiles, profiles, period, periods.as_of(period), "invoices", "sum")
    return features.select(COLUMNS)


def segflow_phases(path: str, period: str) -> dict[str, float]:
    """Seconds of segflow's parts, once each, to say where its time goes (cleaning runs inside
    ``build_profiles`` as well, so the parts overlap and do not add up to the stage)."""
    import time

    from segflow.config import load_settings
    from segflow.lib.features.behaviour import build_features
    from segflow.lib.profiles import cleaning
    from segflow.lib.profiles.profiles import RawSources, build_profiles
    from segflow.lib.schema import SOURCES
    from segflow.lib.sources.ingest import read_source

    settings = load_settings()
    start, end = periods.bounds(period)
    out: dict[str, float] = {}

    def timed(name: str, fn):
        started = time.perf_counter()
        value = fn()
        out[name] = time.perf_counter() - started
        return value

    tx = timed(
        "read_source", lambda: read_source("transactions", settings.sources["transactions"], path).frame
    )
    normal = timed("normalise_codes", lambda: cleaning.normalise_codes(tx, "transactions"))
    canonical = list(SOURCES["transactions"])
    keep = timed(
        "duplicate rows (first_occurrences, inside apply_rules)",
        lambda: cleaning.first_occurrences(normal, canonical),
    )
    deduped = normal if keep is None else normal.filter(keep)
    rules = cleaning.transaction_rules(start, end, settings.cleaning, None, tx.columns)
    conflict = next(r.violated for r in rules if r.rule_id == "invoice_customer_conflict")
    timed("invoice-conflict window (inside apply_rules)", lambda: deduped.select(conflict.sum()))
    timed(
        "apply_rules (dedup, rules, quarantine)",
        lambda: cleaning.apply_rules(normal, rules, "transactions", period),
    )
    raw = RawSources(customers=None, transactions=tx, engagement=None, surveys=None, campaigns=None)
    build = timed(
        "build_profiles (cleaning again, then aggregation)",
        lambda: build_profiles(raw, period, start, end, settings.cleaning, 42),
    )
    profiles = build.profiles.lazy()
    timed(
        "build_features",
        lambda: build_features(profiles, profiles, period, periods.as_of(period), "invoices", "sum"),
    )
    return out


def pandas_features(path: str, period: str) -> Any:
    import numpy as np
    import pandas as pd

    start, end = (pd.Timestamp(b) for b in periods.bounds(period))
    as_of = pd.Timestamp(periods.as_of(period))
    df = pd.read_parquet(path)
    for c in ("invoice_id", "customer_id", "product_id"):
        df[c] = df[c].str.strip()
    df["channel"] = df["channel"].str.strip().str.lower()
    df = df.drop_duplicates(subset=list(TRANSACTIONS), keep="first")
    inv, cust, q, p, t = (
        df["invoice_id"],
        df["customer_id"],
        df["quantity"],
        df["unit_price"],
        df["invoiced_at"],
    )
    cancel = inv.str.startswith("C").fillna(False).astype(bool)
    first_customer = df.groupby("invoice_id", sort=False)["customer_id"].transform("first", skipna=False)
    violated = (
        inv.isna()
        | inv.str.startswith("A").fillna(False).astype(bool)
        | t.isna()
        | (t < start)
        | (t >= end)
        | q.isna()
        | ~np.isfinite(p)
        | (q == 0)
        | ((q < 0) & ~cancel)
        | (p <= 0)
        | ((q > 0) & cancel)
        | cust.isna()
        | (cust.notna() & first_customer.notna() & (cust != first_customer))
        | (df["channel"].notna() & ~df["channel"].isin(CHANNELS))
        | (q.abs() > MAX_ABS_QUANTITY)
        | (p > MAX_UNIT_PRICE)
    )
    ok = df[~violated].copy()
    ok["cancel"] = cancel[~violated]
    ok["micro"] = np.round(ok["quantity"] * ok["unit_price"] * MICRO).astype("int64")
    buys = ok[~ok["cancel"]]
    by = buys.groupby("customer_id")
    out = pd.DataFrame(
        {
            "invoices_window": by["invoice_id"].nunique(),
            "last_purchase_at": by["invoiced_at"].max(),
            "gross_revenue_window": by["micro"].sum() / MICRO,
        }
    )
    out["net_revenue_window"] = ok.groupby("customer_id")["micro"].sum().reindex(out.index) / MICRO
    returns = -ok[ok["cancel"]].groupby("customer_id")["micro"].sum()
    out["returns_value_window"] = (returns.reindex(out.index).fillna(0) / MICRO).astype("float64")
    per_channel = buys.groupby(["customer_id", "channel"])["invoice_id"].nunique().unstack(fill_value=0)
    per_channel = per_channel.reindex(index=out.index, columns=list(CHANNELS), fill_value=0)
    out = out.reset_index().sort_values("customer_id", ignore_index=True)
    per_channel = per_channel.reindex(out["customer_id"]).reset_index(drop=True)
    n = out["invoices_window"]
    out["recency_days"] = (as_of - out["last_purchase_at"].dt.normalize()).dt.days.astype("int64")
    out["frequency"] = n.astype("int64")
    out["monetary"] = out["net_revenue_window"]
    out["active_months"] = 1
    out["invoices_per_month"] = n / 1.0  # tenure is one month in a one-month window
    out["avg_order_value"] = out["net_revenue_window"] / n
    gross = out["gross_revenue_window"]
    out["return_rate"] = (out["returns_value_window"] / gross).where(gross > 0, 0.0)
    out["digital_share"] = (per_channel["web"] + per_channel["app"]) / n
    for c in CHANNELS:
        out[f"{c}_share"] = per_channel[c] / n
    rows = len(out)
    for score, value, higher in (
        ("r_score", "recency_days", False),
        ("f_score", "frequency", True),
        ("m_score", "monetary", True),
    ):
        goodness = out[value] if higher else -out[value]
        order = pd.DataFrame({"g": goodness, "id": out["customer_id"]}).sort_values(["g", "id"]).index
        rank = pd.Series(np.arange(rows), index=order).sort_index()
        out[score] = (rank * 5 // rows + 1).astype("int8")
    fm = (out["f_score"].astype("int32") + out["m_score"] + 1) // 2
    out["rfm_code"] = out["r_score"].astype(str) + out["f_score"].astype(str) + out["m_score"].astype(str)
    out["rfm_segment"] = (out["r_score"].astype(str) + fm.astype(str)).map(_CODE_TO_SEGMENT)
    return out[list(COLUMNS)]


def duckdb_sql(path: str, period: str) -> str:
    start, end = periods.bounds(period)
    channels = ", ".join(f"'{c}'" for c in CHANNELS)
    quoted = {code: name.replace("'", "''") for code, name in _CODE_TO_SEGMENT.items()}
    grid = ", ".join(f"('{code}', '{name}')" for code, name in quoted.items())
    shares = ",\n  ".join(f"{c}_invoices / invoices_window AS {c}_share" for c in CHANNELS)
    per_channel = ",\n    ".join(
        f"count(DISTINCT invoice_id) FILTER (WHERE NOT cancel AND channel = '{c}') AS {c}_invoices"
        for c in CHANNELS
    )
    scores = ",\n    ".join(
        f"((row_number() OVER (ORDER BY {order}, customer_id) - 1) * 5 // count(*) OVER () + 1)::TINYINT AS {s}"
        for s, order in (("r_score", "-recency_days"), ("f_score", "frequency"), ("m_score", "monetary"))
    )
    return f"""
WITH raw AS (
  SELECT trim(invoice_id) AS invoice_id, trim(customer_id) AS customer_id, invoiced_at,
         trim(product_id) AS product_id, category, quantity, unit_price,
         lower(trim(channel)) AS channel, file_row_number
  FROM read_parquet('{path}', file_row_number = true)
), deduped AS (
  SELECT invoice_id, customer_id, invoiced_at, product_id, category, quantity, unit_price, channel,
         min(file_row_number) AS row
  FROM raw GROUP BY ALL
), judged AS (
  SELECT *, coalesce(starts_with(invoice_id, 'C'), false) AS cancel,
         first_value(customer_id) OVER (PARTITION BY invoice_id ORDER BY row) AS first_customer
  FROM deduped
), accepted AS (
  SELECT * FROM judged
  WHERE NOT coalesce(
    invoice_id IS NULL OR starts_with(invoice_id, 'A') OR invoiced_at IS NULL
    OR invoiced_at < TIMESTAMP '{start}' OR invoiced_at >= TIMESTAMP '{end}'
    OR quantity IS NULL OR unit_price IS NULL OR NOT isfinite(unit_price) OR quantity = 0
    OR (quantity < 0 AND NOT cancel) OR unit_price <= 0 OR (quantity > 0 AND cancel)
    OR customer_id IS NULL OR customer_id <> first_customer
    OR (channel IS NOT NULL AND channel NOT IN ({channels}))
    OR abs(quantity) > {MAX_ABS_QUANTITY} OR unit_price > {MAX_UNIT_PRICE}, false)
), activity AS (
  SELECT customer_id,
    count(DISTINCT invoice_id) FILTER (WHERE NOT cancel) AS invoices_window,
    max(invoiced_at) FILTER (WHERE NOT cancel) AS last_purchase_at,
    coalesce(sum(round_even(quantity * unit_price * {MICRO}, 0)::BIGINT) FILTER (WHERE NOT cancel), 0)
      / {MICRO} AS gross_revenue_window,
    coalesce(sum(-round_even(quantity * unit_price * {MICRO}, 0)::BIGINT) FILTER (WHERE cancel), 0)
      / {MICRO} AS returns_value_window,
    sum(round_even(quantity * unit_price * {MICRO}, 0)::BIGINT) / {MICRO} AS net_revenue_window,
    {per_channel}
  FROM accepted GROUP BY customer_id
), valued AS (
  SELECT *, date_diff('day', last_purchase_at::DATE, DATE '{periods.as_of(period)}')::BIGINT AS recency_days,
         invoices_window::BIGINT AS frequency, net_revenue_window AS monetary
  FROM activity WHERE invoices_window > 0
), scored AS (
  SELECT *,
    {scores}
  FROM valued
), segments(code, segment) AS (VALUES {grid})
SELECT customer_id, recency_days, frequency, monetary, invoices_window::BIGINT AS invoices_window,
  net_revenue_window, r_score, f_score, m_score,
  r_score::VARCHAR || f_score::VARCHAR || m_score::VARCHAR AS rfm_code, segment AS rfm_segment,
  1::INTEGER AS active_months, invoices_window / 1.0 AS invoices_per_month,
  net_revenue_window / invoices_window AS avg_order_value,
  CASE WHEN gross_revenue_window > 0 THEN returns_value_window / gross_revenue_window ELSE 0.0 END
    AS return_rate,
  gross_revenue_window, returns_value_window,
  (web_invoices + app_invoices) / invoices_window AS digital_share,
  {shares}
FROM scored JOIN segments
  ON segments.code = r_score::VARCHAR || ((f_score::INTEGER + m_score + 1) // 2)::VARCHAR
ORDER BY customer_id
"""


def duckdb_features(path: str, period: str) -> pl.DataFrame:
    import duckdb

    with duckdb.connect() as con:
        return con.sql(duckdb_sql(path, period)).pl()


def features(implementation: str, path: str, period: str) -> Any:
    return {"segflow": segflow_features, "pandas": pandas_features, "duckdb": duckdb_features}[
        implementation
    ](path, period)


# Money is summed as exact integers of micro-units everywhere; only the last scaling to a float
# differs (polars multiplies by the reciprocal of 10**6, the baselines divide), one ulp per
# operation, and a ratio adds one more division. 1e-12 relative is thousands of ulps, yet a
# million times smaller than one cent on a 10,000 total, so a real definition difference fails.
# Integers, scores and segment names must be equal exactly.
REL_TOL = 1e-12
ABS_TOL = 1e-12


def as_polars(frame: Any, like: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (pandas or polars) in the reference's column types."""
    out = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    return out.select(COLUMNS).cast(dict(like.schema))


def assert_same(reference: pl.DataFrame, other: Any) -> None:
    from polars.testing import assert_frame_equal

    assert_frame_equal(reference, as_polars(other, reference), rel_tol=REL_TOL, abs_tol=ABS_TOL)
