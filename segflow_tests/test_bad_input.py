"""The bad-input catalogue: every kind of bad input, fed through the real assets, ends either in
quarantine with a rule and a reason, or in a failed run whose error names the file, column, row
(where one applies) and rule. Nothing is dropped silently."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from segflow.config import CleaningSettings
from segflow.config_sources import SourceSettings
from segflow.lib.contracts.spec import load_contract
from segflow.lib.contracts.validation import validate_frame
from segflow.lib.profiles import cleaning
from segflow.lib.profiles.cleaning import Cleaned
from segflow.lib.sources.ingest import SourceError, read_source
from segflow_tests.conftest import home_layout

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
    layout = home_layout(home)
    quarantine = pl.read_parquet(layout.table("quarantined_rows", "2024-03"))
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
    accounting = pl.read_parquet(layout.table("row_accounting", "2024-03"))
    tx_counts = accounting.filter(pl.col("source") == "transactions").row(0, named=True)
    assert tx_counts["duplicates_dropped"] == 1  # the exact duplicate row
    assert tx_counts["quarantined_rows"] == len(ROW_CASES)
    assert tx_counts["accepted_rows"] == len(good) + 1  # padded, mixed-case row is normalised and kept
    profiles = pl.read_parquet(layout.table("customer_profiles", "2024-03"))
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
    assert not home_layout(home).table("customer_profiles", "2024-03").exists()
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


# ---------------------------------------------------------------------------------------------
# The lib-level catalogue: each kind read by the real reader (and, for rows, judged by the real
# rules) without a Dagster run, so a kind costs milliseconds. Outcomes are exact: the rule and
# the words of the reason, or the error's file, line and cause.

START, END = datetime(2024, 3, 1), datetime(2024, 4, 1)
GOOD_LINES = [GOOD.format(n=n, d=n) for n in range(1, 6)]
CSV = SourceSettings(format="csv")


def _read_tx(path: Path, settings: SourceSettings = CSV) -> pl.DataFrame:
    return read_source("transactions", settings, str(path)).frame


def _judge(frame: pl.DataFrame) -> Cleaned:
    rules = cleaning.transaction_rules(START, END, CleaningSettings(), None, frame.columns)
    return cleaning.apply_rules(
        cleaning.normalise_codes(frame, "transactions"), rules, "transactions", "2024-03"
    )


def _tx_file(tmp_path: Path, *lines: str) -> Path:
    return _write(tmp_path / "tx.csv", "\n".join([HEADER, *GOOD_LINES, *lines]) + "\n")


# (line added after five good ones, rule id, fragments of the reason)
LIB_ROW_CASES = {
    "quantity inf": ("I40,C1,2024-03-02 10:00:00,P1,toys,inf,3.5,web", "unparseable_value", ["'quantity'", "Int64"]),
    "quantity 1e30": ("I41,C1,2024-03-02 10:00:00,P1,toys,1e30,3.5,web", "unparseable_value", ["'quantity'"]),
    "quantity past Int64": ("I42,C1,2024-03-02 10:00:00,P1,toys,9223372036854775808,3.5,web", "unparseable_value",
                            ["'quantity'"]),
    "fractional quantity in text": ("I43,C1,2024-03-02 10:00:00,P1,toys,2.5,3.5,web", "unparseable_value",
                                    ["'quantity'"]),
    "failed value masked": ("I44,C1,2024-03-02 10:00:00,P1,toys,ann@example.com,3.5,web", "unparseable_value",
                            ["'quantity'", "length 15", "value masked"]),
    "NUL byte in a field": ("I45,C1,2024-03-02 10:00:00,P1,to\x00ys,2,3.5,web", "unparseable_value",
                            ["'category'", "NUL byte"]),
    "overlong field": ("I46,C1,2024-03-02 10:00:00,P1," + "x" * 100_001 + ",2,3.5,web", "unparseable_value",
                       ["'category'", "length 100001", "limit of 100,000"]),
    "leap second at the month's end": ("I47,C1,2024-03-31 23:59:60,P1,toys,2,3.5,web", "unparseable_value",
                                       ["'invoiced_at'", "leap second"]),
    "impossible calendar date": ("I48,C1,2024-02-30 10:00:00,P1,toys,2,3.5,web", "unparseable_value",
                                 ["'invoiced_at'"]),
    "decimal comma without decimal_comma": ("I49,C1,2024-03-02 10:00:00,P1,toys,2,\"3,5\",web", "unparseable_value",
                                            ["'unit_price'", "Float64"]),
    "price overflowing to inf": ("I50,C1,2024-03-02 10:00:00,P1,toys,2,1e400,web", "missing_price", ["not finite"]),
    "empty quantity": ("I51,C1,2024-03-02 10:00:00,P1,toys,,3.5,web", "missing_quantity", ["quantity is missing"]),
    "zero quantity": ("I52,C1,2024-03-02 10:00:00,P1,toys,0,3.5,web", "zero_quantity", ["quantity is zero"]),
    "price outlier": ("I53,C1,2024-03-02 10:00:00,P1,toys,1,60000,web", "price_outlier", ["above 50000"]),
    "positive cancellation": ("C54,C1,2024-03-02 10:00:00,P1,toys,2,3.5,web", "positive_quantity_cancellation",
                              ["cancellation"]),
    "accounting adjustment": ("A55,C1,2024-03-02 10:00:00,P1,toys,1,3.5,web", "adjustment_invoice", ["adjustment"]),
    "missing invoice id": (",C1,2024-03-02 10:00:00,P1,toys,1,3.5,web", "missing_invoice_id", ["invoice id"]),
    "short row": ("I57,C1,2024-03-02 10:00:00,P1,toys,2", "missing_price", ["unit price is missing"]),
    "missing timestamp": ("I58,C1,,P1,toys,2,3.5,web", "missing_timestamp", ["timestamp is missing"]),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(LIB_ROW_CASES))
def test_lib_row_kind_is_quarantined_alone_with_its_reason(tmp_path: Path, kind: str) -> None:
    line, rule, fragments = LIB_ROW_CASES[kind]
    path = _tx_file(tmp_path, line)
    result = _judge(_read_tx(path))
    assert result.accepted.height == len(GOOD_LINES), kind  # the month survives the bad cell
    assert result.quarantined.height == 1, kind
    row = result.quarantined.row(0, named=True)
    assert row["rule_id"] == rule and row["row_number"] == len(GOOD_LINES) and row["source_file"] == str(path)
    for fragment in fragments:
        assert fragment in row["reason"], (kind, row["reason"])
    assert "ann@example.com" not in row["reason"]


# (line, column, value it must be read as): valid input that must not be quarantined
LIB_ACCEPTED = {
    "ISO 8601 with Z": ("I60,C1,2024-03-02T10:00:00Z,P1,toys,2,3.5,web", "invoiced_at", datetime(2024, 3, 2, 10)),
    "ISO 8601 with an offset": ("I61,C1,2024-03-02T10:00:00+02:00,P1,toys,2,3.5,web", "invoiced_at",
                                datetime(2024, 3, 2, 8)),
    "ISO 8601 with fraction and Z": ("I62,C1,2024-03-02T10:00:00.250Z,P1,toys,2,3.5,web", "invoiced_at",
                                     datetime(2024, 3, 2, 10, 0, 0, 250000)),
    "whole number written 3.0": ("I63,C1,2024-03-02 10:00:00,P1,toys,3.0,3.5,web", "quantity", 3),
    "largest Int64": ("I64,C1,2024-03-02 10:00:00,P1,toys,9223372036854775807,3.5,web", "quantity", 2**63 - 1),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(LIB_ACCEPTED))
def test_lib_valid_variants_are_read_exactly(tmp_path: Path, kind: str) -> None:
    line, column, expected = LIB_ACCEPTED[kind]
    frame = _read_tx(_tx_file(tmp_path, line))
    assert frame["_parse_error"].null_count() == frame.height, kind
    assert frame[column][-1] == expected, kind


def _parquet(tmp_path: Path, **columns) -> Path:
    base = {"invoice_id": [f"I{i}" for i in range(6)], "customer_id": ["C1"] * 6,
            "invoiced_at": [datetime(2024, 3, 2, 10)] * 6, "quantity": [2] * 6, "unit_price": [3.5] * 6}  # fmt: skip
    path = tmp_path / "tx.parquet"
    pl.DataFrame({**base, **columns}).write_parquet(path)
    return path


PARQUET = SourceSettings(format="parquet")
EPOCH = 1709373600  # 2024-03-02 10:00:00 UTC, in seconds


# (columns replacing the base file's, the 0-based rows with a _parse_error, fragments of it)
PARQUET_ROW_CASES = {
    "float quantity 2.7, not truncated": ({"quantity": [2.0, 2.7, 3.0, 1.0, 2.0, 5.0]}, [1],
                                          ["'quantity'", "Float64", "never truncated"]),
    "float quantity inf": ({"quantity": [2.0, float("inf"), 3.0, 1.0, 2.0, 5.0]}, [1], ["'quantity'"]),
    "fractional float customer id": ({"customer_id": [1.0, 1.5, 1.0, 1.0, 1.0, 1.0]}, [1], ["'customer_id'"]),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(PARQUET_ROW_CASES))
def test_lib_parquet_lossy_value_is_a_row_error(tmp_path: Path, kind: str) -> None:
    columns, rows, fragments = PARQUET_ROW_CASES[kind]
    frame = _read_tx(_parquet(tmp_path, **columns), PARQUET)
    errors = frame.with_row_index().filter(pl.col("_parse_error").is_not_null())
    assert errors["index"].to_list() == rows, kind
    for fragment in fragments:
        assert fragment in errors["_parse_error"][0], (kind, errors["_parse_error"][0])


def test_lib_parquet_float_ids_are_their_digits_not_orphans(tmp_path: Path) -> None:
    frame = _read_tx(_parquet(tmp_path, customer_id=[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]), PARQUET)
    assert frame["customer_id"].to_list() == ["1", "2", "3", "1", "2", "3"]  # not "1.0": no 100% orphans
    assert frame["_parse_error"].null_count() == 6


def test_lib_parquet_epoch_seconds_need_epoch_unit(tmp_path: Path) -> None:
    path = _parquet(tmp_path, invoiced_at=[EPOCH + i for i in range(6)])
    with pytest.raises(SourceError) as err:  # read as microseconds, every row fell outside the month
        _read_tx(path, PARQUET)
    message = str(err.value)
    assert str(path) in message and "column 'invoiced_at'" in message and "6 of 6" in message
    assert "epoch_unit" in message and "at row 0" in message
    frame = _read_tx(path, SourceSettings(format="parquet", epoch_unit="s"))
    assert frame["invoiced_at"][0] == datetime(2024, 3, 2, 10) and frame["_parse_error"].null_count() == 6


def test_lib_parquet_boolean_quantity_is_an_error_not_ones(tmp_path: Path) -> None:
    path = _parquet(tmp_path, quantity=[True, False, True, True, True, True])
    with pytest.raises(SourceError, match=r"column 'quantity': 6 of 6 values cannot be cast to Int64"):
        _read_tx(path, PARQUET)


def _symlink_loop(tmp_path: Path) -> Path:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    return loop


def _dangling(tmp_path: Path) -> Path:
    link = tmp_path / "gone.csv"
    link.symlink_to(tmp_path / "never_written.csv")
    return link


def _directory(tmp_path: Path) -> Path:
    folder = tmp_path / "2024-03.csv"
    _write(folder / "part-1.csv", HEADER + "\n" + GOOD_LINES[0] + "\n")
    return folder


def _bytes(content: bytes, name: str = "tx.csv"):
    return lambda tmp_path: _write(tmp_path / name, content)


LATIN1_DEEP = (
    "\n".join([HEADER, *GOOD_LINES, "I9,C1,2024-03-02 10:00:00,P1,t\xe9ys,2,3.5,web"]) + "\n"
).encode("latin-1")
WIDE = "\n".join([HEADER, GOOD_LINES[0], GOOD_LINES[1] + ",extra", GOOD_LINES[2]]) + "\n"

# (how the file is made, settings, fragments of the error: file, line and cause)
FILE_CASES = {
    "missing file": (lambda p: p / "absent.csv", CSV, ["absent.csv", "no such file for source 'transactions'"]),
    "symlink loop": (_symlink_loop, CSV, ["loop.csv", "symbolic link loop"]),
    "dangling symlink": (_dangling, CSV, ["gone.csv", "dangling symbolic link", "never_written.csv"]),
    "directory given as the file": (_directory, CSV, ["2024-03.csv", "is a directory"]),
    "CR-only line endings": (_bytes(("\r".join([HEADER, *GOOD_LINES]) + "\r").encode()), CSV,
                             ["tx.csv", "carriage return"]),
    "UTF-16 text": (_bytes("\n".join([HEADER, *GOOD_LINES]).encode("utf-16")), CSV, ["tx.csv", "UTF-16", "encoding"]),
    "Latin-1 byte deep in the file": (_bytes(LATIN1_DEEP), CSV, ["tx.csv", "line 7", "0xe9", "encoding: latin-1"]),
    "too-long row": (_bytes(WIDE.encode()), CSV, ["tx.csv", "line 3 has 9 fields, the header 8"]),
    "duplicated header": (_bytes((HEADER + ",quantity\n" + GOOD_LINES[0] + ",7\n").encode()), CSV,
                          ["tx.csv", "column 'quantity' more than once"]),
    "whitespace row with an extra field": (
        _bytes(b"invoice_id customer_id invoiced_at quantity unit_price\nI1 C1 2024-03-02 2 3.5\nI2 C1 2024-03-02 2 3.5 x\n",
               "tx.txt"), SourceSettings(format="whitespace"), ["tx.txt", "line 3 has more fields than the header's 5"]),
    "fixed-width line wider than its layout": (
        _bytes(b"I1  C1  2024-03-02  2  3.5\nI2  C1  2024-03-02  2  3.5  spill\n", "tx.txt"),
        SourceSettings(format="fixed_width", has_header=False, columns={"invoice_id": "inv", "customer_id": "cust",
                       "invoiced_at": "when", "quantity": "qty", "unit_price": "price"},
                       fixed_columns={"inv": [0, 4], "cust": [4, 8], "when": [8, 20], "qty": [20, 23], "price": [23, 26]}),
        ["tx.txt", "line 2 has text beyond the last column's end (26)"]),
    "table function in a mapping": (_bytes((HEADER + "\n" + GOOD_LINES[0] + "\n").encode()),
                                    SourceSettings(format="csv", columns={"category": "read_csv('/etc/hostname')"}),
                                    ["tx.csv", "'category'", "read_csv(): not an allowed scalar function"]),
    "subquery in a mapping": (_bytes((HEADER + "\n" + GOOD_LINES[0] + "\n").encode()),
                              SourceSettings(format="csv", columns={"category": "(SELECT column_1 FROM read_csv('/etc/hostname'))"}),
                              ["tx.csv", "only column expressions are allowed"]),
    "two statements in a mapping": (_bytes((HEADER + "\n" + GOOD_LINES[0] + "\n").encode()),
                                    SourceSettings(format="csv", columns={"category": "category; DROP TABLE x"}),
                                    ["tx.csv", "one expression only"]),
    "text arithmetic inside a CASE": (_bytes(b"inv,cust,when,amount,qty\nI1,C1,2024-03-02,7.0,2\n"),
                                      SourceSettings(format="csv", columns={"invoice_id": "inv", "customer_id": "cust",
                                                     "invoiced_at": "when", "quantity": "qty",
                                                     "unit_price": "CASE WHEN qty = '0' THEN 0 ELSE amount / qty END"}),
                                      ["tx.csv", "'unit_price'", "text columns ['amount', 'qty']", "write a CAST"]),
    "wrong date format named as set": (
        _bytes(("invoice_id,customer_id,invoiced_at,quantity,unit_price\n"
                + "".join(f"I{i},C1,2024-03-0{i + 1},2,3.5\n" for i in range(6))).encode()),
        SourceSettings(format="csv", date_format="%d.%m.%Y"),
        ["tx.csv", "column 'invoiced_at': 6 of 6", "with format '%d.%m.%Y'", "at row 0"]),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(FILE_CASES))
def test_lib_file_kind_fails_naming_file_and_cause(tmp_path: Path, kind: str) -> None:
    make, settings, fragments = FILE_CASES[kind]
    path = make(tmp_path)
    with pytest.raises(SourceError) as err:
        _read_tx(path, settings)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (kind, message)
    assert "Expr" not in message and "col(" not in message, (kind, message)  # no polars expression dumped


@pytest.mark.parametrize("expression", ["(SELECT column_1 FROM read_csv('{canary}'))", "read_csv('{canary}')",
                                        "category || (SELECT column_1 FROM read_csv('{canary}'))"])  # fmt: skip
def test_lib_mapping_never_reads_or_echoes_another_file(tmp_path: Path, expression: str) -> None:
    canary = _write(tmp_path / "secret.csv", "canary-7f3a\n")
    path = _write(tmp_path / "tx.csv", HEADER + "\n" + GOOD_LINES[0] + "\n")
    settings = SourceSettings(format="csv", columns={"category": expression.format(canary=canary)})
    with pytest.raises(SourceError) as err:
        _read_tx(path, settings)
    assert "canary-7f3a" not in str(err.value) and "'category'" in str(err.value)


def test_lib_date_format_is_honoured_on_timestamp_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "tx.csv",
        "invoice_id,customer_id,invoiced_at,quantity,unit_price\nI1,C1,02.03.2024,2,3.5\n",
    )
    frame = _read_tx(path, SourceSettings(format="csv", date_format="%d.%m.%Y"))
    assert frame["invoiced_at"].to_list() == [datetime(2024, 3, 2)] and frame["_parse_error"][0] is None


def test_lib_amount_over_quantity_on_text_reads_numbers(tmp_path: Path) -> None:
    # The README's own mapping on a CSV: text columns in plain arithmetic are read as numbers, and a
    # cell that is no number quarantines its row (no unit price), not the month.
    path = _write(
        tmp_path / "tx.csv", "inv,cust,when,amount,qty\nI1,C1,2024-03-02,7.0,2\nI2,C1,2024-03-02,x,2\n"
    )
    mapping = {"invoice_id": "inv", "customer_id": "cust", "invoiced_at": "when", "quantity": "qty",
               "unit_price": "amount / qty"}  # fmt: skip
    result = _judge(_read_tx(path, SourceSettings(format="csv", columns=mapping)))
    assert result.accepted["unit_price"].to_list() == [3.5]
    assert result.quarantined["rule_id"].to_list() == ["missing_price"]


def test_lib_cast_in_a_mapping_makes_amount_over_quantity_work(tmp_path: Path) -> None:
    path = _write(tmp_path / "tx.csv", "inv,cust,when,amount,qty\nI1,C1,2024-03-02,7.0,2\n")
    mapping = {"invoice_id": "inv", "customer_id": "cust", "invoiced_at": "when", "quantity": "qty",
               "unit_price": "CAST(amount AS DOUBLE) / CAST(qty AS DOUBLE)"}  # fmt: skip
    frame = _read_tx(path, SourceSettings(format="csv", columns=mapping))
    assert frame["unit_price"].to_list() == [3.5]


def test_lib_constant_unmapped_column_is_named_without_its_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "tx.csv",
        "\n".join([HEADER + ",contact", *(g + ",canary@example.com" for g in GOOD_LINES)]),
    )
    read = read_source("transactions", CSV, str(path))
    assert read.unmapped == {"contact": {"constant": True}}
    assert "canary" not in repr(read.unmapped)


def test_lib_nearly_all_quarantined_month_fails_its_share_rule(tmp_path: Path) -> None:
    misfiled = [GOOD.format(n=n, d=1 + n % 9).replace("2024-03", "2024-02") for n in range(1, 21)]
    path = _write(tmp_path / "tx.csv", "\n".join([HEADER, GOOD_LINES[0], *misfiled]) + "\n")
    result = _judge(_read_tx(path))
    frame = pl.DataFrame([{"period": "2024-03", "source": "transactions", **result.accounting()}])
    frame = frame.with_columns(cleaning.quarantined_share())
    assert frame["quarantined_share"][0] == pytest.approx(20 / 21)
    report = validate_frame(frame, load_contract("row_accounting"), "error")
    assert [r.rule_id for r in report.results if not r.success] == ["row_accounting.quarantined_share.max"]
    tiny = pl.DataFrame([{"raw_rows": 3, "quarantined_rows": 3}]).with_columns(cleaning.quarantined_share())
    assert tiny["quarantined_share"][0] is None  # too few rows to judge a month by


# One CRM month with one bad optional attribute per customer (issue 17.1): (customer, column, value,
# whether imputation fills it). Every customer is kept, the value is listed in recoded_values, and
# their line items are not orphaned.
CRM_ATTRIBUTE_CASES = {
    "household size '5+'": ("K1", "household_size", "5+", True),
    "income 'n/a'": ("K2", "income", "n/a", True),
    "birth year written as a band": ("K3", "birth_year", "25-34", True),
    "signup date not a date": ("K4", "signup_date", "yesterday", False),
    "opt-in neither true nor false": ("K5", "marketing_opt_in", "maybe", False),
}


@pytest.fixture(scope="module")
def crm_attribute_build(tmp_path_factory: pytest.TempPathFactory):
    from segflow.lib.profiles.profiles import RawSources, build_profiles

    root = tmp_path_factory.mktemp("crm_attributes")
    rows = [CRM_ROW.format(cid=f"G{i}").replace("1980", str(1970 + i)).replace("50000", str(40000 + 1000 * i))
            for i in range(8)]  # fmt: skip
    columns = CRM_HEADER.split(",")
    for cid, column, value, _ in CRM_ATTRIBUTE_CASES.values():
        cells = CRM_ROW.format(cid=cid).split(",")
        cells[columns.index(column)] = value
        rows.append(",".join(cells))
    crm = _write(root / "crm.csv", "\n".join([CRM_HEADER, *rows]) + "\n")
    customers = read_source("customers", CSV, str(crm)).frame
    ids = [r.split(",")[0] for r in rows]
    tx = _write(
        root / "tx.csv",
        "\n".join([HEADER, *(GOOD.format(n=i, d=1).replace("C1", c) for i, c in enumerate(ids))]),
    )
    transactions = _read_tx(tx)
    raw = RawSources(
        customers=customers, transactions=transactions, engagement=None, surveys=None, campaigns=None
    )
    return build_profiles(raw, "2024-03", START, END, CleaningSettings(), seed=7)


@pytest.mark.parametrize("kind", list(CRM_ATTRIBUTE_CASES))
def test_lib_bad_optional_attribute_keeps_the_customer(crm_attribute_build, kind: str) -> None:
    cid, column, value, imputed = CRM_ATTRIBUTE_CASES[kind]
    build = crm_attribute_build
    assert build.quarantined.height == 0, build.quarantined  # no customer, and so no line item, dropped
    profile = build.profiles.filter(pl.col("customer_id") == cid).row(0, named=True)
    assert profile["n_invoices"] == 1
    logged = build.recoded_values.filter(pl.col("column") == column).row(0, named=True)
    assert (logged["source"], logged["rule_id"], logged["value"], logged["rows"]) == (
        "customers", "unparseable_value", value, 1)  # fmt: skip
    assert "kept" in logged["reason"] and build.recoded[column] == 1
    if imputed:
        assert profile[f"{column}_imputed"] and profile[column] is not None
        assert "imputed" in logged["action"]
    else:
        assert profile.get(column) is None and logged["action"] == "set to null (unknown)"


def test_lib_naive_band_mapping_keeps_every_customer_and_says_why(tmp_path: Path) -> None:
    from segflow.lib.profiles.profiles import RawSources, build_profiles

    bands = ["25-34", "35-44", "45-54"]
    rows = [CRM_ROW.format(cid=f"B{i}").replace("1980", bands[i % 3]) for i in range(9)]
    crm = _write(tmp_path / "crm.csv", "\n".join([CRM_HEADER, *rows]) + "\n")
    customers = read_source("customers", CSV, str(crm)).frame  # no whole-column error: optional
    raw = RawSources(customers=customers, transactions=None, engagement=None, surveys=None, campaigns=None)
    build = build_profiles(raw, "2024-03", START, END, CleaningSettings(), seed=7)
    assert build.profiles.height == 9 and build.quarantined.height == 0
    logged = build.recoded_values.filter(pl.col("column") == "birth_year")
    assert sorted(zip(logged["value"], logged["rows"], strict=True)) == [(b, 3) for b in bands]
    # No readable birth year at all: nothing to impute from, so left unknown (and said so).
    assert set(logged["action"]) == {"set to null (unknown)"}
    assert build.profiles["birth_year"].null_count() == 9


def test_lib_nul_in_a_crm_attribute_is_corruption_and_quarantined(tmp_path: Path) -> None:
    rows = [CRM_ROW.format(cid="N1"), CRM_ROW.format(cid="N2").replace("Oslo", "Os\x00lo")]
    crm = _write(tmp_path / "crm.csv", "\n".join([CRM_HEADER, *rows]) + "\n")
    frame = read_source("customers", CSV, str(crm)).frame
    assert frame["_parse_error"].to_list() == [
        None,
        "column 'city': holds a NUL byte (binary data, or a wrong encoding)",
    ]


# Through the real assets: what only a run shows (the step that fails, the event log, the report's input).


def test_missing_crm_file_fails_naming_the_file(home: Path, memory_instance) -> None:
    _landing(home, "2024-03", GOOD_LINES)
    (home / "landing" / "crm" / "2024-03.csv").unlink()
    result = _ingest(memory_instance, "2024-03")
    assert not result.success
    message = _error(result)
    assert "crm/2024-03.csv: no such file for source 'customers'" in message, message
    assert "row_count" not in message  # the cause, not its symptom


def test_crm_run_keeps_bad_attribute_and_never_shows_a_constant_value(home: Path, memory_instance) -> None:
    from types import SimpleNamespace

    from segflow.config import load_settings
    from segflow.defs.audit.report import month_ignored_columns

    canary = "canary.7f3a@example.com"
    _landing(home, "2024-03", GOOD_LINES)
    crm = home / "landing" / "crm" / "2024-03.csv"
    lines = crm.read_text().splitlines()
    lines[2] = lines[2].replace(",master,2,", ",master,5+,")  # C2's household size: a band
    crm.write_text("\n".join([lines[0] + ",contact", *(line + f",{canary}" for line in lines[1:])]) + "\n")
    result = _ingest(memory_instance, "2024-03")
    assert result.success, _error(result)
    # Issue 17.1 through the assets: C2 kept, the value listed, the column named in the log.
    layout = home_layout(home)
    assert pl.read_parquet(layout.table("customer_profiles", "2024-03"))["customer_id"].to_list() == [
        "C1",
        "C2",
    ]
    recoded = pl.read_parquet(layout.table("recoded_values", "2024-03"))
    assert recoded.select("column", "rule_id", "value", "rows").rows() == [
        ("household_size", "unparseable_value", "5+", 1)
    ]
    raw = result.asset_materializations_for_node("raw_customers")[0].metadata
    assert raw["unreadable_optional_values"].value == {"household_size": 1}
    logged = [str(record) for record in memory_instance.all_logs(result.run_id)]
    assert logged and not any(canary in record for record in logged)
    assert any("optional column 'household_size' cannot be read" in record for record in logged)
    ignored = month_ignored_columns(SimpleNamespace(instance=memory_instance), load_settings(), "2024-03")
    assert {"source": "customers", "column": "contact",
            "why": "constant (one value in every row): carries no information, not mapped"} in ignored  # fmt: skip
    assert canary not in repr(ignored)


def test_month_nearly_all_quarantined_fails_naming_the_share_rule(home: Path, memory_instance) -> None:
    misfiled = [GOOD.format(n=n, d=1 + n % 9).replace("2024-03", "2024-02") for n in range(1, 21)]
    _landing(home, "2024-03", [GOOD.format(n=21, d=2), *misfiled])
    result = _ingest(memory_instance, "2024-03")
    assert not result.success
    assert "row_accounting.quarantined_share" in _error(result)
    assert not home_layout(home).table("customer_profiles", "2024-03").exists()


def test_lib_unreadable_attribute_that_may_be_personal_is_masked(tmp_path: Path) -> None:
    rows = [CRM_ROW.format(cid="M1").replace("1980", "ann@example.com"), CRM_ROW.format(cid="M2")]
    crm = _write(tmp_path / "crm.csv", "\n".join([CRM_HEADER, *rows]) + "\n")
    frame = read_source("customers", CSV, str(crm)).frame
    assert frame["_recoded"].to_list() == [[{"column": "birth_year", "value": "(masked, length 15)"}], None]
    assert frame["_parse_error"].null_count() == 2


def test_lib_crm_export_without_records_fails_its_row_count(tmp_path: Path) -> None:
    # A header-only CRM file used to pass raw_customers' checks, and every customer became an orphan.
    frame = read_source("customers", CSV, str(_write(tmp_path / "crm.csv", CRM_HEADER + "\n"))).frame
    report = validate_frame(frame, load_contract("raw_customers"), "error")
    assert [r.rule_id for r in report.results if not r.success] == ["raw_customers.row_count"]
    one = _write(tmp_path / "one.csv", CRM_HEADER + "\n" + CRM_ROW.format(cid="C1") + "\n")
    report = validate_frame(
        read_source("customers", CSV, str(one)).frame, load_contract("raw_customers"), "error"
    )
    assert all(r.success for r in report.results)


def test_lib_bad_snapshot_attribute_keeps_the_customer(tmp_path: Path) -> None:
    from segflow.lib.profiles.profiles import RawSources, build_profiles

    header = "customer_id,signup_date,recency_days,spend,purchases,marital_status,children"
    rows = [f"S{i},2023-01-01,{10 + i},{100 + i}.0,{1 + i},married,{i % 3}" for i in range(6)] + [
        "S9,2023-01-01,5,50.0,2,single,3+"
    ]
    path = _write(tmp_path / "snapshot.csv", "\n".join([header, *rows]) + "\n")
    snapshot = read_source("snapshot", CSV, str(path)).frame
    raw = RawSources(customers=None, transactions=None, engagement=None, surveys=None, campaigns=None,
                     snapshot=snapshot)  # fmt: skip
    build = build_profiles(raw, "2024-03", START, END, CleaningSettings(), seed=7)
    assert build.profiles.height == 7 and build.quarantined.height == 0
    logged = build.recoded_values.row(0, named=True)
    assert (logged["source"], logged["column"], logged["value"], logged["action"]) == (
        "snapshot", "children", "3+", "set to null (unknown)")  # fmt: skip
    assert build.profiles.filter(pl.col("customer_id") == "S9")["children"][0] is None


def test_lib_epoch_unit_must_be_a_unit(tmp_path: Path) -> None:
    from segflow.config import ConfigError, load_settings

    config = _write(tmp_path / "bad.yaml", "sources:\n  transactions: {location: x.parquet, epoch_unit: h}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: sources.transactions: epoch_unit: 'h' is not one of"):
        load_settings(config)


def test_lib_leap_second_is_refused_with_a_datetime_format_too(tmp_path: Path) -> None:
    body = "invoice_id,customer_id,invoiced_at,quantity,unit_price\nI1,C1,31/03/2024 23:59:60,2,3.5\n"
    frame = _read_tx(
        _write(tmp_path / "tx.csv", body), SourceSettings(format="csv", datetime_format="%d/%m/%Y %H:%M:%S")
    )
    assert frame["invoiced_at"][0] is None and "leap second" in frame["_parse_error"][0]
