"""engine: spark against the default engine: the same month, the same profiles, quarantine and row
accounting, exactly (issue 14). Spark runs in local[2], as CI can; the session is shared."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from segflow.config import ConfigError, SparkSettings
from segflow.lib.profiles import rule_table
from segflow.lib.profiles.profiles import ProfileBuild
from segflow_tests import line_item_months
from segflow_tests.conftest import HISTORY_MONTHS
from segflow_tests.line_item_months import assert_same_build
from segflow_tests.os_packages import ensure_debian_package

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


def _both(month: line_item_months.Month, tmp: Path, spark) -> tuple[ProfileBuild, ProfileBuild]:
    return line_item_months.builds(month, tmp, SparkLineItems(lambda: spark))


def test_every_rule_and_duplicate_is_judged_alike(spark, tmp_path: Path) -> None:
    month = line_item_months.every_rule_month()
    polars_build, spark_build = _both(month, tmp_path, spark)
    assert_same_build(polars_build, spark_build)
    table = rule_table.transaction_rule_table(START, END, month.settings, pl.Series(line_item_months.KNOWN))
    seen = set(polars_build.quarantined.filter(pl.col("source") == "transactions")["rule_id"])
    assert seen == {r.rule_id for r in table}, "the dirty month must break every rule, so each is compared"
    assert polars_build.accounting["transactions"]["duplicates_dropped"] == 2
    c2 = polars_build.profiles.filter(pl.col("customer_id") == "C2")
    assert c2["net_revenue"].item() == pytest.approx(3.5 * 2 + 2e-6)  # 0.5 and 1.5 micro: 0 and 2


def test_derived_invoices_keep_repeated_lines_alike(spark, tmp_path: Path) -> None:
    """The engines must tell derived ids from real ones the same way."""
    for exact_duplicates in ("auto", "drop"):
        polars_build, spark_build = _both(line_item_months.derived_invoice_month(exact_duplicates), tmp_path, spark)
        assert_same_build(polars_build, spark_build)
        dropped = polars_build.accounting["transactions"]["duplicates_dropped"]
        assert dropped == (0 if exact_duplicates == "auto" else 1)


def test_a_generated_month_with_dirt_is_built_alike(spark, history_landing: Path, tmp_path: Path) -> None:
    month = line_item_months.generated_month(history_landing, tmp_path)
    polars_build, spark_build = _both(month, tmp_path, spark)
    assert_same_build(polars_build, spark_build)
    assert polars_build.accounting["transactions"]["quarantined_rows"] > 0


def test_an_online_retail_month_is_built_alike(spark, tmp_path: Path) -> None:
    polars_build, spark_build = _both(line_item_months.online_retail_month(), tmp_path, spark)
    assert_same_build(polars_build, spark_build)
    accounting = polars_build.accounting["transactions"]
    assert accounting["duplicates_dropped"] > 0 and accounting["quarantined_rows"] > 0
    assert polars_build.profiles.height > 1_000


def test_the_spark_engine_runs_through_dagster_to_the_same_files(
    spark, history_landing: Path, tmp_path: Path
) -> None:
    """``engine: spark`` in the definitions: dagster-pyspark's resource, the stored raw month read by
    Spark, and the profiles' outputs the same bytes as the default engine's."""
    stored = {
        engine: line_item_months.ingested_files(history_landing, tmp_path / engine, HISTORY_MONTHS[0], engine=engine)
        for engine in ("polars", "spark")
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
