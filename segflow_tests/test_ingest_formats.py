"""Source formats and options, derivations of what a source lacks, and the whole-column cast error."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from segflow.config import ConfigError, load_settings
from segflow.config_sources import SourceSettings
from segflow.lib.sources.ingest import SourceError, expects_data, period_filter_for, read_source

MAPPING = {
    "invoice_id": "Inv",
    "customer_id": "Cust",
    "invoiced_at": "When",
    "quantity": "Qty",
    "unit_price": "Price",
}


def _tx(**options) -> SourceSettings:
    return SourceSettings(location="x", columns=options.pop("columns", MAPPING), **options)


def _rows(frame: pl.DataFrame) -> list[tuple]:
    return frame.select("invoice_id", "customer_id", "invoiced_at", "quantity", "unit_price").rows()


EXPECTED = [("1", "7", datetime(2024, 3, 1, 10), 2, 1234.5), ("2", "8", datetime(2024, 3, 2, 11), 3, 2.0)]


def test_latin1_semicolon_decimal_comma_day_first_with_banner(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    text = (
        "Export from Kasse\u00e9 2024\n"
        "Inv;Cust;When;Qty;Price;Note\n"
        "1;7;01/03/2024 10:00;2;1.234,5;caf\u00e9\n"
        "2;8;02/03/2024 11:00;3;2,0;'x;y'\n"
    )
    path.write_bytes(text.encode("latin-1"))
    settings = _tx(
        format="csv",
        csv_separator=";",
        encoding="latin-1",
        decimal_comma=True,
        skip_rows=1,
        quote_char="'",
        datetime_format="%d/%m/%Y %H:%M",
    )
    frame = read_source("transactions", settings, str(path)).frame
    assert _rows(frame) == EXPECTED
    assert frame["_parse_error"].null_count() == 2


def test_tsv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "tx.tsv"
    path.write_text("1\t7\t2024-03-01 10:00:00\t2\t1234.5\n2\t8\t2024-03-02 11:00:00\t3\t2\n")
    columns = {
        "invoice_id": "column_1",
        "customer_id": "column_2",
        "invoiced_at": "column_3",
        "quantity": "column_4",
        "unit_price": "column_5",
    }
    frame = read_source("transactions", _tx(format="tsv", has_header=False, columns=columns), str(path)).frame
    assert _rows(frame) == EXPECTED


def _xlsx(path: Path, sheets: dict[str, list[list]]) -> None:
    """A minimal .xlsx (Office Open XML, inline strings), without a spreadsheet-writing library."""
    import zipfile

    def cell(ref: str, value) -> str:
        if isinstance(value, str):
            return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'
        return f'<c r="{ref}"><v>{value}</v></c>'

    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as z:
        names = list(sheets)
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
            'openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/'
            'xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" ContentType="application/vnd.'
                'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                for i in range(len(names))
            )
            + "</Types>",
        )
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>",
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook {ns} xmlns:r="{rel}"><sheets>'
            + "".join(f'<sheet name="{n}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i, n in enumerate(names))
            + "</sheets></workbook>",
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/'
            '2006/relationships">'
            + "".join(
                f'<Relationship Id="rId{i + 1}" Type="{rel}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
                for i in range(len(names))
            )
            + "</Relationships>",
        )
        for i, rows in enumerate(sheets.values()):
            body = "".join(
                f'<row r="{r + 1}">'
                + "".join(cell(f"{chr(65 + c)}{r + 1}", v) for c, v in enumerate(row))
                + "</row>"
                for r, row in enumerate(rows)
            )
            z.writestr(
                f"xl/worksheets/sheet{i + 1}.xml",
                f"<worksheet {ns}><sheetData>{body}</sheetData></worksheet>",
            )


def test_excel_sheets_stacked_with_their_own_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "tx.xlsx"
    header = ["Inv", "Cust", "When", "Qty", "Price"]
    _xlsx(
        path,
        {
            "2024a": [header, ["1", "7", "2024-03-01 10:00:00", 2, 1234.5]],
            "2024b": [header, ["2", "8", "2024-03-02 11:00:00", 3, 2.0]],
        },
    )
    frame = read_source("transactions", _tx(format="excel", sheets="*"), str(path)).frame
    assert _rows(frame) == EXPECTED
    assert frame["_source_file"].to_list() == [f"{path}#2024a", f"{path}#2024b"]
    assert frame["_source_row"].to_list() == [0, 0]
    only_b = read_source("transactions", _tx(format="excel", sheets=["2024b"]), str(path)).frame
    assert _rows(only_b) == EXPECTED[1:]


def test_fixed_width_and_whitespace_aligned(tmp_path: Path) -> None:
    fixed = tmp_path / "tx.txt"
    fixed.write_text(
        "INV CUS WHEN                 QTY PRICE\n"
        "1   7   2024-03-01 10:00:00    2 1234.5\n"
        "2   8   2024-03-02 11:00:00    3    2.0\n"
    )
    spans = {"Inv": [0, 4], "Cust": [4, 8], "When": [8, 27], "Qty": [27, 32], "Price": [32, 40]}
    frame = read_source("transactions", _tx(format="fixed_width", fixed_columns=spans), str(fixed)).frame
    assert _rows(frame) == EXPECTED
    aligned = tmp_path / "tx.dat"
    aligned.write_text(
        "Inv  Cust   Day         Qty   Price\n"
        "1    7      2024-03-01  2     1234.5\n\n"
        "2    8      2024-03-02  3     2\n"
    )
    frame = read_source(
        "transactions", _tx(format="whitespace", columns=MAPPING | {"invoiced_at": "Day"}), str(aligned)
    ).frame
    assert frame["invoiced_at"].to_list() == [datetime(2024, 3, 1), datetime(2024, 3, 2)]
    assert frame["unit_price"].to_list() == [1234.5, 2.0]


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tx.csv"
    path.write_text(text)
    return str(path)


def test_invoice_id_derived_per_customer_per_day(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "Cust,When,Qty,Price\nC7,2024-03-01 10:00:00,1,1\nC7,2024-03-01 18:00:00,1,1\n"
        "C7,2024-03-02 09:00:00,1,1\nA8,2024-03-01 10:00:00,1,1\n",
    )
    columns = {k: v for k, v in MAPPING.items() if k != "invoice_id"}
    read = read_source("transactions", _tx(format="csv", columns=columns), path)
    ids = read.frame["invoice_id"].to_list()
    assert ids[0] == ids[1] != ids[2] and len(set(ids)) == 3
    assert ids[0] == "2024-03-01/C7"  # starts with a date: never a "C" cancellation or an "A" adjustment
    assert read.derived == ("invoice_id",) and read.frame["_is_cancellation"].to_list() == [False] * 4


def test_cancellation_rule_default_and_configured(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "Inv,Cust,When,Qty,Price,Status\nC1,7,2024-03-01,-2,1,ok\n 2,7,2024-03-01,-2,1,storno\n"
        " C3,7,2024-03-01,1,1,ok\n",
    )
    default = read_source("transactions", _tx(format="csv"), path).frame
    assert default["_is_cancellation"].to_list() == [True, False, True]  # the old rule, after trimming
    configured = read_source("transactions", _tx(format="csv", cancellation="Status = 'storno'"), path).frame
    assert configured["_is_cancellation"].to_list() == [False, True, False]
    with pytest.raises(
        SourceError, match=r"source 'transactions', column mapping 'cancellation': cannot evaluate"
    ):
        read_source("transactions", _tx(format="csv", cancellation="Stat = 'x'"), path)


def test_cleaning_and_profiles_use_the_configured_cancellation(tmp_path: Path) -> None:
    from segflow.config import CleaningSettings
    from segflow.lib.profiles.profiles import RawSources, build_profiles

    path = _csv(
        tmp_path, "Inv,Cust,When,Qty,Price,Status\nI1,7,2024-03-01,2,10,ok\nI2,7,2024-03-02,-1,10,storno\n"
    )
    tx = read_source("transactions", _tx(format="csv", cancellation="Status = 'storno'"), path).frame
    start, end = datetime(2024, 3, 1), datetime(2024, 4, 1)
    build = build_profiles(
        RawSources(None, tx, None, None, None), "2024-03", start, end, CleaningSettings(), 0
    )
    assert build.quarantined.height == 0  # the negative line is a cancellation, not a write-off
    row = build.profiles.row(0, named=True)
    assert (row["n_invoices"], row["n_cancellations"], row["net_revenue"]) == (1, 1, 10.0)


def test_timezone_and_currency(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, "Inv,Cust,When,Qty,Price\n1,7,2024-03-31 03:30:00,1,10\n2,7,2024-01-15 12:00:00,1,2.5\n"
    )
    settings = _tx(format="csv", timezone="Europe/Berlin", currency="SEK", currency_rate=0.1)
    frame = read_source("transactions", settings, path).frame
    # 03:30 CEST (UTC+2, after the switch that night) and 12:00 CET (UTC+1), stored naive UTC
    assert frame["invoiced_at"].to_list() == [datetime(2024, 3, 31, 1, 30), datetime(2024, 1, 15, 11)]
    assert frame["unit_price"].to_list() == [1.0, 0.25]
    zoned = tmp_path / "zoned.parquet"
    pl.DataFrame(
        {"Inv": ["1"], "Cust": ["7"], "When": [datetime(2024, 3, 1, 12)], "Qty": [1], "Price": [1.0]}
    ).with_columns(pl.col("When").dt.replace_time_zone("America/New_York")).write_parquet(zoned)
    frame = read_source("transactions", _tx(format="parquet"), str(zoned)).frame
    assert frame["invoiced_at"].to_list() == [datetime(2024, 3, 1, 17)]


def test_whole_column_failing_to_cast_names_file_column_value_and_row(tmp_path: Path) -> None:
    rows = "".join(f"{i},7,{d:02d}/03/2024 10:00,1,1\n" for i, d in enumerate(range(1, 9)))
    path = _csv(tmp_path, "Inv,Cust,When,Qty,Price\n" + rows)
    with pytest.raises(SourceError) as err:
        read_source("transactions", _tx(format="csv"), path)
    message = str(err.value)
    assert path in message and "column 'invoiced_at'" in message and "8 of 8 values" in message
    assert "'01/03/2024 10:00' at row 0" in message
    ok = read_source("transactions", _tx(format="csv", datetime_format="%d/%m/%Y %H:%M"), path).frame
    assert ok["_parse_error"].null_count() == 8
    # A few dirty values stay row-level: null with a _parse_error, quarantined later.
    dirty = _csv(
        tmp_path,
        "Inv,Cust,When,Qty,Price\n"
        + "".join(f"{i},7,2024-03-01,{'x' if i == 3 else 1},1\n" for i in range(8)),
    )
    frame = read_source("transactions", _tx(format="csv"), dirty).frame
    # The failed value is masked in the reason (it may be personal data); the record keeps it.
    assert frame["_parse_error"].drop_nulls().to_list() == [
        "column 'quantity': cannot cast a value of length 1 to Int64 (value masked)"
    ]


def test_time_column_and_starts(tmp_path: Path) -> None:
    start, end = datetime(2024, 3, 1), datetime(2024, 4, 1)
    split = period_filter_for("customers", "one.csv", start, end, False, time_column="signup_date")
    assert split is not None and split.column == "signup_date" and split.start is None
    assert not expects_data(SourceSettings(starts="2024-04"), "2024-03")
    assert expects_data(SourceSettings(starts="2024-04"), "2024-04") and expects_data(
        SourceSettings(), "1999-01"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{format: xml}", r"format: 'xml' is not one of"),
        ("{columns: {invoice: Inv}}", r"columns: unknown canonical name\(s\) \['invoice'\]"),
        ("{time_column: product_id}", r"time_column: 'product_id' is not one of this source's time columns"),
        ("{starts: 2024-13}", r"starts: '2024-13' is not a month"),
        ("{format: sql, uri: 'sqlite:///x.db'}", r"format sql needs `query`"),
        (
            "{format: sql, uri: 'mysql://h/db', query: 'SELECT 1'}",
            r"uri: 'mysql' is not a supported database",
        ),
        ("{format: fixed_width}", r"format fixed_width needs `fixed_columns`"),
        ("{encoding: latin-9x}", r"encoding: 'latin-9x' is not a known text encoding"),
        ("{timezone: Mars/Olympus}", r"timezone: 'Mars/Olympus' is not an IANA time zone"),
        ("{currency_rate: 0}", r"currency_rate: 0 must be a positive number"),
        ("{sheet: x}", r"unknown key\(s\) \['sheet'\]"),
    ],
)
def test_source_settings_are_checked_on_load(tmp_path: Path, spec: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources:\n  transactions: {spec}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: sources.transactions: .*" + message):
        load_settings(cfg)


def test_sqlite_uri_resolves_against_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources:\n  transactions: {format: sql, location: 'sqlite:///db/shop.db', query: 'SELECT 1',"
        " starts: 2024-03}\n"
    )
    source = load_settings(cfg).sources["transactions"]
    assert source.uri == f"sqlite:///{tmp_path / 'db' / 'shop.db'}" and source.starts == "2024-03"
