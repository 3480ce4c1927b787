"""The polars engine in buckets of customers against the one-frame path: the same months, the same
profiles, quarantine and row accounting, exactly (issue 13). Buckets of a few lines, so that every
month is split across many of them, invoices across buckets included."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from segflow.config import ConfigError, PolarsSettings, load_settings
from segflow.lib import periods
from segflow.lib.profiles import bucketed, rule_table
from segflow.lib.profiles.line_items import LineItemFile, LineItemJob, PolarsLineItems
from segflow.lib.profiles.profiles import ProfileBuild
from segflow.lib.sources.ingest import empty_source
from segflow_tests import line_item_months
from segflow_tests.line_item_months import assert_same_build


def _in_buckets(
    month: line_item_months.Month, tmp: Path, bucket_lines: int = 3
) -> tuple[ProfileBuild, ProfileBuild]:
    spill = tmp / "spill"
    spill.mkdir(exist_ok=True)
    engine = PolarsLineItems(
        PolarsSettings(in_memory_below=0, bucket_lines=bucket_lines, spill_dir=str(spill))
    )
    builds = line_item_months.builds(month, tmp, engine)
    assert not any(spill.iterdir()), "the bucket files are removed"
    return builds


def test_every_rule_and_duplicate_is_judged_alike(tmp_path: Path) -> None:
    month = line_item_months.every_rule_month()
    one_frame, buckets = _in_buckets(month, tmp_path)
    assert_same_build(one_frame, buckets)
    start, end = periods.bounds(month.period)
    table = rule_table.transaction_rule_table(start, end, month.settings, pl.Series(line_item_months.KNOWN))
    seen = set(buckets.quarantined.filter(pl.col("source") == "transactions")["rule_id"])
    assert seen == {r.rule_id for r in table}
    assert buckets.accounting["transactions"]["duplicates_dropped"] == 2


def test_an_invoices_first_customer_is_read_across_buckets(tmp_path: Path) -> None:
    """The conflicting line's customer hashes into another bucket than the invoice's first line's:
    only the month-wide first customer can tell the line conflicts."""
    rows = [{"invoice_id": "I1", "customer_id": "C1"}, {"invoice_id": "I1", "customer_id": "C2"},
            {"invoice_id": "I1", "customer_id": "C1", "product_id": "P2"}]  # fmt: skip
    month = line_item_months.Month(
        line_item_months.RawSources(None, line_item_months._tx(rows), None, None, None), "2024-03",
        line_item_months.CleaningSettings(),
    )  # fmt: skip
    hashed = pl.Series(["C1", "C2"]).hash(seed=0) % 3
    assert hashed[0] != hashed[1], "the two customers must fall in different buckets of 3"
    one_frame, buckets = _in_buckets(month, tmp_path, bucket_lines=1)
    assert_same_build(one_frame, buckets)
    assert buckets.quarantined["rule_id"].to_list() == ["invoice_customer_conflict"]


def test_derived_invoices_keep_repeated_lines_alike(tmp_path: Path) -> None:
    for exact_duplicates in ("auto", "drop"):
        one_frame, buckets = _in_buckets(line_item_months.derived_invoice_month(exact_duplicates), tmp_path)
        assert_same_build(one_frame, buckets)
        assert buckets.accounting["transactions"]["duplicates_dropped"] == (
            0 if exact_duplicates == "auto" else 1
        )


def test_a_generated_month_with_dirt_is_built_alike(history_landing: Path, tmp_path: Path) -> None:
    month = line_item_months.generated_month(history_landing, tmp_path)
    one_frame, buckets = _in_buckets(month, tmp_path, bucket_lines=500)
    assert_same_build(one_frame, buckets)
    assert buckets.accounting["transactions"]["quarantined_rows"] > 0


def test_an_online_retail_month_is_built_alike(tmp_path: Path) -> None:
    one_frame, buckets = _in_buckets(line_item_months.online_retail_month(), tmp_path, bucket_lines=5_000)
    assert_same_build(one_frame, buckets)
    accounting = buckets.accounting["transactions"]
    assert accounting["duplicates_dropped"] > 0 and accounting["quarantined_rows"] > 0


def test_buckets_run_through_dagster_to_the_same_files(
    history_landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``polars.in_memory_below: 0`` in the definitions: the stored month read in buckets by the
    profiles step, and its outputs the same bytes as the one-frame path's."""
    from segflow_tests.conftest import HISTORY_MONTHS

    calls: list[int] = []
    real = bucketed.clean_in_buckets
    monkeypatch.setattr(bucketed, "clean_in_buckets", lambda *a: calls.append(a[2]) or real(*a))
    stored = {
        threshold: line_item_months.ingested_files(
            history_landing,
            tmp_path / str(threshold),
            HISTORY_MONTHS[0],
            polars=PolarsSettings(in_memory_below=threshold, bucket_lines=500),
        )  # fmt: skip
        for threshold in (0, 10**9)
    }
    assert calls == [500], "the month of the first run, and only it, is cleaned in buckets of 500 lines"
    assert stored[0] == stored[10**9]


def test_an_empty_month_and_the_size_threshold(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    empty_source("transactions").write_parquet(path)
    stored = LineItemFile(str(path), tuple(empty_source("transactions").columns))
    job = LineItemJob([], "2024-03", "drop")
    cleaned = bucketed.clean_in_buckets(str(path), job, 10)
    assert (cleaned.raw_rows, cleaned.accepted_rows, cleaned.activity.height) == (0, 0, 0)
    assert cleaned.quarantined.columns == PolarsLineItems().clean(stored, job).quarantined.columns
    # Below the threshold the engine reads one frame; at it, buckets (which sort customers by id).
    month = line_item_months.every_rule_month()
    month.raw.transactions.write_parquet(path)
    lines = month.raw.transactions.height
    start, end = periods.bounds(month.period)
    job = LineItemJob(
        rule_table.transaction_rule_table(start, end, month.settings, None), month.period, "drop"
    )
    assert bucketed.stored_lines(str(path)) == lines
    calls: list[str] = []
    real = bucketed.clean_in_buckets
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bucketed, "clean_in_buckets", lambda *a: calls.append("buckets") or real(*a))
        PolarsLineItems(PolarsSettings(in_memory_below=lines + 1)).clean(stored, job)
        assert calls == []
        PolarsLineItems(PolarsSettings(in_memory_below=lines)).clean(stored, job)
        assert calls == ["buckets"]


def test_the_polars_settings_are_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("polars: {in_memory_below: 10, bucket_lines: 4, spill_dir: /var/tmp}\n")
    settings = load_settings(good)
    assert dataclasses.astuple(settings.polars) == (10, 4, "/var/tmp")
    for bad, message in [
        (
            "polars: {bucket_lines: 0}",
            r"bad.yaml: polars: bucket_lines: expected a whole number of line items, got 0",
        ),
        ("polars: {in_memory_below: '2M'}", r"polars: in_memory_below: expected a whole number .*'2M'"),
        ("polars: {buckets: 4}", r"polars: unknown key\(s\) \['buckets'\]"),
    ]:
        (tmp_path / "bad.yaml").write_text(bad + "\n")
        with pytest.raises(ConfigError, match=message):
            load_settings(tmp_path / "bad.yaml")
