"""Sources built from several files joined on keys (``SourceSettings.joins``), lazily, with polars.

Real multi-table exports keep what segflow needs in more than one file: line items name a product
whose category is in a product table, and a campaign's exposures are in one file and its coupon
redemptions in another. A join runs on each file of a source before its columns are mapped, so the
mapping (``category: DEPARTMENT``, ``responded: redeemed``) reads joined columns like its own.

Two kinds, both keeping every row of the source, in its order (row numbers stay the file's):

* ``left``: a lookup. The joined file must hold each key once, or the join would repeat the
  source's rows; a repeated key raises :class:`SourceError` naming the file, the key and a value.
  Rows without a match get nulls, never a made-up value.
* ``exists``: a boolean ``flag``, true where the joined file holds the row's key at least once.

Keys are compared as trimmed text on both sides, so a product id read as an integer from Parquet
matches the same id read as text from CSV.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Callable

import polars as pl

from segflow.config_sources import JoinSettings, SourceSettings

Reader = Callable[[str, SourceSettings], list[tuple[str, pl.LazyFrame]]]


class JoinError(ValueError):
    """A join that cannot be made; the message names the files and the key (ingest re-raises it
    as a SourceError)."""


def _key(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.strip_chars()


def _joined_file(join: JoinSettings, settings: SourceSettings, read: Reader, label: str) -> pl.LazyFrame:
    paths = sorted(glob.glob(join.location)) if any(c in join.location for c in "*?[") else [join.location]
    options = dataclasses.replace(settings, format=join.format or settings.format, joins=())
    frames = [frame for path in paths for _, frame in read(path, options)]
    if not frames:
        raise JoinError(f"{label}: joined file {join.location!r} matches no file")
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _check_columns(schema: pl.Schema, wanted: list[str], file: str, role: str) -> None:
    missing = [c for c in wanted if c not in schema]
    if missing:
        raise JoinError(f"{file}: {role} column(s) {missing} not found; available columns: {list(schema)}")


def _unique_keys(right: pl.LazyFrame, names: list[str], keys: list[str], file: str) -> None:
    """A lookup must hold each key once: otherwise every matching source row would be repeated.
    ``names`` are the trimmed-text key columns, ``keys`` the file's own names for them."""
    repeated = right.group_by(names).len().filter(pl.col("len") > 1).sort(names).head(1).collect()
    if repeated.height:
        row = repeated.row(0, named=True)
        value = ", ".join(f"{k}={row[n]!r}" for k, n in zip(keys, names, strict=True))
        raise JoinError(
            f"{file}: a `how: left` join needs one row per key {keys}, but {value} appears "
            f"{row['len']} times; use `how: exists` for a yes/no flag, or deduplicate the file"
        )


def apply_join(
    frame: pl.LazyFrame, join: JoinSettings, settings: SourceSettings, read: Reader, label: str
) -> pl.LazyFrame:
    """``frame`` (one file of a source, as read) with ``join`` applied; see the module docstring."""
    right = _joined_file(join, settings, read, label)
    left_schema, right_schema = frame.collect_schema(), right.collect_schema()
    left_keys, right_keys = [a for a, _ in join.keys()], [b for _, b in join.keys()]
    _check_columns(left_schema, left_keys, label, "join key")
    _check_columns(right_schema, right_keys, join.location, "join key")
    # Joined on trimmed text under private names, so neither side's own columns change type.
    names = [f"_join_key_{i}" for i in range(len(left_keys))]
    left = frame.with_columns(_key(c).alias(n) for c, n in zip(left_keys, names, strict=True))
    right = right.with_columns(_key(c).alias(n) for c, n in zip(right_keys, names, strict=True))
    if join.how == "exists":
        if join.flag in left_schema:
            raise JoinError(f"{label}: flag {join.flag!r} is already a column of the source")
        flags = right.select(names).unique().with_columns(pl.lit(True).alias(join.flag))
        joined = left.join(flags, on=names, how="left", maintain_order="left", nulls_equal=False)
        return joined.with_columns(pl.col(join.flag).fill_null(False)).drop(names)
    added = join.columns if join.columns is not None else [c for c in right_schema if c not in right_keys]
    _check_columns(right_schema, added, join.location, "joined")
    clash = sorted(set(added) & set(left_schema))
    if clash:
        raise JoinError(
            f"{join.location}: joined column(s) {clash} are also columns of {label}; "
            "name the ones to add with `columns:`"
        )
    _unique_keys(right.select(names), names, right_keys, join.location)
    lookup = right.select(*names, *added)
    return left.join(lookup, on=names, how="left", maintain_order="left").drop(names)


def apply_joins(frame: pl.LazyFrame, settings: SourceSettings, read: Reader, label: str) -> pl.LazyFrame:
    """Every join of ``settings`` applied to ``frame``, in the order they are listed."""
    for join in settings.joins:
        frame = apply_join(frame, join, settings, read, label)
    return frame
