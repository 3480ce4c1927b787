"""The transaction rule table (segflow.lib.profiles.rule_table) compiled to Spark columns.

Each case mirrors ``rule_table.to_polars`` on the same predicate, nulls included (three-valued
``and``/``or``/``not`` is the same in both engines): the parity tests hold the two to each other.
"""

from __future__ import annotations

import functools
import operator
from datetime import date, datetime
from typing import Any

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from segflow.lib.profiles import rule_table
from segflow.lib.profiles.rule_table import (
    OPS,
    And,
    Compare,
    DiffersFromFirst,
    IsNull,
    Not,
    NotFinite,
    NotIn,
    NotNull,
    OutsideRange,
    Predicate,
    StartsWithAny,
    Truthy,
)

POSITION = rule_table.POSITION


def literal(value: Any) -> Column:
    """A Spark literal of a rule's bound; datetimes as TIMESTAMP_NTZ, as ingest stores them (naive UTC)."""
    if isinstance(value, datetime):
        return F.lit(value.isoformat(sep=" ")).cast("timestamp_ntz")
    if isinstance(value, date):
        return F.lit(value.isoformat()).cast("date")
    return F.lit(value)


def strip(column: Column) -> Column:
    """polars' ``str.strip_chars()``: leading and trailing Unicode white space (Rust's
    ``char::is_whitespace`` is the White_Space property, which is Java's ``\\s`` under ``(?U)``)."""
    return F.regexp_replace(column, r"(?U)^\s+|\s+$", "")


def _any(columns: list[Column]) -> Column:
    """Any of ``columns`` (three-valued ``or``, as polars' ``any_horizontal``); none is false."""
    return functools.reduce(operator.or_, columns) if columns else F.lit(False)


def _lookups(table: list[rule_table.TableRule]) -> list[NotIn]:
    """The NotIn predicates over many ids (a polars Series): joined, not inlined as a literal list."""
    return [p for p in rule_table.predicates_of(table, NotIn) if isinstance(p.values, pl.Series)]


def with_lookups(
    spark: SparkSession, lines: DataFrame, table: list[rule_table.TableRule]
) -> tuple[DataFrame, dict[int, str]]:
    """``lines`` with one flag column per many-id NotIn predicate (true where the value is one of
    the ids, null otherwise), broadcast-joined; and each predicate's flag column by ``id()``."""
    flags: dict[int, str] = {}
    for n, predicate in enumerate(_lookups(table)):
        key, flag = f"_lookup{n}_key", f"_lookup{n}"
        ids = predicate.values.drop_nulls().unique().sort()
        lookup = spark.createDataFrame(pl.DataFrame({key: ids}).to_pandas()).withColumn(flag, F.lit(True))
        lines = lines.join(F.broadcast(lookup), lines[predicate.column] == lookup[key], "left").drop(key)
        flags[id(predicate)] = flag
    return lines, flags


def to_spark(p: Predicate, flags: dict[int, str]) -> Column:
    """The Spark column of a predicate (true where the rule is broken); ``flags`` from ``with_lookups``."""
    match p:
        case IsNull(c):
            return F.col(c).isNull()
        case NotNull(c):
            return F.col(c).isNotNull()
        case Truthy(c):
            return F.col(c)
        case StartsWithAny(c, prefixes):
            return _any([F.col(c).startswith(x) for x in prefixes])
        case OutsideRange(c, start, end):
            return ~((F.col(c) >= literal(start)) & (F.col(c) < literal(end)))
        case NotFinite(c):
            column = F.col(c)
            return column.isNull() | F.isnan(column) | (F.abs(column) == F.lit(float("inf")))
        case Compare(c, op, value, absolute):
            column = F.abs(F.col(c)) if absolute else F.col(c)
            return OPS[op](column, literal(value))
        case NotIn(c, values, null_ok):
            column = F.col(c)
            if isinstance(values, pl.Series):
                # polars' is_in is null on a null value; the join's flag alone would say "not in".
                inside = F.when(column.isNull(), F.lit(None)).otherwise(F.col(flags[id(p)]).isNotNull())
            else:
                inside = column.isin(list(values))
            return column.isNotNull() & ~inside if null_ok else ~inside
        case DiffersFromFirst(c, group):
            every = Window.partitionBy(group).orderBy(POSITION)
            every = every.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
            return F.col(c) != F.first(F.col(c)).over(every)
        case And(left, right):
            return to_spark(left, flags) & to_spark(right, flags)
        case Not(inner):
            return ~to_spark(inner, flags)
    raise TypeError(f"not a rule predicate: {p!r}")


def first_broken(table: list[rule_table.TableRule], flags: dict[int, str]) -> Column:
    """The index of the first rule a line breaks, null where it breaks none (a null predicate is
    not broken, as in ``cleaning.apply_rules``)."""
    hits = [
        F.when(F.coalesce(to_spark(r.predicate, flags), F.lit(False)), F.lit(i)) for i, r in enumerate(table)
    ]
    if not hits:
        return F.lit(None).cast("int")
    return hits[0] if len(hits) == 1 else F.least(*hits)
