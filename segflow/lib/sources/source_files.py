"""File-level guards run before a source file is parsed, and the diagnoses run after a parse fails.

polars reports a broken file with a bare message and no place (``invalid utf-8 sequence``, ``found
more fields than defined in 'Schema'``), and reads some broken files without complaint: a
directory as every file inside it, a CR-only file as one long header, a UTF-16 file as text
with NUL bytes between the letters. These helpers turn each case into a :class:`SourceError`
naming the file, the line where there is one, and the fix. The guards read at most the first
``SNIFF_BYTES`` of a file; the diagnoses run only once a read has already failed, so a good file
pays nothing for them.
"""

from __future__ import annotations

import codecs
import csv
import errno
import glob
import os
from pathlib import Path


class SourceError(ValueError):
    """A source that cannot be read at all; the message names the file and what is wrong."""


SNIFF_BYTES = 64 * 1024
_UTF16_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _check_path(path: str) -> None:
    """A path that exists only as a broken link, or is a directory, is an error, never 'no file'."""
    if os.path.islink(path) and not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceError(f"{path}: symbolic link loop (the link points back at itself)") from exc
        raise SourceError(f"{path}: dangling symbolic link to {os.readlink(path)!r}, which does not exist")
    if os.path.isdir(path):
        raise SourceError(
            f"{path}: is a directory, not a file; name the file (or a glob such as {path}/*.csv)"
        )


def resolve_files(location: str) -> list[str]:
    """The files at ``location``: an object-store URI as is, a glob's sorted matches, or the path."""
    if "://" in location:
        return [location]
    if any(ch in location for ch in "*?["):
        matches = sorted(glob.glob(location))
    else:
        matches = [location] if os.path.lexists(location) else []
    for path in matches:
        _check_path(path)
    return matches


def sniff_text(path: str, encoding: str) -> None:
    """Reject, from the file's first bytes, text that would otherwise be misread silently."""
    if "://" in path:
        return
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    utf8 = codecs.lookup(encoding or "utf8").name == "utf-8"
    if utf8 and (head.startswith(_UTF16_BOMS) or head[:2000].count(b"\x00") > len(head[:2000]) // 4):
        raise SourceError(
            f"{path}: looks like UTF-16 or UTF-32 text (a byte-order mark or NUL bytes between the "
            "letters), not UTF-8; set the source's encoding, e.g. encoding: utf-16"
        )
    if b"\r" in head and b"\n" not in head:
        raise SourceError(
            f"{path}: lines end in a bare carriage return (CR, classic Mac); segflow reads LF or CRLF "
            "line endings: convert the file (e.g. tr '\\r' '\\n')"
        )


def first_invalid_byte(path: str, encoding: str) -> str:
    """Where ``path`` first fails to decode: 'line L, byte offset B (0x..)', or '' if it decodes."""
    decoder = codecs.getincrementaldecoder(encoding or "utf8")()
    line, offset = 1, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += chunk[: exc.start].count(b"\n")
                byte = chunk[exc.start]
                return f"line {line}, byte offset {offset + exc.start} (0x{byte:02x})"
            line += chunk.count(b"\n")
            offset += len(chunk)
    return ""


def first_ragged_row(path: str, separator: str, quote_char: str | None, skip_rows: int, encoding: str) -> str:
    """'line L has N fields, the header M' for the first row wider than the header, or ''.

    Python's csv module, not polars, because polars says only that some row is too wide.
    """
    quoting = {"quotechar": quote_char} if quote_char else {"quoting": csv.QUOTE_NONE}
    with open(path, newline="", encoding=encoding or "utf8", errors="replace") as handle:
        for _ in range(skip_rows):
            handle.readline()
        reader = csv.reader(handle, delimiter=separator, **quoting)
        header = next(reader, [])
        for row in reader:
            if len(row) > len(header):
                return f"line {reader.line_num + skip_rows} has {len(row)} fields, the header {len(header)}"
    return ""


def explain_read_error(path: str, exc: Exception, separator: str, quote_char: str | None,
                       skip_rows: int, encoding: str) -> str:  # fmt: skip
    """The cause of a failed text read in words, with its line where it can be found."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "://" in path or not Path(path).is_file():
        return text
    if "utf-8" in text.lower() or isinstance(exc, UnicodeDecodeError):
        where = first_invalid_byte(path, encoding)
        if where:
            return (f"not valid {encoding or 'utf-8'} at {where}; set the source's encoding "
                    "(e.g. encoding: latin-1 or cp1252)")  # fmt: skip
    if "more fields" in text:
        where = first_ragged_row(path, separator, quote_char, skip_rows, encoding)
        if where:
            return f"a row has more fields than the header: {where} (an unquoted separator?)"
    return text
