"""What real exports do: customers missing from the CRM, exact duplicate lines without invoice ids
(issue 17 items 2 and 6). Small frames through the real ingest and profile functions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from segflow.config import CleaningSettings, ConfigError, SourceSettings, load_settings
from segflow.lib.ingest import cast_to_schema, read_source
from segflow.lib.profiles import RawSources, build_profiles

START, END = datetime(2024, 3, 1), datetime(2024, 4, 1)
CRM_IDS = ("C1", "C2", "C3", "C4")


def _numbered(frame: pl.DataFrame, source: str, file: str) -> pl.DataFrame:
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


def _build(tx: pl.DataFrame, settings: CleaningSettings = CleaningSettings(), crm=True):
    raw = RawSources(_crm() if crm else None, tx, None, None, None)
    return build_profiles(raw, "2024-03", START, END, settings, seed=1)


def test_orphans_are_kept_with_unknown_demographics_imputed_and_counted_by_default() -> None:
    assert CleaningSettings().orphans == "keep"
    build = _build(_tx(["C1", "C9", "C9", "C2"]))
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


@pytest.mark.parametrize(
    ("setting", "dropped", "k1_units"), [("auto", 0, 2), ("keep", 0, 2), ("drop", 1, 1)]
)
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
    from segflow.lib.report.render import _orphans_note

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
