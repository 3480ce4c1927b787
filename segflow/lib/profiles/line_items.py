"""The month's line items cleaned and reduced to what the profiles read, by the configured engine.

Line items are the one source that grows with the business, so they are the one source whose
cleaning an engine other than polars can run (``engine: spark``, segflow.lib.spark). Both engines
take the same rule table (segflow.lib.profiles.rule_table), drop exact duplicates by the same
definition, and deliver the same ``CleanedLineItems``: the quarantine, the row counts and the
per-customer aggregates. The accepted lines themselves never leave the engine: on Spark, the
Python process holds the month's customers and quarantined lines, not its line items.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from segflow.config import PolarsSettings
from segflow.lib.profiles import cleaning, rule_table
from segflow.lib.profiles.activity import category_revenue, transaction_activity


@dataclass(frozen=True)
class LineItemFile:
    """Line items stored as one Parquet file (a month of the ``raw_transactions`` asset), for an
    engine that reads the file itself rather than a frame in this process's memory."""

    path: str
    columns: tuple[str, ...]


LineItemSource = pl.DataFrame | LineItemFile


@dataclass(frozen=True)
class CleanedLineItems:
    """Transactions after cleaning: the quarantine, the row accounting, and the accepted lines
    summed per customer (``transaction_activity``, ``category_revenue``)."""

    activity: pl.DataFrame
    categories: pl.DataFrame
    quarantined: pl.DataFrame
    raw_rows: int
    accepted_rows: int
    duplicates_dropped: int
    orphan_rows: int = 0
    orphan_customers: int = 0

    def accounting(self) -> dict[str, int]:
        return cleaning.row_accounting(self)

    @property
    def customer_ids(self) -> pl.Series:
        """The distinct customers of the accepted lines (every accepted line has one)."""
        return self.activity["customer_id"]

    def with_orphans(self, known_customers: pl.Series) -> CleanedLineItems:
        """These counts with the accepted lines of customers not in ``known_customers`` counted:
        the same figures as ``Cleaned.with_orphans`` on the lines, read off the per-customer sums."""
        orphans = self.activity.filter(~pl.col("customer_id").is_in(known_customers.implode()))
        return dataclasses.replace(
            self, orphan_rows=int(orphans["n_lines"].sum()), orphan_customers=orphans.height
        )


@dataclass(frozen=True)
class LineItemJob:
    """What cleaning a month's line items needs besides the lines: the rule table in order, the
    period, and ``cleaning.exact_duplicates`` (drop, keep, or auto: drop unless ids are derived)."""

    rules: list[rule_table.TableRule]
    period: str
    exact_duplicates: str


class LineItemEngine(Protocol):
    """An engine that cleans a month's line items (segflow.lib.spark.line_items.SparkLineItems)."""

    name: str

    def clean(self, source: LineItemSource, job: LineItemJob) -> CleanedLineItems: ...


def drops_exact_duplicates(exact_duplicates: str, derived_ids: bool) -> bool:
    """``cleaning.exact_duplicates``: auto drops them unless the invoice ids are derived (one per
    customer per day, so that repeated lines of a day are purchases, not duplicates)."""
    if exact_duplicates != "auto":
        return exact_duplicates == "drop"
    return not derived_ids


def summarise(cleaned: cleaning.Cleaned) -> CleanedLineItems:
    """``cleaned``'s accepted lines reduced to their per-customer sums."""
    lines = cleaned.accepted
    return CleanedLineItems(
        transaction_activity(lines),
        category_revenue(lines),
        cleaned.quarantined,
        cleaned.raw_rows,
        lines.height,
        cleaned.duplicates_dropped,
    )


@dataclass(frozen=True)
class PolarsLineItems:
    """The default engine: the lines in this process, as polars frames. A stored month of at least
    ``settings.in_memory_below`` lines is cleaned in buckets of customers
    (segflow.lib.profiles.bucketed), with the same results; a smaller one, or a frame already in
    memory, in one frame."""

    settings: PolarsSettings = PolarsSettings()
    name: str = dataclasses.field(default="polars", init=False)

    def clean(self, source: LineItemSource, job: LineItemJob) -> CleanedLineItems:
        from segflow.lib.profiles import bucketed
        from segflow.lib.sources.ingest import invoices_are_derived

        polars = self.settings
        if isinstance(source, LineItemFile) and bucketed.stored_lines(source.path) >= polars.in_memory_below:
            return bucketed.clean_in_buckets(source.path, job, polars.bucket_lines, polars.spill_dir)
        frame = pl.read_parquet(source.path) if isinstance(source, LineItemFile) else source
        # Judged on the lines as read: derived ids are exactly ingest's expression.
        drop = drops_exact_duplicates(job.exact_duplicates, invoices_are_derived(frame))
        normalised = cleaning.normalise_codes(frame, "transactions")
        cleaned = cleaning.apply_rules(
            normalised, cleaning.compiled(job.rules), "transactions", job.period, drop
        )
        return summarise(cleaned)


def no_line_items() -> CleanedLineItems:
    """A month without line items (the source off, or a behaviour snapshot standing in)."""
    from segflow.lib.sources.ingest import empty_source

    return PolarsLineItems().clean(empty_source("transactions"), LineItemJob([], "", "drop"))
