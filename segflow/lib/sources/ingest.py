"""Read one source for one period into segflow's canonical shape.

Reading never drops a row: a value that cannot be cast exactly to its canonical type becomes null
and the row carries a ``_parse_error`` naming the column and type (not the value, which may be
personal data), so cleaning can quarantine it with a reason; an optional customer attribute is
listed in ``_recoded`` instead, and the customer kept (see :mod:`segflow.lib.sources.casting`). Every row
also carries ``_source_file`` and ``_source_row`` (0-based data row, within its file or sheet), so
that errors and quarantine name the exact place. A file that cannot be read, or is read wrongly
without complaint by polars (see :mod:`segflow.lib.sources.source_files`), raises :class:`SourceError`
naming it, its line where there is one, and the cause.

The steps, each in its module: a file is scanned per its format (:mod:`segflow.lib.sources.readers`:
parquet, csv, tsv, excel, fixed_width, whitespace; a ``sql`` source is a query with bound
parameters, :mod:`segflow.lib.sources.sql_source`), joined to other files
(:mod:`segflow.lib.sources.joins`), its columns mapped to canonical names
(:mod:`segflow.lib.sources.mapping`, expressions checked by :mod:`segflow.lib.sources.mapping_expr`),
cast (:mod:`segflow.lib.sources.casting`) and placed in the month; this module runs them in order.

Derived at read time (see the README's "Use your own data"):

* ``invoice_id``, when the source has none and none is mapped: one invoice per customer per day;
* ``_is_cancellation`` (transactions): the configured ``cancellation`` expression, by default the
  invoice id starts with ``C``; cleaning and profiles read it;
* timestamps are stored naive UTC: naive values are read in ``timezone`` (when set), zoned values
  are converted; money columns are multiplied by ``currency_rate``.

A required column whose values mostly fail to cast (more than half of at least
``WHOLE_COLUMN_MIN_VALUES`` non-null values) is a wrong mapping or date format, not dirt: it raises
:class:`SourceError` naming the file, column, an example value and its row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from segflow.config import Settings
from segflow.config_sources import SourceSettings
from segflow.lib import periods
from segflow.lib.schema import SOURCES
from segflow.lib.sources.casting import RECODED_TYPE, REQUIRED, CastOptions, cast_expr, cast_to_schema
from segflow.lib.sources.mapping import derives_invoice, map_columns, unmapped_columns
from segflow.lib.sources.readers import check_header, explain, scan_file
from segflow.lib.sources.source_files import SourceError, resolve_files

__all__ = ["REQUIRED", "SourceError", "SourceRead", "cast_to_schema", "read_source"]

# ``_recoded``: the optional attributes of a customer row that could not be read (nulled), as
# [{column, value}]; profiles lists them in recoded_values.
META_COLUMNS = ("_source_file", "_source_row", "_parse_error", "_recoded")
# Columns a source carries beyond its canonical ones, derived at read time.
DERIVED_COLUMNS: dict[str, dict[str, pl.DataType]] = {"transactions": {"_is_cancellation": pl.Boolean()}}
MONEY_COLUMNS = frozenset({"unit_price", "income", "spend"})
WHOLE_COLUMN_MIN_VALUES = 5
WHOLE_COLUMN_FAILED_SHARE = 0.5


@dataclass(frozen=True)
class SourceRead:
    """A source's rows in canonical shape (with their meta columns), and what the read learnt of its files."""

    frame: pl.DataFrame
    files: tuple[str, ...]
    derived: tuple[str, ...] = ()  # canonical columns derived rather than read (e.g. invoice_id)
    # Columns of the files that no mapping reads, with whether each holds a single value there
    # (a constant column carries no information): {column: {"constant": bool}}. Never the value:
    # an unmapped column can hold anything, e-mail addresses included, and this goes to reports.
    unmapped: dict[str, dict] = field(default_factory=dict)


