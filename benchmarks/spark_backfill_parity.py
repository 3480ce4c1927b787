"""Issue 14's acceptance run: a config backfilled on each engine gives the same stored bytes.

    .venv/bin/python -m benchmarks.spark_backfill_parity [--config examples/online_retail_ii.yaml] [--out DIR]

Backfills every month of the config twice, in this process, once with the default engine and once
with ``engine: spark`` (``spark.master`` from the config, local[2] by default), each into its own
storage and Dagster instance, then compares every stored table and model file of the two, byte for
byte, ``segment_assignments`` first. Prints the wall time of each backfill and writes the result
to ``DIR/result.json``. Too long for ``make test`` (about 25 months); the parity tests there run
one month of each kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from segflow import runner
from segflow.config import load_settings
from segflow.lib.storage import StorageLayout


def _backfill(settings, engine: str, out: Path) -> tuple[StorageLayout, float]:
    home = out / engine
    instance = home / "dagster_home"
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "dagster.yaml").write_text(runner.INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(instance)
    settings = dataclasses.replace(settings, storage_dir=home / "storage", engine=engine)
    last = settings.partitions_end or settings.partitions_start
    started = time.perf_counter()
    summary = runner.backfill(settings, settings.partitions_start, last)
    seconds = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(
            f"{engine}: failed runs: {[(o.period, o.job, o.error[:300]) for o in summary.failed]}"
        )
    return StorageLayout(settings.storage_dir), seconds


def _files(layout: StorageLayout) -> dict[str, bytes]:
    root = Path(layout.root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/online_retail_ii.yaml")
    parser.add_argument("--out", default=".segflow/spark_backfill_parity")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    settings = load_settings(args.config)
    layouts, seconds = {}, {}
    for engine in ("polars", "spark"):
        layouts[engine], seconds[engine] = _backfill(settings, engine, out)
        print(f"{engine}: backfilled in {seconds[engine]:.0f} s")
    polars_files, spark_files = _files(layouts["polars"]), _files(layouts["spark"])
    differ = sorted(
        f for f in polars_files.keys() | spark_files.keys() if polars_files.get(f) != spark_files.get(f)
    )
    assignments = sorted(f for f in polars_files if f.startswith("segment_assignments/"))
    result = {
        "config": args.config,
        "months": f"{settings.partitions_start}..{settings.partitions_end}",
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "files_compared": len(polars_files),
        "segment_assignments_files": len(assignments),
        "segment_assignments_equal": all(polars_files[f] == spark_files.get(f) for f in assignments),
        "files_that_differ": differ,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    raise SystemExit(0 if result["segment_assignments_equal"] and not differ else 1)


if __name__ == "__main__":
    main()
