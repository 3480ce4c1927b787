"""``segflow backfill --launch``: a backfill handed to Dagster's daemon instead of run in this process.

The months are submitted as one Dagster **asset backfill** of the same plan the in-process backfill
runs (``runner.plan_backfill``: the sources and profiles of every month the trailing windows read,
then features through the report of the target months). Dagster's backfill daemon then launches
the runs through the instance's run coordinator (``deploy/dagster.yaml``: a ``QueuedRunCoordinator``
with a concurrency limit, on PostgreSQL storage), and its launcher starts a process per run.

The order the months must keep is the asset graph's, which the daemon honours: a month's features
wait for the profiles of its window, its segmentation model and assignments for last month's (the
``PREVIOUS_MONTH`` inputs that align segment ids), and its out-of-time criterion for the months it
reads. Independent work (every month's profiles, the model fits) runs as many at a time as the
coordinator allows. So this module schedules nothing itself: it builds the target subset, checks
the instance can run it, records the backfill, and optionally follows it to the end.

The runs execute the code location the daemon serves (``workspace.yaml``), with the daemon's
settings (``$SEGFLOW_CONFIG``). The backfill, and so each of its runs, is tagged with the planning
settings' fingerprint, and a run whose code location has other settings stops before any step
(``defs.resources.settings_resource``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from segflow.config import ConfigError, Settings

TERMINAL = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")
# The daemon's backfill loop runs every 30 s (dagster._daemon.controller); one daemon heartbeat
# within two loops means a daemon is serving this instance.
DAEMON_STALE_S = 60
# --wait gives up after this long without a daemon heartbeat: the backfill stays recorded, and
# resumes when a daemon serves the instance again.
DAEMON_GONE_S = 180


@dataclass(frozen=True)
class Launched:
    backfill_id: str
    ingest: list[str]
    model: list[str]
    skipped: list[str]


def check_instance(instance: dg.DagsterInstance) -> list[str]:
    """Raise a configuration error when ``instance`` cannot queue a launched backfill's runs; return
    warnings: runs stored in SQLite (one machine only), or no daemon serving the instance yet."""
    from dagster._core.run_coordinator import QueuedRunCoordinator

    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        raise ConfigError(
            f"the Dagster instance at {instance.root_directory} has no QueuedRunCoordinator, so a "
            "launched backfill would start every run at once; use deploy/dagster.yaml (see README, "
            "Scaling out) or run the backfill in this process without --launch"
        )
    warnings = []
    if "Sqlite" in type(instance.run_storage).__name__:
        warnings.append(
            "this instance stores runs in SQLite: the daemon and its runs must share this machine; "
            "deploy/dagster.yaml stores them in PostgreSQL"
        )
    if not _daemon_alive(instance):
        warnings.append(
            f"no dagster-daemon has a heartbeat on this instance in the last {DAEMON_STALE_S} s; the "
            "backfill waits until one runs (`dagster-daemon run -w workspace.yaml`)"
        )
    return warnings


def run_limit(instance: dg.DagsterInstance) -> int:
    """How many runs the instance's queue starts at once (Dagster's default instance: 10)."""
    return instance.run_coordinator.get_run_queue_config().max_concurrent_runs


def _daemon_alive(instance: dg.DagsterInstance) -> bool:
    heartbeats = instance.get_daemon_heartbeats()
    beat = heartbeats.get("BACKFILL")
    return beat is not None and time.time() - beat.timestamp < DAEMON_STALE_S


def launch(settings: Settings, first: str, last: str, force: bool, instance: dg.DagsterInstance) -> Launched:
    """Record the asset backfill of months ``first`` .. ``last`` for the daemon to run."""
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.asset_backfill import AssetBackfillData
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from segflow.definitions import build_defs
    from segflow.defs.resources import SETTINGS_TAG
    from segflow.runner import plan_backfill

    defs = build_defs(settings)
    plan = plan_backfill(settings, first, last, force, defs=defs, instance=instance)
    graph = defs.resolve_asset_graph()
    subsets, whole = {}, set()  # monthly assets' months; unpartitioned ones (the report index)
    # The same two stages as the in-process backfill's jobs: what ingest_job and modelling_job select.
    for job, months in (("ingest_job", plan.ingest), ("modelling_job", plan.model)):
        for key in _keys(defs, job) if months else ():
            partitions = graph.get(key).partitions_def
            if partitions is None:
                whole.add(key)  # built once, after every month it reads
            else:
                subsets[key] = partitions.subset_with_partition_keys(months)
    backfill_id = make_new_backfill_id()
    if subsets:
        now = time.time()
        target = AssetGraphSubset(partitions_subsets_by_asset_key=subsets, non_partitioned_asset_keys=whole)
        data = AssetBackfillData.from_asset_graph_subset(target, instance, now)
        title = f"segflow backfill --launch {first}" + (f" .. {last}" if last != first else "")
        instance.add_backfill(
            PartitionBackfill(
                backfill_id=backfill_id,
                status=BulkActionStatus.REQUESTED,
                from_failure=False,
                tags={SETTINGS_TAG: settings.fingerprint},
                backfill_timestamp=now,
                asset_selection=sorted([*subsets, *whole]),
                asset_backfill_data=data,
                title=title,
                description=f"{len(plan.ingest)} ingest and {len(plan.model)} modelling months, "
                "run by the daemon in the order the asset graph gives",
            )
        )
    return Launched(backfill_id if subsets else "", plan.ingest, plan.model, plan.skipped)


def _keys(defs: dg.Definitions, job_name: str) -> list[dg.AssetKey]:
    return sorted(defs.resolve_job_def(job_name).asset_layer.selected_asset_keys)


def follow(instance: dg.DagsterInstance, backfill_id: str, echo: Callable[[str], None], poll_s: float = 2.0) -> bool:
    """Print each of the backfill's runs as it finishes, until the backfill ends; True on success."""
    from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG

    reported: set[str] = set()
    started = last_alive = time.monotonic()
    hinted = False
    while True:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        for run in sorted(runs, key=lambda r: r.run_id):
            if run.is_finished and run.run_id not in reported:
                reported.add(run.run_id)
                assets = len(run.asset_selection or ())
                month = run.tags.get(PARTITION_NAME_TAG, "?")
                echo(f"  {month} {assets:2d} assets {run.status.value.lower():8s} run {run.run_id}")
        status = backfill.status.value if backfill is not None else "CANCELED"
        if status in TERMINAL and all(r.is_finished for r in runs):
            echo(f"backfill {backfill_id}: {status.lower()}, {len(runs)} runs")
            return status == "COMPLETED_SUCCESS" and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        now = time.monotonic()
        if _daemon_alive(instance):
            last_alive = now
        elif not runs and not hinted and now - started > DAEMON_STALE_S:
            echo("  no run yet, and no dagster-daemon serves this instance: start one (README, Scaling out)")
            hinted = True
        if now - last_alive > DAEMON_GONE_S:
            echo(f"no dagster-daemon has served this instance for {DAEMON_GONE_S} s: stopped following; "
                 f"backfill {backfill_id} resumes when one runs")  # fmt: skip
            return False
        time.sleep(poll_s)
