"""Banded demographics: age "25-34", income "50-74K", household size "5+", kept as categories.

Real CRM exports often deliver bands instead of values. segflow never turns a band into a number
(a midpoint is a guess, and an open band such as "65+" or "250K+" has none): a band is a category
in profiles, personas and the demographic feature family. This module only writes every spelling
of a band the same way, tells a band from text that is not one, and orders bands by their lower
bound for display. Hand-written, because no maintained library parses such labels; the forms
accepted are the ones below, nothing is guessed beyond them.

Accepted forms (case and blanks ignored, currency signs and thousands commas dropped):

* a range ``25-34``, ``25 to 34``, ``25–34`` (en dash), ``50-74K``, ``$50,000-$74,999``, ``1-2``;
  a unit (K, M) on the upper bound alone applies to both ("50-74K" is 50K to 74K);
* open above ``65+``, ``65 and over``, ``65 or more``, ``250K+``;
* open below ``Under 15K``, ``less than 15K``, ``below 15``, ``<15K``;
* a single value ``1``, ``2`` (a household size band of one).
"""

from __future__ import annotations

import polars as pl

# Canonical band column -> what it bands (the numeric attribute it would otherwise be).
BAND_COLUMNS: dict[str, str] = {
    "age_band": "age in years",
    "income_band": "yearly household income",
    "household_size_band": "people in the household",
}
BAND_REASON = 'not a band (such as "25-34", "65+", "Under 15K" or "50-74K")'

_NUMBER = r"[$£€]?(\d+(?:\.\d+)?)([KM]?)"
_RANGE = rf"^{_NUMBER}-{_NUMBER}$"
_ABOVE = rf"^{_NUMBER}\+$"
_BELOW = rf"^(?:UNDER|LESS THAN|BELOW|<) ?{_NUMBER}$"
_SINGLE = rf"^{_NUMBER}$"


def canonical(label: pl.Expr) -> pl.Expr:
    """One spelling per band: trimmed, blanks collapsed, dashes and "to" as "-", "and over" as
    "+", "less than" and "<" as "Under ", units upper case ("50-74k" and "50 - 74K" are both
    "50-74K"). Text that is not a band is left as read."""
    text = label.cast(pl.String).str.strip_chars().str.replace_all(r"\s+", " ")
    text = text.str.replace_all(r"[–—]", "-")
    text = text.str.replace(r"(?i)^(\S+) to (\S+)$", "${1}-${2}")
    text = text.str.replace_all(r" ?- ?", "-")
    text = text.str.replace(r"(?i) ?(?:and over|or more|and above|or older|plus)$", "+")
    text = text.str.replace(r" \+$", "+")
    text = text.str.replace(r"(?i)^(?:under|less than|below|<) ?(\d)", "Under ${1}")
    text = text.str.replace_all(r"(\d)([km])\b", "${1}${2}").str.replace_all(r"(\d)k", "${1}K")
    return text.str.replace_all(r"(\d)m\b", "${1}M")


def _amount(number: pl.Expr, unit: pl.Expr) -> pl.Expr:
    scale = pl.when(unit == "K").then(1e3).when(unit == "M").then(1e6).otherwise(1.0)
    return number.cast(pl.Float64, strict=False) * scale


def lower_bound(label: pl.Expr) -> pl.Expr:
    """The band's lower bound (0 for "Under ..."), or null when the label is not a band. Used to
    order bands and to tell them from other text, never as a value of the attribute."""
    text = canonical(label).str.to_uppercase().str.replace_all(",", "")
    ranged = text.str.extract_groups(_RANGE)
    low, low_unit = ranged.struct.field("1"), ranged.struct.field("2")
    high, high_unit = ranged.struct.field("3"), ranged.struct.field("4")
    # "50-74K": the unit written once, on the upper bound, is both bounds' unit.
    unit = pl.when(low_unit == "").then(high_unit).otherwise(low_unit)
    range_low = pl.when(_amount(low, unit) <= _amount(high, high_unit)).then(_amount(low, unit))
    above = text.str.extract_groups(_ABOVE)
    single = text.str.extract_groups(_SINGLE)
    return pl.coalesce(
        range_low,
        _amount(above.struct.field("1"), above.struct.field("2")),
        pl.when(text.str.contains(_BELOW)).then(pl.lit(0.0)),
        _amount(single.struct.field("1"), single.struct.field("2")),
    )


def is_band(label: pl.Expr) -> pl.Expr:
    return lower_bound(label).is_not_null()


def ordered(labels: list[str]) -> list[str]:
    """Band labels from lowest to highest lower bound ("Under 15K" before "15-24K" before "250K+");
    labels that are not bands go last, by name."""
    frame = pl.DataFrame({"label": labels}, schema={"label": pl.String})
    ranked = frame.with_columns(lower_bound(pl.col("label")).alias("low"))
    return ranked.sort(["low", "label"], nulls_last=True)["label"].to_list()
