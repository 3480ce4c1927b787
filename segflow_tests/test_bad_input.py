"""The bad-input catalogue: every kind of bad input, fed through the real assets, ends either in
quarantine with a rule and a reason, or in a failed run whose error names the file, column, row
(where one applies) and rule. Nothing is dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

HEADER = "invoice_id,customer_id,invoiced_at,product_id,category,quantity,unit_price,channel"
GOOD = "I{n},C1,2024-03-0{d} 10:00:00,P{n},toys,2,3.50,web"
CRM_HEADER = ("customer_id,name,email,signup_date,birth_year,gender,income,education,household_size,city,region,"
              "country,preferred_channel,marketing_opt_in")  # fmt: skip
CRM_ROW = "{cid},Ann Lee,ann@example.com,2023-01-01,1980,F,50000,master,2,Oslo,North,NO,web,true"

# Row-level bad input: (line in transactions/2024-03.csv, expected rule id, column named in the reason or None)
ROW_CASES = {
    "unparseable date": ("I10,C1,31/02/2024 10:00,P1,toys,2,3.5,web", "unparseable_value", "invoiced_at"),
    "wrong type": ("I11,C1,2024-03-02 10:00:00,P1,toys,two,3.5,web", "unparseable_value", "quantity"),
    "date in the future": ("I12,C1,2099-03-02 10:00:00,P1,toys,2,3.5,web", "outside_partition", None),
    "date outside the partition": ("I13,C1,2024-02-27 10:00:00,P1,toys,2,3.5,web", "outside_partition", None),
    "null customer id": ("I14,,2024-03-02 10:00:00,P1,toys,2,3.5,web", "missing_customer_id", None),
    "orphan customer id": ("I15,C999,2024-03-02 10:00:00,P1,toys,2,3.5,web", "orphan_customer_id", None),
    "duplicate invoice line, other customer": ("I1,C2,2024-03-01 10:00:00,P9,toys,1,3.5,web",
                                               "invoice_customer_conflict", None),
    "negative price": ("I16,C1,2024-03-02 10:00:00,P1,toys,2,-3.5,web", "negative_price", None),
    "zero price": ("I17,C1,2024-03-02 10:00:00,P1,toys,2,0,web", "zero_price", None),
    "negative quantity, not a cancellation": ("I18,C1,2024-03-02 10:00:00,P1,toys,-2,3.5,web",
                                              "negative_quantity_not_cancellation", None),
    "NaN amount": ("I19,C1,2024-03-02 10:00:00,P1,toys,2,NaN,web", "missing_price", None),
    "inf amount": ("I20,C1,2024-03-02 10:00:00,P1,toys,2,inf,web", "missing_price", None),
    "absurd outlier": ("I21,C1,2024-03-02 10:00:00,P1,toys,500000,3.5,web", "quantity_outlier", None),
    "categorical value outside the allowed set": ("I22,C1,2024-03-02 10:00:00,P1,toys,2,3.5,fax",
                                                  "unknown_channel", None),
}  # fmt: skip


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _landing(root: Path, month: str, tx_lines: list[str], crm_ids=("C1", "C2")) -> None:
    # "C2*" is a second, different record for C2 (a conflicting duplicate, not an exact one).
    rows = [
        CRM_ROW.format(cid=c.rstrip("*")).replace("Oslo", "Bergen" if c.endswith("*") else "Oslo")
        for c in crm_ids
    ]
    _write(root / "landing" / "crm" / f"{month}.csv", "\n".join([CRM_HEADER, *rows]))
    _write(root / "landing" / "tx" / f"{month}.csv", "\n".join([HEADER, *tx_lines]) + "\n")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "segflow.yaml"
    config.write_text(
        "storage_dir: storage\nlanding_dir: landing\nsources:\n"
        "  customers: {location: '{landing}/crm/{period}.csv', format: csv}\n"
        "  transactions: {location: '{landing}/tx/{period}.csv', format: csv}\n"
        "  engagement: {enabled: false}\n  surveys: {enabled: false}\n  campaigns: {enabled: false}\n"
        # The catalogue shows the orphan rule; the default keeps orphans (test_real_exports.py).
        "cleaning: {orphans: quarantine}\n"
    )
    monkeypatch.setenv("SEGFLOW_CONFIG", str(config))
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    return tmp_path


def _ingest(instance: dg.DagsterInstance, month: str) -> dg.ExecuteInProcessResult:
    # Built from the settings file the test names now (one test rewrites it); building is cheap
    # once the modules are imported.
    from segflow.config import load_settings
    from segflow.definitions import build_defs

    return (
        build_defs(load_settings())
        .resolve_job_def("ingest_job")
        .execute_in_process(partition_key=month, instance=instance, raise_on_error=False)
    )


def _error(result: dg.ExecuteInProcessResult) -> str:
    from segflow.runner import _first_error

    return _first_error(result)


def test_row_level_bad_input_is_quarantined_with_a_reason(home: Path, memory_instance) -> None:
    good = [GOOD.format(n=n, d=n) for n in range(1, 6)]
    exact_duplicate = good[1]
    padded_mixed_case = "I30,  C2 ,2024-03-05 10:00:00,P3,toys,1,3.5, WEB "
    _landing(home, "2024-03", [*good, exact_duplicate, padded_mixed_case, *(line for line, _, _ in ROW_CASES.values())],
             crm_ids=("C1", "C2", "C2*", ""))  # fmt: skip
    result = _ingest(memory_instance, "2024-03")
    assert result.success, _error(result)
    storage = home / "storage"
    quarantine = pl.read_parquet(storage / "quarantined_rows" / "2024-03.parquet")
    tx = quarantine.filter(pl.col("source") == "transactions")
    by_invoice = {
        json.loads(r)["invoice_id"]: row
        for r, row in zip(tx["record"], tx.iter_rows(named=True), strict=True)
    }
    for kind, (line, rule, column) in ROW_CASES.items():
        row = by_invoice[line.split(",")[0]]
        assert row["rule_id"] == rule, kind
        assert row["reason"] and row["source_file"].endswith("tx/2024-03.csv"), kind
        assert row["row_number"] >= 0, kind
        if column:
            assert f"'{column}'" in row["reason"], kind
    accounting = pl.read_parquet(storage / "row_accounting" / "2024-03.parquet")
    tx_counts = accounting.filter(pl.col("source") == "transactions").row(0, named=True)
    assert tx_counts["duplicates_dropped"] == 1  # the exact duplicate row
    assert tx_counts["quarantined_rows"] == len(ROW_CASES)
    assert tx_counts["accepted_rows"] == len(good) + 1  # padded, mixed-case row is normalised and kept
    profiles = pl.read_parquet(storage / "customer_profiles" / "2024-03.parquet")
    c2 = profiles.filter(pl.col("customer_id") == "C2").row(0, named=True)
    assert c2["web_invoices"] == 1  # " WEB " -> "web", "  C2 " -> "C2"
    crm = quarantine.filter(pl.col("source") == "customers")
    assert sorted(crm["rule_id"]) == ["duplicate_customer_id", "missing_customer_id"]
    assert "Ann Lee" not in "".join(quarantine["record"]) and "ann@example.com" not in "".join(
        quarantine["record"]
    )


def _run_bad_file(home: Path, instance, content: str | bytes, name: str = "2024-03.csv") -> str:
    _landing(home, "2024-03", [GOOD.format(n=1, d=1)])
    _write(home / "landing" / "tx" / name, content)
    result = _ingest(instance, "2024-03")
    assert not result.success
    assert not (home / "storage" / "customer_profiles" / "2024-03.parquet").exists()
    return _error(result)


@pytest.mark.parametrize(
    ("kind", "content", "expected"),
    [
        ("missing required column", HEADER.replace("unit_price,", "") + "\nI1,C1,2024-03-01 10:00:00,P1,toys,2,web\n",
         ["tx/2024-03.csv", "missing column 'unit_price'"]),
        ("renamed required column", HEADER.replace("quantity", "qty") + "\n" + GOOD.format(n=1, d=1) + "\n",
         ["tx/2024-03.csv", "'quantity'", "did you mean 'qty'"]),
        ("empty file", b"", ["tx/2024-03.csv", "cannot read"]),
        ("header-only file", HEADER + "\n", ["raw_transactions", "raw_transactions.row_count"]),
        ("bad CSV quoting", HEADER + '\nI1,C1,"2024-03-01 10:00:00,P1,toys,2,3.5,web\nI2,C1,2024-03-02,P2,t,1,1,web\n',
         ["tx/2024-03.csv"]),
        ("non-UTF-8 bytes", (HEADER + "\nI1,C1,2024-03-01 10:00:00,P1,t\xe9ys,2,3.5,web\n").encode("latin-1"),
         ["tx/2024-03.csv"]),
    ],
)  # fmt: skip
def test_file_level_bad_input_fails_the_run_naming_the_file(
    home: Path, memory_instance, kind: str, content, expected
) -> None:
    message = _run_bad_file(home, memory_instance, content)
    for fragment in expected:
        assert fragment in message, (kind, message)


def test_truncated_parquet_fails_naming_the_file(home: Path, memory_instance) -> None:
    config = home / "segflow.yaml"
    config.write_text(config.read_text().replace("'{landing}/tx/{period}.csv', format: csv",
                                                 "'{landing}/tx/{period}.parquet', format: parquet"))  # fmt: skip
    _landing(home, "2024-03", [])
    frame = pl.DataFrame({"invoice_id": ["I1"] * 1000, "customer_id": ["C1"] * 1000})
    whole = home / "whole.parquet"
    frame.write_parquet(whole)
    _write(home / "landing" / "tx" / "2024-03.parquet", whole.read_bytes()[:300])
    result = _ingest(memory_instance, "2024-03")
    assert not result.success
    assert "tx/2024-03.parquet" in _error(result)


def test_schema_change_between_months_names_the_column(home: Path, memory_instance) -> None:
    _landing(home, "2024-03", [GOOD.format(n=1, d=1)])
    assert _ingest(memory_instance, "2024-03").success
    _landing(home, "2024-04", [])
    _write(home / "landing" / "tx" / "2024-04.csv",
           HEADER.replace("customer_id", "client") + "\nI1,C1,2024-04-01 10:00:00,P1,toys,2,3.5,web\n")  # fmt: skip
    result = _ingest(memory_instance, "2024-04")
    assert not result.success
    message = _error(result)
    assert "tx/2024-04.csv" in message and "'customer_id'" in message and "client" in message


def test_volume_drop_of_90_percent_warns(home: Path, memory_instance) -> None:
    _landing(home, "2024-03", [GOOD.format(n=n, d=1 + n % 9) for n in range(1, 101)], crm_ids=("C1",))
    assert _ingest(memory_instance, "2024-03").success
    _landing(home, "2024-04", [GOOD.format(n=n, d=1 + n % 9).replace("2024-03", "2024-04") for n in range(1, 11)],
             crm_ids=("C1",))  # fmt: skip
    result = _ingest(memory_instance, "2024-04")
    assert result.success  # advisory: a warning, not a stop
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    warning = evaluations["raw_transactions_contract_warnings"]
    assert not warning.passed
    assert "raw_transactions.volume_change" in warning.metadata["failing_rules"].value
