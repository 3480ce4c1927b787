"""Read one source for one period into segflow's canonical shape.

Reading never drops a row: a value that cannot be cast to its canonical type becomes null and the
row carries a ``_parse_error`` naming the column and the raw value, so cleaning can quarantine it
with a reason. Every row also carries ``_source_file`` and ``_source_row`` (0-based data row,
within its file or sheet), so that errors and quarantine name the exact place.

Formats (``SourceSettings.format``): parquet, csv, tsv, excel (one sheet or several stacked),
fixed_width (character spans), whitespace (columns aligned by runs of blanks) and sql (a query
with bound parameters, see :mod:`segflow.lib.sql_source`). Text is read as text and cast once, so
no type is guessed from the first rows.

Derived at read time (see docs/use-your-own-data.md):

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

from segflow.config import SourceSettings
from segflow.lib.mapping_expr import expression_problem
from segflow.lib.schema import SOURCES
from segflow.lib.source_files import SourceError, explain_read_error, resolve_files, sniff_text

__all__ = ["SourceError", "SourceRead", "read_source"]

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
    """One string column ``_line`` per text line after ``skip_rows``; blank lines dropped."""
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
    return lines.filter(pl.col("_line").str.strip_chars() != "")


def _fixed_width(path: str, settings: SourceSettings) -> pl.LazyFrame:
    lines = _lines(path, settings)
    if settings.has_header:
        lines = lines.slice(1)
    fields = [
        pl.col("_line").str.slice(start, end - start).str.strip_chars().alias(name)
        for name, (start, end) in settings.fixed_columns.items()
    ]
    return lines.select(fields).with_columns(pl.all().replace("", None))


def _whitespace(path: str, settings: SourceSettings) -> pl.LazyFrame:
    lines = _lines(path, settings)
    parts = pl.col("_line").str.strip_chars().str.replace_all(r"\s+", "\x1f").str.split("\x1f")
    split = lines.select(parts.alias("_parts"))
    if settings.has_header:
        header = split.head(1).collect()
        names = header["_parts"][0].to_list() if header.height else []
        split = split.slice(1)
    else:
        width = split.select(pl.col("_parts").list.len().max()).collect().item() or 0
        names = [f"column_{i + 1}" for i in range(width)]
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
    return explain_read_error(path, exc, separator, settings.quote_char, settings.skip_rows, settings.encoding)


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


# Columns without which a source means nothing; the others are null when a source lacks them.
REQUIRED: dict[str, frozenset[str]] = {
    "customers": frozenset({"customer_id"}),
    "transactions": frozenset({"invoice_id", "customer_id", "invoiced_at", "quantity", "unit_price"}),
    "engagement": frozenset({"customer_id", "event_at", "event_type"}),
    "surveys": frozenset({"customer_id", "answered_at", "question_id", "answer"}),
    "campaigns": frozenset({"campaign_id", "customer_id", "arm", "exposed_at", "responded"}),
    "snapshot": frozenset({"customer_id", "recency_days", "spend", "purchases"}),
}
_IDENTIFIER = re.compile(r"^[\w .-]+$")


def _sql_expr(text: str, frame: pl.DataFrame, source: str, key: str, path: str) -> pl.Expr:
    where = f"{path}: source {source!r}, column mapping {key!r}"
    problem = expression_problem(text)
    if problem:  # refused before polars parses it: nothing outside the file's columns is read
        raise SourceError(f"{where}: expression {text!r} {problem}")
    try:
        expr = pl.sql_expr(text)
        frame.head(0).select(expr)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the source and key
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "'String' datatypes" in message or "String" in message and "not allowed" in message:
            text_columns = [c for c in frame.columns if frame.schema[c] == pl.String and c in text]
            message = (
                f"arithmetic on text columns {text_columns} (delimited text is read as text): "
                "write a CAST, e.g. CAST(Amount AS DOUBLE) / CAST(Qty AS DOUBLE)"
            )
        raise SourceError(f"{where}: cannot evaluate expression {text!r}: {message}") from exc
    return expr


def _mapped_expr(name: str, theirs: str, frame: pl.DataFrame, source: str, path: str) -> pl.Expr | None:
    if theirs in frame.columns:
        return pl.col(theirs)
    if not _IDENTIFIER.match(theirs) or theirs.startswith("="):
        return _sql_expr(theirs.removeprefix("="), frame, source, name, path)
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


@dataclass(frozen=True)
class CastOptions:
    """How text becomes typed values; from :class:`SourceSettings`."""

    date_format: str | None = None
    datetime_format: str | None = None
    decimal_comma: bool = False
    timezone: str | None = None
    epoch_unit: str | None = None

    @classmethod
    def of(cls, settings: SourceSettings) -> CastOptions:
        return cls(settings.date_format, settings.datetime_format, settings.decimal_comma, settings.timezone,
                   settings.epoch_unit)  # fmt: skip


def _to_utc_naive(expr: pl.Expr, timezone: str | None) -> pl.Expr:
    if timezone is None:
        return expr
    local = expr.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC").dt.replace_time_zone(None)


# Without a configured format, text dates must be ISO 8601. polars would otherwise infer a format
# from the first value, so one "01/03/2024" at the top would silently re-read the whole column.
ISO_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
# ISO 8601 with a zone designator ("Z", "+02:00", "+0200"): an instant, converted to UTC.
ISO_ZONED_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z", "%Y-%m-%d %H:%M%#z")
# A leap second (23:59:60) is valid UTC text, but no datetime type holds it: polars would roll it
# into the next minute, and at a month's last second into the next month.
LEAP_SECOND = r"\d:\d\d:60"
# A field longer than this is a broken export (a missing quote swallowing the rest of the file),
# not a value; and a NUL byte is never text.
MAX_FIELD_CHARS = 100_000
_INTEGER_BOUNDS = {pl.Int8: 2**7, pl.Int16: 2**15, pl.Int32: 2**31, pl.Int64: 2**63}


def _iso_datetime(text: pl.Expr, time_unit: str, timezone: str | None = None) -> pl.Expr:
    naive = pl.coalesce([text.str.to_datetime(f, time_unit=time_unit, strict=False) for f in ISO_DATETIME_FORMATS])
    zoned = pl.coalesce([text.str.to_datetime(f, time_unit=time_unit, strict=False) for f in ISO_ZONED_FORMATS])
    return pl.coalesce(_to_utc_naive(naive, timezone), zoned.dt.replace_time_zone(None))


def _exact_integer(values: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Numbers to an integer type only when nothing is lost: finite, whole and in range.

    A plain cast truncates 2.7 to 2 and fails the whole frame on inf or 1e30; here such a value
    becomes null, which the caller records as a cast failure of its row."""
    bound = _INTEGER_BOUNDS.get(type(dtype), 2**63)
    exact = values.is_finite() & (values == values.round(0)) & (values >= -bound) & (values < bound)
    return pl.when(exact).then(values).otherwise(None).cast(dtype, strict=False)


