"""CSV export of a stored table, safe to open in a spreadsheet.

- **Formula guard.** A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is run as a formula by Excel, LibreOffice and Google Sheets (CSV injection). Such a cell
  gets a leading single quote, and every text cell is quoted, as OWASP's CSV injection guidance
  recommends. Numbers, dates and booleans are typed values, never formulas, and are left as they are.
- **Nested columns** (lists, structs, such as ``customer_profiles.category_revenue``) have no CSV
  form; they are written as JSON text, which starts with ``[`` or ``{`` and so is never a formula.
- **Floats** are written rounded to 12 significant digits (from 0.001 to 10^12): money reads
  ``12.34``, not ``12.340000000000002``. Twelve digits keep cents exact up to ten thousand million and leave
  rates and probabilities far more precision than any reader uses.

Hand-written because polars' CSV writer has no formula guard, and no CSV library we depend on has
one either; the rules are a few expressions.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segflow.lib import storage

FORMULA_START = r"^[=+\-@\t\r]"
FLOAT_DIGITS = 12
_LIST_FIELD = "v"  # a list is encoded inside a one-field struct, then unwrapped


def _json_text(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(dtype, pl.Struct):
        encoded = column.struct.json_encode()
    else:
        # polars encodes structs only: wrap the list as {"v": [...]} and take the [...] back out.
        wrapped = pl.struct(column.alias(_LIST_FIELD)).struct.json_encode()
        encoded = wrapped.str.strip_prefix(f'{{"{_LIST_FIELD}":').str.strip_suffix("}")
    return pl.when(column.is_null()).then(None).otherwise(encoded).alias(name)


def _guarded(expr: pl.Expr, name: str) -> pl.Expr:
    return pl.when(expr.str.contains(FORMULA_START)).then(pl.lit("'") + expr).otherwise(expr).alias(name)


def _rounded(name: str) -> pl.Expr:
    # Rounding scales by a power of ten; between 1e-3 and 1e12 that power is exact in binary, so the
    # rounded value prints as its 12-digit decimal. Outside that range the scale itself would add
    # noise, and those values (p-values, tiny rates) carry none from summation anyway: left as they are.
    column = pl.col(name)
    in_range = column.abs().is_between(1e-3, 1e12, closed="left")
    return pl.when(in_range).then(column.round_sig_figs(FLOAT_DIGITS)).otherwise(column).alias(name)


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with nested columns as JSON text, text cells formula-guarded and floats rounded."""
    columns = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List | pl.Array | pl.Struct):
            columns.append(_json_text(name, dtype))
        elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            columns.append(_guarded(pl.col(name).cast(pl.String), name))
        elif dtype.is_float():
            columns.append(_rounded(name))
        else:
            columns.append(pl.col(name))
    return frame.select(columns)


def write_csv(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as CSV (``csv_ready``; text quoted), atomically."""
    ready = csv_ready(frame)
    return storage.atomic_write(path, lambda tmp: ready.write_csv(tmp, quote_style="non_numeric"))
