"""A stored month's line items cleaned in buckets, so that no step holds the month.

What the polars engine does in one frame, done so that its memory is bounded by a bucket rather
than by the month (issue 13). Every pass streams the stored file or the bucket files before it,
with each line's position in the stored file (``POSITION``), so "first" keeps its meaning:

1. The check that the invoice ids are derived (one streaming pass).
2. The one rule input that spans customers, the customer of each invoice's first line
   (``rule_table.first_value_column``): the lines, codes folded, are written into buckets by a
   hash of the invoice id, and each bucket of whole invoices gets it over its rows.
3. Those lines written into buckets by a hash of the customer id, and each bucket of whole
   customers, in file order: exact duplicates dropped, the rule table judged, and the accepted
   lines summed per customer, by the same functions as the one-frame path.

Exact duplicates are equal in the customer id, so they share a bucket, and the first of them in
file order is the first in its bucket. An invoice's first line is never a duplicate of an earlier
one (that one would be earlier in the same invoice), so the first customer found before the
duplicates are dropped is the one the one-frame path finds after. The parts are put together by
key (customers) and by position (the quarantine), which is the one-frame path's file order.
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
    no_line_items,
    summarise,
)
from segflow.lib.sources.ingest import invoices_are_derived

POSITION = rule_table.POSITION
BUCKET = "_bucket"


def stored_lines(path: str) -> int:
    """The number of lines of a stored month, from its Parquet footer (no data is read)."""
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def clean_in_buckets(
    path: str, job: LineItemJob, bucket_lines: int, spill_dir: str | None = None
) -> CleanedLineItems:
    """The month stored at ``path`` cleaned and summed, about ``bucket_lines`` lines at a time. The
    bucket files live in a temporary directory under ``spill_dir`` (the system's by default) and
    are removed when this returns, or fails."""
    lines = pl.scan_parquet(path).with_row_index(POSITION)
    stored = stored_lines(path)
    if stored == 0:
        return no_line_items()
    drop = drops_exact_duplicates(job.exact_duplicates, invoices_are_derived(lines.drop(POSITION)))
    buckets = max(1, math.ceil(stored / max(1, bucket_lines)))
    rules = cleaning.compiled(job.rules, firsts_joined=True)
    with tempfile.TemporaryDirectory(prefix="segflow-buckets-", dir=spill_dir) as spill:
        staged = cleaning.normalise_codes(lines, "transactions")
        for n, (group, predicates) in enumerate(_first_value_groups(job.rules).items()):
            staged = _with_first_values(staged, group, predicates, Path(spill) / f"by_{group}_{n}", buckets)
        parts = [
            summarise(
                cleaning.apply_rules(
                    pl.read_parquet(files).sort(POSITION), rules, "transactions", job.period, drop
                )
            )  # fmt: skip
            for files in _partition(staged, "customer_id", Path(spill) / "by_customer", buckets)
        ]
    return _combined(parts)


def _first_value_groups(table: list[rule_table.TableRule]) -> dict[str, list[rule_table.DiffersFromFirst]]:
    """The ``DiffersFromFirst`` predicates of ``table`` by the column that groups their rows."""
    groups: dict[str, list[rule_table.DiffersFromFirst]] = {}
    for predicate in rule_table.predicates_of(table, rule_table.DiffersFromFirst):
        groups.setdefault(predicate.group, []).append(predicate)
    return groups


def _partition(lines: pl.LazyFrame, key: str, directory: Path, buckets: int) -> list[list[str]]:
    """``lines`` written to ``buckets`` bucket files by a hash of ``key`` (equal keys, nulls too,
    share a bucket) in one streaming pass; the files of each non-empty bucket."""
    bucket = (pl.col(key).hash(seed=0) % buckets).alias(BUCKET)
    lines.with_columns(bucket).sink_parquet(
        pl.PartitionBy(directory, key=BUCKET, include_key=False), mkdir=True
    )
    return _bucket_files(directory)


def _with_first_values(
    lines: pl.LazyFrame, group: str, predicates: list[rule_table.DiffersFromFirst], spill: Path, buckets: int
) -> pl.LazyFrame:
    """``lines`` with each predicate's ``first_value_column``: the value on the group's first row in
    file order. Computed in buckets of whole groups, as the one-frame path computes it over the
    month (nulls form one group there and here), so that no step holds a map of every group."""
    done = spill / "done"
    done.mkdir(parents=True)
    firsts = [
        pl.col(p.column).first().over(group).alias(rule_table.first_value_column(p)) for p in predicates
    ]
    for n, files in enumerate(_partition(lines, group, spill / "in", buckets)):
        pl.read_parquet(files).sort(POSITION).with_columns(firsts).write_parquet(done / f"{n}.parquet")
    return pl.scan_parquet(sorted(str(f) for f in done.glob("*.parquet")))


def _bucket_files(spill: Path) -> list[list[str]]:
    """The files of each non-empty bucket, bucket by bucket in a fixed order."""
    directories = sorted(spill.glob(f"{BUCKET}=*"), key=lambda d: int(d.name.split("=", 1)[1]))
    return [sorted(str(f) for f in d.glob("*.parquet")) for d in directories]


def _combined(parts: list[CleanedLineItems]) -> CleanedLineItems:
    """The buckets' results as one month's: customers sorted by id, the quarantine in file order."""
    return CleanedLineItems(
        pl.concat([p.activity for p in parts]).sort("customer_id"),
        pl.concat([p.categories for p in parts]).sort("customer_id"),
        pl.concat([p.quarantined for p in parts]).sort(POSITION).drop(POSITION),
        sum(p.raw_rows for p in parts),
        sum(p.accepted_rows for p in parts),
        sum(p.duplicates_dropped for p in parts),
    )
