"""Run partitions in-process against the same definitions and Dagster instance as the UI.

Runs are recorded in the instance at ``$DAGSTER_HOME`` (default ``<segflow home>/dagster_home``),
so everything the CLI does shows up in the UI's run list and asset catalog.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from segflow.config import CONFIG_ENV, Settings, load_settings
from segflow.lib.periods import month_range, shift


def prepare_environment(config: str | None) -> Settings:
    """Point this process at the settings file and the Dagster instance, before defs are imported."""
    if config:
        os.environ[CONFIG_ENV] = str(Path(config).resolve())
    settings = load_settings(config)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch(exist_ok=True)
    return settings


# The full event stream is in the instance (and the UI); the terminal gets warnings and errors.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunOutcome:
    period: str
    job: str
    success: bool
    seconds: float
    run_id: str
    error: str = ""


@dataclass
class BackfillSummary:
    outcomes: list[RunOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if not o.success]


def _definitions():
    from segflow.definitions import defs

    return defs()


def _first_error(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data.evaluation
            if not data.passed:
                return f"check {data.check_name} on {data.asset_key.to_user_string()} failed: {data.description or ''}"
    return "run failed"


def run_partition(job_name: str, period: str) -> RunOutcome:
    import dagster as dg

    defs = _definitions()
    job = defs.resolve_job_def(job_name)
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=period, instance=instance, raise_on_error=False, run_config=QUIET
        )
    seconds = time.perf_counter() - started
    error = "" if result.success else _first_error(result)
    return RunOutcome(period, job_name, result.success, seconds, result.run_id, error)


def _materialized(settings: Settings, asset: str, period: str) -> bool:
    return (settings.storage_dir / asset / f"{period}.parquet").exists()


def backfill(settings: Settings, first: str, last: str, echo=print) -> BackfillSummary:
    """Materialise every month from ``first`` to ``last``, oldest first.

    Months inside the first month's trailing window that have no profiles yet are ingested first
    (sources and profiles only), because the features of ``first`` read them.
    """
    months = month_range(first, last)
    window_start = max(shift(first, -(settings.features.window_months - 1)), settings.partitions_start)
    ingest = [m for m in month_range(window_start, shift(first, -1)) if not _materialized(settings, "customer_profiles", m)]
    plan = [("ingest_job", m) for m in ingest] + [("segmentation_job", m) for m in months]
    summary = BackfillSummary()
    started = time.perf_counter()
    for index, (job, period) in enumerate(plan, start=1):
        outcome = run_partition(job, period)
        summary.outcomes.append(outcome)
        elapsed = time.perf_counter() - started
        eta = elapsed / index * (len(plan) - index)
        status = "ok" if outcome.success else f"FAILED: {outcome.error}"
        echo(f"[{index}/{len(plan)}] {period} {job:<17} {outcome.seconds:6.1f}s  eta {eta:5.0f}s  {status}")
        sys.stdout.flush()
    return summary
