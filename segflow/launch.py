"""Runs and backfills that the UI can attribute to segflow's code location.

``execute_in_process`` (and ``dagster job execute``, dagster-io/dagster#17707) records runs with no
code-location origin: the Runs list shows them, but a job's Runs tab, the Overview timeline and
the run's re-execution filter by origin (the hidden ``.dagster/repository`` tag), and find nothing.
The webserver's own launches create the run with a ``RemoteJobOrigin`` from its workspace and
hand it to a run launcher, which starts a process per run. Here the run is created with the same
origin (the code location ``segflow`` that ``workspace.yaml`` and ``[tool.dg.project]`` name, the
singleton repository of ``@dg.definitions``) and executed in this process, so the CLI keeps its
one-process speed and the UI shows, filters and re-executes its runs like its own.

There is no public API for either step, so this module is the one place that reaches into
``dagster._core``; the Dagster family is pinned to one patch version, and every test that runs
the CLI's runner fails if these internals move (``test_webserver.py`` asserts what the UI shows).

A ``segflow backfill`` is also recorded as a Dagster backfill (a job backfill of
``segmentation_job``, its runs tagged ``dagster/backfill``), so that it is listed under
Backfills with its runs. It is recorded as already submitted up to its last month: a daemon that
sees it (``dagster dev``) only watches its runs and never launches them again. A backfill whose
process was killed is closed as failed by the next one started on the same host.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from segflow.records import dead_owner, process_tag

# workspace.yaml: python_module segflow.definitions, location_name segflow.
CODE_LOCATION = "segflow"
DEFINITIONS_MODULE = "segflow.definitions"
BACKFILL_JOB = "segmentation_job"


@functools.cache
def repository_origin():
    """The origin the webserver gives segflow's repository (only its names are compared)."""
    from dagster._core.definitions.repository_definition.valid_definitions import (
        SINGLETON_REPOSITORY_NAME,
    )
    from dagster._core.remote_origin import RemoteRepositoryOrigin
    from dagster._core.workspace.load_target import ModuleTarget

    (location,) = ModuleTarget(DEFINITIONS_MODULE, None, None, CODE_LOCATION).create_origins()
    return RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME)


def execute(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    partition_key: str,
    run_config: dict,
    tags: dict[str, str] | None = None,
):
    """Create a run of ``job`` for ``partition_key`` with segflow's origin, and execute it here.

    Returns Dagster's ``JobExecutionResult`` (``success``, ``run_id``, ``all_events``).
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    # What execute_in_process does: the partition is validated and becomes the run's tags.
    run_tags = merge_run_tags(job, partition_key, tags, None, instance, run_config)
    run = instance.create_run_for_job(
        job_def=job,
        run_config=run_config,
        tags=run_tags,
        remote_job_origin=repository_origin().get_job_origin(job.name),
    )
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)


@dataclass(frozen=True)
class BackfillRecord:
    """A Dagster backfill that lists the runs of one ``segflow backfill``."""

    backfill_id: str

    @property
    def tags(self) -> dict[str, str]:
        from dagster._core.storage.tags import BACKFILL_ID_TAG

        return {BACKFILL_ID_TAG: self.backfill_id}


def start_backfill(instance: dg.DagsterInstance, months: Sequence[str], title: str) -> BackfillRecord:
    """Record an in-progress backfill of ``months`` (runs are tagged with ``record.tags``)."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    close_abandoned(instance)
    months = sorted(months)
    backfill = PartitionBackfill(
        backfill_id=make_new_backfill_id(),
        status=BulkActionStatus.REQUESTED,
        from_failure=False,
        # Which process runs it (the runs carry the same tag): one whose process is gone (killed)
        # is closed by the next backfill.
        tags=process_tag(),
        backfill_timestamp=time.time(),
        title=title,
        description="segflow backfill from the command line: runs in the segflow process, "
        "ingest months first, then each month's modelling",
        partition_set_origin=repository_origin().get_partition_set_origin(f"{BACKFILL_JOB}_partition_set"),
        partition_names=months,
        # Everything counts as submitted: a running daemon must not launch these months again.
        last_submitted_partition_name=months[-1] if months else None,
    )
    instance.add_backfill(backfill)
    return BackfillRecord(backfill.backfill_id)


def finish_backfill(instance: dg.DagsterInstance, record: BackfillRecord, success: bool) -> None:
    """Mark the backfill completed, successfully or not."""
    from dagster._core.execution.backfill import BulkActionStatus

    backfill = instance.get_backfill(record.backfill_id)
    if backfill is None:
        return
    status = BulkActionStatus.COMPLETED_SUCCESS if success else BulkActionStatus.COMPLETED_FAILED
    instance.update_backfill(backfill.with_status(status).with_end_timestamp(time.time()))


def close_abandoned(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-progress backfills of segflow processes on this host that no longer
    exist (killed before they could finish their record); returns their ids. A backfill's runs
    stay as they are."""
    from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

    closed = []
    requested = instance.get_backfills(filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED]))
    for backfill in requested:
        if dead_owner(backfill.tags) is not None:
            failed = backfill.with_status(BulkActionStatus.COMPLETED_FAILED).with_end_timestamp(time.time())
            instance.update_backfill(failed)
            closed.append(backfill.backfill_id)
    return closed
