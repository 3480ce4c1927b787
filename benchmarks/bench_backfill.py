"""Backfill of N synthetic months through the real CLI, sequential and with ``--workers 2``, with the
split between Dagster overhead and compute read back from the Dagster instance.

    python -m benchmarks.bench_backfill --months 24 --customers 3000

Compute is the sum of step durations the instance recorded (asset bodies, IO and checks); run
overhead is each run's wall time minus its steps (planning, events, storage of the event log);
process overhead is the backfill's wall time minus its runs (imports, loading definitions,
worker start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine


def _instance_split(dagster_home: Path) -> dict:
    """Run wall time and step time summed over every run the instance recorded."""
    code = (
        "import json, dagster as dg\n"
        "with dg.DagsterInstance.get() as i:\n"
        "    runs = i.get_runs()\n"
        "    out = {'runs': len(runs), 'run_seconds': 0.0, 'step_seconds': 0.0}\n"
        "    for r in runs:\n"
        "        s = i.get_run_stats(r.run_id)\n"
        "        out['run_seconds'] += (s.end_time or 0) - (s.start_time or 0)\n"
        "        out['step_seconds'] += sum((x.end_time or 0) - (x.start_time or 0) "
        "for x in i.get_run_step_stats(r.run_id))\n"
        "    print(json.dumps(out))\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _backfill(landing: Path, home: Path, first: str, last: str, workers: int) -> dict:
    import shutil

    shutil.copytree(landing, home / "landing")
    env = {k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME")}
    env["SEGFLOW_HOME"] = str(home)
    command = [sys.executable, "-m", "segflow.cli", "backfill", "--from", first, "--to", last]
    command += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"backfill failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    split = _instance_split(home / "dagster_home")
    # With workers, runs overlap: their summed time exceeds the wall time, so overhead shares are
    # reported against the summed run time, not the wall time.
    return {
        "workers": workers,
        "wall_seconds": wall,
        **split,
        "run_overhead_share": 1 - split["step_seconds"] / split["run_seconds"],
        "process_seconds_outside_runs": max(0.0, wall - split["run_seconds"]) if workers == 1 else None,
    }


def run(months: int = 24, customers: int = 3000) -> dict:
    from segflow.lib.periods import shift
    from segflow.synth import SynthConfig, generate

    first = "2024-01"
    last = shift(first, months - 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "landing", SynthConfig(customers=customers, months=months, start=first, seed=3))
        sequential = _backfill(root / "landing", root / "sequential", first, last, 1)
        parallel = _backfill(root / "landing", root / "parallel", first, last, 2)
    return {
        "benchmark": "backfill",
        "machine": machine(),
        "months": months,
        "customers": customers,
        "sequential": sequential,
        "workers_2": parallel,
        "speedup": sequential["wall_seconds"] / parallel["wall_seconds"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--customers", type=int, default=3000)
    args = parser.parse_args()
    print(json.dumps(run(args.months, args.customers), indent=1))
