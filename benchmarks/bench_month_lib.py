"""Fixed cost of one small month, lib calls only: each stage in a fresh process, as Dagster's
multiprocess executor runs each step, so import costs and first-call effects count.

    python -m benchmarks.bench_month_lib --customers 1000

A synthetic history (``--months`` months, default 7 so the churn model has T - 2h) is generated and
every month's profiles and features are built once, untimed. Then each stage of the last month runs
in its own interpreter and reports its CPU seconds (user + sys, threads included) for the call
alone and for the whole process (imports included).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("profiles", "features", "segmentation", "churn", "report")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _setup(root: Path, customers: int, months: int) -> None:
    """The history's profiles and features per month, pickled under ``root``."""
    import polars as pl

    from segflow.lib import periods
    from segflow.lib.features.behaviour import build_features
    from segflow.synth import SynthConfig
    from segflow_tests.synthetic_history import synthetic_profiles

    profiles = synthetic_profiles(root / "landing", SynthConfig(customers=customers, months=months, seed=7))
    ordered = sorted(profiles)
    features = {}
    for month in ordered:
        window = pl.concat([profiles[m].lazy() for m in ordered if m <= month], how="diagonal_relaxed")
        features[month] = build_features(
            window, profiles[month].lazy(), month, periods.as_of(month), "invoices", "sum"
        )
    (root / "state.pkl").write_bytes(pickle.dumps({"profiles": profiles, "features": features}))


def _stage(root: Path, name: str) -> None:
    """Run one stage of the last month; the state is loaded before the clock starts."""
    state = pickle.loads((root / "state.pkl").read_bytes())
    month = max(state["features"])
    started = _cpu()
    if name == "profiles":
        _profiles(root, month)
    elif name == "features":
        _features(state, month)
    elif name == "segmentation":
        from segflow.config import ModelSettings
        from segflow.lib.models.clustering import assign, fit_model

        assign(state["features"][month], fit_model(state["features"][month], ModelSettings(), month))
    elif name == "churn":
        from segflow.config import ModelSettings
        from segflow.lib.models.churn import churn_scores, fit_churn_model

        churn_scores(state["features"][month], fit_churn_model(state["features"], month, ModelSettings(), 12))
    elif name == "report":
        from segflow.lib.report import render_report
        from segflow_tests.report_fixtures import report_inputs

        render_report(report_inputs())
    print(json.dumps({"stage": name, "call_cpu_s": _cpu() - started, "process_cpu_s": _cpu()}))


def _profiles(root: Path, month: str) -> None:
    from segflow.config import load_settings
    from segflow.lib import periods
    from segflow.lib.profiles.profiles import RawSources, build_profiles
    from segflow.lib.sources.ingest import empty_source, read_source

    settings = load_settings()
    start, end = periods.bounds(month)
    raw = {}
    for src, source in settings.sources.items():
        if not source.enabled:  # no file: empty, as its raw asset is
            raw[src] = empty_source(src)
            continue
        raw[src] = read_source(
            src, source, source.location.format(landing=root / "landing", period=month)
        ).frame
    build_profiles(RawSources(**raw), month, start, end, settings.cleaning, 42)


def _features(state: dict, month: str) -> None:
    import polars as pl

    from segflow.lib import periods
    from segflow.lib.features.behaviour import build_features
    from segflow.lib.features.category_mix import category_mix

    window = pl.concat([state["profiles"][m] for m in sorted(state["profiles"])], how="diagonal_relaxed")
    categories = category_mix(window.lazy(), 8)
    build_features(window.lazy(), state["profiles"][month].lazy(), month, periods.as_of(month), "invoices",
                   "sum", categories=categories)  # fmt: skip


def run(customers: int, months: int, stages: tuple[str, ...] = STAGES) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _setup(root, customers, months)
        out = []
        for name in stages:
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_month_lib", "--stage", name, "--root", str(root)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            out.append({**json.loads(done.stdout.splitlines()[-1]), "wall_s": time.perf_counter() - started})
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--months", type=int, default=7)
    parser.add_argument("--stage", choices=STAGES)
    parser.add_argument("--root", type=Path)
    args = parser.parse_args()
    if args.stage:
        _stage(args.root, args.stage)
        return
    rows = run(args.customers, args.months)
    for row in rows:
        print(f"{row['stage']:<13} call {row['call_cpu_s']:6.2f} CPU-s  process {row['process_cpu_s']:6.2f} "
              f"CPU-s  wall {row['wall_s']:6.2f} s")  # fmt: skip
    print(f"total         call {sum(r['call_cpu_s'] for r in rows):6.2f} CPU-s  "
          f"process {sum(r['process_cpu_s'] for r in rows):6.2f} CPU-s")  # fmt: skip


if __name__ == "__main__":
    main()
