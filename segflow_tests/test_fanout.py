"""``segflow backfill --launch`` without a daemon: what it refuses, what it warns about, and the asset
backfill it records (the daemon that runs one is tested in test_orchestration.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from segflow import fanout
from segflow.config import ConfigError
from segflow_tests.conftest import home_settings, segflow_cli

QUEUED = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
telemetry:
  enabled: false
"""


def _queued_instance(path: Path) -> dg.DagsterInstance:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(QUEUED)
    return dg.DagsterInstance.from_config(str(path))


def test_an_instance_without_a_run_queue_is_refused_naming_the_fix() -> None:
    with dg.DagsterInstance.ephemeral() as instance, pytest.raises(ConfigError) as err:
        fanout.check_instance(instance)
    assert "QueuedRunCoordinator" in str(err.value) and "deploy/dagster.yaml" in str(err.value)


def test_sqlite_and_a_missing_daemon_are_warned_about(tmp_path: Path) -> None:
    with _queued_instance(tmp_path / "dh") as instance:
        warnings = fanout.check_instance(instance)
    assert len(warnings) == 2
    assert "SQLite" in warnings[0] and "dagster-daemon" in warnings[1]


def test_the_recorded_backfill_targets_the_plans_months_by_stage(tmp_path: Path) -> None:
    # Nothing built: 2024-01 .. 2024-03 are ingest and modelling months alike (the window starts
    # at the first partition). The daemon would run it; here nothing does.
    settings = home_settings(tmp_path)
    with _queued_instance(tmp_path / "dh") as instance:
        launched = fanout.launch(settings, "2024-02", "2024-03", False, instance)
        backfill = instance.get_backfill(launched.backfill_id)
    # The chain extends back to the first partition (2024-01 has no model yet), as in process.
    assert launched.ingest == launched.model == ["2024-01", "2024-02", "2024-03"]
    assert backfill.status.value == "REQUESTED" and backfill.is_asset_backfill
    target = backfill.asset_backfill_data.target_subset
    months = {key.to_user_string(): sorted(subset.get_partition_keys())
              for key, subset in target.partitions_subsets_by_asset_key.items()}  # fmt: skip
    assert months["raw_transactions"] == months["customer_profiles"] == launched.ingest
    assert months["segmentation_model"] == months["audit_report"] == launched.model
    assert {k.to_user_string() for k in target.non_partitioned_asset_keys} == {"report_index"}
    assert len(months) + 1 == len(backfill.asset_selection) == 24


def test_the_cli_launches_on_the_default_instance_and_says_what_it_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Dagster's default instance (what `make ui` uses) queues runs, 10 at a time, in SQLite.
    out = segflow_cli(tmp_path, "backfill", "--launch", "--from", "2024-01", "--to", "2024-01")
    assert "launched backfill" in out and "1 ingest and 1 modelling months" in out and "at most 10" in out
    err = capsys.readouterr().err
    assert "stores runs in SQLite" in err and "no dagster-daemon" in err


def test_a_run_planned_with_other_settings_stops_before_any_step(tmp_path: Path) -> None:
    # The daemon's code location serves ``settings``; a run says which settings it was planned with.
    from segflow.definitions import build_defs

    settings = home_settings(tmp_path)
    other = home_settings(tmp_path / "elsewhere")
    assert other.fingerprint != settings.fingerprint
    job = build_defs(settings).resolve_job_def("ingest_job")
    with dg.DagsterInstance.ephemeral() as instance:
        refused = _events(instance, job, other.fingerprint)
        admitted = _events(instance, job, settings.fingerprint)
    failure = "\n".join(str(data) for kind, data in refused if kind == "RESOURCE_INIT_FAILURE")
    assert other.fingerprint in failure and settings.fingerprint in failure and "SEGFLOW_CONFIG" in failure
    assert not any(kind == "STEP_START" for kind, _ in refused)
    # The same settings pass the guard: the steps start (and fail on a landing zone that is empty).
    assert any(kind == "RESOURCE_INIT_SUCCESS" for kind, _ in admitted)
    assert any(kind == "STEP_START" for kind, _ in admitted)


def _events(instance: dg.DagsterInstance, job, planned: str) -> list[tuple[str, object]]:
    result = job.execute_in_process(instance=instance, partition_key="2024-01", raise_on_error=False,
                                    tags={"segflow/settings": planned})  # fmt: skip
    assert not result.success
    return [(e.dagster_event.event_type_value, e.dagster_event.event_specific_data)
            for e in instance.all_logs(result.run_id) if e.dagster_event is not None]  # fmt: skip


def test_workers_are_refused_with_launch_naming_the_queue_setting(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        segflow_cli(tmp_path, "backfill", "--launch", "--workers", "2", "--from", "2024-01", "--to", "2024-01")
    assert "max_concurrent_runs" in str(stopped.value)


def test_wait_gives_up_when_no_daemon_serves_the_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seconds, not minutes: the wait gives up after DAEMON_GONE_S without a heartbeat.
    monkeypatch.setattr(fanout, "DAEMON_GONE_S", 0.2)
    said: list[str] = []
    with _queued_instance(tmp_path / "dh") as instance:
        launched = fanout.launch(home_settings(tmp_path), "2024-01", "2024-01", False, instance)
        assert fanout.follow(instance, launched.backfill_id, said.append, poll_s=0.05) is False
        assert instance.get_backfill(launched.backfill_id).status.value == "REQUESTED"  # left for a daemon
    assert said[-1].startswith("no dagster-daemon has served this instance") and launched.backfill_id in said[-1]
