"""The shipped multi-table example (examples/grocery_multi_table.yaml) on generated data, end to end
through the CLI's backfill in this process: banded demographics, line items joined to products for
the category, exposures joined to campaign dates and to coupon redemptions for the response, and
households outside the CRM kept (issue 17's acceptance). 300 households, two months."""

from __future__ import annotations

import html
import json
import re
import shutil

import polars as pl
import pytest

from segflow.lib.storage import StorageLayout
from segflow.synth.grocery import generate_grocery
from segflow_tests.conftest import ROOT, segflow_cli

EXAMPLE = ROOT / "examples" / "grocery_multi_table.yaml"
MONTHS = ("2024-01", "2024-02")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("grocery")
    rows = generate_grocery(root / "grocery_multi_table", households=300, months=2, start="2024-01", seed=7)
    # The example as shipped, next to the data it names (its paths are relative to the file).
    config = root / EXAMPLE.name
    shutil.copy(EXAMPLE, config)
    text = config.read_text().replace("storage_dir: ../.segflow/examples/grocery_multi_table/storage",
                                      "storage_dir: storage")  # fmt: skip
    config.write_text(text)
    segflow_cli(root / "home", "backfill", "--config", str(config), "--from", MONTHS[0], "--to", MONTHS[-1])
    layout = StorageLayout(root / "storage")

    def read(asset: str, month: str = MONTHS[-1]) -> pl.DataFrame:
        return pl.read_parquet(layout.table(asset, month))

    report = layout.report_page(MONTHS[-1]).read_text()
    bare = re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", report, flags=re.S))
    return {
        "rows": rows, "data": root / "grocery_multi_table", "read": read,
        "model": json.loads(layout.model("segmentation_model", MONTHS[-1]).read_text()),
        "report": re.sub(r"\s+", " ", html.unescape(bare)),
    }  # fmt: skip


def test_every_month_is_segmented_and_every_line_accounted_for(run: dict) -> None:
    accounting = pl.concat([run["read"]("row_accounting", m) for m in MONTHS])
    tx = accounting.filter(pl.col("source") == "transactions")
    assert tx["raw_rows"].sum() == run["rows"]["transaction_data.csv"]
    assert (tx["accepted_rows"] + tx["quarantined_rows"] + tx["duplicates_dropped"] == tx["raw_rows"]).all()
    assigned = run["read"]("segment_assignments")
    assert assigned.height == run["read"]("customer_features").height > 250
    assert 3 <= run["model"]["k"] <= 5  # three planted habits


def test_line_items_get_their_category_from_the_product_table(run: dict) -> None:
    raw = run["read"]("raw_transactions")
    products = pl.read_csv(run["data"] / "product.csv").select(
        pl.col("PRODUCT_ID").cast(pl.String).alias("product_id"), pl.col("DEPARTMENT")
    )
    joined = raw.join(products, on="product_id", how="left")
    assert (joined["category"].eq_missing(joined["DEPARTMENT"])).all()
    uncatalogued = raw.filter(pl.col("category").is_null())
    assert 0 < uncatalogued.height < raw.height * 0.05
    assert set(uncatalogued["product_id"]) <= {"999001", "999002"}  # not in product.csv: no category
    assert "category_mix" not in run["model"].get("unavailable_families", {})
    assert any(f["name"].startswith("category_share_") for f in run["model"]["features"])


def test_exposures_respond_when_a_coupon_of_the_campaign_was_redeemed(run: dict) -> None:
    campaigns = pl.concat([run["read"]("raw_campaigns", m) for m in MONTHS])
    assert campaigns.height == run["rows"]["campaign_table.csv"]
    redeemed = pl.read_csv(run["data"] / "coupon_redempt.csv").select(
        pl.format("{}/{}", "household_key", "CAMPAIGN").unique().alias("key")
    )
    keys = campaigns.select(pl.format("{}/{}", "customer_id", "campaign_id").alias("key"), "responded")
    assert keys.filter("responded")["key"].sort().to_list() == redeemed["key"].sort().to_list()
    assert campaigns["exposed_at"].is_not_null().all()


def test_banded_demographics_are_categories_in_profiles_and_personas(run: dict) -> None:
    profiles = run["read"]("customer_profiles")
    crm = pl.read_csv(run["data"] / "hh_demographic.csv", infer_schema=False)
    joined = profiles.join(crm, left_on="customer_id", right_on="household_key", how="inner")
    assert joined.height == crm.height
    assert (joined["age_band"] == joined["AGE_DESC"]).all()
    assert (joined["income_band"] == joined["INCOME_DESC"]).all()
    assert (joined["household_size_band"] == joined["HOUSEHOLD_SIZE_DESC"]).all()
    married = joined.filter(pl.col("MARITAL_STATUS_CODE") == "A")["marital_status"]
    assert married.len() > 0 and (married == "married").all()
    assert joined.filter(pl.col("MARITAL_STATUS_CODE") == "U")["marital_status"].null_count() > 0
    cards = run["model"]["personas"].values()
    assert all(card["demographics"].get("age_band") for card in cards)
    assert any("most often aged" in card["description"] for card in cards)


def test_households_outside_the_crm_are_kept_and_counted_in_the_report(run: dict) -> None:
    accounting = run["read"]("row_accounting")
    counts = {r["source"]: r for r in accounting.iter_rows(named=True)}
    orphans = counts["customers"]["orphan_customers"]
    assert orphans > 50 and counts["transactions"]["orphan_rows"] > 0
    profiles = run["read"]("customer_profiles")
    crm_ids = set(pl.read_csv(run["data"] / "hh_demographic.csv", infer_schema=False)["household_key"])
    outside = profiles.filter(~pl.col("customer_id").is_in(list(crm_ids)))
    assert outside.height == orphans and outside["age_band"].null_count() == orphans
    assert "orphan_customer_id" not in run["read"]("quarantined_rows")["rule_id"].to_list()
    rows = counts["transactions"]["orphan_rows"] + counts["campaigns"]["orphan_rows"]
    assert f"{rows:,} accepted rows of {orphans:,} customers missing from the CRM were kept" in run["report"]
    assert "Not in the CRM: rows / customers" in run["report"]
    tx_cell = f"{counts['transactions']['orphan_rows']:,} / {counts['transactions']['orphan_customers']:,}"
    assert tx_cell in run["report"]
