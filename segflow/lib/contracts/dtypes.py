"""Contract types against polars dtypes: a ``physicalType`` name parsed, and whether a frame's dtype fits
a column's logical or physical type (the ``schema`` rule)."""

from __future__ import annotations

import re

import polars as pl

from segflow.lib.contracts.model import Column, ContractError


def parse_physical_type(text: str, where: str = "physicalType") -> pl.DataType:
    """Polars dtype from its name: ``String``, ``Int32``, ``Float64``, ``Date``, ``Datetime(us)``..."""
    match = re.fullmatch(r"(\w+)(?:\((\w+)(?:,\s*([\w/+-]+))?\))?", str(text).strip())
    dtype = getattr(pl, match.group(1), None) if match else None
    if not (isinstance(dtype, type) and issubclass(dtype, pl.DataType)):
        raise ContractError(f"{where}: {text!r} is not a polars dtype name")
    if dtype is pl.Datetime:
        return pl.Datetime(match.group(2) or "us", match.group(3))
    return dtype()


def logical_type_matches(logical: str, dtype: pl.DataType) -> bool:
    """Whether a polars dtype is acceptable for an ODCS logical type (any int width, etc.)."""
    if logical == "string":
        return isinstance(dtype, pl.String | pl.Categorical | pl.Enum)
    if logical == "integer":
        return dtype.is_integer()
    if logical == "number":
        return dtype.is_numeric()
    if logical == "boolean":
        return isinstance(dtype, pl.Boolean)
    if logical == "date":
        return isinstance(dtype, pl.Date)
    if logical == "timestamp":
        return isinstance(dtype, pl.Datetime)
    if logical == "array":
        return isinstance(dtype, pl.List | pl.Array)
    return False


def column_type_matches(col: Column, dtype: pl.DataType) -> bool:
    """Whether a polars dtype fits a contract column, element fields of an array included."""
    if col.physical_type is not None:
        if dtype != parse_physical_type(col.physical_type):
            return False
    elif not logical_type_matches(col.logical_type, dtype):
        return False
    if not col.items:
        return True
    inner = dtype.inner
    if not isinstance(inner, pl.Struct):
        return False
    fields = {f.name: f.dtype for f in inner.fields}
    return set(fields) == {f.name for f in col.items} and all(
        column_type_matches(f, fields[f.name]) for f in col.items
    )
