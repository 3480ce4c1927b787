"""Through the real assets: a source whose history starts late, and a SQL source read per partition."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

CRM_HEADER = (
    "customer_id,name,email,signup_date,birth_year,gender,income,education,household_size,city,region,"
    "country,preferred_channel,marketing_opt_in"
)
CRM_ROW = "C1,Ann Lee,ann@example.com,2023-01-01,1980,F,50000,master,2,Oslo,North,NO,web,true"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE sales (inv TEXT, cust TEXT, at TEXT, qty INTEGER, price REAL, status TEXT)"
        )
        conn.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("I1", "C1", "2024-04-02 10:00:00", 2, 3.5, "ok"),
                ("I2", "C1", "2024-04-03 10:00:00", -1, 3.5, "storno"),
            ],
        )
    for month in ("2024-03", "2024-04"):
        crm = tmp_path / "landing" / "crm" / f"{month}.csv"
        crm.parent.mkdir(parents=True, exist_ok=True)
        crm.write_text(CRM_HEADER + "\n" + CRM_ROW + "\n")
    config = tmp_path / "segflow.yaml"
    config.write_text(
        "storage_dir: storage\nlanding_dir: landing\npartitions: {start: 2024-03}\nsources:\n"
        "  customers: {location: '{landing}/crm/{period}.csv', format: csv}\n"
        "  transactions:\n    format: sql\n    uri: sqlite:///shop.db\n    starts: 2024-04\n"
        "    query: SELECT * FROM sales WHERE at >= :start AND at < :end\n"
        "    cancellation: \"status = 'storno'\"\n"
        "    columns: {invoice_id: inv, customer_id: cust, invoiced_at: at,\n"
        "              quantity: qty, unit_price: price}\n"
        "  engagement: {enabled: false}\n  surveys: {enabled: false}\n  campaigns: {enabled: false}\n"
    )
    monkeypatch.setenv("SEGFLOW_CONFIG", str(config))
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    return tmp_path


def _ingest(home: Path, month: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from segflow.definitions import defs

    return (
        defs()
        .resolve_job_def("ingest_job")
        .execute_in_process(partition_key=month, instance=instance, raise_on_error=False)
    )


def _evaluation(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}[name]


def test_months_before_starts_are_expected_empty_and_later_months_are_checked(
    home: Path, memory_instance
) -> None:
    before = _ingest(home, "2024-03", memory_instance)
    assert before.success
    raw = before.output_for_node("raw_transactions")
    assert raw.height == 0
    check = _evaluation(before, "raw_transactions_contract_errors")
    assert check.passed and "before sources.transactions.starts (2024-04)" in check.metadata["note"].value
    meta = before.asset_materializations_for_node("raw_transactions")[0].metadata
    assert meta["expected_empty"].value is True and meta["source_starts"].value == "2024-04"

    after = _ingest(home, "2024-04", memory_instance)
    assert after.success
    raw = after.output_for_node("raw_transactions")
    assert raw["invoice_id"].to_list() == ["I1", "I2"] and raw["_is_cancellation"].to_list() == [
        False,
        True,
    ]
    assert raw["_source_file"].to_list() == [f"sqlite:///{home / 'shop.db'}"] * 2
    profiles = after.output_for_node("customer_profiles", "customer_profiles")
    c1 = profiles.row(0, named=True)
    assert (c1["n_invoices"], c1["n_cancellations"], c1["net_revenue"]) == (1, 1, 3.5)

    # From `starts` on, an empty month is an error again: the check is not weakened.
    with sqlite3.connect(home / "shop.db") as conn:
        conn.execute("DELETE FROM sales")
    empty = _ingest(home, "2024-04", memory_instance)
    assert not empty.success
    check = _evaluation(empty, "raw_transactions_contract_errors")
    assert not check.passed and "raw_transactions.row_count" in check.metadata["failing_rules"].value
