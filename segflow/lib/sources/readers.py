"""One source file as lazy frames, per format: parquet, csv, tsv, excel (one sheet or several
stacked), fixed_width (character spans) and whitespace (columns aligned by runs of blanks).

Text is read as text, so no type is guessed from the first rows; casting is done once, later, column
by column (:mod:`segflow.lib.sources.casting`). A text file not in UTF-8 is re-encoded first. What
polars would read wrongly without complaint raises :class:`SourceError` naming the file and line:
a line wider than the layout, a repeated header name (see also
:mod:`segflow.lib.sources.source_files`, which sniffs text files before they are read).
"""

from __future__ import annotations

import codecs
import io
import re
from pathlib import Path

import polars as pl

from segflow.config_sources import SourceSettings
from segflow.lib.sources.source_files import SourceError, explain_read_error, sniff_text


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


def _delimited(path: str, settings: SourceSettings) -> pl.LazyFrame:
    """A csv or tsv file, every column as text: casting is done once, column by column, with errors kept."""
    text = _text(path, settings)
    options = {
        "separator": "\t" if settings.format == "tsv" else settings.csv_separator,
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
    return frame


def scan_file(path: str, settings: SourceSettings) -> list[tuple[str, pl.LazyFrame]]:
    """(label, frame) pairs for one file: one pair, or one per Excel sheet."""
    fmt = settings.format
    try:
        if fmt in ("csv", "tsv", "fixed_width", "whitespace"):
            sniff_text(path, settings.encoding)
        if fmt == "parquet":
            return [(path, pl.scan_parquet(path))]
        if fmt in ("csv", "tsv"):
            return [(path, _delimited(path, settings))]
        if fmt == "excel":
            return _excel(path, settings)
        if fmt == "fixed_width":
            return [(path, _fixed_width(path, settings))]
        if fmt == "whitespace":
            return [(path, _whitespace(path, settings))]
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise SourceError(f"{path}: cannot read as {fmt}: {explain(path, exc, settings)}") from exc
    raise SourceError(
        f"{path}: unsupported format {fmt!r} (parquet, csv, tsv, excel, fixed_width, whitespace, sql)"
    )


def explain(path: str, exc: Exception, settings: SourceSettings) -> str:
    separator = "\t" if settings.format == "tsv" else settings.csv_separator
    return explain_read_error(
        path, exc, separator, settings.quote_char, settings.skip_rows, settings.encoding
    )


_DUPLICATED = re.compile(r"^(?P<base>.+)_duplicated_\d+$")


def check_header(label: str, schema: pl.Schema) -> None:
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
