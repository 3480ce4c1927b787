"""Fixed cost: segflow through the real CLI on Online Retail II against the peer notebook
(benchmarks/peer_notebook.py), every figure a ratio to the notebook measured in the same run.

    python -m benchmarks.bench_fixed_cost --runs 3 [--parts notebook month backfill workers demo]
    python -m benchmarks.bench_fixed_cost --parts notebook --customers 300 --runs 1   # quick

Every measurement is a whole process (imports included), timed from outside, with SEGFLOW_HOME and
DAGSTER_HOME in a fresh temporary folder:

- notebook (always run: every ratio is to it): `python -m benchmarks.peer_notebook --period
  2011-11`, ``runs`` times with its libraries' default threads and ``runs`` times with
  OMP_NUM_THREADS=1, taking turns. The baseline is the faster median: on a loaded machine k-means'
  OpenMP threads spin and wait (31.0 s against 8.8 s measured back to back at load 7), and a
  baseline slowed by that would flatter segflow.
- backfill: `segflow backfill --from 2010-01 --to 2011-11` (the example's modelled months) from an
  empty home, once. Its baseline is 23 notebook runs, taken as 23 x the notebook's 2011-11 median.
- month: `segflow materialize --period 2011-11` with its window built. Building it means the whole
  chain (each month's model aligns its ids to the month before's, so a month alone is not
  materialisable), which is what the backfill leaves: each of ``runs`` measurements works in its
  own copy of the backfill's home. ``month`` therefore runs the backfill as well.
- workers: the same backfill with `--workers 2`, from an empty home, once.
- demo: `segflow demo` (synthetic landing zone generated, last three months built), once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import machine, repeat
from benchmarks.peer_notebook import DATA

PARTS = ("notebook", "month", "backfill", "workers", "demo")
PERIOD = "2011-11"
FIRST = "2010-01"
MONTHS = 23  # 2010-01 .. 2011-11
TARGETS = {"month": 3.0, "backfill": 3.0, "workers": 1.6, "demo": 60.0}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "online_retail_ii.yaml"
CLI = (sys.executable, "-m", "segflow.cli")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME")}
    return {**env, "SEGFLOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}


def _wall(command: list[str], home: Path, extra: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        command, env={**_env(home), **(extra or {})}, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done.stdout


def _home(root: Path, name: str, data: Path) -> tuple[Path, Path]:
    """A fresh home holding the example config, its storage inside the home (a relative path, so a
    copy of the home is a working home) and its source the real file."""
    home = root / name
    home.mkdir()
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["storage_dir"] = "storage"
    config["sources"]["transactions"]["location"] = str(data)
    path = home / "online_retail_ii.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return home, path


def _backfill(root: Path, name: str, data: Path, workers: int) -> tuple[float, Path]:
    home, config = _home(root, name, data)
    command = [*CLI, "backfill", "--config", str(config), "--from", FIRST, "--to", PERIOD]
    wall, _ = _wall([*command, "--workers", str(workers)], home)
    return wall, home


def _month(built: Path, root: Path, runs: int) -> dict[str, float]:
    copies = iter(range(runs))

    def once() -> float:
        home = root / f"month{next(copies)}"
        shutil.copytree(built, home, symlinks=True)
        config = home / "online_retail_ii.yaml"
        return _wall([*CLI, "materialize", "--config", str(config), "--period", PERIOD], home)[0]

    return repeat(once, runs)


def _notebook(root: Path, data: Path, runs: int, customers: int | None) -> dict:
    command = [sys.executable, "-m", "benchmarks.peer_notebook", "--period", PERIOD, "--data", str(data)]
    command += [] if customers is None else ["--customers", str(customers)]
    outputs: list[str] = []
    threads = {"default_threads": {}, "one_thread": {"OMP_NUM_THREADS": "1"}}
    walls: dict[str, list[float]] = {name: [] for name in threads}
    for _ in range(runs):  # taking turns, so both see the same load
        for name, extra in threads.items():
            wall, stdout = _wall(command, root / "notebook", extra)
            walls[name].append(wall)
            outputs.append(stdout)
    by_threads = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v)} for name, v in walls.items()
    }
    fastest = min(by_threads, key=lambda name: by_threads[name]["median"])
    return {"seconds": by_threads[fastest], "baseline": fastest, "by_threads": by_threads,
            **json.loads(outputs[-1].strip().splitlines()[-1])}  # fmt: skip


def _demo(root: Path) -> float:
    home = root / "demo"
    home.mkdir()
    return _wall([*CLI, "demo"], home)[0]


def _ratios(m: dict) -> dict[str, float]:
    base = m["notebook"]["seconds"]["median"]
    ratios = {}
    if "month" in m:
        ratios["month"] = m["month"]["median"] / base
    if "backfill" in m:
        ratios["backfill"] = m["backfill"] / (MONTHS * base)
    if "backfill" in m and "workers" in m:
        ratios["workers"] = m["backfill"] / m["workers"]
    if "demo" in m:
        ratios["demo"] = m["demo"] / base
    return ratios


def run(parts=PARTS, runs: int = 3, customers: int | None = None, data: Path = DATA) -> dict:
    load_start = os.getloadavg()
    measured: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "notebook").mkdir()
        measured["notebook"] = _notebook(root, data, runs, customers)
        if "backfill" in parts or "month" in parts:
            measured["backfill"], built = _backfill(root, "sequential", data, 1)
        if "month" in parts:
            measured["month"] = _month(built, root, runs)
        if "workers" in parts:
            measured["workers"] = _backfill(root, "workers2", data, 2)[0]
        if "demo" in parts:
            measured["demo"] = _demo(root)
    return {
        "benchmark": "fixed_cost",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "months": MONTHS,
        "customers_limit": customers,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        **measured,
        "ratios": _ratios(measured),
        "targets": TARGETS,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, help="notebook on this many customers only (quick)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if args.customers is not None and set(args.parts) - {"notebook"}:
        parser.error("--customers is for a quick notebook-only run: the ratios need the whole month")
    print(json.dumps(run(args.parts, args.runs, args.customers, args.data), indent=1))
