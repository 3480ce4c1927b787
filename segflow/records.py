"""What the Dagster instance records about each month: which jobs' months are built, and which runs
were left STARTED by a killed process.

A file on disk says only that some writer renamed it into place; it does not say that the month's
other outputs were written, nor that their blocking checks passed. The instance does: a month of a
job counts as built when every asset the job selects has a materialisation of that partition, and
every blocking check on them passed on the latest of those materialisations.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

from segflow.lib.storage import pid_alive

if TYPE_CHECKING:  # Dagster is imported where it is used: the CLI starts without it
    import dagster as dg

# Every run segflow starts carries the process that runs it, so that a later backfill can tell a
# run whose process was killed (left STARTED forever) from one still running elsewhere.
PROCESS_TAG = "segflow/process"


def process_tag() -> dict[str, str]:
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def dead_owner(tags: dict[str, str]) -> str | None:
    """The pid in ``tags``' process tag when that process ran on this host and is gone (killed),
    else None: a run or backfill of another host, or of a live process, is left alone."""
    host, _, pid = tags.get(PROCESS_TAG, "").rpartition(":")
    return pid if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)) else None


def _job_keys(defs: dg.Definitions, job_name: str) -> tuple[list, list]:
    job = defs.resolve_job_def(job_name)
    graph = job.asset_layer.asset_graph
    # A month is built when its partitions are: an unpartitioned asset (the report index) has none.
    assets = sorted(key for key in job.asset_layer.selected_asset_keys if graph.get(key).is_partitioned)
    checks = sorted(
        (key for key in graph.get_check_keys_for_assets(set(assets)) if graph.get_check_spec(key).blocking),
        key=lambda key: (key.asset_key, key.name),
    )
    return assets, checks


def built_months(
    defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, months: Iterable[str]
) -> set[str]:
    """The ``months`` whose every asset of ``job_name`` is materialised and whose every blocking check
    passed on the asset's latest materialisation, as ``instance`` records them.

    A run killed between two outputs, a check that never ran, or a later run whose gate refused to
    publish (its check's latest execution is then not a pass) leaves the month not built.
    """
    months = sorted(set(months))
    assets, checks = _job_keys(defs, job_name)
    built = set(months)
    for key in assets:
        built &= instance.get_materialized_partitions(key)
    if not built or not checks:
        return built
    # The instance's public API has no per-partition check status; the event log's own query is the
    # one the UI's partition view uses (one query per check, for all the months at once).
    infos = instance.event_log_storage.get_asset_check_partition_info(checks, partition_keys=sorted(built))
    passed: dict[str, int] = {}
    for info in infos:
        # SUCCEEDED on the latest materialisation (is_current); PLANNED (a killed or refused run)
        # and FAILED are not passes.
        if info.latest_execution_status.value == "SUCCEEDED" and info.is_current:
            passed[info.partition_key] = passed.get(info.partition_key, 0) + 1
    return {month for month in built if passed.get(month, 0) == len(checks)}


def fail_stale_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs segflow started on this host whose process is gone, yet which the
    instance still records as started: a SIGKILL leaves no chance to record the failure. Runs of
    other hosts, runs still running, and runs that segflow did not start (the UI's daemon has its
    own run monitoring) are left alone. Returns the run ids marked.
    """
    import dagster as dg

    active = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
    marked = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=active)):
        pid = dead_owner(run.tags)
        if pid is None:
            continue
        instance.report_run_failed(
            run, message=f"process {pid} that ran it is gone (killed); marked failed by a later segflow run"
        )
        marked.append(run.run_id)
    return marked
