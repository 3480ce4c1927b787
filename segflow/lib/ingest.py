"""Read one source for one period into segflow's canonical shape.

Reading never drops a row: a value that cannot be cast to its canonical type becomes null and the
row carries a ``_parse_error`` naming the column and the raw value, so cleaning can quarantine it
with a reason. Every row also carries ``_source_file`` and ``_source_row`` (0-based, within its
file), so that errors and quarantine name the exact place.
"""

from __future__ import annotations

import difflib
import glob
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from segflow.config import SourceSettings
from segflow.lib.schema import SOURCES

META_COLUMNS = ("_source_file", "_source_row", "_parse_error")


class SourceError(ValueError):
    """A source that cannot be read at all; the message names the file and what is wrong."""


@dataclass(frozen=True)
class SourceRead:
    frame: pl.DataFrame
    files: tuple[str, ...]


def _expand(location: str) -> list[str]:
    if "://" in location:
        return [location]
    if any(ch in location for ch in "*?["):
        return sorted(glob.glob(location))
    return [location] if Path(location).exists() else []


def _scan_file(path: str, settings: SourceSettings) -> pl.LazyFrame:
    try:
        if settings.format == "parquet":
            return pl.scan_parquet(path)
        if settings.format == "csv":
            # Everything as text first: casting is done once, column by column, with errors kept.
            return pl.scan_csv(path, separator=settings.csv_separator, infer_schema=False, encoding="utf8")
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise SourceError(f"{path}: cannot read as {settings.format}: {exc}") from exc
    raise SourceError(f"{path}: unsupported format {settings.format!r} (parquet, csv)")


# Columns without which a source means nothing; the others are null when a source lacks them.
REQUIRED: dict[str, frozenset[str]] = {
    "customers": frozenset({"customer_id"}),
    "transactions": frozenset({"invoice_id", "customer_id", "invoiced_at", "quantity", "unit_price"}),
    "engagement": frozenset({"customer_id", "event_at", "event_type"}),
    "surveys": frozenset({"customer_id", "answered_at", "question_id", "answer"}),
    "campaigns": frozenset({"campaign_id", "customer_id", "arm", "exposed_at", "responded"}),
}
_IDENTIFIER = re.compile(r"^[\w .-]+$")


def _mapped_expr(name: str, theirs: str, frame: pl.DataFrame, source: str, path: str) -> pl.Expr | None:
    if theirs in frame.columns:
        return pl.col(theirs)
    if not _IDENTIFIER.match(theirs) or theirs.startswith("="):
        text = theirs.removeprefix("=")
        try:
            expr = pl.sql_expr(text)
            frame.head(0).select(expr)
        except Exception as exc:  # noqa: BLE001 - re-raised naming the source and key
            raise SourceError(
                f"{path}: source {source!r}, column mapping {name!r}: cannot evaluate expression {text!r}: {exc}"
            ) from exc
        return expr
    if name not in REQUIRED[source] and name not in frame.columns and theirs == name:
        return None
    hint = difflib.get_close_matches(theirs, frame.columns, n=1, cutoff=0.5)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise SourceError(
        f"{path}: source {source!r} is missing column {theirs!r} (canonical {name!r}); "
        f"available columns: {frame.columns}{suggestion}"
    )


def _map_columns(frame: pl.LazyFrame, schema: pl.Schema, source: str, settings: SourceSettings,
                 path: str) -> pl.LazyFrame:
    probe = pl.DataFrame(schema=schema)
    selected = []
    for name, dtype in SOURCES[source].items():
        expr = _mapped_expr(name, settings.columns.get(name, name), probe, source, path)
        selected.append((expr if expr is not None else pl.lit(None, dtype=dtype)).alias(name))
    return frame.select(*selected, pl.col("_source_row"))


