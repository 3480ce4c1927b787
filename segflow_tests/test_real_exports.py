"""What real exports do: customers missing from the CRM, exact duplicate lines without invoice ids
(issue 17 items 2 and 6). Small frames through the real ingest and profile functions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from segflow.config import CleaningSettings, ConfigError, load_settings
from segflow.config_sources import SourceSettings
from segflow.lib.profiles.profiles import RawSources, build_profiles
from segflow.lib.sources.ingest import cast_to_schema, read_source

START, END = datetime(2024, 3, 1), datetime(2024, 4, 1)
CRM_IDS = ("C1", "C2", "C3", "C4")


def _numbered(frame: pl.DataFrame, source: str, file: str) -> pl.DataFrame:
    """``frame`` (text, canonical names) as a reader gives it: cast, numbered, unmapped columns null."""
    from segflow.lib.schema import SOURCES

    frame = frame.with_columns(
        pl.lit(None, pl.String).alias(c) for c in SOURCES[source] if c not in frame.columns
    )
    typed = cast_to_schema(frame.lazy(), source).collect()
    return typed.with_columns(
        pl.lit(file).alias("_source_file"), pl.int_range(pl.len()).cast(pl.Int64).alias("_source_row")
    )


def _crm(ids=CRM_IDS) -> pl.DataFrame:
    n = len(ids)
    frame = pl.DataFrame({
        "customer_id": list(ids), "name": ["A B"] * n, "email": ["a@example.com"] * n,
        "signup_date": ["2023-01-01"] * n, "birth_year": [str(1960 + 7 * i) for i in range(n)],
        "gender": ["F", "M"] * (n // 2), "income": [str(30_000 + 9_000 * i) for i in range(n)],
        "education": ["master", "basic"] * (n // 2), "household_size": ["2", "3"] * (n // 2),
        "city": ["Oslo"] * n, "region": ["N"] * n, "country": ["NO"] * n,
        "preferred_channel": ["web"] * n, "marketing_opt_in": ["true"] * n,
    })  # fmt: skip
    return _numbered(frame, "customers", "crm.csv")


def _tx(customers: list[str]) -> pl.DataFrame:
    frame = pl.DataFrame({
        "invoice_id": [f"I{i}" for i in range(len(customers))], "customer_id": customers,
        "invoiced_at": ["2024-03-05 10:00:00"] * len(customers), "product_id": ["P1"] * len(customers),
        "category": ["toys"] * len(customers), "quantity": ["2"] * len(customers),
        "unit_price": ["3.5"] * len(customers), "channel": ["web"] * len(customers),
    })  # fmt: skip
    return _numbered(frame, "transactions", "tx.csv")


def _build(tx: pl.DataFrame, settings: CleaningSettings | None = None, crm: bool = True):
    raw = RawSources(_crm() if crm else None, tx, None, None, None)
    return build_profiles(raw, "2024-03", START, END, settings or CleaningSettings(), seed=1)


def test_orphans_are_kept_with_unknown_demographics_imputed_and_counted_under_keep() -> None:
    assert CleaningSettings().orphans == "keep"  # the default (issue 17): real extracts cover part of the base
    build = _build(_tx(["C1", "C9", "C9", "C2"]), CleaningSettings(orphans="keep"))
    assert "orphan_customer_id" not in build.quarantined["rule_id"].to_list()
    orphan = build.profiles.filter(pl.col("customer_id") == "C9").row(0, named=True)
    assert orphan["n_invoices"] == 2 and orphan["net_revenue"] == pytest.approx(14.0)
    # Unknown demographics, imputed and flagged like any missing value.
    assert orphan["birth_year_imputed"] and orphan["income_imputed"] and orphan["gender_imputed"]
    assert orphan["birth_year"] is not None and orphan["gender"] is not None
    known = build.profiles.filter(pl.col("customer_id") == "C1").row(0, named=True)
    assert not known["birth_year_imputed"] and known["birth_year"] == 1960
    assert build.accounting["transactions"]["orphan_rows"] == 2
    assert build.accounting["transactions"]["orphan_customers"] == 1
    assert build.accounting["customers"]["orphan_customers"] == 1  # profiled without a record
    assert build.profiles.height == len(CRM_IDS) + 1


def test_orphans_setting_quarantine_quarantines_every_row_of_an_unknown_customer() -> None:
    build = _build(_tx(["C1", "C9", "C9", "C2"]), CleaningSettings(orphans="quarantine"))
    rules = build.quarantined.filter(pl.col("source") == "transactions")["rule_id"].to_list()
    assert rules == ["orphan_customer_id", "orphan_customer_id"]
    assert "C9" not in build.profiles["customer_id"].to_list()
    assert build.accounting["transactions"]["orphan_rows"] == 0
    assert build.accounting["customers"]["orphan_customers"] == 0


def test_the_audit_counts_only_the_exposures_the_profiles_accepted() -> None:
    """``campaign_exposures`` is the accepted campaign rows; the KPIs and the lift read it, so an
    exposure the data-quality section reports as quarantined is never counted in a response rate."""
    from segflow.lib.audit.kpis import segment_kpis
    from segflow.lib.audit.lift import campaign_lift

    frame = pl.DataFrame({
        "campaign_id": ["K1", "K1", "K1", "K1", "K1", "K1"],
        "customer_id": ["C1", "C2", "C9", "C3", "C4", "C1"],  # C9 is not in the CRM
        "arm": ["treatment", " Control ", "treatment", "holdout", "control", "treatment"],
        "exposed_at": ["2024-03-02 09:00:00"] * 5 + ["2024-04-02 09:00:00"],  # the last: next month
        "responded": ["true", "false", "true", "true", None, "false"],
    })  # fmt: skip
    raw = RawSources(_crm(), _tx(["C1", "C2"]), None, None, _numbered(frame, "campaigns", "campaigns.csv"))
    build = build_profiles(raw, "2024-03", START, END, CleaningSettings(orphans="quarantine"), seed=1)
    assert build.exposures.select("customer_id", "arm").rows() == [("C1", "treatment"), ("C2", "control")]
    quarantined = build.quarantined.filter(pl.col("source") == "campaigns")
    assert quarantined.height == 4  # the orphan, the unknown arm, the unknown response, next month's
    assert build.accounting["campaigns"]["accepted_rows"] == build.exposures.height
    segments = pl.DataFrame({"customer_id": CRM_IDS + ("C9",), "segment_id": [0] * 5, "segment_name": "s"})
    values = segments.with_columns(net_revenue_window=pl.lit(1.0), invoices_window=pl.lit(1), recency_days=pl.lit(3))
    kpis = segment_kpis(values, exposures=build.exposures)
    assert kpis.select("treatment_exposed", "control_exposed").row(0) == (1, 1)
    lift = campaign_lift(build.exposures, segments, min_arm_size=1)
    assert lift.select("treatment_n", "control_n", "treatment_responders").row(0) == (1, 1, 1)


def test_without_a_crm_nobody_is_an_orphan() -> None:
    build = _build(_tx(["C1", "C9"]), crm=False)
    assert sorted(build.profiles["customer_id"]) == ["C1", "C9"]
    assert build.accounting["transactions"]["orphan_rows"] == 0


@pytest.mark.parametrize(("key", "value"), [("orphans", "drop"), ("exact_duplicates", "remove")])
def test_config_rejects_an_unknown_choice_naming_the_key(tmp_path: Path, key: str, value: str) -> None:
    config = tmp_path / "segflow.yaml"
    config.write_text(f"cleaning: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=rf"segflow.yaml: cleaning: {key}: '{value}' is not one of"):
        load_settings(config)


LOG = "Client,Day,Item,Qty,Price\nK1,2024-03-04,P1,1,2.5\nK1,2024-03-04,P1,1,2.5\nK2,2024-03-05,P2,3,1.0\n"


def _read_log(tmp_path: Path, text: str, columns: dict[str, str]) -> pl.DataFrame:
    path = tmp_path / "log.csv"
    path.write_text(text)
    settings = SourceSettings(location=str(path), format="csv", columns=columns)
    return read_source("transactions", settings, str(path)).frame


NO_IDS = {"customer_id": "Client", "invoiced_at": "Day", "product_id": "Item", "quantity": "Qty",
          "unit_price": "Price"}  # fmt: skip


@pytest.mark.parametrize(("setting", "dropped", "k1_units"), [("auto", 0, 2), ("keep", 0, 2), ("drop", 1, 1)])
def test_exact_duplicates_without_invoice_ids_are_repeat_purchases_unless_dropped(
    tmp_path: Path, setting: str, dropped: int, k1_units: int
) -> None:
    tx = _read_log(tmp_path, LOG, NO_IDS)
    build = _build(tx, CleaningSettings(exact_duplicates=setting), crm=False)
    accounting = build.accounting["transactions"]
    assert accounting["duplicates_dropped"] == dropped
    assert accounting["accepted_rows"] == 3 - dropped
    k1 = build.profiles.filter(pl.col("customer_id") == "K1").row(0, named=True)
    assert k1["units"] == k1_units and k1["n_invoices"] == 1  # one derived invoice for the day


@pytest.mark.parametrize(("setting", "dropped"), [("auto", 1), ("drop", 1), ("keep", 0)])
def test_exact_duplicates_with_invoice_ids_are_dropped_by_default(
    tmp_path: Path, setting: str, dropped: int
) -> None:
    text = "Inv," + LOG.replace("\nK", "\nI1,K").replace("I1,K2", "I2,K2")
    tx = _read_log(tmp_path, text, {**NO_IDS, "invoice_id": "Inv"})
    build = _build(tx, CleaningSettings(exact_duplicates=setting), crm=False)
    assert build.accounting["transactions"]["duplicates_dropped"] == dropped


def test_report_states_the_orphan_rule_and_count_suppressing_small_counts() -> None:
    from segflow.lib.report.quality import _orphans_note

    accounting = {
        "customers": {"orphan_rows": 0, "orphan_customers": 25},
        "transactions": {"orphan_rows": 120, "orphan_customers": 25},
        "campaigns": {"orphan_rows": 30, "orphan_customers": 12},
    }
    note = _orphans_note({"orphan_setting": "keep", "accounting": accounting}, 10)
    assert note.startswith("150 accepted rows of 25 customers missing from the CRM were kept")
    assert "cleaning.orphans: keep" in note
    few = {**accounting, "customers": {"orphan_rows": 0, "orphan_customers": 3}}
    assert "of <10 customers" in _orphans_note({"orphan_setting": "keep", "accounting": few}, 10)
    assert "quarantined as orphan_customer_id" in _orphans_note(
        {"orphan_setting": "quarantine", "accounting": accounting}, 10
    )
    assert _orphans_note({"orphan_setting": None, "accounting": accounting}, 10) == ""


# --- banded demographics and marital status (issue 17 item 3) --------------------------------


@pytest.mark.parametrize(
    ("label", "canonical", "low"),
    [
        ("25-34", "25-34", 25.0), (" 25 – 34 ", "25-34", 25.0), ("25 to 34", "25-34", 25.0),
        ("50-74k", "50-74K", 50_000.0), ("$50,000-$74,999", "$50,000-$74,999", 50_000.0),
        ("65+", "65+", 65.0), ("65 and over", "65+", 65.0), ("250K+", "250K+", 250_000.0),
        ("under 15k", "Under 15K", 0.0), ("<15K", "Under 15K", 0.0), ("1", "1", 1.0), ("5+", "5+", 5.0),
        ("Unknown", "Unknown", None), ("34-25", "34-25", None), ("25-34-44", "25-34-44", None),
    ],
)  # fmt: skip
def test_band_labels_are_written_one_way_and_told_from_other_text(label, canonical, low) -> None:
    from segflow.lib.profiles import bands

    frame = pl.DataFrame({"band": [label]}).select(
        bands.canonical(pl.col("band")).alias("canonical"), bands.lower_bound(pl.col("band")).alias("low")
    )
    assert frame.row(0) == (canonical, low)


def test_bands_order_by_lower_bound() -> None:
    from segflow.lib.profiles.bands import ordered

    assert ordered(["250K+", "50-74K", "Unknown", "Under 15K", "100-124K", "15-24K"]) == [
        "Under 15K", "15-24K", "50-74K", "100-124K", "250K+", "Unknown"]  # fmt: skip


def _banded_crm() -> pl.DataFrame:
    ages = ["25-34", "25 - 34", "65+", "45-54", "Unknown", "35-44"] * 4
    n = len(ages)
    frame = pl.DataFrame({
        "customer_id": [f"C{i}" for i in range(n)], "age_band": ages,
        "income_band": ["50-74k", "Under 15K", "250K+", "35-49K"] * (n // 4),
        "household_size_band": ["1", "2", "5+", "3"] * (n // 4),
        "marital_status": [" Married", "single", "YOLO", None] * (n // 4),
    })  # fmt: skip
    return _numbered(frame, "customers", "hh_demographic.csv")


def test_bands_and_marital_status_are_categories_in_profiles_recoding_what_is_no_band() -> None:
    crm = _banded_crm()
    tx = _tx([f"C{i}" for i in range(crm.height)])
    build = build_profiles(
        RawSources(crm, tx, None, None, None), "2024-03", START, END, CleaningSettings(), 1
    )
    profiles = build.profiles.sort(pl.col("customer_id").str.slice(1).cast(pl.Int32))
    assert profiles["age_band"].to_list()[:6] == ["25-34", "25-34", "65+", "45-54", None, "35-44"]
    assert profiles["income_band"].to_list()[:4] == ["50-74K", "Under 15K", "250K+", "35-49K"]
    assert profiles["household_size_band"].to_list()[:4] == ["1", "2", "5+", "3"]
    assert profiles["marital_status"].to_list()[:4] == ["married", "single", None, None]
    # Bands are never turned into numbers; the numeric columns the source lacks stay unknown.
    assert profiles["birth_year"].null_count() == profiles.height and not profiles["birth_year_imputed"].any()
    recoded = build.recoded_values.select("source", "column", "rule_id", "value", "rows").rows()
    assert ("customers", "age_band", "unparseable_band", "Unknown", 4) in recoded
    assert ("customers", "marital_status", "unknown_marital_status", "yolo", 6) in recoded


def test_bands_are_one_hot_in_the_demographic_family_and_named_in_personas() -> None:
    from segflow.config import ModelSettings
    from segflow.lib.models.design import fit_design
    from segflow.lib.models.personas import build_personas

    n = 60
    frame = pl.DataFrame({
        "customer_id": [f"C{i:02d}" for i in range(n)],
        "age_band": ["25-34"] * 30 + ["65+"] * 30, "income_band": ["50-74K", "Under 15K"] * 30,
        "household_size_band": ["5+"] * n, "marital_status": ["married", "single"] * 30,
        "recency_days": [float(i) for i in range(n)],
    })  # fmt: skip
    design = fit_design(frame, ModelSettings(feature_families=("demographic",)))
    columns = [c for f in design.params.features for c in f["columns"]]
    assert {"age_band=25-34", "age_band=65+", "income_band=50-74K", "marital_status=married"} <= set(columns)
    assert "household_size_band=5+" in design.params.dropped_constant_features  # constant: no information
    labels = np.array([0] * 30 + [1] * 30)
    cards = build_personas(frame, labels, {0: "Young", 1: "Older"}, "2024-03", min_cell=10)
    assert cards["0"]["demographics"]["age_band"] == [{"value": "25-34", "share": 1.0}]
    assert "most often aged 65+ (100%)" in cards["1"]["description"]


# --- sources joined from several files (issue 17 item 3) -------------------------------------

ITEMS = ("household_key,BASKET_ID,DAY,PRODUCT_ID,QUANTITY,PRICE\n"
         "7,B1,2024-03-02,900,2,1.5\n7,B1,2024-03-02,901,1,4.0\n8,B2,2024-03-03,999,1,2.0\n"
         "8,B3,2024-03-04, 900,3,1.5\n")  # fmt: skip
PRODUCTS = "PRODUCT_ID,DEPARTMENT,BRAND\n900,GROCERY,National\n901,PRODUCE,Private\n902,DELI,Private\n"
ITEM_COLUMNS = {"invoice_id": "BASKET_ID", "customer_id": "household_key", "invoiced_at": "DAY",
                "product_id": "PRODUCT_ID", "quantity": "QUANTITY", "unit_price": "PRICE",
                "category": "DEPARTMENT"}  # fmt: skip


def _joined_source(tmp_path: Path, source: str, files: dict[str, str], spec: str) -> pl.DataFrame:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    config = tmp_path / "segflow.yaml"
    config.write_text(f"sources:\n  {source}:\n{spec}")
    settings = load_settings(config).sources[source]
    return read_source(source, settings, settings.location).frame


def test_line_items_are_joined_to_products_for_the_category(tmp_path: Path) -> None:
    spec = (f"    location: items.csv\n    format: csv\n    columns: {ITEM_COLUMNS}\n"
            "    joins: [{location: product.csv, on: PRODUCT_ID, columns: [DEPARTMENT]}]\n")  # fmt: skip
    frame = _joined_source(tmp_path, "transactions", {"items.csv": ITEMS, "product.csv": PRODUCTS}, spec)
    # Every line kept in file order with its own row number; an unknown product gets no category,
    # and " 900" (padded) matches 900.
    assert frame["_source_row"].to_list() == [0, 1, 2, 3]
    assert frame["category"].to_list() == ["GROCERY", "PRODUCE", None, "GROCERY"]
    assert frame["product_id"].to_list() == ["900", "901", "999", " 900"]
    assert frame["_parse_error"].null_count() == 4


def test_a_lookup_with_a_repeated_key_is_refused_naming_file_key_and_value(tmp_path: Path) -> None:
    from segflow.lib.sources.ingest import SourceError

    spec = (f"    location: items.csv\n    format: csv\n    columns: {ITEM_COLUMNS}\n"
            "    joins: [{location: product.csv, on: PRODUCT_ID, columns: [DEPARTMENT]}]\n")  # fmt: skip
    repeated = PRODUCTS + "901,FROZEN,National\n"
    with pytest.raises(SourceError, match=r"product.csv: a `how: left` join needs one row per key "
                                          r"\['PRODUCT_ID'\], but PRODUCT_ID='901' appears 2 times"):  # fmt: skip
        _joined_source(tmp_path, "transactions", {"items.csv": ITEMS, "product.csv": repeated}, spec)
    wrong_key = spec.replace("on: PRODUCT_ID", "on: {PRODUCT_ID: SKU}")
    with pytest.raises(SourceError, match=r"product.csv: join key column\(s\) \['SKU'\] not found; "
                                          r"available columns: \['PRODUCT_ID', 'DEPARTMENT', 'BRAND'\]"):  # fmt: skip
        _joined_source(tmp_path, "transactions", {"items.csv": ITEMS, "product.csv": PRODUCTS}, wrong_key)


def test_exposures_are_joined_to_redemptions_for_the_response(tmp_path: Path) -> None:
    exposures = "household_key,CAMPAIGN\n7,C8\n8,C8\n7,C9\n"
    campaigns = "CAMPAIGN,START_DAY\nC8,2024-03-01\nC9,2024-03-15\n"
    redeemed = (
        "household_key,CAMPAIGN,COUPON_UPC\n7,C8,111\n7,C8,112\n8,C9,113\n"  # twice: still one response
    )
    spec = (
        "    location: exposures.csv\n    format: csv\n"
        "    columns: {campaign_id: CAMPAIGN, customer_id: household_key, arm: \"'treatment'\", "
        "exposed_at: START_DAY, responded: redeemed}\n"
        "    joins:\n      - {location: campaign_desc.csv, on: CAMPAIGN}\n"
        "      - {location: coupon_redempt.csv, on: [household_key, CAMPAIGN], how: exists, flag: redeemed}\n"
    )
    frame = _joined_source(tmp_path, "campaigns", {"exposures.csv": exposures, "campaign_desc.csv": campaigns,
                                                   "coupon_redempt.csv": redeemed}, spec)  # fmt: skip
    assert frame.select("customer_id", "campaign_id", "responded").rows() == [
        ("7", "C8", True), ("8", "C8", False), ("7", "C9", False)]  # fmt: skip
    assert frame["exposed_at"].dt.day().to_list() == [1, 1, 15]


@pytest.mark.parametrize(
    ("join", "message"),
    [
        ("{location: p.csv, on: X, how: inner}", r"joins\[0\]\.how: 'inner' is not one of \['left', 'exists'\]"),
        ("{location: p.csv, on: X, how: exists}", r"joins\[0\]\.flag: how exists needs `flag`"),
        ("{on: X}", r"joins\[0\]\.location: a joined file needs a location"),
        ("{location: '{landing}/p.csv', on: X}", r"without \{landing\} or \{period\}"),
        ("{location: p.csv, on: X, kind: left}", r"sources.transactions.joins\[0\]: unknown key\(s\) \['kind'\]"),
    ],
)  # fmt: skip
def test_join_settings_are_checked_when_the_config_loads(tmp_path: Path, join: str, message: str) -> None:
    config = tmp_path / "segflow.yaml"
    config.write_text(f"sources:\n  transactions: {{location: t.csv, format: csv, joins: [{join}]}}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config)
