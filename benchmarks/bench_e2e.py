"""End to end: one synthetic month through the whole graph via the real CLI (`segflow materialize`),
with the split between Dagster overhead and compute and the peak RSS of each step.

    python -m benchmarks.bench_e2e --lines 10000000 --runs 3

Time: compute is the sum of the step durations the instance recorded (asset bodies, IO managers,
checks); run overhead is the runs' wall time minus their steps (planning, event log writes);
process time outside runs is the CLI's wall time minus its runs (imports, loading definitions,
planning the backfill, the summary).

Memory: the CLI executes its runs in process (``execute_in_process``: one process, steps one at a
time), so no process boundary separates the steps. This harness samples the CLI process's resident
set (``/proc/<pid>/status`` VmRSS) every 20 ms and gives each step the highest sample inside its
recorded [start, end]: the process's peak while that step ran, which includes what earlier steps
still hold, and is what decides whether a month fits in memory. The process's true peak comes from
the kernel (``os.wait4`` rusage of the CLI process), so a spike between samples is not lost overall.
Steps shorter than the sampling interval take the sample nearest their end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_features import PERIOD, landing
from benchmarks.common import machine

SAMPLE_SECONDS = 0.02


def _own_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss_mb(pid: int) -> float | None:
    """The resident set of ``pid`` and its descendants: with ``engine: spark`` the JVM that py4j
    starts is a child of the CLI, and its memory is the month's too."""
    own = _own_rss_mb(pid)
    if own is None:
        return None
    return own + sum(_rss_mb(child) or 0.0 for child in _children(pid))


def _instance_steps(home: Path, env: dict) -> dict:
    """Every run's start and end and every step's key, start and end, from the instance; and the
    group (stage) of every asset, from the definitions."""
    code = (
        "import json, dagster as dg\n"
        "with dg.DagsterInstance.get() as i:\n"
        "    out = []\n"
        "    for r in i.get_runs():\n"
        "        s = i.get_run_stats(r.run_id)\n"
        "        steps = [(x.step_key, x.start_time, x.end_time) for x in i.get_run_step_stats(r.run_id)]\n"
        "        out.append({'job': r.job_name, 'start': s.start_time, 'end': s.end_time, 'steps': steps})\n"
        "from segflow.definitions import defs\n"
        "groups = {a.key.to_python_identifier(): a.group_name for a in defs().resolve_all_asset_specs()}\n"
        "print(json.dumps({'runs': out, 'groups': groups}))\n"
    )
    env = {**env, "DAGSTER_HOME": str(home / "dagster_home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _step_peaks(steps: list, samples: list[tuple[float, float]]) -> dict[str, float]:
    peaks = {}
    for key, start, end in steps:
        inside = [rss for t, rss in samples if start <= t <= end]
        if not inside:  # shorter than one sample: the nearest sample after it ended
            inside = [next((rss for t, rss in samples if t >= end), samples[-1][1])]
        peaks[key] = max(inside)
    return peaks


def materialize_once(
    landing_dir: Path, home: Path, engine: str = "polars", in_memory_below: int | None = None
) -> dict:
    """One `segflow materialize --period` in a fresh SEGFLOW_HOME; times, split and RSS. With
    ``engine: spark``, or the polars engine's one-frame threshold set (``polars.in_memory_below``),
    the demo's settings are written to a config file that says so."""
    home.mkdir(parents=True)
    (home / "landing").symlink_to(landing_dir, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME")}
    env["SEGFLOW_HOME"] = str(home)
    if engine != "polars" or in_memory_below is not None:
        config = home / "segflow.yaml"
        polars = "" if in_memory_below is None else f"polars: {{in_memory_below: {in_memory_below}}}\n"
        config.write_text(
            f"storage_dir: {home / 'storage'}\nlanding_dir: {home / 'landing'}\n"
            f"partitions: {{start: '{PERIOD}', end: '{PERIOD}'}}\nengine: {engine}\n{polars}"
        )
        env["SEGFLOW_CONFIG"] = str(config)
    command = [sys.executable, "-m", "segflow.cli", "materialize", "--period", PERIOD]
    samples: list[tuple[float, float]] = []
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = _rss_mb(process.pid)
            if rss is not None:
                samples.append((time.time(), rss))
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"segflow materialize failed:\n{output[-3000:]}")
    recorded = _instance_steps(home, env)
    runs = recorded["runs"]
    run_seconds = sum(r["end"] - r["start"] for r in runs)
    steps = [s for r in runs for s in r["steps"]]
    step_seconds = sum(end - start for _, start, end in steps)
    peaks = _step_peaks(steps, samples)
    return {
        "wall_seconds": wall,
        "runs": len(runs),
        "run_seconds": run_seconds,
        "step_seconds": step_seconds,
        "run_overhead_seconds": run_seconds - step_seconds,
        "outside_runs_seconds": wall - run_seconds,
        # The kernel's high-water mark and VmRSS count a few pages differently: the larger of the two.
        "peak_rss_mb": max(usage.ru_maxrss / 1024, max(rss for _, rss in samples)),
        "steps": {key: {"seconds": end - start, "peak_rss_mb": peaks[key]} for key, start, end in steps},
        "stages": _stages(steps, peaks, recorded["groups"]),
    }


def _stages(steps: list, peaks: dict[str, float], groups: dict[str, str]) -> dict[str, dict]:
    """Steps summed by the group of the asset they build or check (a check step's key starts with
    its asset's name), in the order the stages first ran."""
    by_length = sorted(groups, key=len, reverse=True)
    stages: dict[str, dict] = {}
    for key, start, end in sorted(steps, key=lambda s: s[1]):
        asset = next((a for a in by_length if key == a or key.startswith(a + "_")), key)
        stage = stages.setdefault(
            groups.get(asset, key), {"asset_seconds": 0.0, "check_seconds": 0.0, "peak_rss_mb": 0.0}
        )
        stage["asset_seconds" if key == asset else "check_seconds"] += end - start
        stage["peak_rss_mb"] = max(stage["peak_rss_mb"], peaks[key])
    return stages


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(lines: int = 1_000_000, runs: int = 3, engine: str = "polars", in_memory_below: int | None = None) -> dict:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = landing(root / "landing", lines)
        line_items = pq.ParquetFile(path).metadata.num_rows
        measured = [
            materialize_once(root / "landing", root / f"home{i}", engine, in_memory_below) for i in range(runs)
        ]
    summary = {
        key: _stats([m[key] for m in measured])
        for key in (
            "wall_seconds",
            "run_seconds",
            "step_seconds",
            "run_overhead_seconds",
            "outside_runs_seconds",
            "peak_rss_mb",
        )
    }
    # Per step: the median run's figures (the run whose wall time is the median).
    middle = sorted(measured, key=lambda m: m["wall_seconds"])[len(measured) // 2]
    return {
        "benchmark": "e2e",
        "engine": engine,
        "in_memory_below": in_memory_below,
        "machine": machine(),
        "line_items": line_items,
        "runs": runs,
        "dagster_runs": measured[0]["runs"],
        **summary,
        "dagster_overhead_share": 1 - summary["step_seconds"]["median"] / summary["wall_seconds"]["median"],
        "steps": middle["steps"],
        "stages": middle["stages"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="line items in the month (about)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", choices=("polars", "spark"), default="polars")
    parser.add_argument("--in-memory-below", type=int, default=None,
                        help="polars.in_memory_below: 0 cleans every month in buckets, a huge one never")  # fmt: skip
    args = parser.parse_args()
    print(json.dumps(run(args.lines, args.runs, args.engine, args.in_memory_below), indent=1))