def _cast_expr(name: str, dtype: pl.DataType, raw_dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if raw_dtype == dtype:
        return col
    if raw_dtype == pl.String:
        text = col.str.strip_chars()
        if dtype == pl.Date:
            return text.str.to_date(strict=False)
        if isinstance(dtype, pl.Datetime):
            return text.str.to_datetime(time_unit=dtype.time_unit, strict=False)
        if dtype == pl.Boolean:
            lowered = text.str.to_lowercase()
            truthy = lowered.is_in(["true", "1", "yes", "y", "t"])
            falsy = lowered.is_in(["false", "0", "no", "n", "f"])
            return pl.when(truthy).then(True).when(falsy).then(False).otherwise(None)
        if dtype.is_integer():
            # Accept "3.0" from spreadsheets, but not "3.5".
            as_float = text.cast(pl.Float64, strict=False)
            return pl.when(as_float == as_float.round(0)).then(as_float).otherwise(None).cast(dtype)
        return text.cast(dtype, strict=False)
    return col.cast(dtype, strict=False)


def cast_to_schema(frame: pl.LazyFrame, source: str) -> pl.LazyFrame:
    """Cast canonical columns to their types; record the first failing cast per row."""
    canonical = SOURCES[source]
    schema = frame.collect_schema()
    casts = {name: _cast_expr(name, dtype, schema[name]) for name, dtype in canonical.items()}
    failures = [
        pl.when(pl.col(name).is_not_null() & expr.is_null())
        .then(pl.format(f"column {name!r}: cannot cast {{}} to {canonical[name]}", pl.col(name).cast(pl.String)))
        for name, expr in casts.items()
        if schema[name] != canonical[name]
    ]
    parse_error = pl.coalesce(failures) if failures else pl.lit(None, dtype=pl.String)
    return frame.with_columns(parse_error.alias("_parse_error")).with_columns(
        [expr.alias(name) for name, expr in casts.items()]
    )


def empty_source(source: str) -> pl.DataFrame:
    schema = dict(SOURCES[source])
    schema |= {"_source_file": pl.String(), "_source_row": pl.Int64(), "_parse_error": pl.String()}
    return pl.DataFrame(schema=schema)


@dataclass(frozen=True)
class PeriodFilter:
    """Keep rows whose ``column`` falls in [start, end); rows where it is null are kept only if
    ``keep_nulls`` (so that exactly one partition sees, and quarantines, each unplaceable row)."""

    column: str
    start: datetime | date | None
    end: datetime | date
    keep_nulls: bool

    def expr(self) -> pl.Expr:
        col = pl.col(self.column)
        inside = col < self.end if self.start is None else (col >= self.start) & (col < self.end)
        return inside.fill_null(self.keep_nulls)


def read_source(source: str, settings: SourceSettings, location: str, period_filter: PeriodFilter | None = None
                ) -> SourceRead:
    """Read every file at ``location`` for ``source``; a location with no file gives an empty frame.

    ``period_filter`` places rows of a file that spans many months into this partition.
    """
    files = _expand(location)
    if not files:
        return SourceRead(empty_source(source), ())
    frames = []
    for path in files:
        scan = _scan_file(path, settings)
        try:
            schema = scan.collect_schema()
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise SourceError(f"{path}: cannot read as {settings.format}: {exc}") from exc
        numbered = scan.with_row_index("_source_row").with_columns(pl.col("_source_row").cast(pl.Int64))
        mapped = _map_columns(numbered, schema, source, settings, path)
        typed = cast_to_schema(mapped, source).with_columns(pl.lit(path).alias("_source_file"))
        if period_filter is not None:
            typed = typed.filter(period_filter.expr())
        frames.append(typed.select([*SOURCES[source], *META_COLUMNS]))
    try:
        frame = pl.concat(frames, how="vertical").collect()
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the files named
        raise SourceError(f"{', '.join(files)}: cannot read source {source!r}: {exc}") from exc
    return SourceRead(frame, tuple(files))


# The column that places a row of a many-month file into a monthly partition.
TIME_COLUMNS = {
    "customers": "signup_date",
    "transactions": "invoiced_at",
    "engagement": "event_at",
    "surveys": "answered_at",
    "campaigns": "exposed_at",
}


def period_filter_for(source: str, location_template: str, start: datetime, end: datetime,
                      is_first_partition: bool) -> PeriodFilter | None:
    """None for per-period files (``{period}`` in the location): their rows belong to the period,
    and a row dated elsewhere is quarantined. A shared file is split by its time column; a CRM
    snapshot keeps everyone signed up by the period's end.
    """
    if "{period}" in location_template:
        return None
    if source == "customers":
        return PeriodFilter("signup_date", None, end.date(), keep_nulls=True)
    return PeriodFilter(TIME_COLUMNS[source], start, end, keep_nulls=is_first_partition)
