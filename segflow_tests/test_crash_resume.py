"""Crash safety: a backfill SIGKILLed at each stage boundary, each kill resumed by a plain backfill,
stores exactly the bytes of an uninterrupted run; the killed runs are marked failed and no hidden
temporary file is left behind.

Kept cheap: one month of 150 customers, a light model sweep, one uninterrupted reference, the kills
in one chain (each resume runs until the next kill point), and every backfill a fork of one driver
process that imported segflow once (``crash_driver.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segflow_tests.conftest import home_layout

pytestmark = pytest.mark.slow

MONTH = "2024-01"
CONFIG = """\
imputation: {method: knn}
model: {families: [kmeans], k_max: 3, n_init: 2, gap_references: 1, stability_resamples: 2,
        min_stability: 0.5}
"""
# Kill points at the stage boundaries, in the order a backfill reaches them: (a fragment of the
# path being published, kill before or after its rename).
POINTS = {
    "sources_published_profiles_not": ("raw_transactions/", "after"),
    "between_profile_outputs": ("customer_profiles/", "after"),
    "features_published_model_not": ("customer_features/", "after"),
    "model_mid_write": ("segmentation_model/", "before"),
    "assignments_published_audits_not": ("segment_assignments/", "after"),
    "report_published_not_recorded": (f"reports/{MONTH}.html", "after"),
}


def _digests(home: Path) -> dict[str, str]:
    storage = home_layout(home).root
    return {str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(storage.rglob("*")) if p.is_file()}  # fmt: skip


def _runs(home: Path) -> list[tuple[str, str]]:
    """(job, status) of every run the home's instance records."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        return [(run.job_name, run.status.value) for run in instance.get_runs()]


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from segflow.synth import SynthConfig, generate

    base = tmp_path_factory.mktemp("crashes")
    generate(base / "landing", SynthConfig(customers=150, months=1, start=MONTH, seed=7))
    spec = {"base": str(base), "landing": str(base / "landing"), "first": MONTH, "last": MONTH,
            "config": CONFIG, "points": POINTS, "result": str(base / "result.json")}  # fmt: skip
    (base / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME", "SEGFLOW_HOME")}
    subprocess.run([sys.executable, "-m", "segflow_tests.crash_driver", str(base / "spec.json")],
                   env=env, check=True, timeout=900)  # fmt: skip
    return base, json.loads((base / "result.json").read_text())


def test_reference_run_completes(crashes: tuple[Path, dict]) -> None:
    base, results = crashes
    assert results["reference"]["exit"] == 0
    stored = _digests(base / "reference")
    assert f"reports/{MONTH}.html" in stored and f"segmentation_model/{MONTH}.json" in stored


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_at_each_stage_boundary(crashes: tuple[Path, dict], point: str) -> None:
    """The backfill (the plain resume of the kill before, from the second point on) reached the
    point and was SIGKILLed there; killed mid-write, its hidden temporary file was left behind."""
    _, results = crashes
    outcome = results[point]
    assert outcome["killed"], outcome
    assert POINTS[point][0] in outcome["at"]
    if POINTS[point][1] == "before":
        assert outcome["tmp_after_kill"] >= 1


def test_plain_resume_after_the_kills_gives_the_uninterrupted_bytes(crashes: tuple[Path, dict]) -> None:
    base, results = crashes
    assert results["final_resume"]["exit"] == 0, results["final_resume"]
    home = base / "killed"
    assert _digests(home) == _digests(base / "reference")
    assert not list(home_layout(home).root.rglob(".*.tmp"))  # the killed writers' files are swept
    runs = _runs(home)
    # Every killed run is recorded as failed (by the resume after it), and nothing is left started.
    assert [status for _, status in runs].count("FAILURE") == len(POINTS), runs
    assert not {"STARTED", "STARTING", "NOT_STARTED"} & {status for _, status in runs}
    # A resume redoes only what the instance does not record as built: the month's ingest succeeded
    # once (after the two kills in it) and was not rerun by the four resumes after it.
    assert runs.count(("ingest_job", "SUCCESS")) == 1 and runs.count(("modelling_job", "SUCCESS")) == 1


def test_model_failing_its_gate_never_replaces_the_published_one(
    crashes: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write-audit-publish: a model failing a blocking gate is not stored, the published model and
    the month's assignments stay as they were, and the month is no longer "already built"."""
    import dataclasses
    import shutil

    import dagster as dg

    from segflow import runner
    from segflow.config import load_settings
    from segflow.definitions import build_defs
    from segflow.records import built_months

    base, _ = crashes
    home = tmp_path / "home"
    shutil.copytree(base / "reference", home)
    monkeypatch.setenv("SEGFLOW_HOME", str(home))
    settings = load_settings(home / "segflow.yaml")
    strict = dataclasses.replace(settings, model=dataclasses.replace(settings.model, min_segment_share=0.6))
    published = home_layout(home).model("segmentation_model", MONTH)
    before = _digests(home)
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        defs = build_defs(strict)
        assert built_months(defs, instance, "modelling_job", [MONTH]) == {MONTH}
        outcome = runner.run_partition(defs, instance, "publish_job", MONTH)
        assert not outcome.success and "segment_sizes_viable" in outcome.error
        assert "below the minimum" in outcome.error  # names the segment and by how much it missed
        record = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey("segmentation_model"), "segment_sizes_viable")
        )
        assert record.status.value == "FAILED"
        assert _digests(home) == before and published.exists()  # nothing was replaced
        assert built_months(defs, instance, "modelling_job", [MONTH]) == set()
        plan = runner.plan_backfill(strict, MONTH, MONTH, defs=defs, instance=instance)
        assert plan.model == [MONTH] and plan.skipped == []
