"""A month's line items cleaned and summed per customer on Spark: the ``engine: spark`` stage.

The same steps as ``PolarsLineItems``, in the same order, from the stored ``raw_transactions``
month: codes folded, exact duplicates dropped (the first in file order kept), the rule table
judged (the first broken rule names the line), and the accepted lines summed per customer. Only
the results come back to this process: the quarantined lines (few, and written by the same
``cleaning.quarantine_table`` as polars'), the counts, and one row per customer (and category).
Money is summed as integer micro-units (segflow.lib.exact), so the sums do not depend on how Spark
partitions the lines, and equal polars' to the bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from segflow.lib.exact import MICRO, PER_MICRO
from segflow.lib.profiles import cleaning, rule_table
from segflow.lib.profiles.activity import category_lists, transaction_activity
from segflow.lib.profiles.line_items import (
    CleanedLineItems,
    LineItemFile,
    LineItemJob,
    drops_exact_duplicates,
)
from segflow.lib.schema import CHANNELS, SOURCES
from segflow.lib.sources.ingest import empty_source
from segflow.lib.spark.rules import POSITION, first_broken, strip, to_spark, with_lookups

CANONICAL = list(SOURCES["transactions"])
# What a quarantined line brings back: enough to write its quarantine row, nothing more.
QUARANTINE_COLUMNS = [*CANONICAL, "_parse_error", "_source_file", "_source_row", "_rule"]


@dataclass
class SparkLineItems:
    """The Spark engine; ``session`` gives the session (dagster-pyspark's resource, in Dagster)."""

    session: Callable[[], SparkSession]
    name: str = field(default="spark", init=False)

    def clean(self, source: pl.DataFrame | LineItemFile, job: LineItemJob) -> CleanedLineItems:
        if not isinstance(source, LineItemFile):
            raise TypeError("the Spark engine reads the stored month itself: pass a LineItemFile")
        spark = self.session()
        lines = spark.read.parquet(source.path).withColumn(POSITION, F.col("_metadata.row_index"))
        drop = drops_exact_duplicates(job.exact_duplicates, _invoices_are_derived(lines))
        lines = _normalised(lines)
        deduped = _first_occurrences(lines) if drop else lines
        lines_with_flags, flags = with_lookups(spark, deduped, job.rules)
        judged = lines_with_flags.withColumn("_rule", first_broken(job.rules, flags))
        judged = judged.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            return _results(lines, judged, job, source.columns)
        finally:
            judged.unpersist()


def _results(
    lines: DataFrame, judged: DataFrame, job: LineItemJob, columns: tuple[str, ...]
) -> CleanedLineItems:
    raw_rows = lines.count()
    counts = judged.agg(F.count(F.lit(1)).alias("kept"), F.count("_rule").alias("bad")).first()
    bad = _to_polars(judged.filter(F.col("_rule").isNotNull()).orderBy(POSITION).select(QUARANTINE_COLUMNS))
    bad = bad.cast({**SOURCES["transactions"], "_source_row": pl.Int64, "_rule": pl.UInt16})
    rules = [(r.rule_id, r.reason) for r in job.rules]
    quarantined = cleaning.quarantine_table(bad, rules, "transactions", job.period)
    accepted = judged.filter(F.col("_rule").isNull())
    activity, categories = _sums(accepted, list(columns))
    return CleanedLineItems(
        activity,
        categories,
        quarantined,
        raw_rows,
        counts["kept"] - counts["bad"],
        raw_rows - counts["kept"],
    )


def _to_polars(frame: DataFrame) -> pl.DataFrame:
    return pl.from_arrow(frame.toArrow())


def _invoices_are_derived(lines: DataFrame) -> bool:
    """``ingest.invoices_are_derived`` on Spark: every invoice id is ingest's derived one."""
    day = F.to_date("invoiced_at").cast("string")
    customer = strip(F.col("customer_id"))
    derived = F.when(customer.isNotNull() & day.isNotNull(), F.concat(day, F.lit("/"), customer))
    row = lines.agg(
        F.count(F.lit(1)).alias("n"), F.min(F.col("invoice_id").eqNullSafe(derived).cast("int")).alias("all")
    ).first()
    return row["n"] > 0 and row["all"] == 1


def _normalised(lines: DataFrame) -> DataFrame:
    """``cleaning.normalise_codes`` on Spark, over the same column lists."""
    folded = {c: F.lower(strip(F.col(c))) for c in cleaning.LOWERED_CODES if c in CANONICAL}
    folded |= {c: F.upper(strip(F.col(c))) for c in cleaning.UPPERED_CODES if c in CANONICAL}
    folded |= {c: strip(F.col(c)) for c in cleaning.TRIMMED_IDS if c in CANONICAL}
    return lines.withColumns(folded)


def _first_occurrences(lines: DataFrame) -> DataFrame:
    """The first line (file order) of every set equal in all canonical columns, nulls equal."""
    same = Window.partitionBy(*CANONICAL).orderBy(POSITION)
    return lines.withColumn("_nth", F.row_number().over(same)).filter(F.col("_nth") == 1).drop("_nth")


def _micro_sum(amount: Column) -> Column:
    """``exact.exact_sum``: micro-units rounded half to even (polars' ``round``), summed as integers."""
    micro = F.coalesce(F.sum(F.bround(amount * F.lit(MICRO), 0).cast("long")), F.lit(0))
    return micro.cast("double") * F.lit(PER_MICRO)


def _sums(accepted: DataFrame, columns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``activity.transaction_activity`` and ``category_revenue`` of the accepted lines."""
    cancel = to_spark(rule_table.cancellation_predicate(columns), {})
    purchase = ~cancel
    invoice = F.col("invoice_id")
    amount = F.col("quantity") * F.col("unit_price")
    per_customer = accepted.groupBy("customer_id").agg(
        F.count_distinct(F.when(purchase, invoice)).alias("n_invoices"),
        F.count_distinct(F.when(purchase, F.to_date("invoiced_at"))).alias("purchase_days"),
        F.count_distinct(F.when(cancel, invoice)).alias("n_cancellations"),
        F.count(F.lit(1)).alias("n_lines"),
        F.coalesce(F.sum(F.when(purchase, F.col("quantity"))), F.lit(0)).alias("units"),
        *[
            F.count_distinct(F.when(purchase & (F.col("channel") == c), invoice)).alias(f"{c}_invoices")
            for c in CHANNELS
        ],
        _micro_sum(F.when(purchase, amount)).alias("gross_revenue"),
        _micro_sum(F.when(cancel, -amount)).alias("returns_value"),
        _micro_sum(amount).alias("net_revenue"),
        F.min(F.when(purchase, F.col("invoiced_at"))).alias("first_purchase_at"),
        F.max(F.when(purchase, F.col("invoiced_at"))).alias("last_purchase_at"),
    )
    schema = transaction_activity(empty_source("transactions")).schema
    activity = _to_polars(per_customer).select(list(schema)).cast(dict(schema))
    category = strip(F.col("category").cast("string"))
    per_category = (
        accepted.withColumn("category", category)
        .filter(F.col("category").isNotNull() & (F.col("category") != ""))
        .groupBy("customer_id", "category")
        .agg(_micro_sum(amount).alias("net_revenue"))
    )
    return activity, category_lists(_to_polars(per_category))
