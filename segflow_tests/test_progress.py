"""The backfill's progress lines: an ETA that counts the modelling runs still to come."""

from __future__ import annotations

import pytest

from segflow.runner import Progress, RunOutcome


def _outcome(job: str, seconds: float, period: str = "2024-01") -> RunOutcome:
    return RunOutcome(period, job, True, seconds, "run")


def test_eta_counts_modelling_runs_before_any_has_run() -> None:
    lines: list[str] = []
    jobs = ["ingest_job"] * 3 + ["modelling_job"] * 3
    progress = Progress(lines.append, jobs, {"ingest_job": 1, "modelling_job": 1})
    progress.finished(_outcome("ingest_job", 10.0))
    # Two ingest runs at the measured 10 s, and three modelling runs at three ingest runs each.
    assert progress.eta() == 2 * 10.0 + 3 * 30.0
    assert "1/6 2024-01 ingest_job" in lines[-1] and "eta   110s" in lines[-1]
    progress.finished(_outcome("ingest_job", 20.0))
    progress.finished(_outcome("ingest_job", 30.0))
    progress.finished(_outcome("modelling_job", 50.0))
    # Once a modelling run has finished, its own mean replaces the prior.
    assert progress.eta() == 2 * 50.0


def test_eta_divides_parallel_phases_by_their_workers() -> None:
    jobs = ["ingest_job"] * 4 + ["fit_job"] * 4 + ["publish_job"] * 4
    progress = Progress(lambda _line: None, jobs, {"ingest_job": 2, "fit_job": 2, "publish_job": 1})
    for _ in range(4):
        progress.finished(_outcome("ingest_job", 8.0))
    progress.finished(_outcome("fit_job", 20.0))
    # Three fits on two workers, then four publish runs one after another. A publish run is weighed
    # from every finished run, each brought to one ingest run by its job's weight.
    weight = Progress.JOB_WEIGHT
    per_ingest_run = (4 * 8.0 + 20.0 / weight["fit_job"]) / 5
    assert progress.eta() == pytest.approx(3 * 20.0 / 2 + 4 * weight["publish_job"] * per_ingest_run)


def test_failed_run_is_named_in_its_line() -> None:
    lines: list[str] = []
    progress = Progress(lines.append, ["ingest_job"], {"ingest_job": 1})
    progress.finished(RunOutcome("2024-02", "ingest_job", False, 1.0, "r", "check x failed"))
    assert lines[-1].endswith("FAILED: check x failed") and "1/1 2024-02" in lines[-1]
