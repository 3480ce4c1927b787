"""Features stage of one month (cleaning, then RFM and behaviour features): segflow against plain
pandas and duckdb SQL of the same definitions (see ``benchmarks.features_impl``), over the same file.

    python -m benchmarks.bench_features --lines 10000000 --runs 3

Each implementation runs in its own process, so its peak RSS is its own; the runs of one
implementation share a process (the first run pays the imports). Every implementation's output
at full size is checked equal to segflow's before any figure is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, peak_rss_mb, repeat

PERIOD = "2024-01"
INTENSITY = 20.0
LINES_PER_CUSTOMER = 67.3  # at intensity 20 (150,000 customers gave 10.1M line items)
TARGETS = {"pandas": 3.0, "duckdb": 1.0}  # baseline time / segflow time, at least


def landing(root: Path, lines: int, seed: int = 5) -> Path:
    """One synthetic month of about ``lines`` line items; returns the transactions file."""
    from segflow.synth import SynthConfig, generate

    customers = max(1, round(lines / LINES_PER_CUSTOMER))
    generate(root, SynthConfig(customers=customers, months=1, start=PERIOD, seed=seed, intensity=INTENSITY))
    return root / "transactions" / f"{PERIOD}.parquet"


def child(implementation: str, path: str, runs: int, out: str) -> dict:
    """Run one implementation ``runs`` times in this process and keep its last output."""
    from benchmarks.features_impl import features

    result = {}

    def once() -> float:
        started = time.perf_counter()
        result["frame"] = features(implementation, path, PERIOD)
        return time.perf_counter() - started

    stats = repeat(once, runs)
    frame = result["frame"]
    import polars as pl

    (frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)).write_parquet(out)
    measured = {"seconds": stats, "peak_rss_mb": peak_rss_mb(), "customers": len(frame)}
    if implementation == "segflow":
        from benchmarks.features_impl import segflow_phases

        del result["frame"], frame
        measured["phases"] = segflow_phases(path, PERIOD)  # after the peak was read: it is not counted
    return measured


def _spawn(implementation: str, path: Path, runs: int, out: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_features", "--child", implementation]
    command += ["--path", str(path), "--runs", str(runs), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{implementation} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout[done.stdout.index("{") :])


def run(lines: int = 1_000_000, runs: int = 3) -> dict:
    import polars as pl
    import pyarrow.parquet as pq

    from benchmarks.features_impl import IMPLEMENTATIONS, assert_same

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = landing(root / "landing", lines)
        measured = {impl: _spawn(impl, path, runs, root / f"{impl}.parquet") for impl in IMPLEMENTATIONS}
        reference = pl.read_parquet(root / "segflow.parquet")
        for impl in IMPLEMENTATIONS[1:]:
            assert_same(reference, pl.read_parquet(root / f"{impl}.parquet"))
        line_items = pq.ParquetFile(path).metadata.num_rows
    segflow = measured["segflow"]["seconds"]["median"]
    ratios = {impl: measured[impl]["seconds"]["median"] / segflow for impl in TARGETS}
    return {
        "benchmark": "features",
        "machine": machine(),
        "line_items": line_items,
        "customers_scored": measured["segflow"]["customers"],
        "runs": runs,
        "implementations": measured,
        "ratios": ratios,
        "targets": TARGETS,
        "outputs_equal": True,  # assert_same raised otherwise
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="line items in the month (about)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=("segflow", "pandas", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.runs, args.out)))
    else:
        print(json.dumps(run(args.lines, args.runs), indent=1))
