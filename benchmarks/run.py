"""`make bench`: every benchmark at full size, each in its own process (peak RSS is per process),
written to benchmarks/RESULTS.md as Markdown.

    python -m benchmarks.run [--only gx|selection] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _measure(module: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout[done.stdout.index("{") :])


def _row(label: str, stats: dict, unit: str = "s") -> str:
    return f"| {label}, {unit} | {stats['median']:.2f} | {stats['min']:.2f} | {stats['max']:.2f} |"


def gx_section(result: dict, command: str) -> list[str]:
    met = "met" if result["ratio"] <= result["target_ratio"] else "NOT met"
    return [
        "## GX gating overhead",
        "",
        f"`{command}`",
        "",
        f"- Data: one synthetic month of **{result['line_items']:,} line items**, {result['profiles']:,} "
        "customer profiles, all five sources.",
        f"- Peak RSS: {result['peak_rss_mb']:,.0f} MB.",
        "",
        "| measure | median | min | max |",
        "|---|---|---|---|",
        _row(
            "compute of the gated assets (read 5 sources, clean, build profiles)", result["compute_seconds"]
        ),
        _row(
            "GX validation (raw_transactions + customer_profiles, error and warn rules)", result["gx_seconds"]
        ),
        f"| **GX / compute** | **{result['ratio']:.3f}** (target ≤ {result['target_ratio']:.2f}: {met}) | | |",
        "",
    ]


def selection_section(results: list[tuple[dict, str]]) -> list[str]:
    lines = [
        "## Model selection",
        "",
        "The whole sweep (four families, 30 candidates by default: validity indices, gap statistic,",
        "bootstrap stability, selection, alignment, naming, personas) against one plain k-means fit",
        "(k = 5, n_init = 10, every row, one thread) of the same design matrix in the same process.",
        "",
        "| customers | design columns | sweep median, s | min | max | k-means baseline median, s | sweep / baseline "
        "| chosen | ARI vs planted | peak RSS, MB | target ≤ 120 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result, _ in results:
        s, b = result["sweep_seconds"], result["kmeans_baseline_seconds"]
        chosen = result["chosen"]
        met = "met" if s["median"] <= result["target_seconds"] else "NOT met"
        lines.append(
            f"| {result['customers']:,} | {result['design_columns']} | {s['median']:.1f} | {s['min']:.1f} | "
            f"{s['max']:.1f} | {b['median']:.2f} | {result['ratio']:.1f} | {chosen['family']}, k={chosen['k']} "
            f"| {result['ari_vs_planted']:.3f} | {result['peak_rss_mb']:,.0f} | {met} |"
        )
    sampling = results[-1][0]["sampling"]
    lines += [
        "",
        "Commands: " + "; ".join(f"`{c}`" for _, c in results) + ".",
        "",
        f"Sampling at the largest size: fits on {json.dumps(sampling['fit_rows'])} rows; indices on "
        f"{sampling['index_sample_rows']:,} rows; gap statistic on {sampling['gap_sample_rows']:,}; stability "
        f"on {sampling['stability_resamples']} resamples of {sampling['stability_sample_rows']:,} rows. "
        "Every customer is then assigned by the stored rule. Repeated runs gave the same model version: "
        f"{all(r['identical_across_runs'] for r, _ in results)}.",
        "",
    ]
    return lines


def backfill_section(result: dict, command: str) -> list[str]:
    rows = []
    for label, r in (("sequential", result["sequential"]), ("--workers 2", result["workers_2"])):
        outside = r["process_seconds_outside_runs"]
        rows.append(
            f"| {label} | {r['wall_seconds']:.0f} | {r['runs']} | {r['run_seconds']:.0f} | {r['step_seconds']:.0f} "
            f"| {r['run_overhead_share']:.1%} | {'' if outside is None else f'{outside:.0f}'} |"
        )
    return [
        "## Backfill",
        "",
        f"`{command}`: {result['months']} synthetic months of {result['customers']:,} customers through",
        "`segflow backfill` (ingest phase, then the modelling chain in month order).",
        "",
        "| backfill | wall, s | runs | summed run time, s | summed step time, s | run overhead | "
        "process time outside runs, s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Speed-up with two workers: {result['speedup']:.2f}x (only the ingest phase runs in parallel;",
        "the modelling chain is sequential by design, because each month aligns ids to the month before).",
        "Step time is what Dagster recorded for the steps (asset bodies, IO managers and checks); run",
        "overhead is the rest of each run; time outside runs is imports, loading definitions and the",
        "CLI itself.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("gx", "selection", "backfill"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = str(args.runs)
    sections: list[str] = []
    machine = ""
    if args.only in (None, "gx"):
        gx_args = ("--customers", "150000", "--intensity", "20", "--runs", runs)
        gx = _measure("benchmarks.bench_gx", *gx_args)
        machine = gx["machine"]
        sections += gx_section(gx, "python -m benchmarks.bench_gx " + " ".join(gx_args))
    if args.only in (None, "selection"):
        results = []
        for customers in ("100000", "1000000"):
            sel_args = ("--customers", customers, "--runs", runs)
            results.append(
                (
                    _measure("benchmarks.bench_selection", *sel_args),
                    "python -m benchmarks.bench_selection " + " ".join(sel_args),
                )
            )
        machine = machine or results[0][0]["machine"]
        sections += selection_section(results)
    if args.only in (None, "backfill"):
        bf_args = ("--months", "24", "--customers", "3000")
        backfill = _measure("benchmarks.bench_backfill", *bf_args)
        machine = machine or backfill["machine"]
        sections += backfill_section(backfill, "python -m benchmarks.bench_backfill " + " ".join(bf_args))
    header = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks.run`). Every figure that matters is a ratio",
        "measured in the same run; medians of the runs shown, with min and max.",
        "",
        f"- Machine: {machine}.",
        "",
    ]
    text = "\n".join(header + sections)
    if args.only and RESULTS.exists():
        # Keep the other benchmarks' sections as they were last measured.
        kept = RESULTS.read_text(encoding="utf-8").split("\n## ")
        title = sections[0][3:]
        others = ["## " + part for part in kept[1:] if not part.startswith(title)]
        text = "\n".join(header + sections) + "\n" + "\n".join(others)
    RESULTS.write_text(text.rstrip() + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
