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
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists() or not instance_yaml.read_text().strip():
        # segflow makes no network calls at run time, and Dagster's telemetry would.
        instance_yaml.write_text(INSTANCE_YAML)
    return settings


INSTANCE_YAML = "telemetry:\n  enabled: false\n"

# The full event stream is in the instance (and the UI); the terminal gets errors only. Dagster's
# warnings here are expected ones (a first month has no previous partition to read), and a failed
# check is named in the progress line and the summary anyway.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


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
    suffix = {"reports": "html", "segmentation_model": "json", "churn_model": "json"}.get(asset, "parquet")
    return (settings.storage_dir / asset / f"{period}.{suffix}").exists()


@dataclass(frozen=True)
class BackfillPlan:
    ingest: list[str]  # months needing sources and profiles (window months and targets)
    model: list[str]  # months needing features through the report
    skipped: list[str]  # target months already complete (resume), unless forced


def plan_backfill(settings: Settings, first: str, last: str, force: bool = False) -> BackfillPlan:
    """Two phases: profiles for every month the targets' trailing windows read, then the rest.

    Ingest months are independent and run in parallel with ``workers``; modelling runs in order. Without ``force``,
    months already built are skipped, so an interrupted backfill resumes where it stopped.
    """
    # Segment ids are aligned to the previous month's model, so the chain must be complete: extend
    # the range back to the first month whose previous month has a model (or the first partition).
    first_modelled = shift(settings.partitions_start, settings.features.min_history_months - 1)
    first = max(first, first_modelled)
    while first > first_modelled and not _materialized(settings, "segmentation_model", shift(first, -1)):
        first = shift(first, -1)
    if first > last:
        return BackfillPlan([], [], [])
    targets = month_range(first, last)
    window_start = max(shift(first, -(settings.features.window_months - 1)), settings.partitions_start)
    needed = month_range(window_start, last)
    # --force rebuilds the target months; window months before them are only built when missing.
    ingest = [
        m for m in needed if (force and m in targets) or not _materialized(settings, "customer_profiles", m)
    ]
    done = [] if force else [m for m in targets if _materialized(settings, "reports", m)]
    model = [m for m in targets if m not in done or m in ingest]
    return BackfillPlan(ingest, model, [m for m in done if m not in model])


def _limit_threads(threads: str) -> None:
    # Each worker gets its share of the cores: OpenMP (k-means) and polars otherwise spin one
    # thread per core in every worker, and oversubscribed spinning made runs 4x slower.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ[name] = threads


def _run_in_worker(args: tuple[str, str, str | None]) -> RunOutcome:
    job, period, config = args
    prepare_environment(config)
    return run_partition(job, period)


def _execute(
    runs: list[tuple[str, str]], workers: int, config: str | None, echo, summary, started, total
) -> None:
    if workers <= 1:
        outcomes = (run_partition(job, period) for job, period in runs)
        _report(outcomes, echo, summary, started, total)
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
        initializer=_limit_threads,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(_run_in_worker, (job, period, config)) for job, period in runs]
        _report((f.result() for f in as_completed(futures)), echo, summary, started, total)


def _report(outcomes, echo, summary: BackfillSummary, started: float, total: int) -> None:
    for outcome in outcomes:
        summary.outcomes.append(outcome)
        done = len(summary.outcomes)
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (total - done)
        status = "ok" if outcome.success else f"FAILED: {outcome.error}"
        bar = "#" * round(20 * done / total)
        echo(
            f"[{bar:<20}] {done}/{total} {outcome.period} {outcome.job:<16} {outcome.seconds:6.1f}s  "
            f"eta {eta:5.0f}s  {status}"
        )
        sys.stdout.flush()


def backfill(
    settings: Settings,
    first: str,
    last: str,
    workers: int = 1,
    force: bool = False,
    config: str | None = None,
    echo=print,
) -> BackfillSummary:
    """Materialise every month from ``first`` to ``last``: profiles first, then models and reports."""
    plan = plan_backfill(settings, first, last, force)
    if plan.skipped:
        echo(f"already built, skipped (use --force to rebuild): {', '.join(plan.skipped)}")
    summary = BackfillSummary()
    total = len(plan.ingest) + len(plan.model)
    started = time.perf_counter()
    _execute([("ingest_job", m) for m in plan.ingest], workers, config, echo, summary, started, total)
    failed_ingest = {o.period for o in summary.failed}
    runnable = [m for m in plan.model if not _window_failed(settings, m, failed_ingest)]
    for month in sorted(set(plan.model) - set(runnable)):
        summary.outcomes.append(
            RunOutcome(month, "modelling_job", False, 0.0, "", "skipped: a month of its window failed")
        )
    # Modelling is a chain: each month's model aligns its segment ids to the previous month's,
    # so this phase runs in month order whatever --workers says.
    _execute([("modelling_job", m) for m in runnable], 1, config, echo, summary, started, total)
    return summary


def _window_failed(settings: Settings, month: str, failed: set[str]) -> bool:
    window = month_range(shift(month, -(settings.features.window_months - 1)), month)
    return bool(failed.intersection(window))
