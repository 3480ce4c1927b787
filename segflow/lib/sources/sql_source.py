"""A SQL query as a source: one bound, parameterised query per partition.

The query names the partition window as ``:start`` and ``:end`` (and may use ``:period``,
"YYYY-MM"); they are passed to the driver as bound parameters and never formatted into the SQL
text, so no value in the data or the window can change the statement::

    SELECT invoice_no, customer, invoiced_at, sku, qty, price FROM sales
    WHERE invoiced_at >= :start AND invoiced_at < :end

Databases: SQLite through the standard library (``sqlite:///relative.db``, ``sqlite:////abs.db``)
and PostgreSQL through psycopg 3 (``postgresql://user:password@host:port/db``), which sends the
statement and its parameters separately (the extended query protocol).
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl

_NAMED = re.compile(r"(?<![:\w]):(start|end|period)\b")


def redact(uri: str) -> str:
    """The URI with any password replaced by ``***``, for error messages and lineage."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parameters(start: datetime, end: datetime) -> dict[str, Any]:
    return {"start": start, "end": end, "period": f"{start:%Y-%m}"}


def postgres_statement(query: str) -> str:
    """``:name`` placeholders in psycopg's ``%(name)s`` style (a literal ``%`` is doubled)."""
    return _NAMED.sub(r"%(\1)s", query.replace("%", "%%"))


def _sqlite_path(uri: str) -> str:
    path = uri.removeprefix("sqlite://")
    return path[1:] if path.startswith("/") else path  # sqlite:///x.db -> x.db, sqlite:////abs -> /abs


# Rows are fetched, and turned into polars columns, a chunk at a time (issue 13): a month fetched at
# once is a Python tuple per row, several times the size of the frame it becomes, and a client-side
# PostgreSQL cursor would also hold the whole result in libpq's memory first.
CHUNK_ROWS = 50_000


def _frame(names: list[str], cursor: Any) -> pl.DataFrame:
    """The cursor's rows, ``CHUNK_ROWS`` at a time; each chunk's types are inferred from all its
    values and the chunks are concatenated to their common types (a column that is all null in
    one chunk takes the type the others give it), as one frame of every row would be typed."""
    chunks = []
    while rows := cursor.fetchmany(CHUNK_ROWS):
        chunks.append(pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None))
    if not chunks:
        return pl.DataFrame(schema={n: pl.String for n in names})
    return pl.concat(chunks, how="vertical_relaxed")


def read_query(uri: str, query: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Run ``query`` with the window bound as parameters; the result as a polars frame."""
    params = parameters(start, end)
    if uri.startswith("sqlite://"):
        # sqlite3 binds :name natively; timestamps as ISO text, which is how SQLite stores them.
        bound = {k: (v.isoformat(sep=" ") if isinstance(v, datetime) else v) for k, v in params.items()}
        with sqlite3.connect(f"file:{_sqlite_path(uri)}?mode=ro", uri=True) as conn:
            cursor = conn.execute(query, {k: bound[k] for k in set(_NAMED.findall(query))})
            return _frame([d[0] for d in cursor.description], cursor)
    if uri.startswith(("postgresql://", "postgres://")):
        import psycopg

        # A named cursor is a server-side cursor: the server keeps the result and sends it a
        # chunk per fetch, with the statement and its parameters still sent apart.
        with psycopg.connect(uri) as conn, conn.cursor(name="segflow_source") as cursor:
            used = set(_NAMED.findall(query))
            cursor.execute(postgres_statement(query), {k: params[k] for k in used})
            return _frame([d.name for d in cursor.description], cursor)
    raise ValueError(f"unsupported database URI {redact(uri)!r}; use sqlite:// or postgresql://")
