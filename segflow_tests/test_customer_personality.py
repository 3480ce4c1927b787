"""examples/customer_personality.yaml end to end through the CLI (its main, in process): backfill,
report, export.

The Kaggle "Customer Personality Analysis" CRM snapshot has no transaction line items, so this is
the snapshot feature set: demographic and behavioural segmentation without RFM. Asserted: segments
exist, the report names the feature families (and that RFM was not available), and every kind of
dirt the data README lists is handled and shown with a reason.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from segflow.lib.storage import StorageLayout
from segflow_tests.conftest import CUSTOMER_PERSONALITY, ROOT, require, segflow_cli

pytestmark = pytest.mark.realdata

EXAMPLE = ROOT / "examples" / "customer_personality.yaml"
PERIOD = "2014-06"


def _config(tmp_path: Path) -> Path:
    """The example as shipped, with storage under tmp_path and its relative locations resolved."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["storage_dir"] = str(tmp_path / "storage")
    for source in raw["sources"].values():
        if "location" in source:
            source["location"] = str((EXAMPLE.parent / source["location"]).resolve())
    path = tmp_path / "customer_personality.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require(CUSTOMER_PERSONALITY)
    tmp_path = tmp_path_factory.mktemp("customer_personality")
    config = _config(tmp_path)
    home = tmp_path / "home"
    # The CLI's own commands, in this process: eight processes paid the imports eight times.
    segflow_cli(home, "backfill", "--config", str(config), "--from", PERIOD, "--to", PERIOD)
    exported = {}
    for asset in ("segment_assignments", "recoded_values", "quarantined_rows", "customer_profiles",
                  "row_accounting", "customer_features"):  # fmt: skip
        out = tmp_path / f"{asset}.parquet"
        segflow_cli(home, "export", asset, "--config", str(config), "--period", PERIOD, "--out", str(out))
        exported[asset] = pl.read_parquet(out)
    csv = tmp_path / "segments.csv"
    segflow_cli(
        home, "export", "segment_assignments", "--config", str(config), "--period", PERIOD, "--out", str(csv)
    )
    report = StorageLayout(tmp_path / "storage").report_page(PERIOD)
    assert report.exists()
    bare = re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", report.read_text(), flags=re.S))
    text = re.sub(r"\s+", " ", html.unescape(bare))
    return {**exported, "csv": pl.read_csv(csv), "report": text}


def test_segments_exist_for_every_accepted_customer(run: dict) -> None:
    segments = run["csv"]
    # 2,240 rows, of which 182 repeat an earlier one in every column but the id (quarantined).
    assert segments.height == 2240 - 182
    assert segments["customer_id"].n_unique() == segments.height
    assert segments["segment_id"].null_count() == 0 and segments["segment_name"].null_count() == 0
    assert segments["segment_id"].n_unique() >= 2
    assert "rfm_segment" not in segments.columns  # no RFM without line items
    features = set(run["customer_features"].columns)
    assert features >= {"purchases_per_month", "spend_per_month", "age", "income"}


def test_report_names_feature_families_and_missing_rfm(run: dict) -> None:
    text = run["report"]
    assert "Feature families" in text
    assert "RFM was not available (no transaction line items)" in text
    rows = (
        "rfm no none: no transaction line items no",
        "category_mix no none no",
        "behaviour yes snapshot",
        "demographics yes",
    )
    for row in rows:
        assert row in text, row
    assert "2,058 customers in the behaviour snapshot were segmented" in text


def test_null_and_absurd_incomes_are_imputed_and_flagged(run: dict) -> None:
    profiles = run["customer_profiles"]
    assert profiles["income"].null_count() == 0
    assert int(profiles["income_imputed"].sum()) == 24 + 1  # 24 nulls and the 666,666
    assert profiles["income"].max() < 200_000
    recoded = run["recoded_values"].filter(pl.col("column") == "income")
    assert recoded["value"].to_list() == ["666666.0"]
    assert "imputed" in recoded["action"][0]
    assert "666666.0" in run["report"]


def test_impossible_birth_years_are_recoded_with_a_reason(run: dict) -> None:
    recoded = run["recoded_values"].filter(pl.col("column") == "birth_year")
    assert recoded["value"].to_list() == ["1893", "1899", "1900"]
    assert set(recoded["rule_id"]) == {"implausible_birth_year"}
    assert all("birth year outside 1914..2000" in r for r in recoded["reason"])
    profiles = run["customer_profiles"]
    assert int(profiles["birth_year_imputed"].sum()) == 3
    assert profiles["birth_year"].min() >= 1914


def test_absurd_marital_statuses_are_recoded_with_a_reason(run: dict) -> None:
    recoded = run["recoded_values"].filter(pl.col("column") == "marital_status")
    assert dict(zip(recoded["value"], recoded["rows"], strict=True)) == {"absurd": 2, "alone": 3, "yolo": 2}
    assert set(recoded["rule_id"]) == {"unknown_marital_status"}
    assert all(r.startswith("marital status not in") for r in recoded["reason"])
    statuses = set(run["customer_profiles"]["marital_status"].drop_nulls())
    assert statuses == {"single", "married", "together", "divorced", "widowed"}
    for value in ("alone", "absurd", "yolo"):
        assert f"unknown_marital_status {value}" in run["report"]


def test_constant_columns_are_ignored_and_shown(run: dict) -> None:
    text = run["report"]
    # Named as constant, the value never shown: an ignored column may hold personal data (issue 19.7).
    assert "customers, snapshot Z_CostContact constant (one value in every row)" in text
    assert "customers, snapshot Z_Revenue constant (one value in every row)" in text
    assert "every row holds" not in text
    # Read by the snapshot mapping, so not listed as ignored.
    assert "MntWines" not in text
    assert not any("Z_" in c for c in run["customer_features"].columns)


def test_near_duplicates_are_quarantined_naming_the_kept_id(run: dict) -> None:
    quarantined = run["quarantined_rows"]
    counts = dict(quarantined.group_by("source").len().iter_rows())
    assert counts == {"customers": 182, "snapshot": 182}
    assert set(quarantined["rule_id"]) == {"near_duplicate_other_id"}
    kept = quarantined["reason"].str.extract(r"repeats customer (\d+)").drop_nulls()
    assert kept.len() == quarantined.height
    assert set(kept) <= set(run["csv"]["customer_id"].cast(pl.String))
    accounting = run["row_accounting"]
    assert (accounting["raw_rows"] == accounting["accepted_rows"] + accounting["quarantined_rows"]).all()
