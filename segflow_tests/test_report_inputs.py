"""The report's gathered inputs (check rows, ignored columns), the index records read back by
month, and a month's completeness beside an unpartitioned asset (the report index)."""

import warnings
from pathlib import Path

import dagster as dg

from segflow.lib.audit.report_inputs import CheckOutcome, RawColumns, check_rows, ignored_columns
from segflow.records import built_months


def test_check_rows_count_each_assets_outcomes_and_name_the_failing() -> None:
    rows = check_rows(
        [
            CheckOutcome("customer_features", "customer_features_contract_errors", "passed"),
            CheckOutcome("customer_features", "customer_features_volume", "warned", "row_count"),
            CheckOutcome("raw_surveys", "raw_surveys_contract_errors", "missing"),
            CheckOutcome("customer_features", "customer_features_contract_warnings", "failed"),
        ]
    )
    assert rows == [
        {"asset": "customer_features", "passed": 1, "warned": 1, "failed": 1, "missing": 0,
         "failing": "customer_features_volume (row_count); customer_features_contract_warnings"},
        {"asset": "raw_surveys", "passed": 0, "warned": 0, "failed": 0, "missing": 1, "failing": "–"},
    ]  # fmt: skip


def test_a_file_read_by_two_sources_ignores_only_what_neither_reads() -> None:
    shared = ("crm/2024-03.csv",)
    rows = ignored_columns(
        [
            RawColumns("customers", shared, frozenset({"contact", "spend", "note"}), frozenset({"note"})),
            RawColumns("snapshot", shared, frozenset({"contact", "note", "segment"}), frozenset()),
            RawColumns("surveys", ("surveys",), frozenset({"channel"}), frozenset()),
        ]
    )
    assert rows == [
        {"source": "customers, snapshot", "column": "contact", "why": "not mapped to any canonical column"},
        {"source": "customers, snapshot", "column": "note",
         "why": "constant (one value in every row): carries no information, not mapped"},
        {"source": "surveys", "column": "channel", "why": "not mapped to any canonical column"},
    ]  # fmt: skip


def test_a_month_is_built_whatever_the_unpartitioned_assets_beside_it(memory_instance) -> None:
    months = dg.StaticPartitionsDefinition(["2024-01", "2024-02"])

    @dg.asset(partitions_def=months)
    def monthly() -> int:
        return 1

    @dg.asset(deps=[monthly])
    def overview() -> None:
        return None

    job = dg.define_asset_job("job", selection=[monthly, overview], executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[monthly, overview], jobs=[job], resources={"io_manager": dg.mem_io_manager})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        result = defs.resolve_job_def("job").execute_in_process(
            partition_key="2024-01", instance=memory_instance
        )
    assert result.success
    assert memory_instance.get_materialized_partitions(dg.AssetKey("overview")) == set()
    assert built_months(defs, memory_instance, "job", months.get_partition_keys()) == {"2024-01"}


def test_the_report_reads_each_checks_latest_evaluation_of_the_month(tmp_path: Path) -> None:
    """On an instance on disk (SQLite numbers a run's events in the run's own shard), the report
    finds the month's latest evaluation of every upstream check, and its failing rules."""
    from types import SimpleNamespace

    from segflow.defs.audit.report import _check_outcomes

    months = dg.StaticPartitionsDefinition(["2024-01", "2024-02"])
    specs = [dg.AssetCheckSpec(name, asset="table", partitions_def=months) for name in ("a_ok", "b_warns")]

    @dg.asset(partitions_def=months, group_name="profiles", check_specs=specs)
    def table(context: dg.AssetExecutionContext):
        yield dg.Output(1)
        yield dg.AssetCheckResult(check_name="a_ok", passed=True)
        yield dg.AssetCheckResult(check_name="b_warns", passed=context.partition_key != "2024-02",
                                  severity=dg.AssetCheckSeverity.WARN, metadata={"failing_rules": "rule_x"})  # fmt: skip

    job = dg.define_asset_job("job", selection=[table], executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[table], jobs=[job], resources={"io_manager": dg.mem_io_manager})
    with warnings.catch_warnings(), dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        for month in ("2024-01", "2024-02", "2024-02"):
            defs.resolve_job_def("job").execute_in_process(partition_key=month, instance=instance)
        context = SimpleNamespace(job_def=defs.resolve_job_def("job"), instance=instance)
        rows = {m: check_rows(_check_outcomes(context, m)) for m in months.get_partition_keys()}
    assert rows["2024-01"] == [
        {"asset": "table", "passed": 2, "warned": 0, "failed": 0, "missing": 0, "failing": "–"}
    ]
    assert rows["2024-02"] == [
        {"asset": "table", "passed": 1, "warned": 1, "failed": 0, "missing": 0, "failing": "b_warns (rule_x)"}
    ]
