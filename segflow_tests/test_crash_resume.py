"""Crash safety: a backfill SIGKILLed at each stage boundary, each kill resumed by a plain backfill,
stores exactly the bytes of an uninterrupted run; the killed runs are marked failed and no hidden
temporary file is left behind.

Kept cheap: one month of 200 customers, a light model sweep, one uninterrupted reference, the kills
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

pytestmark = pytest.mark.slow

MONTH = "2024-01"
CONFIG = """\
imputation: {method: knn}
model: {families: [kmeans, gmm], k_max: 4, n_init: 2, gap_references: 2, stability_resamples: 3,
        min_stability: 0.5}
"""
# Kill points at the stage boundaries, in the order a backfill reaches them: (a fragment of the
# path being published, kill before or after its rename).
POINTS = {
    "sources_published_profiles_not": ("raw_transactions/", "after"),
    "between_profile_outputs": ("customer_profiles/", "after"),
    "profiles_mid_write": ("quarantined_rows/", "before"),
    "features_published_model_not": ("customer_features/", "after"),
    "model_mid_write": ("segmentation_model/", "before"),
    "assignments_published_audits_not": ("segment_assignments/", "after"),
    "report_published_not_recorded": (f"reports/{MONTH}.html", "after"),
}

def _digests(home: Path) -> dict[str, str]:
    storage = home / "storage"
    return {str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(storage.rglob("*")) if p.is_file()}  # fmt: skip


def _run_statuses(home: Path) -> list[str]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        return [run.status.value for run in instance.get_runs()]


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from segflow.synth import SynthConfig, generate

    base = tmp_path_factory.mktemp("crashes")
    generate(base / "landing", SynthConfig(customers=200, months=1, start=MONTH, seed=7))
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
    assert not list((home / "storage").rglob(".*.tmp"))  # the killed writers' files are swept
    statuses = _run_statuses(home)
    # Every killed run is recorded as failed (by the resume after it), and nothing is left started.
    assert statuses.count("FAILURE") == len(POINTS), statuses
    assert not {"STARTED", "STARTING", "NOT_STARTED"} & set(statuses)
