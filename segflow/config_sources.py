"""What a source's settings are: where its files (or database) live, how to read them, how their
columns map onto canonical names, the files joined onto them, and what makes them unusable.

:class:`SourceSettings` (and :class:`JoinSettings`) are the ``sources`` section of the settings
(:mod:`segflow.config`, which loads them from YAML and resolves their paths); ``problems()`` says
what is wrong with one, in the words the settings file uses, before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segflow.lib.periods import is_period

FILE_FORMATS = ("parquet", "csv", "tsv", "excel", "fixed_width", "whitespace")
SOURCE_FORMATS = (*FILE_FORMATS, "sql")
SQL_SCHEMES = ("sqlite://", "postgresql://", "postgres://")
JOIN_KINDS = ("left", "exists")


@dataclass(frozen=True)
class JoinSettings:
    """Another file joined onto every file of a source before its columns are mapped, so that a
    mapping can name the joined file's columns (``category: DEPARTMENT`` from a product table).

    ``how: left`` is a lookup: the joined file holds one row per key (checked), and its columns
    are added to each row (null where no key matches). ``how: exists`` adds one boolean column,
    ``flag``, true where the joined file holds the key at least once (an exposure that was
    redeemed). ``on`` is a column name, a list of them, or ``{their_column: joined_column}``.
    ``format`` defaults to the source's, and so do the text options (separator, encoding ...).
    """

    location: str = ""
    on: str | list[str] | dict[str, str] = field(default_factory=list)
    how: str = "left"
    format: str | None = None
    columns: list[str] | None = None  # left: the joined file's columns to add (default: all but the keys)
    flag: str | None = None  # exists: the name of the boolean column

    def keys(self) -> list[tuple[str, str]]:
        """(source column, joined column) pairs."""
        if isinstance(self.on, str):
            return [(self.on, self.on)]
        if isinstance(self.on, dict):
            return [(str(a), str(b)) for a, b in self.on.items()]
        return [(str(k), str(k)) for k in self.on]

    def problems(self) -> list[str]:
        out = []
        if not isinstance(self.location, str) or not self.location.strip():
            out.append("location: a joined file needs a location")
        elif "{" in self.location:
            out.append(f"location: {self.location!r}: a joined file is one file (or glob) for every month, "
                       "without {landing} or {period}")  # fmt: skip
        if not self.on or not isinstance(self.on, str | list | dict):
            out.append("on: a column name, a list of names or {their_column: joined_column}")
        if self.how not in JOIN_KINDS:
            out.append(f"how: {self.how!r} is not one of {list(JOIN_KINDS)}")
        if self.how == "exists" and not self.flag:
            out.append("flag: how exists needs `flag`, the name of the boolean column it adds")
        if self.format is not None and self.format not in FILE_FORMATS:
            out.append(f"format: {self.format!r} is not one of {list(FILE_FORMATS)}")
        return out


@dataclass(frozen=True)
class SourceSettings:
    """Where one source lives, how to read it, and how its columns map onto canonical names.

    ``location`` may contain ``{landing}`` and ``{period}`` (YYYY-MM): with ``{period}`` there is one
    file per month, without it one file (or glob) holds every month and rows are placed in months by
    ``time_column``. ``columns`` maps a canonical name to the user's column name or to an SQL
    expression over the user's columns (``"Qty * 1"``, ``"'web'"``). See docs/use-your-own-data.md.
    """

    location: str = ""
    format: str = "parquet"  # one of SOURCE_FORMATS
    columns: dict[str, str] = field(default_factory=dict)
    # Delimited text (csv, tsv). Every value is read as text and cast once, so nothing is guessed.
    csv_separator: str = ","  # tsv: a tab, whatever this says
    quote_char: str | None = '"'  # null: no quoting at all
    encoding: str = "utf8"  # any Python codec: latin-1, cp1252, utf-16 ...
    decimal_comma: bool = False  # "1.234,5" means 1234.5 (numbers only; "." is a thousands mark)
    has_header: bool = True  # false: columns are named column_1, column_2, ... (fixed_width: ignored)
    skip_rows: int = 0  # lines before the header (titles, export banners)
    # Text to date/time, polars strftime formats; null means ISO 8601 (2024-03-01, 2024-03-01 10:00:00).
    date_format: str | None = None  # e.g. "%d-%m-%Y"
    datetime_format: str | None = None  # e.g. "%d/%m/%Y %H:%M"
    # Integer timestamps (Parquet, SQL): the unit since 1970, "s", "ms", "us" or "ns". Null: an
    # integer in a date or time column is refused, since guessing the unit is silently wrong.
    epoch_unit: str | None = None
    # excel: a sheet name, a list of names stacked in order, "*" for every sheet; null: the first.
    sheets: str | list[str] | None = None
    # fixed_width: their column name -> [start, end) character offsets, 0-based.
    fixed_columns: dict[str, list[int]] = field(default_factory=dict)
    # sql: a database URI (sqlite:///relative.db, sqlite:////abs.db, postgresql://user@host:port/db)
    # and a query taking the partition window as bound parameters :start and :end (and :period).
    uri: str = ""
    query: str = ""
    # transactions: an SQL expression over their columns that is true on cancellation lines; null
    # means the invoice id starts with "C". Carried to cleaning as the boolean `_is_cancellation`.
    cancellation: str | None = None
    timezone: str | None = None  # naive timestamps are in this zone; all are stored as naive UTC
    currency: str | None = None  # the currency of money columns as delivered (recorded only)
    currency_rate: float = 1.0  # money columns (unit_price, income) are multiplied by this
    time_column: str | None = None  # the canonical column placing a row in a month (default per source)
    starts: str | None = None  # YYYY-MM: the first month with data; earlier months are expected empty
    # Files joined onto this one before mapping (JoinSettings): line items to products, exposures to
    # redemptions. File formats only; a SQL source joins in its query.
    joins: tuple[JoinSettings, ...] = ()
    enabled: bool = True

    def problems(self, source: str) -> list[str]:
        """What is wrong with these settings for ``source`` (empty when usable)."""
        from segflow.lib.schema import SOURCES  # lazy: keeps config importable without polars loaded

        out = []
        if self.format not in SOURCE_FORMATS:
            out.append(f"format: {self.format!r} is not one of {list(SOURCE_FORMATS)}")
        canonical = SOURCES.get(source, {})
        unknown = sorted(set(self.columns) - set(canonical))
        if unknown:
            out.append(f"columns: unknown canonical name(s) {unknown}; known are {list(canonical)}")
        bad_values = sorted(k for k, v in self.columns.items() if not isinstance(v, str) or not v.strip())
        if bad_values:
            out.append(f"columns: {bad_values} must map to a column name or an expression string")
        if self.time_column is not None:
            temporal = [c for c, t in canonical.items() if t.is_temporal()]
            if self.time_column not in temporal:
                out.append(
                    f"time_column: {self.time_column!r} is not one of this source's time columns {temporal}"
                )
        if self.epoch_unit not in (None, "s", "ms", "us", "ns"):
            out.append(f"epoch_unit: {self.epoch_unit!r} is not one of 's', 'ms', 'us', 'ns'")
        if self.starts is not None and not is_period(self.starts):
            out.append(f"starts: {self.starts!r} is not a month YYYY-MM")
        if self.format == "sql":
            if not (self.uri or self.location):
                out.append("format sql needs `uri` (or `location`) naming the database")
            if not self.query.strip():
                out.append("format sql needs `query`, with :start and :end as bound parameters")
            uri = self.uri or self.location
            if uri and not uri.startswith(SQL_SCHEMES):
                out.append(
                    f"uri: {uri.split('://')[0]!r} is not a supported database; use {list(SQL_SCHEMES)}"
                )
        if self.format == "fixed_width":
            spans = [v for v in self.fixed_columns.values()]
            if not spans:
                out.append("format fixed_width needs `fixed_columns`: {their_name: [start, end], ...}")
            if any(not isinstance(v, list | tuple) or len(v) != 2 or not all(isinstance(i, int) for i in v)
                   or not 0 <= v[0] < v[1] for v in spans):  # fmt: skip
                out.append("fixed_columns: every span must be [start, end] with 0 <= start < end")
        if self.encoding:
            import codecs

            try:
                codecs.lookup(self.encoding)
            except LookupError:
                out.append(f"encoding: {self.encoding!r} is not a known text encoding")
        if not isinstance(self.currency_rate, int | float) or not self.currency_rate > 0:
            out.append(f"currency_rate: {self.currency_rate!r} must be a positive number")
        if self.timezone is not None:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                out.append(f"timezone: {self.timezone!r} is not an IANA time zone (e.g. Europe/London)")
        if self.joins and self.format == "sql":
            out.append("joins: a SQL source joins in its query")
        for i, join in enumerate(self.joins):
            out += [f"joins[{i}].{problem}" for problem in join.problems()]
        if source != "transactions" and self.cancellation is not None:
            out.append("cancellation: only the transactions source has cancellations")
        return out


def default_sources() -> dict[str, SourceSettings]:
    """The demo's landing zone: one file per source and month."""
    return {
        "customers": SourceSettings("{landing}/crm_customers/{period}.csv", format="csv"),
        "transactions": SourceSettings("{landing}/transactions/{period}.parquet"),
        "engagement": SourceSettings("{landing}/engagement/{period}.parquet"),
        "surveys": SourceSettings("{landing}/surveys/{period}.parquet"),
        "campaigns": SourceSettings("{landing}/campaigns/{period}.parquet"),
        # Off unless configured: per-customer behaviour from a CRM export, for data without line items.
        "snapshot": SourceSettings("{landing}/snapshot/{period}.parquet", enabled=False),
    }
