"""The fixed cost of a small month, before and after: one `segflow backfill` of two 1,000-customer
synthetic months in a fresh home, for this checkout and for an earlier revision run in the same
session on the same landing zone, taking turns.

    python -m benchmarks.bench_month --baseline-rev 88b4e7e --runs 2

The earlier revision is exported with `git archive` and imported through PYTHONPATH with this
checkout's installed dependencies. Each figure is a whole process: wall time, CPU seconds
(user + system of the CLI process, from the kernel), runs, steps and events the instance recorded,
and step seconds by stage (an asset's checks count with its stage).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine

ROOT = Path(__file__).resolve().parents[1]
MONTHS = ("2024-01", "2024-02")

_INSTANCE = """
import json, dagster as dg
with dg.DagsterInstance.get() as i:
    runs = i.get_runs()
    steps = [(r.job_name, x.step_key, (x.end_time or 0) - (x.start_time or 0))
             for r in runs for x in i.get_run_step_stats(r.run_id)]
    events = sum(len(i.all_logs(r.run_id)) for r in runs)
print(json.dumps({"runs": len(runs), "steps": steps, "events": events}))
"""

# Asset names by stage, for both revisions (a check step's key starts with its asset's name).
STAGES = {
    "raw": ("raw_",),
    "profiles": ("customer_profiles", "quarantined_rows", "row_accounting", "recoded_values"),
    "features": ("customer_features",),
    "models": ("segmentation_", "churn_model", "segment_sizes", "segments_stable"),
    "segments": ("segment_assignments",),
    "audit": (
        "kpi_audit",
        "campaign_lift",
        "segment_migration",
        "segment_drift",
        "segment_backtest",
        "audit_",
    ),
}


def _stage(step_key: str) -> str:
    return next((s for s, prefixes in STAGES.items() if step_key.startswith(prefixes)), "other")


def _env(home: Path, source: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME", "PYTHONPATH")}
    env["SEGFLOW_HOME"] = str(home)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def backfill_once(landing: Path, home: Path, source: Path | None) -> dict:
    """One CLI backfill of MONTHS in a fresh home; ``source`` is another revision's tree, or None."""
    home.mkdir(parents=True)
    (home / "landing").symlink_to(landing, target_is_directory=True)
    env = _env(home, source)
    command = [sys.executable, "-m", "segflow.cli", "backfill", "--from", MONTHS[0], "--to", MONTHS[-1]]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=source or ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"backfill failed ({source or 'this checkout'}):\n{output[-3000:]}")
    env["DAGSTER_HOME"] = str(home / "dagster_home")
    done = subprocess.run([sys.executable, "-c", _INSTANCE], env=env, cwd=source or ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    recorded = json.loads(done.stdout.strip().splitlines()[-1])
    stages: dict[str, float] = {}
    for _, key, seconds in recorded["steps"]:
        stages[_stage(key)] = stages.get(_stage(key), 0.0) + seconds
    return {
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "runs": recorded["runs"],
        "steps": len(recorded["steps"]),
        "events": recorded["events"],
        "stage_seconds": stages,
    }


def _export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _median(measured: list[dict], key: str) -> float:
    return statistics.median(m[key] for m in measured)


def run(baseline_rev: str, runs: int, customers: int) -> dict:
    from segflow.synth import SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(
            root / "landing", SynthConfig(customers=customers, months=len(MONTHS), start=MONTHS[0], seed=7)
        )
        old = _export(baseline_rev, root / "baseline")
        results: dict[str, list[dict]] = {"before": [], "after": []}
        for i in range(runs):  # taking turns, so both see the same load
            results["before"].append(backfill_once(root / "landing", root / f"before{i}", old))
            results["after"].append(backfill_once(root / "landing", root / f"after{i}", None))
    summary = {
        side: {
            key: _median(measured, key) for key in ("wall_seconds", "cpu_seconds", "runs", "steps", "events")
        }
        | {
            "stage_seconds": {
                s: statistics.median(m["stage_seconds"].get(s, 0.0) for m in measured)
                for s in [*STAGES, "other"]
            }
        }  # fmt: skip
        for side, measured in results.items()
    }
    return {
        "benchmark": "month",
        "machine": machine(),
        "baseline_rev": baseline_rev,
        "customers": customers,
        "months": list(MONTHS),
        "runs": runs,
        **summary,
        "cpu_ratio": summary["before"]["cpu_seconds"] / summary["after"]["cpu_seconds"],
        "wall_ratio": summary["before"]["wall_seconds"] / summary["after"]["wall_seconds"],
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-rev", default="88b4e7e", help="the revision to compare against")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(run(args.baseline_rev, args.runs, args.customers), indent=1))
