"""Invalid demographic values recoded to null before imputation, with a log of every recode.

A profile's demographics are only as good as the CRM's (and the snapshot's) values. A value that is
impossible (a birth year of 1899, an income of 666,666 above ``cleaning.max_income``) or not one of
the known codes (a gender outside ``GENDERS``, a marital status of "yolo") is set to null, so that
imputation treats it as missing; band labels are written one way first (segflow.lib.profiles.bands).
Every recode is counted per column and logged as one ``RECODED_SCHEMA`` row per (source, column,
rule, value), together with the optional attributes ingest could not read at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from segflow.config import CleaningSettings
from segflow.lib.profiles import bands
from segflow.lib.profiles.cleaning import Cleaned
from segflow.lib.profiles.imputation import CATEGORICAL, NUMERIC
from segflow.lib.schema import CUSTOMERS, EDUCATION_LEVELS, GENDERS, MARITAL_STATUSES, SOURCES

# One row per (source, column, rule, invalid value), with the reason and what became of the cell.
RECODED_SCHEMA = {
    "period": pl.String(),
    "source": pl.String(),
    "column": pl.String(),
    "rule_id": pl.String(),
    "reason": pl.String(),
    "value": pl.String(),
    "rows": pl.Int64(),
    "action": pl.String(),
}


@dataclass(frozen=True)
class _Validity:
    column: str
    rule_id: str
    reason: str
    valid: pl.Expr


def _validity(year: int, settings: CleaningSettings, columns: list[str]) -> list[_Validity]:
    oldest = max(1900, year - settings.max_age_years) if settings.max_age_years is not None else 1900
    youngest = year - settings.min_age_years
    rules = [
        _Validity(
            "birth_year", "implausible_birth_year",
            f"birth year outside {oldest}..{youngest} (age {settings.min_age_years} to "
            f"{year - oldest} in {year})",
            pl.col("birth_year").is_between(oldest, youngest),
        ),
        _Validity(
            "income", "implausible_income", f"income outside 0..{settings.max_income:,.0f} or not finite",
            pl.col("income").is_between(0, settings.max_income) & pl.col("income").is_finite(),
        ),
        _Validity(
            "household_size", "implausible_household_size", "household size outside 1..15",
            pl.col("household_size").is_between(1, 15),
        ),
        _Validity(
            "gender", "unknown_gender", f"gender not in {list(GENDERS)}", pl.col("gender").is_in(GENDERS)
        ),
        _Validity(
            "education", "unknown_education", f"education not in {list(EDUCATION_LEVELS)}",
            pl.col("education").is_in(EDUCATION_LEVELS),
        ),
        _Validity(
            "marital_status", "unknown_marital_status", f"marital status not in {list(MARITAL_STATUSES)}",
            pl.col("marital_status").is_in(MARITAL_STATUSES),
        ),
        _Validity(
            "children", "implausible_children", "children outside 0..15", pl.col("children").is_between(0, 15)
        ),
    ]  # fmt: skip
    rules += [
        _Validity(column, "unparseable_band", f"{column}: {bands.BAND_REASON}", bands.is_band(pl.col(column)))
        for column in bands.BAND_COLUMNS
    ]
    return [r for r in rules if r.column in columns]


_IMPUTED_ACTION = "set to null, then imputed by a model (flagged *_imputed)"
_NULL_ACTION = "set to null (unknown)"


def recode_invalid(
    customers: pl.DataFrame,
    year: int,
    settings: CleaningSettings,
    period: str,
    snapshot_columns: tuple[str, ...],
) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """Null out impossible demographic values so imputation treats them as missing; band labels
    are written one way first (segflow.lib.profiles.bands), and text that is no band is recoded.

    Returns the recoded frame, counts per column, and one RECODED_SCHEMA row per invalid value;
    ``snapshot_columns`` are the columns the snapshot source delivered (the rest are the CRM's).
    """
    customers = customers.with_columns(
        bands.canonical(pl.col(c)).alias(c) for c in bands.BAND_COLUMNS if c in customers.columns
    )
    rules = _validity(year, settings, customers.columns)
    bad = {r.column: pl.col(r.column).is_not_null() & ~r.valid.fill_null(False) for r in rules}
    counts = customers.select([expr.sum().alias(c) for c, expr in bad.items()]).row(0, named=True)
    log = _invalid_values(customers, rules, bad, period, snapshot_columns)
    recoded = customers.with_columns(
        [
            pl.when(r.valid.fill_null(False)).then(pl.col(r.column)).otherwise(None).alias(r.column)
            for r in rules
        ]
    )
    return recoded, {k: int(v) for k, v in counts.items()}, log


def _invalid_values(
    customers: pl.DataFrame,
    rules: list[_Validity],
    bad: dict[str, pl.Expr],
    period: str,
    snapshot_columns: tuple[str, ...],
) -> pl.DataFrame:
    """RECODED_SCHEMA rows for the values ``rules`` find invalid (``bad``, per column), by column
    and value: the source that delivered the column, the rule, and what becomes of the cell."""
    logs = []
    for rule in rules:
        hits = customers.filter(bad[rule.column])
        if hits.height == 0:
            continue
        action = _IMPUTED_ACTION if rule.column in (*NUMERIC, *CATEGORICAL) else _NULL_ACTION
        logs.append(
            hits.group_by(pl.col(rule.column).cast(pl.String).alias("value"))
            .agg(pl.len().cast(pl.Int64).alias("rows"))
            .select(
                pl.lit(period).alias("period"),
                pl.lit("snapshot" if rule.column in snapshot_columns else "customers").alias("source"),
                pl.lit(rule.column).alias("column"),
                pl.lit(rule.rule_id).alias("rule_id"),
                pl.lit(rule.reason).alias("reason"),
                "value",
                "rows",
                pl.lit(action).alias("action"),
            )
        )
    log = pl.concat(logs) if logs else pl.DataFrame(schema=RECODED_SCHEMA)
    return log.cast(RECODED_SCHEMA).sort("column", "value")


_UNREADABLE_ACTION = "set to null and kept (the customer is not dropped)"


def _unreadable_values(
    accepted: pl.DataFrame, source: str, period: str, imputable: dict[str, bool]
) -> pl.DataFrame:
    """RECODED_SCHEMA rows for the optional attributes ingest could not read (its ``_recoded``):
    one per (column, value), with what became of the nulled cell. ``imputable`` says, per column,
    whether imputation fills it this month (a column with no readable value at all cannot be)."""
    if "_recoded" not in accepted.columns:
        return pl.DataFrame(schema=RECODED_SCHEMA)
    cells = accepted.select(pl.col("_recoded").explode().struct.unnest()).drop_nulls("column")
    if cells.height == 0:
        return pl.DataFrame(schema=RECODED_SCHEMA)
    types = {c: str(t) for c, t in SOURCES[source].items()}
    action = pl.col("column").replace_strict(
        {c: (_IMPUTED_ACTION if ok else _NULL_ACTION) for c, ok in imputable.items()},
        default=pl.lit(_NULL_ACTION),
    )
    return (
        cells.group_by("column", "value")
        .agg(pl.len().cast(pl.Int64).alias("rows"))
        .select(
            pl.lit(period).alias("period"),
            pl.lit(source).alias("source"),
            "column",
            pl.lit("unparseable_value").alias("rule_id"),
            pl.format(
                "value cannot be read as {}; {}",
                pl.col("column").replace_strict(types, default=None),
                pl.lit(_UNREADABLE_ACTION),
            ).alias("reason"),  # fmt: skip
            "value",
            "rows",
            action.alias("action"),
        )
        .cast(RECODED_SCHEMA)
    )


def with_unreadable(recoded: dict, log: pl.DataFrame, results: dict[str, Cleaned], period: str,
                    customers: pl.DataFrame) -> tuple[dict, pl.DataFrame]:  # fmt: skip
    """``recoded``/``log`` with the unreadable attributes of customers and snapshot added."""
    imputable = {c: c in (*NUMERIC, *CATEGORICAL) and customers[c].is_not_null().any()
                 for c in customers.columns if c in CUSTOMERS}  # fmt: skip
    logs = [log]
    for source in ("customers", "snapshot"):
        if source in results:
            logs.append(_unreadable_values(results[source].accepted, source, period, imputable))
    merged = pl.concat(logs, how="vertical").sort("column", "value", "source")
    counts = dict(recoded)
    for row in merged.filter(pl.col("rule_id") == "unparseable_value").iter_rows(named=True):
        counts[row["column"]] = counts.get(row["column"], 0) + row["rows"]
    return counts, merged
