"""The line-item stage (dedup, row rules and quarantine, per-customer sums) on Spark local[2]
against polars, on the same stored month, in the same run (issue 14); or, with ``--engines polars
buckets``, the polars engine in buckets of customers against it in one frame (issue 13).

    python -m benchmarks.bench_spark --lines 1000000 10000000 --runs 3
    python -m benchmarks.bench_spark --engines polars buckets --lines 1000000 10000000 30000000

One synthetic month per size is generated and read by segflow's ingest into a ``raw_transactions``
Parquet file, as the raw asset stores it. Each engine then runs ``clean`` on that file in its own
process, ``runs`` times (Spark's session is started once, and its start is reported apart). The
engines' results are checked equal (counts, quarantine, per-customer sums) before any figure is
reported. Peak RSS is the Python process's, and for Spark also the JVM's (a child process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_features import PERIOD, landing
from benchmarks.common import machine, peak_rss_mb, repeat


def _stored_month(root: Path, lines: int) -> Path:
    """The month's line items as the raw_transactions asset stores them."""
    from segflow.config_sources import default_sources
    from segflow.lib import storage
    from segflow.lib.sources.ingest import read_source

    path = landing(root / "landing", lines)
    frame = read_source("transactions", default_sources()["transactions"], str(path)).frame
    out = root / "raw_transactions.parquet"
    storage.write_parquet_in_place(frame, out)
    return out


def _job(path: str):
    import polars as pl

    from segflow.config import CleaningSettings
    from segflow.lib import periods
    from segflow.lib.profiles.line_items import LineItemFile, LineItemJob
    from segflow.lib.profiles.rule_table import transaction_rule_table

    columns = tuple(pl.scan_parquet(path).collect_schema().names())
    start, end = periods.bounds(PERIOD)
    table = transaction_rule_table(start, end, CleaningSettings(), None, list(columns))
    return LineItemFile(path, columns), LineItemJob(table, PERIOD, "auto")


def child(engine: str, path: str, runs: int, out: str, master: str) -> dict:
    source, job = _job(path)
    measured: dict = {}
    if engine == "spark":
        from pyspark.sql import SparkSession

        from segflow.config import SparkSettings
        from segflow.lib.spark.line_items import SparkLineItems
        from segflow.lib.spark.session import spark_conf

        started = time.perf_counter()
        builder = SparkSession.builder
        for key, value in spark_conf(SparkSettings(master=master)).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        measured["session_start_seconds"] = round(time.perf_counter() - started, 2)
        cleaner = SparkLineItems(lambda: session)
    else:
        from segflow.config import PolarsSettings
        from segflow.lib.profiles.line_items import PolarsLineItems

        # "polars": one frame whatever the size; "buckets": buckets of the default size whatever it.
        cleaner = PolarsLineItems(PolarsSettings(in_memory_below=0 if engine == "buckets" else 2**62))
    result = {}

    def once() -> float:
        started = time.perf_counter()
        result["cleaned"] = cleaner.clean(source, job)
        return time.perf_counter() - started

    measured["seconds"] = repeat(once, runs)
    cleaned = result["cleaned"]
    cleaned.activity.sort("customer_id").write_parquet(f"{out}.activity.parquet")
    cleaned.quarantined.write_parquet(f"{out}.quarantined.parquet")
    measured["accounting"] = cleaned.accounting()
    measured["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if engine == "spark":
        # The JVM is a child process that py4j started: its own high-water mark, read before it ends.
        pid = session.sparkContext._gateway.proc.pid  # noqa: SLF001 - pyspark keeps the JVM's Popen there
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        vm_hwm = next(line for line in status if line.startswith("VmHWM:"))
        measured["jvm_peak_rss_mb"] = round(int(vm_hwm.split()[1]) / 1024, 1)
        session.stop()
    return measured


def _run_child(engine: str, path: Path, runs: int, out: Path, master: str) -> dict:
    args = [sys.executable, "-m", "benchmarks.bench_spark", "--child", engine, "--path", str(path),
            "--runs", str(runs), "--out", str(out), "--master", master]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # the child's one line of JSON, after any logs


def _check_equal(out: Path, engine: str) -> None:
    import polars as pl
    from polars.testing import assert_frame_equal

    for part in ("activity", "quarantined"):
        a = pl.read_parquet(f"{out}/polars.{part}.parquet")
        b = pl.read_parquet(f"{out}/{engine}.{part}.parquet")
        assert_frame_equal(a, b, check_exact=True)


def run(lines: int, runs: int, master: str, engines: tuple[str, ...] = ("polars", "spark")) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = _stored_month(root, lines)
        results = {e: _run_child(e, path, runs, root / e, master) for e in engines}
        for engine in engines[1:]:
            assert results["polars"]["accounting"] == results[engine]["accounting"], results
            _check_equal(root, engine)
        accounting = results["polars"]["accounting"]
    ratios = {
        f"{e}_over_polars": results[e]["seconds"]["median"] / results["polars"]["seconds"]["median"]
        for e in engines[1:]
    }
    return {
        "lines": accounting["raw_rows"],
        "master": master,
        "engines": results,
        **ratios,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--engines", nargs="+", default=["polars", "spark"], choices=("polars", "spark", "buckets")
    )
    parser.add_argument("--child")
    parser.add_argument("--path")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.runs, args.out, args.master)))
        return
    if args.engines[0] != "polars":
        parser.error("--engines: polars first, the baseline the others are checked and timed against")
    results = [run(n, args.runs, args.master, tuple(args.engines)) for n in args.lines]
    print(json.dumps({"benchmark": "spark", "machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
