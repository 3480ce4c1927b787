"""Read one source for one period into segflow's canonical shape.

Reading never drops a row: a value that cannot be cast exactly to its canonical type becomes null
and the row carries a ``_parse_error`` naming the column and type (not the value, which may be
personal data), so cleaning can quarantine it with a reason; an optional customer attribute is
listed in ``_recoded`` instead, and the customer kept (see :mod:`segflow.lib.sources.casting`). Every row
also carries ``_source_file`` and ``_source_row`` (0-based data row, within its file or sheet), so
that errors and quarantine name the exact place. A file that cannot be read, or is read wrongly
without complaint by polars (see :mod:`segflow.lib.sources.source_files`), raises :class:`SourceError`
naming it, its line where there is one, and the cause. Mapping expressions are checked by
:mod:`segflow.lib.sources.mapping_expr` before polars evaluates them.

Formats (``SourceSettings.format``): parquet, csv, tsv, excel (one sheet or several stacked),
fixed_width (character spans), whitespace (columns aligned by runs of blanks) and sql (a query
with bound parameters, see :mod:`segflow.lib.sources.sql_source`). Text is read as text and cast once, so
no type is guessed from the first rows.

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

import codecs
import difflib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from segflow.config_sources import SourceSettings
from segflow.lib.schema import SOURCES
from segflow.lib.sources.casting import RECODED_TYPE, REQUIRED, CastOptions, cast_expr, cast_to_schema
from segflow.lib.sources.mapping_expr import cast_text_columns, expression_problem
from segflow.lib.sources.source_files import SourceError, explain_read_error, resolve_files, sniff_text

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
    frame: pl.DataFrame
    files: tuple[str, ...]
    derived: tuple[str, ...] = ()  # canonical columns derived rather than read (e.g. invoice_id)
    # Columns of the files that no mapping reads, with whether each holds a single value there
    # (a constant column carries no information): {column: {"constant": bool}}. Never the value:
    # an unmapped column can hold anything, e-mail addresses included, and this goes to reports.
    unmapped: dict[str, dict] = field(default_factory=dict)


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding or "utf8").name == "utf-8"


def _text(path: str, settings: SourceSettings) -> str | bytes:
    """The file itself when it is UTF-8 (polars reads it lazily), else its bytes re-encoded to UTF-8."""
    if _is_utf8(settings.encoding):
        return path
    return Path(path).read_bytes().decode(settings.encoding).encode("utf-8")


def _lines(path: str, settings: SourceSettings) -> pl.LazyFrame:
    """``_line`` per text line after ``skip_rows``, with its line number ``_lineno``; blank lines dropped."""
    text = _text(path, settings)
    source = io.BytesIO(text) if isinstance(text, bytes) else text
    lines = pl.read_csv(
        source,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        infer_schema=False,
        skip_rows=settings.skip_rows,
        new_columns=["_line"],
        raise_if_empty=True,
        truncate_ragged_lines=True,
    ).lazy()
    # The 1-based line in the file, kept through the blank-line filter so errors can name it.
    numbered = lines.with_row_index("_lineno", offset=1 + settings.skip_rows)
    return numbered.filter(pl.col("_line").str.strip_chars() != "")


def _refuse_wide_line(path: str, lines: pl.LazyFrame, too_wide: pl.Expr, what: str) -> None:
    """A line with more than the columns hold would lose its extra part silently: an error naming it."""
    first = lines.filter(too_wide).select("_lineno").head(1).collect()
    if first.height:
        raise SourceError(f"{path}: line {first.item()} {what}")


def _fixed_width(path: str, settings: SourceSettings) -> pl.LazyFrame:
    lines = _lines(path, settings)
    if settings.has_header:
        lines = lines.slice(1)
    end = max(stop for _, stop in settings.fixed_columns.values())
    beyond = pl.col("_line").str.slice(end).str.strip_chars() != ""
    _refuse_wide_line(path, lines, beyond, f"has text beyond the last column's end ({end}): a wider layout?")
    fields = [
        pl.col("_line").str.slice(start, end - start).str.strip_chars().alias(name)
        for name, (start, end) in settings.fixed_columns.items()
    ]
    return lines.select(fields).with_columns(pl.all().replace("", None))


def _whitespace(path: str, settings: SourceSettings) -> pl.LazyFrame:
    lines = _lines(path, settings)
    parts = pl.col("_line").str.strip_chars().str.replace_all(r"\s+", "\x1f").str.split("\x1f")
    split = lines.select(parts.alias("_parts"), "_lineno")
    if settings.has_header:
        header = split.head(1).collect()
        names = header["_parts"][0].to_list() if header.height else []
        split = split.slice(1)
    else:
        width = split.select(pl.col("_parts").list.len().max()).collect().item() or 0
        names = [f"column_{i + 1}" for i in range(width)]
    wide = pl.col("_parts").list.len() > len(names)
    _refuse_wide_line(path, split, wide, f"has more fields than the header's {len(names)}")
    return split.select(
        [pl.col("_parts").list.get(i, null_on_oob=True).alias(n) for i, n in enumerate(names)]
    )


def _excel(path: str, settings: SourceSettings) -> list[tuple[str, pl.LazyFrame]]:
    sheets = settings.sheets
    kwargs = {
        "engine": "calamine",
        "has_header": settings.has_header,
        "infer_schema_length": None,
        "read_options": {"header_row": settings.skip_rows} if settings.skip_rows else None,
    }
    if sheets is None:
        read = {"": pl.read_excel(path, sheet_id=1, **kwargs)}
    elif sheets == "*":
        read = pl.read_excel(path, sheet_id=0, **kwargs)
    else:
        names = [sheets] if isinstance(sheets, str) else list(sheets)
        read = pl.read_excel(path, sheet_name=names, **kwargs)
        read = read if isinstance(read, dict) else {names[0]: read}
    return [(f"{path}#{name}" if name else path, frame.lazy()) for name, frame in read.items()]


def _scan_file(path: str, settings: SourceSettings) -> list[tuple[str, pl.LazyFrame]]:
    """(label, frame) pairs for one file: one pair, or one per Excel sheet."""
    fmt = settings.format
    try:
        if fmt in ("csv", "tsv", "fixed_width", "whitespace"):
            sniff_text(path, settings.encoding)
        if fmt == "parquet":
            return [(path, pl.scan_parquet(path))]
        if fmt in ("csv", "tsv"):
            # Everything as text first: casting is done once, column by column, with errors kept.
            text = _text(path, settings)
            options = {
                "separator": "\t" if fmt == "tsv" else settings.csv_separator,
                "quote_char": settings.quote_char,
                "has_header": settings.has_header,
                "skip_rows": settings.skip_rows,
                "infer_schema": False,
            }
            if isinstance(text, bytes):
                frame = pl.read_csv(io.BytesIO(text), **options).lazy()
            else:
                frame = pl.scan_csv(text, encoding="utf8", **options)
            if not settings.has_header:  # column_1, column_2, ... as a spreadsheet user counts
                frame = frame.rename(lambda c: f"column_{int(c.removeprefix('column_')) + 1}")
            return [(path, frame)]
        if fmt == "excel":
            return _excel(path, settings)
        if fmt == "fixed_width":
            return [(path, _fixed_width(path, settings))]
        if fmt == "whitespace":
            return [(path, _whitespace(path, settings))]
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise SourceError(f"{path}: cannot read as {fmt}: {_explain(path, exc, settings)}") from exc
    raise SourceError(
        f"{path}: unsupported format {fmt!r} (parquet, csv, tsv, excel, fixed_width, whitespace, sql)"
    )


def _explain(path: str, exc: Exception, settings: SourceSettings) -> str:
    separator = "\t" if settings.format == "tsv" else settings.csv_separator
    return explain_read_error(
        path, exc, separator, settings.quote_char, settings.skip_rows, settings.encoding
    )


_DUPLICATED = re.compile(r"^(?P<base>.+)_duplicated_\d+$")


def _check_header(label: str, schema: pl.Schema) -> None:
    """polars renames a repeated header name to ``<name>_duplicated_0`` and reads on; which of the
    two a mapping meant is unknowable, so a repeated name is an error."""
    for name in schema:
        match = _DUPLICATED.match(name)
        if match and match["base"] in schema:
            position = list(schema).index(match["base"]) + 1
            raise SourceError(
                f"{label}: the header names column {match['base']!r} more than once (column {position} "
                f"and a later one); rename one of them"
            )
        if "\r" in name:
            raise SourceError(f"{label}: a header name holds a carriage return: CR-only line endings?")


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


def _unmapped_columns(scan: pl.LazyFrame, schema: pl.Schema, source: str, settings: SourceSettings) -> dict:
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


def _derives_invoice(source: str, settings: SourceSettings, schema: pl.Schema) -> bool:
    """No invoice id in the source and none mapped: one invoice per customer per day."""
    return source == "transactions" and "invoice_id" not in settings.columns and "invoice_id" not in schema


def _map_columns(
    frame: pl.LazyFrame, schema: pl.Schema, source: str, settings: SourceSettings, path: str
) -> pl.LazyFrame:
    probe = pl.DataFrame(schema=schema)
    selected = []
    for name, dtype in SOURCES[source].items():
        if name == "invoice_id" and _derives_invoice(source, settings, schema):
            selected.append(pl.lit(None, dtype=pl.String).alias(name))  # filled in after casting
            continue
        expr = _mapped_expr(name, settings.columns.get(name, name), probe, source, path)
        selected.append((expr if expr is not None else pl.lit(None, dtype=dtype)).alias(name))
    if source == "transactions" and settings.cancellation is not None:
        flag = _sql_expr(settings.cancellation, probe, source, "cancellation", path)
        selected.append(flag.cast(pl.Boolean).alias("_is_cancellation"))
    return frame.select(*selected, pl.col("_source_row"))


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


def invoices_are_derived(transactions: pl.DataFrame) -> bool:
    """True when every invoice id is the one :func:`derived_invoice_id` gives (the source had none).

    Read from the rows rather than passed along, so that the profiles stage can tell without the
    raw asset's metadata; an id is derived exactly when it equals that expression, nulls included.
    """
    same = pl.col("invoice_id").eq_missing(derived_invoice_id()).all()
    # The first rows settle it for almost every source with ids of its own, without a full pass.
    if transactions.height == 0 or not transactions.head(1_000).select(same).item():
        return False
    return bool(transactions.select(same).item())


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
        return joins.apply_joins(scan, settings, _scan_file, label)
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
        _check_header(label, schema)
    unmapped = _unmapped_columns(scan, schema, source, settings)
    numbered = scan.with_row_index("_source_row").with_columns(pl.col("_source_row").cast(pl.Int64))
    derive_invoice = _derives_invoice(source, settings, schema)
    mapped = _map_columns(numbered, schema, source, settings, label)
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
    label, scan = _scan_file(path, settings)[0]
    if settings.joins:
        scan = _joined(scan, settings, label)
    try:
        _read_one(label, scan.head(rows), source, settings, None)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named, the cause in words
        raise SourceError(f"{label}: cannot read source {source!r}: {_explain(path, exc, settings)}") from exc


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
        scans = [pair for path in files for pair in _scan_file(path, settings)]
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
                f"{label}: cannot read source {source!r}: {_explain(path, exc, settings)}"
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
