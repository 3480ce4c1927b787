"""A stored month's line items cleaned in buckets of customers, so that no step holds the month.

What the polars engine does in one frame, done so that its memory is bounded by a bucket rather
than by the month (issue 13):

1. Two streaming passes over the stored file, with each line's position in it (``POSITION``): the
   check that the invoice ids are derived, and, per invoice, the customer of its first line
   (``rule_table.first_value_column``), which is the only rule input that spans customers.
2. One streaming pass that writes the lines, codes folded and that first customer joined on, into
   bucket files by a hash of the customer id (polars' partitioned ``sink_parquet``).
3. Each bucket in turn, in file order: exact duplicates dropped, the rule table judged, and the
   accepted lines summed per customer, by the same functions as the one-frame path.

Exact duplicates are equal in the customer id, so they share a bucket, and the first of them in
file order is the first in its bucket. An invoice's first line is never a duplicate of an earlier
one (that one would be earlier in the same invoice), so the first customer found before the
duplicates are dropped is the one the one-frame path finds after. A customer's lines all fall in
one bucket, so its sums are whole. The parts are put together by key (customers) and by position
(the quarantine), which is the one-frame path's file order.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import polars as pl

from segflow.lib.profiles import cleaning, rule_table
from segflow.lib.profiles.line_items import (
    CleanedLineItems,
    LineItemJob,
    drops_exact_duplicates,
    summarise,
)
from segflow.lib.sources.ingest import empty_source, invoices_are_derived

POSITION = rule_table.POSITION
BUCKET = "_bucket"


def stored_lines(path: str) -> int:
    """The number of lines of a stored month, from its Parquet footer (no data is read)."""
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def clean_in_buckets(path: str, job: LineItemJob, bucket_lines: int, spill_dir: str | None = None) -> CleanedLineItems:
    """The month stored at ``path`` cleaned and summed, about ``bucket_lines`` lines at a time. The
    bucket files live in a temporary directory under ``spill_dir`` (the system's by default) and
    are removed when this returns, or fails."""
    lines = pl.scan_parquet(path).with_row_index(POSITION)
    drop = drops_exact_duplicates(job.exact_duplicates, invoices_are_derived(lines.drop(POSITION)))
    buckets = max(1, math.ceil(stored_lines(path) / max(1, bucket_lines)))
    normalised = _with_first_values(cleaning.normalise_codes(lines, "transactions"), job.rules)
    rules = cleaning.compiled(job.rules, firsts_joined=True)
    with tempfile.TemporaryDirectory(prefix="segflow-buckets-", dir=spill_dir) as spill:
        bucket = (pl.col("customer_id").hash(seed=0) % buckets).alias(BUCKET)
        normalised.with_columns(bucket).sink_parquet(
            pl.PartitionBy(spill, key=BUCKET, include_key=False), mkdir=True
        )
        parts = [
            summarise(cleaning.apply_rules(
                pl.read_parquet(files).sort(POSITION), rules, "transactions", job.period, drop
            ))  # fmt: skip
            for files in _bucket_files(Path(spill))
        ]
    return _combined(parts, job)


def _with_first_values(lines: pl.LazyFrame, table: list[rule_table.TableRule]) -> pl.LazyFrame:
    """``lines`` with each ``DiffersFromFirst`` rule's first value joined on, computed over the
    whole month in a streaming pass (one row per group: for line items, per invoice)."""
    for predicate in rule_table.predicates_of(table, rule_table.DiffersFromFirst):
        first = pl.col(predicate.column).get(pl.col(POSITION).arg_min())
        firsts = (
            lines.group_by(predicate.group)
            .agg(first.alias(rule_table.first_value_column(predicate)))
            .collect(engine="streaming")
        )
        # A null group joins nothing, so its first value is null and the rule is not broken there;
        # the one-frame path groups nulls together, but a null invoice id breaks an earlier rule.
        lines = lines.join(firsts.lazy(), on=predicate.group, how="left")
    return lines


def _bucket_files(spill: Path) -> list[list[str]]:
    """The files of each non-empty bucket, bucket by bucket in a fixed order."""
    directories = sorted(spill.glob(f"{BUCKET}=*"), key=lambda d: int(d.name.split("=", 1)[1]))
    return [sorted(str(f) for f in d.glob("*.parquet")) for d in directories]


def _combined(parts: list[CleanedLineItems], job: LineItemJob) -> CleanedLineItems:
    """The buckets' results as one month's: customers sorted by id, the quarantine in file order."""
    if not parts:  # an empty month writes no bucket
        empty = cleaning.apply_rules(empty_source("transactions"), [], "transactions", job.period)
        return summarise(empty)
    return CleanedLineItems(
        pl.concat([p.activity for p in parts]).sort("customer_id"),
        pl.concat([p.categories for p in parts]).sort("customer_id"),
        pl.concat([p.quarantined for p in parts]).sort(POSITION).drop(POSITION),
        sum(p.raw_rows for p in parts),
        sum(p.accepted_rows for p in parts),
        sum(p.duplicates_dropped for p in parts),
    )
