"""Their columns to segflow's canonical ones: a mapping names a column of the file or is an SQL
expression over its columns, checked (:mod:`segflow.lib.sources.mapping_expr`) before polars
evaluates it; a missing column is an error suggesting the closest name. Also which of the file's
columns no mapping reads, and whether the invoice id is derived (none in the file, none mapped).
"""

from __future__ import annotations

import difflib
import re

import polars as pl

from segflow.config_sources import SourceSettings
from segflow.lib.schema import SOURCES
from segflow.lib.sources.casting import REQUIRED
from segflow.lib.sources.mapping_expr import cast_text_columns, expression_problem
from segflow.lib.sources.source_files import SourceError

_IDENTIFIER = re.compile(r"^[\w .-]+$")


def _evaluated(text: str, frame: pl.DataFrame) -> pl.Expr:
    expr = pl.sql_expr(text)
    frame.head(0).select(expr)
    return expr


def _sql_expr(
    text: str, frame: pl.DataFrame, source: str, key: str, path: str, numeric: bool = False
) -> pl.Expr:
    """``text`` as a polars expression over ``frame``'s columns, checked before it is evaluated.

    ``numeric``: the canonical column is a number. Delimited text is read as text, so ``Amount /
    Qty`` would be arithmetic on strings; then the text columns it names are read as numbers
    (TRY_CAST: a cell that is no number becomes null, and its row is quarantined)."""
    where = f"{path}: source {source!r}, column mapping {key!r}"
    problem = expression_problem(text)
    if problem:  # refused before polars parses it: nothing outside the file's columns is read
        raise SourceError(f"{where}: expression {text!r} {problem}")
    try:
        return _evaluated(text, frame)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the source and key
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "String" in message and "not allowed" in message:
            text_columns = {c for c in frame.columns if frame.schema[c] == pl.String}
            if numeric:
                try:
                    return _evaluated(cast_text_columns(text, text_columns), frame)
                except Exception:  # noqa: BLE001, S110 - the hint below says what to write instead
                    pass
            named = sorted(c for c in text_columns if c in text)
            message = (
                f"arithmetic on text columns {named} (delimited text is read as text): "
                "write a CAST, e.g. CAST(Amount AS DOUBLE) / CAST(Qty AS DOUBLE)"
            )
        raise SourceError(f"{where}: cannot evaluate expression {text!r}: {message}") from exc


def _mapped_expr(name: str, theirs: str, frame: pl.DataFrame, source: str, path: str) -> pl.Expr | None:
    if theirs in frame.columns:
        return pl.col(theirs)
    if not _IDENTIFIER.match(theirs) or theirs.startswith("="):
        numeric = SOURCES[source][name].is_numeric()
        return _sql_expr(theirs.removeprefix("="), frame, source, name, path, numeric)
    if name not in REQUIRED[source] and name not in frame.columns and theirs == name:
        return None
    hint = difflib.get_close_matches(theirs, frame.columns, n=1, cutoff=0.5)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise SourceError(
        f"{path}: source {source!r} is missing column {theirs!r} (canonical {name!r}); "
        f"available columns: {frame.columns}{suggestion}"
    )


def unmapped_columns(scan: pl.LazyFrame, schema: pl.Schema, source: str, settings: SourceSettings) -> dict:
    """The file's columns that neither a canonical name nor a mapping (name or expression) reads."""
    texts = [*settings.columns.values(), settings.cancellation or ""]
    used = set(SOURCES[source]) | {c for c in schema if c in settings.columns.values()}
    used |= {c for c in schema if any(re.search(rf"(?<![\w]){re.escape(c)}(?![\w])", t) for t in texts)}
    unmapped = [c for c in schema if c not in used]
    if not unmapped:
        return {}
    # A digest of the first value tells whether files constant each are constant together; it is
    # dropped before anything is returned.
    stats = scan.select(
        *[pl.col(c).n_unique().alias(f"{c}|n") for c in unmapped],
        *[pl.col(c).drop_nulls().first().cast(pl.String).hash(7).alias(f"{c}|h") for c in unmapped],
    ).collect().row(0, named=True)  # fmt: skip
    return {c: {"constant": stats[f"{c}|n"] == 1, "digest": stats[f"{c}|h"]} for c in unmapped}


def derives_invoice(source: str, settings: SourceSettings, schema: pl.Schema) -> bool:
    """No invoice id in the source and none mapped: one invoice per customer per day."""
    return source == "transactions" and "invoice_id" not in settings.columns and "invoice_id" not in schema


def map_columns(
    frame: pl.LazyFrame, schema: pl.Schema, source: str, settings: SourceSettings, path: str
) -> pl.LazyFrame:
    probe = pl.DataFrame(schema=schema)
    selected = []
    for name, dtype in SOURCES[source].items():
        if name == "invoice_id" and derives_invoice(source, settings, schema):
            selected.append(pl.lit(None, dtype=pl.String).alias(name))  # filled in after casting
            continue
        expr = _mapped_expr(name, settings.columns.get(name, name), probe, source, path)
        selected.append((expr if expr is not None else pl.lit(None, dtype=dtype)).alias(name))
    if source == "transactions" and settings.cancellation is not None:
        flag = _sql_expr(settings.cancellation, probe, source, "cancellation", path)
        selected.append(flag.cast(pl.Boolean).alias("_is_cancellation"))
    return frame.select(*selected, pl.col("_source_row"))