def _text_cast(text: pl.Expr, dtype: pl.DataType, options: CastOptions) -> pl.Expr:
    if dtype == pl.Date:
        if options.date_format:
            return text.str.to_date(options.date_format, strict=False)
        return pl.coalesce(text.str.to_date("%Y-%m-%d", strict=False), _iso_datetime(text, "us").dt.date())
    if isinstance(dtype, pl.Datetime):
        unit = dtype.time_unit
        if options.datetime_format:
            parsed = text.str.to_datetime(options.datetime_format, time_unit=unit, strict=False)
        elif options.date_format:  # a date-only column read into a timestamp: midnight
            parsed = text.str.to_date(options.date_format, strict=False).cast(dtype)
        else:
            return pl.when(text.str.contains(LEAP_SECOND)).then(None).otherwise(
                _iso_datetime(text, unit, options.timezone)
            )
        return _to_utc_naive(parsed, options.timezone)
    if dtype == pl.Boolean:
        lowered = text.str.to_lowercase()
        truthy = lowered.is_in(["true", "1", "yes", "y", "t"])
        falsy = lowered.is_in(["false", "0", "no", "n", "f"])
        return pl.when(truthy).then(True).when(falsy).then(False).otherwise(None)
    if options.decimal_comma and dtype.is_numeric():
        text = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    if dtype.is_integer():
        # Exact integers first (a float cannot hold every Int64), then "3.0" from spreadsheets, never "3.5".
        return pl.coalesce(text.cast(dtype, strict=False), _exact_integer(text.cast(pl.Float64, strict=False), dtype))
    if dtype == pl.String:
        return pl.when(_bad_text(text)).then(None).otherwise(text)
    return text.cast(dtype, strict=False)