def _cast_stats(
    mapped: pl.LazyFrame, source: str, options: CastOptions
) -> tuple[list[str], pl.LazyFrame | None]:
    """Per required column that needs a cast: non-null values, failures, and the first failure."""
    canonical = SOURCES[source]
    schema = mapped.collect_schema()
    names = [n for n in sorted(REQUIRED[source]) if schema[n] != canonical[n] and schema[n] != pl.Null]
    if not names:
        return [], None
    aggs = []
    for name in names:
        raw = pl.col(name)
        failed = raw.is_not_null() & cast_expr(name, canonical[name], schema[name], options).is_null()
        aggs += [
            raw.is_not_null().sum().alias(f"{name}|values"),
            raw.first().alias(f"{name}|raw"),
            failed.sum().alias(f"{name}|failed"),
            raw.cast(pl.String).filter(failed).first().alias(f"{name}|example"),
            pl.col("_source_row").filter(failed).first().alias(f"{name}|row"),
        ]
    return names, mapped.select(aggs)


def _raise_on_failed_columns(
    names: list[str], stats: pl.DataFrame, source: str, path: str, options: CastOptions
) -> None:
    row = stats.row(0, named=True)
    for name in names:
        values, failed = row[f"{name}|values"], row[f"{name}|failed"]
        if values >= WHOLE_COLUMN_MIN_VALUES and failed > WHOLE_COLUMN_FAILED_SHARE * values:
            dtype = SOURCES[source][name]
            fmt = options.date_format if dtype == pl.Date else options.datetime_format or options.date_format
            raw = stats.schema.get(f"{name}|raw")
            if raw is not None and raw.is_integer() and dtype.is_temporal():
                hint = f" (the file holds {raw}: set epoch_unit to s, ms, us or ns since 1970)"
            elif raw not in (None, pl.String):
                hint = f" (the file holds {raw})"
            elif dtype.is_temporal():
                hint = f" with format {fmt!r}" if fmt else " (ISO 8601; set date_format/datetime_format)"
            else:
                hint = " (set decimal_comma?)" if dtype.is_numeric() else ""
            raise SourceError(
                f"{path}: source {source!r}, column {name!r}: {failed} of {values} values cannot be cast to "
                f"{dtype}{hint}, e.g. {row[f'{name}|example']!r} "
                f"at row {row[f'{name}|row']} (0-based data row); "
                "a whole column failing means a wrong mapping or format, not dirty rows"
            )


def empty_source(source: str) -> pl.DataFrame:
    schema = dict(SOURCES[source])
    schema |= {"_source_file": pl.String(), "_source_row": pl.Int64(), "_parse_error": pl.String(),
               "_recoded": RECODED_TYPE}  # fmt: skip
    schema |= DERIVED_COLUMNS.get(source, {})
    return pl.DataFrame(schema=schema)


def derived_invoice_id() -> pl.Expr:
    """The invoice id segflow derives for a source without one: the customer's lines on one day."""
    day = pl.col("invoiced_at").dt.date().cast(pl.String)
    customer = pl.col("customer_id").str.strip_chars()
    return pl.when(customer.is_not_null() & day.is_not_null()).then(pl.format("{}/{}", day, customer))


def invoices_are_derived(transactions: pl.DataFrame | pl.LazyFrame) -> bool:
    """True when every invoice id is the one :func:`derived_invoice_id` gives (the source had none).

    Read from the rows rather than passed along, so that the profiles stage can tell without the
    raw asset's metadata; an id is derived exactly when it equals that expression, nulls included.
    A LazyFrame (a stored month scanned) is read in one streaming pass, never collected.
    """
    lines = transactions.lazy()
    same = pl.col("invoice_id").eq_missing(derived_invoice_id()).all()
    # The first rows settle it for almost every source with ids of its own, without a full pass.
    head = lines.head(1_000).select(same, pl.len()).collect()
    if head["len"].item() == 0 or not head["invoice_id"].item():
        return False
    return bool(lines.select(same).collect(engine="streaming").item())


