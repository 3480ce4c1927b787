"""engine: spark against the default engine: the same month, the same profiles, quarantine and row
accounting, exactly (issue 14). Spark runs in local[2], as CI can; the session is shared."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal as assert_equal

from segflow.config import CleaningSettings, ConfigError, Settings, SparkSettings
from segflow.lib import periods
from segflow.lib.profiles import rule_table
from segflow.lib.profiles.line_items import LineItemFile
from segflow.lib.profiles.profiles import ProfileBuild, RawSources, build_profiles
from segflow.lib.sources.ingest import period_filter_for, read_month, read_source
from segflow_tests.conftest import HISTORY_MONTHS, ONLINE_RETAIL, require
from segflow_tests.os_packages import ensure_debian_package
from segflow_tests.test_cleaning import _tx
from segflow_tests.test_rfm_online_retail import MAPPING

pyspark = pytest.importorskip("pyspark", reason="the spark extra is part of dev: make test installs it")

from segflow.lib.spark.line_items import SparkLineItems  # noqa: E402
from segflow.lib.spark.session import require_java, spark_conf  # noqa: E402

START, END = datetime(2024, 3, 1), datetime(2024, 4, 1)


def _java_found() -> bool:
    try:
        require_java()
    except ConfigError:
        return False
    return True


@pytest.fixture(scope="module")
def spark() -> Iterator:
    from pyspark.sql import SparkSession

    # Spark 4's driver is a JVM (Java 17+): the machine image has one; elsewhere, the OS's.
    ensure_debian_package("openjdk-17-jre-headless", lambda: _java_found())
    require_java()
    builder = SparkSession.builder
    for key, value in spark_conf(SparkSettings(master="local[2]")).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


def _both(
    raw: RawSources, tmp: Path, spark, period: str, settings: CleaningSettings
) -> tuple[ProfileBuild, ProfileBuild]:
    """The month built by each engine; Spark reads the line items from a Parquet file, as it reads
    the stored raw_transactions month."""
    start, end = periods.bounds(period)
    path = tmp / f"raw_transactions_{period}.parquet"
    raw.transactions.write_parquet(path)
    on_spark = dataclasses.replace(raw, transactions=LineItemFile(str(path), tuple(raw.transactions.columns)))
    polars_build = build_profiles(raw, period, start, end, settings, 42)
    spark_build = build_profiles(
        on_spark, period, start, end, settings, 42, line_items=SparkLineItems(lambda: spark)
    )
    return polars_build, spark_build


def _assert_same(a: ProfileBuild, b: ProfileBuild) -> None:
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


def test_every_rule_and_duplicate_is_judged_alike(spark, tmp_path: Path) -> None:
    known = ["C1", "C2"]
    crm = pl.DataFrame({"customer_id": known})
    from segflow.lib.sources.ingest import empty_source

    customers = pl.concat([empty_source("customers"), crm], how="diagonal_relaxed").with_columns(
        pl.col("signup_date").fill_null(datetime(2020, 1, 1).date()),
        pl.lit("crm.csv").alias("_source_file"), pl.int_range(pl.len()).cast(pl.Int64).alias("_source_row"),
    )  # fmt: skip
    raw = RawSources(customers, _tx(DIRTY), None, None, None)
    settings = CleaningSettings(orphans="quarantine", max_abs_quantity=1000)
    polars_build, spark_build = _both(raw, tmp_path, spark, "2024-03", settings)
    _assert_same(polars_build, spark_build)
    table = rule_table.transaction_rule_table(START, END, settings, pl.Series(known))
    seen = set(polars_build.quarantined.filter(pl.col("source") == "transactions")["rule_id"])
    assert seen == {r.rule_id for r in table}, "the dirty month must break every rule, so each is compared"
    assert polars_build.accounting["transactions"]["duplicates_dropped"] == 2
    c2 = polars_build.profiles.filter(pl.col("customer_id") == "C2")
    assert c2["net_revenue"].item() == pytest.approx(3.5 * 2 + 2e-6)  # 0.5 and 1.5 micro: 0 and 2


def test_derived_invoices_keep_repeated_lines_alike(spark, tmp_path: Path) -> None:
    """Ids derived from customer and day make repeated lines purchases (auto keeps them), and the
    engines must tell derived ids from real ones the same way."""
    rows = [{"invoice_id": f"2024-03-05/{c}", "customer_id": f" {c}"} for c in ("C1", "C1", "C2")]
    for exact_duplicates in ("auto", "drop"):
        settings = CleaningSettings(exact_duplicates=exact_duplicates)
        polars_build, spark_build = _both(
            RawSources(None, _tx(rows), None, None, None), tmp_path, spark, "2024-03", settings
        )
        _assert_same(polars_build, spark_build)
        dropped = polars_build.accounting["transactions"]["duplicates_dropped"]
        assert dropped == (0 if exact_duplicates == "auto" else 1)


def test_a_generated_month_with_dirt_is_built_alike(spark, history_landing: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, storage_dir=tmp_path / "storage", landing_dir=history_landing)
    settings = dataclasses.replace(settings, partitions_start=HISTORY_MONTHS[0])
    period = HISTORY_MONTHS[2]
    raw = {s: read_month(s, settings, period).frame for s in ("customers", "transactions", "engagement",
                                                             "surveys", "campaigns")}  # fmt: skip
    polars_build, spark_build = _both(RawSources(**raw), tmp_path, spark, period, settings.cleaning)
    _assert_same(polars_build, spark_build)
    assert polars_build.accounting["transactions"]["quarantined_rows"] > 0


def test_an_online_retail_month_is_built_alike(spark, tmp_path: Path) -> None:
    path = str(require(ONLINE_RETAIL))
    period = "2011-11"
    start, end = periods.bounds(period)
    split = period_filter_for("transactions", path, start, end, is_first_partition=False)
    raw = read_source("transactions", MAPPING, path, split).frame
    settings = CleaningSettings(max_abs_quantity=20_000)
    polars_build, spark_build = _both(
        RawSources(None, raw, None, None, None), tmp_path, spark, period, settings
    )
    _assert_same(polars_build, spark_build)
    accounting = polars_build.accounting["transactions"]
    assert accounting["duplicates_dropped"] > 0 and accounting["quarantined_rows"] > 0
    assert polars_build.profiles.height > 1_000


def test_the_spark_engine_runs_through_dagster_to_the_same_files(
    spark, history_landing: Path, tmp_path: Path
) -> None:
    """``engine: spark`` in the definitions: dagster-pyspark's resource, the stored raw month read by
    Spark, and the profiles' outputs the same bytes as the default engine's."""
    from segflow import runner
    from segflow.definitions import build_defs
    from segflow.lib.storage import StorageLayout

    period = HISTORY_MONTHS[0]
    stored = {}
    for engine in ("polars", "spark"):
        home = tmp_path / engine
        settings = Settings(home=home, storage_dir=home / "storage", landing_dir=history_landing)
        settings = dataclasses.replace(
            settings, partitions_start=period, partitions_end=period, engine=engine
        )
        with dg.instance_for_test() as instance:
            outcome = runner.run_partition(build_defs(settings), instance, "ingest_job", period)
        assert outcome.success, outcome.error
        layout = StorageLayout(settings.storage_dir)
        stored[engine] = {
            asset: layout.table(asset, period).read_bytes()
            for asset in ("customer_profiles", "quarantined_rows", "row_accounting", "campaign_exposures")
        }
    assert stored["spark"] == stored["polars"]


def test_the_engine_setting_is_checked_and_configures_the_session(tmp_path: Path, monkeypatch) -> None:
    from segflow.config import load_settings

    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: flink\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: engine: 'flink' is not one of \['polars', 'spark'\]"):
        load_settings(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text('engine: spark\nspark: {masters: "local[1]"}\n')
    with pytest.raises(ConfigError, match=r"typo.yaml: spark: unknown key\(s\) \['masters'\]"):
        load_settings(typo)
    good = tmp_path / "good.yaml"
    good.write_text(
        "engine: spark\nspark:\n  master: local[1]\n  config: {spark.sql.shuffle.partitions: 4}\n"
    )
    settings = load_settings(good)
    assert settings.engine == "spark"
    conf = spark_conf(settings.spark)
    assert conf["spark.master"] == "local[1]" and conf["spark.sql.shuffle.partitions"] == "4"
    assert conf["spark.ui.enabled"] == "false" and conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert "spark.driver.bindAddress" not in spark_conf(SparkSettings(master="spark://head:7077"))
    # Without the extra, the config is refused before anything runs, with the command to install it.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "pyspark" else real(name))
    with pytest.raises(
        ConfigError, match=r"engine: spark needs the spark extra: pip install 'segflow\[spark\]'"
    ):
        load_settings(good)


def test_the_default_engine_never_imports_spark(tmp_path: Path) -> None:
    """The default install has no pyspark and no Java: building and reading the definitions with
    the default engine must not import it."""
    import subprocess
    import sys

    code = (
        "import sys; from segflow.config import load_settings; from segflow.definitions import build_defs; "
        "d = build_defs(load_settings()); d.get_repository_def(); "
        "assert 'pyspark' not in sys.modules and 'dagster_pyspark' not in sys.modules, 'imported'"
    )
    env = {**__import__("os").environ, "SEGFLOW_HOME": str(tmp_path)}
    env.pop("SEGFLOW_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