def _bad_text(text: pl.Expr) -> pl.Expr:
    return text.str.contains("\x00", literal=True) | (text.str.len_bytes() > MAX_FIELD_CHARS)


def _typed_cast(col: pl.Expr, dtype: pl.DataType, raw_dtype: pl.DataType, options: CastOptions) -> pl.Expr:
    """A typed (Parquet, Excel, SQL) value to the canonical type, refusing lossy readings."""
    if raw_dtype == pl.Boolean and dtype != pl.Boolean:
        return pl.lit(None, dtype=dtype)  # true is not 1 item, nor customer "true"
    if raw_dtype.is_numeric() and dtype == pl.Boolean:
        return pl.when(col == 1).then(True).when(col == 0).then(False).otherwise(None)
    if raw_dtype.is_float() and dtype == pl.String:
        # A float id: 1.0 is "1" (its digits, not "1.0"); 1.5 is no id.
        return _exact_integer(col, pl.Int64()).cast(pl.String)
    if (raw_dtype.is_float() or raw_dtype.is_decimal()) and dtype.is_integer():
        return _exact_integer(col.cast(pl.Float64), dtype)
    if raw_dtype.is_integer() and dtype.is_temporal():
        if options.epoch_unit is None:
            return pl.lit(None, dtype=dtype)  # seconds, ms or us since 1970? Guessing is silently wrong.
        return pl.from_epoch(col, time_unit=options.epoch_unit).cast(dtype)
    cast = col.cast(dtype, strict=False)
    return _to_utc_naive(cast, options.timezone) if isinstance(dtype, pl.Datetime) else cast


def _cast_expr(
    name: str, dtype: pl.DataType, raw_dtype: pl.DataType, options: CastOptions = CastOptions()
) -> pl.Expr:
    col = pl.col(name)
    if isinstance(raw_dtype, pl.Datetime) and raw_dtype.time_zone is not None:
        # A zoned instant: stored as naive UTC, whatever zone it was delivered in.
        return col.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(dtype, strict=False)
    if raw_dtype == pl.String:
        return _text_cast(col.str.strip_chars(), dtype, options)
    if raw_dtype == dtype:
        return _to_utc_naive(col, options.timezone) if isinstance(dtype, pl.Datetime) else col
    return _typed_cast(col, dtype, raw_dtype, options)


def _failure_reason(name: str, dtype: pl.DataType, raw_dtype: pl.DataType, options: CastOptions) -> pl.Expr:
    """Why a value of ``name`` failed to cast, in words; the value itself is never quoted (it may be
    personal data) - the quarantined record keeps it, PII masked."""
    head = f"column {name!r}: "
    if raw_dtype == pl.String:
        text = pl.col(name).str.strip_chars()
        size = pl.col(name).str.len_chars()
        generic = pl.format(head + "cannot cast a value of length {} to " + f"{dtype} (value masked)", size)
        return (
            pl.when(pl.col(name).str.contains("\x00", literal=True))
            .then(pl.lit(head + "holds a NUL byte (binary data, or a wrong encoding)"))
            .when(pl.col(name).str.len_bytes() > MAX_FIELD_CHARS)
            .then(pl.format(head + "a value of length {}, over the limit of " + f"{MAX_FIELD_CHARS:,}", size))
            .when(pl.lit(isinstance(dtype, pl.Datetime)) & text.str.contains(LEAP_SECOND))
            .then(pl.lit(head + "a leap second (:60) cannot be stored; it would move to the next minute"))
            .otherwise(generic)
        )
    if raw_dtype == pl.Boolean:
        return pl.lit(head + f"a {raw_dtype} (true/false) is not a {dtype}")
    if raw_dtype.is_integer() and dtype.is_temporal():
        return pl.lit(head + f"an integer ({raw_dtype}) is no {dtype} unless the source sets epoch_unit "
                      "(s, ms, us or ns since 1970)")  # fmt: skip
    if raw_dtype.is_numeric() and (dtype.is_integer() or dtype in (pl.String, pl.Boolean)):
        return pl.lit(head + f"a {raw_dtype} value that is not an exact {dtype} (not finite, fractional or out "
                      "of range; never truncated)")  # fmt: skip
    return pl.lit(head + f"cannot read a {raw_dtype} value as {dtype} (value masked)")