def _derive(frame: pl.LazyFrame, source: str, settings: SourceSettings, derive_invoice: bool) -> pl.LazyFrame:
    """Fill what the source lacks, and convert currency (after casting, on canonical columns)."""
    if derive_invoice:
        frame = frame.with_columns(derived_invoice_id().alias("invoice_id"))
    out = []
    if source == "transactions" and settings.cancellation is None:
        # The default rule; derived ids start with a date, so they are never cancellations.
        out.append(pl.col("invoice_id").str.strip_chars().str.starts_with("C").alias("_is_cancellation"))
    if settings.currency_rate != 1.0:
        out += [(pl.col(c) * settings.currency_rate).alias(c) for c in MONEY_COLUMNS if c in SOURCES[source]]
    return frame.with_columns(out) if out else frame


def _read_sql_source(
    source: str, settings: SourceSettings, window: tuple[datetime, datetime] | None
) -> tuple[str, pl.LazyFrame]:
    from segflow.lib.sources import sql_source

    if window is None:
        raise SourceError(f"source {source!r}: a SQL source needs the partition window (:start, :end)")
    uri = settings.uri or settings.location
    label = sql_source.redact(uri)
    try:
        frame = sql_source.read_query(uri, settings.query, start=window[0], end=window[1])
    except Exception as exc:  # noqa: BLE001 - re-raised naming the database, never its password
        raise SourceError(f"{label}: source {source!r}: query failed: {exc}") from exc
    return label, frame.lazy()


def _joined(scan: pl.LazyFrame, settings: SourceSettings, label: str) -> pl.LazyFrame:
    """``scan`` with the source's joins applied (segflow.lib.sources.joins), errors naming the files."""
    from segflow.lib.sources import joins

    try:
        return joins.apply_joins(scan, settings, scan_file, label)
    except joins.JoinError as exc:
        raise SourceError(str(exc)) from exc


def _read_one(
    label: str, scan: pl.LazyFrame, source: str, settings: SourceSettings, period_filter: PeriodFilter | None
) -> tuple[pl.DataFrame, dict[str, dict], bool]:
    """One file (or sheet): its canonical frame, its unmapped columns, and whether invoice ids
    were derived. Collected here, so that whatever fails names this file."""
    options = CastOptions.of(settings)
    schema = scan.collect_schema()
    if settings.format not in ("parquet", "sql"):
        check_header(label, schema)
    unmapped = unmapped_columns(scan, schema, source, settings)
    numbered = scan.with_row_index("_source_row").with_columns(pl.col("_source_row").cast(pl.Int64))
    derive_invoice = derives_invoice(source, settings, schema)
    mapped = map_columns(numbered, schema, source, settings, label)
    names, stats = _cast_stats(mapped, source, options)
    if stats is not None:
        _raise_on_failed_columns(names, stats.collect(), source, label, options)
    typed = cast_to_schema(mapped, source, options).with_columns(pl.lit(label).alias("_source_file"))
    typed = _derive(typed, source, settings, derive_invoice)
    if period_filter is not None:
        typed = typed.filter(period_filter.expr())
    frame = typed.select([*SOURCES[source], *META_COLUMNS, *DERIVED_COLUMNS.get(source, {})]).collect()
    return frame, unmapped, derive_invoice


def read_sample(source: str, settings: SourceSettings, path: str, rows: int) -> None:
    """Read the first ``rows`` rows of the file ``path`` as a month's read would (joins, mapping,
    expressions, whole-column casts), raising its :class:`SourceError`; the preflight's check that
    a configuration fits its data before any month runs (segflow.lib.sources.preflight)."""
    label, scan = scan_file(path, settings)[0]
    if settings.joins:
        scan = _joined(scan, settings, label)
    try:
        _read_one(label, scan.head(rows), source, settings, None)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named, the cause in words
        raise SourceError(f"{label}: cannot read source {source!r}: {explain(path, exc, settings)}") from exc


