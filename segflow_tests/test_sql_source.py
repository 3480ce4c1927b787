"""SQL sources: one bound, parameterised query per partition, against SQLite and a live PostgreSQL.

The PostgreSQL fixture starts a real server from the OS packages (``segflow_tests.pg_server``) and
stops it afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from segflow.config_sources import SourceSettings
from segflow.lib.sources import sql_source
from segflow.lib.sources.ingest import SourceError, period_filter_for, read_source
from segflow_tests.pg_server import postgres_server

EVIL = "1'; DROP TABLE x; --"
MARCH = (datetime(2024, 3, 1), datetime(2024, 4, 1))
QUERY = (
    "SELECT invoice_no, client, sold_at, qty, price FROM sales "
    "WHERE sold_at >= :start AND sold_at < :end ORDER BY invoice_no"
)
COLUMNS = {
    "invoice_id": "invoice_no",
    "customer_id": "client",
    "invoiced_at": "sold_at",
    "quantity": "qty",
    "unit_price": "price",
}
ROWS = [
    ("I1", "K1", "2024-02-29 23:59:59", 1, 9.5),
    ("I2", "K1", "2024-03-01 00:00:00", 2, 3.25),
    ("I3", EVIL, "2024-03-15 12:30:00", 1, 10.0),
    ("I4", "K2", "2024-03-31 23:59:59", 4, 1.0),
    ("I5", "K2", "2024-04-01 00:00:00", 1, 1.0),
]


def _settings(uri: str) -> SourceSettings:
    return SourceSettings(format="sql", uri=uri, query=QUERY, columns=COLUMNS)


def _read(uri: str, window: tuple[datetime, datetime] = MARCH):
    split = period_filter_for("transactions", "", *window, is_first_partition=False)
    return read_source("transactions", _settings(uri), "", split, window=window)


def _assert_march(read) -> None:
    frame = read.frame
    assert frame["invoice_id"].to_list() == ["I2", "I3", "I4"]
    assert frame["customer_id"].to_list() == ["K1", EVIL, "K2"]  # read back as data, never executed
    assert frame["invoiced_at"].to_list() == [
        datetime(2024, 3, 1),
        datetime(2024, 3, 15, 12, 30),
        datetime(2024, 3, 31, 23, 59, 59),
    ]
    assert frame["unit_price"].to_list() == [3.25, 10.0, 1.0]
    assert frame["_parse_error"].null_count() == 3


def test_query_text_never_contains_the_window() -> None:
    start, end = MARCH
    statement = sql_source.postgres_statement(QUERY + " AND note LIKE '5%' AND x::text = :period")
    assert "%(start)s" in statement and "%(end)s" in statement and "%(period)s" in statement
    assert "x::text" in statement and "'5%%'" in statement
    assert "2024" not in statement and sql_source.parameters(start, end)["period"] == "2024-03"
    assert sql_source.redact("postgresql://u:s3cret@h:5/db") == "postgresql://u:***@h:5/db"


def test_sqlite_source_with_bound_window(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE sales (invoice_no TEXT, client TEXT, sold_at TEXT, qty INTEGER, price REAL)"
        )
        conn.execute("CREATE TABLE x (keep INTEGER)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", ROWS)
    read = _read(f"sqlite:///{db}")
    _assert_march(read)
    assert read.files == (f"sqlite:///{db}",) and read.frame["_source_file"].unique().to_list() == [
        f"sqlite:///{db}"
    ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM x").fetchone() == (0,)  # the table still exists
    empty = _read(f"sqlite:///{db}", (datetime(2023, 1, 1), datetime(2023, 2, 1)))
    assert empty.frame.height == 0
    with pytest.raises(SourceError, match=r"sqlite:///.*shop.db: source 'transactions': query failed"):
        read_source(
            "transactions",
            SourceSettings(format="sql", uri=f"sqlite:///{db}", query="SELECT * FROM nope"),
            "",
            window=MARCH,
        )


def _in_chunks_of(rows: int, uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The month read a few rows a fetch equals the month read in one fetch, types included."""
    whole = _read(uri).frame
    monkeypatch.setattr(sql_source, "CHUNK_ROWS", rows)
    fetched: list[int] = []
    real = sql_source._frame

    def counting(names, cursor):
        class Counted:
            def fetchmany(self, n):
                got = cursor.fetchmany(n)
                fetched.append(len(got))
                return got

        return real(names, Counted())

    monkeypatch.setattr(sql_source, "_frame", counting)
    chunked = _read(uri).frame
    assert fetched == [rows] * (3 // rows) + ([3 % rows] if 3 % rows else []) + [0]
    assert_frame_equal(chunked, whole, check_exact=True)


def test_sqlite_rows_are_fetched_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first chunk's price is all null: the chunks still concatenate to one REAL column.
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sales (invoice_no TEXT, client TEXT, sold_at TEXT, qty INTEGER, price REAL)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", [ROWS[0], (*ROWS[1][:4], None), *ROWS[2:]])
    _in_chunks_of(1, f"sqlite:///{db}", monkeypatch)
    _in_chunks_of(2, f"sqlite:///{db}", monkeypatch)


# ------------------------------------------------------------------------------------------------
# A live PostgreSQL server (segflow_tests.pg_server)


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict]:
    with postgres_server() as server:
        import psycopg

        with psycopg.connect(server.uri, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE sales (invoice_no text, client text, sold_at timestamp, qty integer, "
                "price numeric(10, 2))"
            )
            conn.execute("CREATE TABLE x (keep integer)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO sales VALUES (%s, %s, %s, %s, %s)", ROWS)
        yield {"uri": server.uri, "log": server.log, "version": server.version}


def test_postgres_source_with_bound_window(postgres: dict) -> None:
    import psycopg

    print(f"live PostgreSQL {postgres['version']} at {postgres['uri']}")
    read = _read(postgres["uri"])
    _assert_march(read)
    with psycopg.connect(postgres["uri"]) as conn:
        assert conn.execute("SELECT count(*) FROM x").fetchone() == (0,)  # the table still exists
        assert conn.execute("SELECT count(*) FROM sales").fetchone() == (len(ROWS),)
    # The server's own log: the statement arrived with $1/$2 placeholders, the dates only as parameters.
    logged = [line for line in postgres["log"].read_text().splitlines() if "FROM sales WHERE sold_at" in line]
    assert logged and all("$1" in line and "$2" in line and "2024-03" not in line for line in logged)
    assert any(
        "parameters: $1 = '2024-03-01 00:00:00'" in line for line in postgres["log"].read_text().splitlines()
    )


def test_postgres_rows_are_fetched_in_chunks_from_a_server_cursor(
    postgres: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_chunks_of(2, postgres["uri"], monkeypatch)
    # A named (server-side) cursor: the server declared it, and sent the rows a FETCH at a time.
    log = postgres["log"].read_text()
    assert 'DECLARE "segflow_source"' in log and 'FETCH FORWARD 2 FROM "segflow_source"' in log


def test_postgres_errors_name_the_database_without_password(postgres: dict) -> None:
    uri = postgres["uri"].replace("postgres@", "postgres:hunter2@")
    settings = SourceSettings(format="sql", uri=uri, query="SELECT * FROM missing_table WHERE t >= :start")
    with pytest.raises(SourceError) as err:
        read_source("transactions", settings, "", window=MARCH)
    assert "postgres:***@127.0.0.1" in str(err.value) and "hunter2" not in str(err.value)
    assert "missing_table" in str(err.value)
