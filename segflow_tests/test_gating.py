"""Blocking gates: a failed contract check stops everything downstream, and computed tables that
break their contract are never published."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from segflow.synth import DirtRates, SynthConfig, generate
from segflow_tests.conftest import home_layout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    generate(
        tmp_path / "landing",
        SynthConfig(customers=600, months=2, start="2024-01", seed=3, dirt=DirtRates.none()),
    )
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("SEGFLOW_CONFIG", raising=False)
    return tmp_path


def test_failed_blocking_check_stops_everything_downstream(home: Path, memory_instance) -> None:
    from segflow.definitions import defs

    path = home / "landing" / "transactions" / "2024-02.parquet"
    tx = pl.read_parquet(path)
    broken = tx.with_columns(
        pl.when(pl.int_range(pl.len()) % 10 < 6)
        .then(None)
        .otherwise(pl.col("customer_id"))
        .alias("customer_id")
    )
    broken.write_parquet(path)
    job = defs().resolve_job_def("segmentation_job")
    result = job.execute_in_process(partition_key="2024-02", instance=memory_instance, raise_on_error=False)
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = evaluations["raw_transactions_contract_errors"]
    assert not failed.passed
    assert "raw_transactions.customer_id.null_rate" in failed.metadata["failing_rules"].value
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    # raw_transactions is the staging copy and is written; nothing downstream of it is.
    assert "raw_transactions" in materialised
    assert not {"customer_profiles", "quarantined_rows", "customer_features", "segmentation_model",
                "segment_assignments", "kpi_audit", "audit_report"} & materialised  # fmt: skip
    assert not home_layout(home).table("customer_profiles", "2024-02").exists()


def test_publish_gate_refuses_a_table_that_breaks_its_contract() -> None:
    from segflow.defs.contract_checks import publish_gate

    good = pl.DataFrame({"period": ["2024-02"], "source": ["transactions"], "raw_rows": [5], "accepted_rows": [3],
                         "quarantined_rows": [1], "duplicates_dropped": [1], "orphan_rows": [0],
                         "orphan_customers": [0], "quarantined_share": [0.2]})  # fmt: skip
    publish_gate(good, "row_accounting", "2024-02")
    bad = good.with_columns(pl.lit("pos").alias("source"), pl.lit(-1).cast(pl.Int64).alias("accepted_rows"))
    with pytest.raises(dg.Failure) as err:
        publish_gate(bad, "row_accounting", "2024-02")
    message = err.value.description
    assert "row_accounting.source.allowed" in message and "row_accounting.accepted_rows.range" in message


def test_accounting_balance_check_catches_lost_rows() -> None:
    from segflow.defs.profiles.checks import row_accounting_balances

    frame = pl.DataFrame({"period": ["2024-02"] * 2, "source": ["transactions", "customers"], "raw_rows": [10, 4],
                          "accepted_rows": [7, 4], "quarantined_rows": [2, 0], "duplicates_dropped": [1, 0]})  # fmt: skip
    assert row_accounting_balances(frame).passed
    lost = frame.with_columns(pl.when(pl.col("source") == "transactions").then(6).otherwise(pl.col("accepted_rows"))
                              .alias("accepted_rows"))  # fmt: skip
    result = row_accounting_balances(lost)
    assert not result.passed and "transactions: 1 rows unaccounted" in result.description


def test_clean_synthetic_month_passes_every_check_without_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_instance
) -> None:
    """On the generator's clean data (no injected dirt) nothing may warn: a warning there is a false
    alarm that teaches users to ignore warnings (issue 16.10: `units` missing from the profiles
    contract warned every month)."""
    generate(tmp_path / "landing", SynthConfig(customers=400, months=1, start="2024-01", seed=3,
                                               dirt=DirtRates.none()))  # fmt: skip
    # The sweep is cut to k-means (every check still runs): the checks, not the selection, are tested.
    config = tmp_path / "segflow.yaml"
    config.write_text("model: {families: [kmeans], k_max: 5, stability_resamples: 3}\n", encoding="utf-8")
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_CONFIG", str(config))
    from segflow.definitions import defs

    job = defs().resolve_job_def("segmentation_job")
    result = job.execute_in_process(partition_key="2024-01", instance=memory_instance, raise_on_error=False)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    names = {e.check_name for e in evaluations}
    assert {"customer_profiles_contract_warnings", "segment_assignments_contract_errors",
            "customer_features_contract_errors", "kpi_audit_contract_errors"} <= names  # fmt: skip
    not_passed = [
        (e.check_name, e.severity.value, e.metadata["failing_rules"].value if "failing_rules" in e.metadata else "")
        for e in evaluations
        if not e.passed
    ]
    assert not_passed == []
    html = home_layout(tmp_path).report_page("2024-01").read_text(encoding="utf-8")
    assert "0 warned" in html and "(0 advisory warning(s))" in html


def test_segment_assignments_contract_refuses_a_broken_table() -> None:
    from segflow.defs.contract_checks import publish_gate

    good = pl.DataFrame({
        "customer_id": ["a", "b"], "period": ["2024-02"] * 2, "segment_id": [0, 1],
        "segment_name": ["Frequent, recently active customers", "Lapsing, low-value customers"],
        "recency_days": [3, 200], "invoices_window": [4, 1], "net_revenue_window": [120.0, 9.5],
        "previous_segment_id": [0, None], "model_version": ["m1"] * 2, "churn_risk": [0.1, None],
        "churn_model_version": ["c1", None], "p_alive": [0.9, None], "expected_purchases": [1.2, None],
        "predicted_value": [80.5, None], "clv_model_version": ["v1", None],
    })  # fmt: skip
    publish_gate(good, "segment_assignments", "2024-02")  # the snapshot shape: no RFM columns
    bad = good.with_columns(pl.lit("a").alias("customer_id"), pl.Series("segment_id", [0, None]),
                            pl.Series("churn_risk", [1.5, None]), pl.Series("p_alive", [1.2, None]))  # fmt: skip
    with pytest.raises(dg.Failure) as err:
        publish_gate(bad, "segment_assignments", "2024-02")
    message = err.value.description
    for rule in ("customer_id.unique", "segment_id.not_null", "churn_risk.range", "p_alive.range"):
        assert f"segment_assignments.{rule}" in message