def read_source(
    source: str,
    settings: SourceSettings,
    location: str,
    period_filter: PeriodFilter | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> SourceRead:
    """Read every file at ``location`` for ``source``.

    A location with no file is a :class:`SourceError` naming it (a month whose export never
    arrived is not an empty month); so are a dangling link, a link loop and a directory.
    ``period_filter`` places rows of a file that spans many months into this partition.
    ``window`` is the partition's [start, end), bound as ``:start``/``:end`` in a SQL source's query.
    """
    if settings.format == "sql":
        scans = [_read_sql_source(source, settings, window)]
        files = [scans[0][0]]
    else:
        files = resolve_files(location)
        if not files:
            raise SourceError(f"{location}: no such file for source {source!r} (a month's export missing?)")
        scans = [pair for path in files for pair in scan_file(path, settings)]
        if settings.joins:
            scans = [(label, _joined(scan, settings, label)) for label, scan in scans]
    derived: set[str] = set()
    unmapped: dict[str, dict] = {}
    frames = []
    for label, scan in scans:
        try:
            frame, columns, derive_invoice = _read_one(label, scan, source, settings, period_filter)
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named, the cause in words
            path = label.split("#")[0]
            raise SourceError(
                f"{label}: cannot read source {source!r}: {explain(path, exc, settings)}"
            ) from exc
        frames.append(frame)
        derived |= {"invoice_id"} if derive_invoice else set()
        for column, stats in columns.items():
            seen = unmapped.setdefault(column, stats)
            if seen != stats:  # constant in one file but not across files: not constant
                unmapped[column] = {"constant": False, "digest": None}
    frame = pl.concat(frames, how="vertical")
    unmapped = {c: {"constant": v["constant"]} for c, v in unmapped.items()}
    return SourceRead(frame, tuple(files), tuple(sorted(derived)), unmapped)


def read_month(source: str, settings: Settings, period: str) -> SourceRead:
    """``source`` for the month ``period`` as its raw asset stores it (the source enabled and
    expecting data there): rows placed in the month, and files under the landing zone named
    relative to it, so that outputs do not depend on where the landing zone sits (the same data
    gives the same bytes on every machine)."""
    spec = settings.sources[source]
    start, end = periods.bounds(period)
    first = period == max(settings.partitions_start, spec.starts or "")
    split = period_filter_for(
        source, spec.location, start, end, is_first_partition=first, time_column=spec.time_column
    )
    read = read_source(source, spec, settings.source_location(source, period), split, window=(start, end))
    prefix = str(settings.landing_dir).rstrip("/") + "/"
    frame = read.frame.with_columns(pl.col("_source_file").str.strip_prefix(prefix))
    return dataclasses.replace(read, frame=frame, files=tuple(f.removeprefix(prefix) for f in read.files))


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


# The column that places a row of a many-month file into a monthly partition (``time_column``
# overrides it per source).
TIME_COLUMNS = {
    "customers": "signup_date",
    "transactions": "invoiced_at",
    "engagement": "event_at",
    "surveys": "answered_at",
    "campaigns": "exposed_at",
    "snapshot": "signup_date",
}


def period_filter_for(
    source: str,
    location_template: str,
    start: datetime,
    end: datetime,
    is_first_partition: bool,
    time_column: str | None = None,
) -> PeriodFilter | None:
    """None for per-period files (``{period}`` in the location): their rows belong to the period,
    and a row dated elsewhere is quarantined. A shared file (or a SQL query) is split by its time
    column; a CRM (or behaviour) snapshot keeps everyone signed up by the period's end.
    """
    if "{period}" in location_template:
        return None
    column = time_column or TIME_COLUMNS[source]
    if source in ("customers", "snapshot"):
        bound = end.date() if SOURCES[source][column] == pl.Date else end
        return PeriodFilter(column, None, bound, keep_nulls=True)
    return PeriodFilter(column, start, end, keep_nulls=is_first_partition)


def expects_data(settings: SourceSettings, period: str) -> bool:
    """False for months before the source's ``starts``: they are empty by design, not by failure."""
    return settings.starts is None or period >= settings.starts
