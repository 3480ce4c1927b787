"""Text and typed values to segflow's canonical column types, with every failure kept per row.

A cast never fails a frame and never loses information silently: a value that cannot be read
exactly becomes null, and its row says why (``_parse_error``, which quarantines it), or, for an
optional attribute of a customer, which value was set aside (``_recoded``: the customer is kept).
What counts as exact:

* integers: finite, whole and within the type's range (2.7, inf and 1e30 are refused, never
  truncated or overflowed);
* a float id is its digits (1.0 is "1"); a boolean is never a number; 0/1 are the only numeric
  booleans; an integer is a timestamp only with ``epoch_unit`` (seconds, ms, us or ns since 1970);
* text dates are ISO 8601 (with ``Z`` or an offset, converted to UTC) unless a format is set;
  a leap second (``23:59:60``) has no datetime and is refused rather than moved to the next minute;
* text with a NUL byte, or longer than ``MAX_FIELD_CHARS``, is corruption wherever it is.

A reason names the column and the type, never the value: it may be personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from segflow.config_sources import SourceSettings
from segflow.lib.schema import SOURCES

# Columns without which a source means nothing; the others are null when a source lacks them.
REQUIRED: dict[str, frozenset[str]] = {
    "customers": frozenset({"customer_id"}),
    "transactions": frozenset({"invoice_id", "customer_id", "invoiced_at", "quantity", "unit_price"}),
    "engagement": frozenset({"customer_id", "event_at", "event_type"}),
    "surveys": frozenset({"customer_id", "answered_at", "question_id", "answer"}),
    "campaigns": frozenset({"campaign_id", "customer_id", "arm", "exposed_at", "responded"}),
    "snapshot": frozenset({"customer_id", "recency_days", "spend", "purchases"}),
}


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
# ISO 8601 with a zone designator ("Z", "+02:00", "+0200") and seconds: an instant, converted to
# UTC. Two formats only: each is a parse of every value (polars evaluates all of a coalesce).
ISO_ZONED_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
# A leap second (23:59:60) is valid UTC text, but no datetime type holds it: polars would roll it
# into the next minute, and at a month's last second into the next month.
# A literal ":60" finds it at a tenth of a regex's cost; a minute of 60 is invalid text anyway.
LEAP_SECOND = ":60"
# A field longer than this is a broken export (a missing quote swallowing the rest of the file),
# not a value; and a NUL byte is never text.
MAX_FIELD_CHARS = 100_000
_INTEGER_BOUNDS = {pl.Int8: 2**7, pl.Int16: 2**15, pl.Int32: 2**31, pl.Int64: 2**63}


def _iso_datetime(text: pl.Expr, time_unit: str, timezone: str | None = None) -> pl.Expr:
    naive = pl.coalesce(
        [text.str.to_datetime(f, time_unit=time_unit, strict=False) for f in ISO_DATETIME_FORMATS]
    )
    zoned = pl.coalesce(
        [text.str.to_datetime(f, time_unit=time_unit, strict=False) for f in ISO_ZONED_FORMATS]
    )
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
            parsed = _to_utc_naive(
                text.str.to_datetime(options.datetime_format, time_unit=unit, strict=False), options.timezone
            )
        elif options.date_format:  # a date-only column read into a timestamp: midnight
            parsed = _to_utc_naive(
                text.str.to_date(options.date_format, strict=False).cast(dtype), options.timezone
            )
        else:
            parsed = _iso_datetime(text, unit, options.timezone)
        return pl.when(text.str.contains(LEAP_SECOND, literal=True)).then(None).otherwise(parsed)
    if dtype == pl.Boolean:
        lowered = text.str.to_lowercase()
        truthy = lowered.is_in(["true", "1", "yes", "y", "t"])
        falsy = lowered.is_in(["false", "0", "no", "n", "f"])
        return pl.when(truthy).then(True).when(falsy).then(False).otherwise(None)
    if options.decimal_comma and dtype.is_numeric():
        text = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    if dtype.is_integer():
        # Exact integers first (a float cannot hold every Int64), then "3.0" from spreadsheets, never "3.5".
        return pl.coalesce(
            text.cast(dtype, strict=False), _exact_integer(text.cast(pl.Float64, strict=False), dtype)
        )
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


def cast_expr(
    name: str, dtype: pl.DataType, raw_dtype: pl.DataType, options: CastOptions = CastOptions()
) -> pl.Expr:
    col = pl.col(name)
    if isinstance(raw_dtype, pl.Datetime) and raw_dtype.time_zone is not None:
        # A zoned instant: stored as naive UTC, whatever zone it was delivered in.
        return col.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(dtype, strict=False)
    if raw_dtype == dtype == pl.String:  # kept as delivered (codes are trimmed by cleaning)
        return pl.when(_bad_text(col)).then(None).otherwise(col)
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
            .when(pl.lit(isinstance(dtype, pl.Datetime)) & text.str.contains(LEAP_SECOND, literal=True))
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


# An unreadable attribute's value is shown in recoded_values (a household size of "5+" is what a
# user needs to see), unless it may be personal data: a mapping to the wrong column can put e-mail
# addresses or names into birth_year. Short values without "@" are shown, the rest masked.
SHOWN_VALUE_CHARS = 24


def _shown_value(text: pl.Expr) -> pl.Expr:
    personal = text.str.contains("@", literal=True) | (text.str.len_chars() > SHOWN_VALUE_CHARS)
    return pl.when(personal).then(pl.format("(masked, length {})", text.str.len_chars())).otherwise(text)


def cast_to_schema(frame: pl.LazyFrame, source: str, options: CastOptions = CastOptions()) -> pl.LazyFrame:
    """Cast canonical columns to their types; record the first failing cast per row.

    A failure quarantines the row (``_parse_error``), except in an optional attribute of a
    customer (``ATTRIBUTE_SOURCES``): that value is nulled and listed in ``_recoded``. A NUL byte or
    an overlong field is corruption, not a bad attribute, and quarantines the row wherever it is."""
    canonical = SOURCES[source]
    schema = frame.collect_schema()
    casts = {name: cast_expr(name, dtype, schema[name], options) for name, dtype in canonical.items()}
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
            pl.struct(pl.lit(name).alias("column"), _shown_value(pl.col(name).cast(pl.String)).alias("value"))
        )
        for name in sorted(optional)
    ]
    parse_error = pl.coalesce(errors) if errors else pl.lit(None, dtype=pl.String)
    recoded_list = pl.concat_list(recoded).list.drop_nulls() if recoded else pl.lit(None, dtype=RECODED_TYPE)
    recoded_list = pl.when(recoded_list.list.len() > 0).then(recoded_list).cast(RECODED_TYPE)
    return frame.with_columns(parse_error.alias("_parse_error"), recoded_list.alias("_recoded")).with_columns(
        [expr.alias(name) for name, expr in casts.items()]
    )


def recoded_counts(frame: pl.DataFrame) -> dict[str, int]:
    """How many values of each optional attribute were set aside (``_recoded``), by column name."""
    columns = frame.select(pl.col("_recoded").explode().struct.field("column")).to_series().drop_nulls()
    counts = columns.value_counts()
    return {row[0]: int(row[1]) for row in counts.sort(by=counts.columns[0]).iter_rows()}
