"""Run partitions in-process against the same definitions and Dagster instance as the UI.

Runs are recorded in the instance at ``$DAGSTER_HOME`` (default ``<segflow home>/dagster_home``),
so everything the CLI does shows up in the UI's run list and asset catalog.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from segflow.config import ConfigError, Settings, load_settings
from segflow.lib.periods import month_range, shift
from segflow.records import process_tag

if TYPE_CHECKING:  # imported where runs start: the CLI prints its first line before Dagster loads
    import dagster as dg


def prepare_environment(config: str | None) -> Settings:
    """Read the settings file once and point this process at their Dagster instance."""
    settings = load_settings(config)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists() or not instance_yaml.read_text().strip():
        # segflow makes no network calls at run time, and Dagster's telemetry would.
        instance_yaml.write_text(INSTANCE_YAML)
    return settings


INSTANCE_YAML = "telemetry:\n  enabled: false\n"

# The full event stream, tracebacks included, is in the instance (and the UI's run page). The
# terminal gets segflow's own lines: each failed run's first error (naming the file, column and
# rule) in its progress line and the summary, with its run id. Dagster's console errors would put
# a traceback of ~90 lines before that line; its warnings here are expected ones (a first month
# has no previous partition to read).
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


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


def _first_error(result) -> str:
    """The most useful line about why a run failed: a failed blocking check names its rules."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity.value == "ERROR":
                failing = evaluation.metadata.get("failing_rules")
                detail = failing.value if failing is not None else (evaluation.description or "")
                return f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed: {detail}"
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            # Dagster wraps the user's exception; show the user's (which names file, column, rule).
            while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}"
    return "run failed"


def run_partition(defs, instance, job_name: str, period: str, tags: dict | None = None) -> RunOutcome:
    """One run of ``job_name`` for ``period`` in this process, recorded in ``instance`` with
    segflow's code-location origin, so the UI lists it on the job's page and the timeline."""
    from segflow import launch

    job = defs.resolve_job_def(job_name)
    started = time.perf_counter()
    result = launch.execute(job, instance, period, run_config=QUIET, tags={**(tags or {}), **process_tag()})
    seconds = time.perf_counter() - started
    error = "" if result.success else _first_error(result)
    return RunOutcome(period, job_name, result.success, seconds, result.run_id, error)


@dataclass(frozen=True)
class BackfillPlan:
    ingest: list[str]  # months needing sources and profiles (window months and targets)
    model: list[str]  # months needing features through the report
    skipped: list[str]  # target months already complete (resume), unless forced


def plan_backfill(
    settings: Settings,
    first: str,
    last: str,
    force: bool = False,
    *,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
) -> BackfillPlan:
    """Profiles for every month the targets' trailing windows read, then the targets' modelling.

    Without ``force``, months already built are skipped, so an interrupted backfill resumes where
    it stopped. Built means built as ``instance`` records it (``records.built_months``: every asset
    of the job materialised, every blocking check passed), not that a file exists.
    """
    from segflow.records import built_months

    # Segment ids are aligned to the previous month's model, so the chain must be complete: extend
    # the range back to the first month whose previous month has a model (or the first partition).
    first_modelled = shift(settings.partitions_start, settings.features.min_history_months - 1)
    first = max(first, first_modelled)
    modelled = built_months(defs, instance, "modelling_job", month_range(first_modelled, last))
    while first > first_modelled and shift(first, -1) not in modelled:
        first = shift(first, -1)
    if first > last:
        return BackfillPlan([], [], [])
    targets = month_range(first, last)
    window_start = max(shift(first, -(settings.features.window_months - 1)), settings.partitions_start)
    needed = month_range(window_start, last)
    ingested = built_months(defs, instance, "ingest_job", needed)
    # --force rebuilds the target months; window months before them are only built when missing.
    ingest = [m for m in needed if (force and m in targets) or m not in ingested]
    done = [] if force else [m for m in targets if m in modelled]
    model = [m for m in targets if m not in done or m in ingest]
    return BackfillPlan(ingest, model, [m for m in done if m not in model])


def _limit_threads(threads: str) -> None:
    # Each worker gets its share of the cores: OpenMP (k-means) and polars otherwise spin one
    # thread per core in every worker, and oversubscribed spinning made runs 4x slower.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ[name] = threads


# A worker process builds the definitions once and runs many partitions with them.
_WORKER: dict[str, object] = {}