# Sources whose optional columns are attributes of a customer: one that cannot be read is set to
# null and recorded (then imputed where imputation covers it), never a reason to drop the customer.
ATTRIBUTE_SOURCES = frozenset({"customers", "snapshot"})
RECODED_TYPE = pl.List(pl.Struct({"column": pl.String(), "value": pl.String()}))


def cast_to_schema(frame: pl.LazyFrame, source: str, options: CastOptions = CastOptions()) -> pl.LazyFrame:
    """Cast canonical columns to their types; record the first failing cast per row.

    A failure quarantines the row (``_parse_error``), except in an optional attribute of a
    customer (``ATTRIBUTE_SOURCES``): that value is nulled and listed in ``_recoded``. A NUL byte or
    an overlong field is corruption, not a bad attribute, and quarantines the row wherever it is."""
    canonical = SOURCES[source]
    schema = frame.collect_schema()
    casts = {name: _cast_expr(name, dtype, schema[name], options) for name, dtype in canonical.items()}
    failed = {name: pl.col(name).is_not_null() & expr.is_null() for name, expr in casts.items()
              if schema[name] not in (pl.Null,) and not (schema[name] == canonical[name] != pl.String)}  # fmt: skip
    optional = {n for n in failed if source in ATTRIBUTE_SOURCES and n not in REQUIRED[source]}
    errors = [
        pl.when(hit & (pl.lit(name not in optional) | _bad_text(pl.col(name).cast(pl.String)))).then(
            _failure_reason(name, canonical[name], schema[name], options)
        )
        for name, hit in failed.items()
    ]
    recoded = [
        pl.when(failed[name] & ~_bad_text(pl.col(name).cast(pl.String))).then(
            pl.struct(pl.lit(name).alias("column"), pl.col(name).cast(pl.String).str.slice(0, 200).alias("value"))
        )
        for name in sorted(optional)
    ]
    parse_error = pl.coalesce(errors) if errors else pl.lit(None, dtype=pl.String)
    recoded_list = (
        pl.concat_list(recoded).list.drop_nulls() if recoded else pl.lit(None, dtype=RECODED_TYPE)
    )
    recoded_list = pl.when(recoded_list.list.len() > 0).then(recoded_list).cast(RECODED_TYPE)
    return frame.with_columns(parse_error.alias("_parse_error"), recoded_list.alias("_recoded")).with_columns(
        [expr.alias(name) for name, expr in casts.items()]
    )


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
        failed = raw.is_not_null() & _cast_expr(name, canonical[name], schema[name], options).is_null()
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
            if stats.schema.get(f"{name}|raw") not in (None, pl.String):
                hint = f" (the file holds {stats.schema[f'{name}|raw']}; see epoch_unit for integer times)"
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


def _derive(frame: pl.LazyFrame, source: str, settings: SourceSettings, derive_invoice: bool) -> pl.LazyFrame:
    """Fill what the source lacks, and convert currency (after casting, on canonical columns)."""
    if derive_invoice:
        day = pl.col("invoiced_at").dt.date().cast(pl.String)
        frame = frame.with_columns(
            pl.when(pl.col("customer_id").is_not_null() & day.is_not_null())
            .then(pl.format("{}/{}", day, pl.col("customer_id").str.strip_chars()))
            .alias("invoice_id")
        )
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
    from segflow.lib import sql_source

    if window is None:
        raise SourceError(f"source {source!r}: a SQL source needs the partition window (:start, :end)")
    uri = settings.uri or settings.location
    label = sql_source.redact(uri)
    try:
        frame = sql_source.read_query(uri, settings.query, start=window[0], end=window[1])
    except Exception as exc:  # noqa: BLE001 - re-raised naming the database, never its password
        raise SourceError(f"{label}: source {source!r}: query failed: {exc}") from exc
    return label, frame.lazy()


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
            raise SourceError(f"{label}: cannot read source {source!r}: {_explain(path, exc, settings)}") from exc
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
