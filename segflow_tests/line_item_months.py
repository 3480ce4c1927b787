"""The months every line-item engine is held to: each rule broken, derived invoice ids, a generated
month with dirt, and an Online Retail II month; and the one comparison of two builds of a month.
test_spark_parity.py (Spark) and test_bucketed.py (polars in buckets) compare an engine's build of
each against the one-frame polars build."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal as assert_equal

from segflow.config import CleaningSettings, Settings
from segflow.lib import periods
from segflow.lib.profiles.line_items import LineItemEngine, LineItemFile
from segflow.lib.profiles.profiles import ProfileBuild, RawSources, build_profiles
from segflow.lib.sources.ingest import empty_source, period_filter_for, read_month, read_source
from segflow_tests.conftest import HISTORY_MONTHS, ONLINE_RETAIL, require
from segflow_tests.test_cleaning import _tx
from segflow_tests.test_rfm_online_retail import MAPPING


@dataclasses.dataclass(frozen=True)
class Month:
    raw: RawSources
    period: str
    settings: CleaningSettings


def builds(month: Month, tmp: Path, engine: LineItemEngine) -> tuple[ProfileBuild, ProfileBuild]:
    """The month built in one polars frame, and by ``engine`` from a Parquet file of its line items
    (as an engine reads the stored raw_transactions month)."""
    start, end = periods.bounds(month.period)
    path = tmp / f"raw_transactions_{month.period}.parquet"
    month.raw.transactions.write_parquet(path)
    stored = LineItemFile(str(path), tuple(month.raw.transactions.columns))
    one_frame = build_profiles(month.raw, month.period, start, end, month.settings, 42)
    by_engine = build_profiles(
        dataclasses.replace(month.raw, transactions=stored), month.period, start, end, month.settings, 42,
        line_items=engine,
    )  # fmt: skip
    return one_frame, by_engine


def assert_same_build(a: ProfileBuild, b: ProfileBuild) -> None:
    """Equal to the bit: money sums too (assert_frame_equal's default would allow 1e-5)."""
    assert_frame_equal = functools.partial(assert_equal, check_exact=True)
    assert a.accounting == b.accounting
    by_rule = a.quarantined.group_by("source", "rule_id").len().sort("source", "rule_id")
    assert_frame_equal(by_rule, b.quarantined.group_by("source", "rule_id").len().sort("source", "rule_id"))
    key = ["source", "source_file", "row_number"]
    assert_frame_equal(a.quarantined.sort(key), b.quarantined.sort(key))
    assert_frame_equal(a.profiles.sort("customer_id"), b.profiles.sort("customer_id"))
    # The stored tables are written as built: the same order too, so the same bytes.
    assert_frame_equal(a.quarantined, b.quarantined)
    assert_frame_equal(a.profiles, b.profiles)


# Every transaction rule broken at least once, and the shapes the rules must let through.
DIRTY = [
    {}, {},  # an exact duplicate: the second is dropped
    {"invoice_id": " I1 ", "channel": " WEB "},  # the same line once codes are folded: dropped too
    {"customer_id": None}, {"customer_id": "C9"}, {"invoiced_at": "2099-01-01 00:00:00"},
    {"invoiced_at": "2024-02-29 23:59:59"}, {"invoiced_at": None, "invoice_id": "I13"}, {"invoiced_at": "not a date"},
    {"quantity": "abc"}, {"quantity": None, "invoice_id": "I12"}, {"quantity": "0"}, {"unit_price": "0"},
    {"unit_price": "-2"}, {"unit_price": "NaN"}, {"unit_price": "inf"}, {"unit_price": None},
    {"invoice_id": None}, {"invoice_id": "A563185", "unit_price": "-11062.06", "customer_id": None},
    {"quantity": "-5", "invoice_id": "I7"}, {"invoice_id": "C1", "quantity": "2"},
    {"quantity": "2000", "invoice_id": "I8"}, {"unit_price": "99999", "invoice_id": "I9"},
    {"channel": "fax", "invoice_id": "I10"}, {"invoice_id": "I1", "customer_id": "C2", "product_id": "P2"},
    # Accepted: a cancellation, blank and spaced categories, a second customer, amounts on a half
    # micro-unit (rounded half to even by both engines), channels in other cases.
    {"invoice_id": "C1", "quantity": "-2"}, {"invoice_id": "I2", "category": " "},
    {"invoice_id": "I3", "category": " books ", "channel": "Store"}, {"invoice_id": "I4", "category": None},
    {"invoice_id": "I5", "customer_id": "C2", "unit_price": "0.0000005", "quantity": "1"},
    {"invoice_id": "I6", "customer_id": "C2", "unit_price": "0.0000015", "quantity": "1", "channel": "APP"},
    {"invoice_id": "I11", "customer_id": "C2", "invoiced_at": "2024-03-31 23:59:59", "product_id": "P3"},
]  # fmt: skip


KNOWN = ["C1", "C2"]


def every_rule_month() -> Month:
    """DIRTY with a CRM of C1 and C2: every transaction rule is broken at least once."""
    crm = pl.DataFrame({"customer_id": KNOWN})
    customers = pl.concat([empty_source("customers"), crm], how="diagonal_relaxed").with_columns(
        pl.col("signup_date").fill_null(datetime(2020, 1, 1).date()),
        pl.lit("crm.csv").alias("_source_file"), pl.int_range(pl.len()).cast(pl.Int64).alias("_source_row"),
    )  # fmt: skip
    settings = CleaningSettings(orphans="quarantine", max_abs_quantity=1000)
    return Month(RawSources(customers, _tx(DIRTY), None, None, None), "2024-03", settings)


def derived_invoice_month(exact_duplicates: str) -> Month:
    """Ids derived from customer and day, so repeated lines are purchases (auto keeps them)."""
    rows = [{"invoice_id": f"2024-03-05/{c}", "customer_id": f" {c}"} for c in ("C1", "C1", "C2")]
    settings = CleaningSettings(exact_duplicates=exact_duplicates)
    return Month(RawSources(None, _tx(rows), None, None, None), "2024-03", settings)


def generated_month(landing: Path, home: Path) -> Month:
    """The third month of the synthetic history (dirt included), every source."""
    settings = Settings(home=home, storage_dir=home / "storage", landing_dir=landing)
    settings = dataclasses.replace(settings, partitions_start=HISTORY_MONTHS[0])
    period = HISTORY_MONTHS[2]
    raw = {s: read_month(s, settings, period).frame for s in ("customers", "transactions", "engagement",
                                                             "surveys", "campaigns")}  # fmt: skip
    return Month(RawSources(**raw), period, settings.cleaning)


def online_retail_month() -> Month:
    """Online Retail II's 2011-11 line items, as the example maps them."""
    path = str(require(ONLINE_RETAIL))
    period = "2011-11"
    start, end = periods.bounds(period)
    split = period_filter_for("transactions", path, start, end, is_first_partition=False)
    raw = read_source("transactions", MAPPING, path, split).frame
    return Month(RawSources(None, raw, None, None, None), period, CleaningSettings(max_abs_quantity=20_000))


def ingested_files(landing: Path, home: Path, period: str, **changes) -> dict[str, bytes]:
    """The profiles stage's stored files of ``period`` after ``ingest_job`` in Dagster, with the
    settings of a home over ``landing`` changed by ``changes`` (an engine, its settings)."""
    import dagster as dg

    from segflow import runner
    from segflow.definitions import build_defs
    from segflow.lib.storage import StorageLayout

    settings = Settings(home=home, storage_dir=home / "storage", landing_dir=landing)
    settings = dataclasses.replace(settings, partitions_start=period, partitions_end=period, **changes)
    with dg.instance_for_test() as instance:
        outcome = runner.run_partition(build_defs(settings), instance, "ingest_job", period)
    assert outcome.success, outcome.error
    layout = StorageLayout(settings.storage_dir)
    return {
        asset: layout.table(asset, period).read_bytes()
        for asset in ("customer_profiles", "quarantined_rows", "row_accounting", "campaign_exposures")
    }
