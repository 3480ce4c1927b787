"""The snapshot source and feature set, on small frames: settings, near duplicates, recoding,
optional contract columns and the features. The real-data run is test_customer_personality.py."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from segflow.config import CleaningSettings, ConfigError, load_settings
from segflow.lib import periods
from segflow.lib.contracts.spec import load_contract
from segflow.lib.contracts.validation import validate_frame
from segflow.lib.features.snapshot import build_snapshot_features
from segflow.lib.profiles.profiles import RawSources, build_profiles
from segflow.lib.sources.ingest import empty_source

PERIOD = "2014-06"


def _typed(source: str, data: dict) -> pl.DataFrame:
    """A raw frame of ``source``: the given columns, every other canonical or meta column null."""
    schema = empty_source(source).schema
    frame = pl.DataFrame(data)
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in frame.columns]
    return frame.with_columns(missing).select(list(schema)).cast(dict(schema))


def _frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    customers = _typed(
        "customers",
        {
            "customer_id": ["a", "b", "c", "d"],
            "signup_date": [date(2013, 1, 1)] * 3 + [date(2013, 2, 1)],
            "birth_year": [1960, 1960, 1899, 1970],
            "income": [50_000.0, 50_000.0, 40_000.0, 666_666.0],
            "education": ["bachelor"] * 4,
            "_source_file": ["f"] * 4,
            "_source_row": [0, 1, 2, 3],
        },
    )
    base = {
        "customer_id": ["a", "b", "c", "d"],
        "signup_date": [date(2013, 1, 1)] * 3 + [date(2013, 2, 1)],
        "recency_days": [10, 10, 50, 5],
        "spend": [240.0, 240.0, 24.0, 480.0],
        "purchases": [12, 12, 2, 24],
        "web_purchases": [6, 6, 1, 12],
        "store_purchases": [6, 6, 1, 6],
        "catalog_purchases": [0, 0, 0, 6],
        "deal_purchases": [1, 1, 0, 2],
        "web_visits_per_month": [4.0, 4.0, 1.0, 2.0],
        "campaign_exposures": [6] * 4,
        "campaign_responses": [1, 1, 0, 3],
        "complaints": [0] * 4,
        "marital_status": ["married", "married", "yolo", "single"],
        "children": [1, 1, 0, 2],
        "_source_file": ["f"] * 4,
        "_source_row": [0, 1, 2, 3],
    }
    snapshot = _typed("snapshot", base)
    return customers, snapshot


def _build(near_duplicates: str = "quarantine"):
    customers, snapshot = _frames()
    start, end = periods.bounds(PERIOD)
    raw = RawSources(customers, None, None, None, None, snapshot)
    settings = CleaningSettings(max_age_years=100, max_income=200_000, near_duplicates=near_duplicates)
    return build_profiles(raw, PERIOD, start, end, settings, seed=0)


def test_transactions_may_be_off_only_with_a_snapshot(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  transactions: {enabled: false}\n")
    with pytest.raises(ConfigError, match="unless a sources.snapshot"):
        load_settings(config)
    snapshot = "  snapshot: {location: s.csv, format: csv}\n"
    config.write_text("sources:\n  transactions: {enabled: false}\n" + snapshot)
    assert load_settings(config).feature_set == "snapshot"
    assert load_settings(None).feature_set == "transactions"
    config.write_text("cleaning: {near_duplicates: drop}\n")
    with pytest.raises(ConfigError, match="near_duplicates"):
        load_settings(config)


def test_near_duplicates_are_quarantined_in_every_source_naming_the_kept_id() -> None:
    build = _build()
    assert build.profiles["customer_id"].to_list() == ["a", "c", "d"]
    q = build.quarantined
    assert sorted(q["source"]) == ["customers", "snapshot"]
    assert set(q["rule_id"]) == {"near_duplicate_other_id"}
    assert q["reason"].str.starts_with("repeats customer a ").all()
    for counts in build.accounting.values():
        assert counts["raw_rows"] == counts["accepted_rows"] + counts["quarantined_rows"] == 4
    kept = _build("keep")
    assert kept.profiles.height == 4 and kept.quarantined.height == 0


def test_impossible_values_are_recoded_with_reasons_and_imputed() -> None:
    build = _build()
    log = {(r["column"], r["value"]): r for r in build.recoded_values.iter_rows(named=True)}
    assert set(log) == {("birth_year", "1899"), ("income", "666666.0"), ("marital_status", "yolo")}
    assert log[("birth_year", "1899")]["reason"].startswith("birth year outside 1914..2000")
    assert log[("marital_status", "yolo")]["source"] == "snapshot"
    profiles = build.profiles.sort("customer_id")
    assert profiles["birth_year_imputed"].to_list() == [False, True, False]
    assert profiles["income_imputed"].to_list() == [False, False, True]
    assert profiles["income"].null_count() == 0
    assert profiles["marital_status"].to_list() == ["married", None, "single"]
    assert build.recoded == {"birth_year": 1, "income": 1, "household_size": 0, "gender": 0, "education": 0,
                             "marital_status": 1, "children": 0, "age_band": 0, "income_band": 0,
                             "household_size_band": 0}  # fmt: skip


def test_optional_contract_columns_absent_pass_and_present_are_checked() -> None:
    contract = load_contract("customer_profiles")
    start, end = periods.bounds(PERIOD)
    profiles = _build().profiles
    assert validate_frame(profiles, contract, "error", None, start, end).success
    added = [c for c in profiles.columns if c.startswith("snapshot_")] + ["marital_status", "children"]
    without = profiles.drop(added)
    assert validate_frame(without, contract, "error", None, start, end).success
    broken = profiles.with_columns(pl.lit(-1, dtype=pl.Int64).alias("snapshot_purchases"))
    report = validate_frame(broken, contract, "error", None, start, end)
    assert report.failed_rule_ids == ["customer_profiles.snapshot_purchases.non_negative"]


def test_snapshot_features_meet_their_contract_without_rfm() -> None:
    features = build_snapshot_features(_build().profiles.lazy(), PERIOD, snapshot_months=24)
    start, end = periods.bounds(PERIOD)
    contract = load_contract("customer_features_snapshot")
    assert validate_frame(features, contract, "error", None, start, end).success
    row = features.row(0, named=True)
    assert (row["purchases_per_month"], row["spend_per_month"], row["avg_order_value"]) == (0.5, 10.0, 20.0)
    assert row["digital_share"] == 0.5 and row["age"] == 2014 - 1960
    assert "rfm_segment" not in features.columns