def _start_worker(threads: str, settings: Settings) -> None:
    _limit_threads(threads)
    import dagster as dg

    _WORKER["defs"] = _build(settings)
    _WORKER["instance"] = dg.DagsterInstance.get()


def _run_in_worker(job: str, period: str, tags: dict) -> RunOutcome:
    return run_partition(_WORKER["defs"], _WORKER["instance"], job, period, tags)


@dataclass
class Progress:
    """Prints one line per finished run, with an ETA over the runs still to come.

    A run's expected time is the mean of the finished runs of its job; for a job with none finished
    yet, the mean of all finished runs scaled by ``JOB_WEIGHT`` (a modelling run costs about three
    ingest runs), so the ETA counts the modelling runs from the first line on.
    """

    echo: object
    jobs: list[str]  # the job of every run of the backfill, in order
    workers: dict[str, int]  # runs of a job that proceed at once
    started: float = field(default_factory=time.perf_counter)
    done: list[RunOutcome] = field(default_factory=list)

    JOB_WEIGHT = {
        "ingest_job": 1.0,
        "features_job": 0.5,
        "fit_job": 1.0,
        "publish_job": 1.5,
        "modelling_job": 3.0,
    }

    def expected(self, job: str) -> float:
        same = [o.seconds for o in self.done if o.job == job]
        if same:
            return sum(same) / len(same)
        weighted = [o.seconds / self.JOB_WEIGHT.get(o.job, 1.0) for o in self.done]
        return sum(weighted) / len(weighted) * self.JOB_WEIGHT.get(job, 1.0) if weighted else 0.0

    def eta(self) -> float:
        remaining = self.jobs[len(self.done) :]
        return sum(self.expected(job) / self.workers.get(job, 1) for job in remaining)

    def finished(self, outcome: RunOutcome) -> None:
        self.done.append(outcome)
        total, count = len(self.jobs), len(self.done)
        status = "ok" if outcome.success else f"FAILED: {outcome.error}"
        bar = "#" * round(20 * count / total)
        self.echo(
            f"[{bar:<20}] {count}/{total} {outcome.period} {outcome.job:<16} {outcome.seconds:6.1f}s  "
            f"elapsed {time.perf_counter() - self.started:5.0f}s  eta {self.eta():5.0f}s  {status}"
        )
        sys.stdout.flush()


def _execute(
    runs: list[tuple[str, str]],
    workers: int,
    settings: Settings,
    progress: Progress,
    summary,
    defs,
    tags: dict,
) -> None:
    """``runs`` in this process with ``defs()`` (built once, shared by the backfill's ordered
    phases), or on ``workers`` spawned processes that build their own."""
    if not runs:
        return
    if workers <= 1:
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            for job, period in runs:
                progress.echo(f"  running {period} {job} ...")
                outcome = run_partition(defs(), instance, job, period, tags)
                summary.outcomes.append(outcome)
                progress.finished(outcome)
                if not outcome.success and job == "ingest_job":
                    # A mapping this month's file breaks would break the months after it too.
                    _stop_on_mapping_error(settings, period)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import dagster as dg

    # Create and migrate the SQLite instance once, here: workers opening a new instance at the
    # same moment race on its schema ("more than one head present").
    with dg.DagsterInstance.get():
        pass
    # spawn, not fork: a forked copy of a process that already imported Dagster and opened its
    # instance is not safe.
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads, settings),
    ) as pool:
        progress.echo(f"  running {len(runs)} {runs[0][0]} runs on {workers} workers ...")
        futures = [pool.submit(_run_in_worker, job, period, tags) for job, period in runs]
        for future in as_completed(futures):
            outcome = future.result()
            summary.outcomes.append(outcome)
            progress.finished(outcome)
            if not outcome.success and outcome.job == "ingest_job":
                try:
                    _stop_on_mapping_error(settings, outcome.period)
                except ConfigError:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise


def backfill(
    settings: Settings, first: str, last: str, workers: int = 1, force: bool = False, echo=print
) -> BackfillSummary:
    """Materialise every month from ``first`` to ``last``: profiles first, then models and reports.

    Ingest months are independent, and so are the heavy model fits: with ``workers`` > 1 both run
    in parallel. The features before the fits (their volume check reads last month's) and the light
    steps after them, which align segment ids to last month's model and audit the month
    (``publish_job``), run in month order. With one worker, a month's modelling is one run.
    """
    _check_range(settings, last)
    import dagster as dg

    from segflow.lib.storage import sweep_stale_temp
    from segflow.records import fail_stale_runs

    defs = functools.cache(lambda: _build(settings))
    with dg.DagsterInstance.get() as instance:
        # What a killed earlier run left behind: runs still recorded as started, and temporary files.
        for run_id in fail_stale_runs(instance):
            echo(f"marked failed: run {run_id}, whose process was killed")
        sweep_stale_temp(settings.storage_dir)
        plan = plan_backfill(settings, first, last, force, defs=defs(), instance=instance)
    if plan.ingest:  # a mapping its first month's file breaks would fail every month alike
        _stop_on_mapping_error(settings, min(plan.ingest))
    if plan.skipped:
        echo(f"already built, skipped (use --force to rebuild): {', '.join(plan.skipped)}")
    phases = [("ingest_job", plan.ingest, workers)]
    if workers > 1:
        chain = [("features_job", 1), ("fit_job", workers), ("publish_job", 1)]
        phases += [(job, plan.model, n) for job, n in chain]
    else:
        phases += [("modelling_job", plan.model, 1)]
    jobs = [job for job, months, _ in phases for _ in months]
    echo(f"plan: {len(plan.ingest)} ingest and {len(plan.model)} modelling months, {len(jobs)} runs, "
         f"{workers} worker(s)")  # fmt: skip
    progress = Progress(echo, jobs, {job: n for job, _, n in phases})
    summary = BackfillSummary()
    if not jobs:
        return summary
    record = _start_record(plan, first, last)
    try:
        _run_phases(settings, phases, progress, summary, defs, record.tags)
    finally:
        _finish_record(record, summary)
    return summary


def _check_range(settings: Settings, last: str) -> None:
    """A configuration error before any month runs: a month past ``partitions.end``."""
    if settings.partitions_end and last > settings.partitions_end:
        where = settings.config_file or "the built-in demo settings"
        raise ConfigError(f"{where}: partitions.end is {settings.partitions_end}; {last} is after it "
                          "(set partitions.end to the last month with data)")  # fmt: skip


def _stop_on_mapping_error(settings: Settings, period: str) -> None:
    from segflow.lib.sources import preflight

    problems = preflight.check_sources(settings, period)
    if problems:
        raise ConfigError("; ".join(problems))


def _start_record(plan: BackfillPlan, first: str, last: str):
    """The backfill as the UI lists it (Backfills), with the months it builds."""
    import dagster as dg

    from segflow import launch

    months = sorted(set(plan.ingest) | set(plan.model))
    title = f"segflow backfill {first}" + (f" .. {last}" if last != first else "")
    with dg.DagsterInstance.get() as instance:
        return launch.start_backfill(instance, months, title)


def _finish_record(record, summary: BackfillSummary) -> None:
    import dagster as dg

    from segflow import launch

    with dg.DagsterInstance.get() as instance:
        launch.finish_backfill(instance, record, success=not summary.failed)


def _run_phases(settings: Settings, phases, progress: Progress, summary: BackfillSummary, defs, tags) -> None:
    for job, months, parallel in phases:
        failed = {o.period for o in summary.failed}
        runnable = months if job == "ingest_job" else [m for m in months if not _blocked(settings, m, failed)]
        for month in sorted(set(months) - set(runnable)):
            reads = ", ".join(sorted(failed.intersection(_window(settings, month))))
            skipped = RunOutcome(month, job, False, 0.0, "", f"not run: a month it reads failed ({reads})")
            summary.outcomes.append(skipped)
            progress.finished(skipped)
        # Segment ids are aligned to the previous month's model, and features are compared with
        # last month's: those phases are a chain, in month order, whatever --workers says.
        _execute([(job, m) for m in runnable], parallel, settings, progress, summary, defs, tags)


def _build(settings: Settings):
    from segflow.definitions import build_defs

    return build_defs(settings)


def _blocked(settings: Settings, month: str, failed: set[str]) -> bool:
    """A month of its window failed, or (for the chain) an earlier month's modelling failed."""
    return bool(failed.intersection(_window(settings, month)))


def _window(settings: Settings, month: str) -> list[str]:
    return month_range(shift(month, -(settings.features.window_months - 1)), month)
