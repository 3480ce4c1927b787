"""The synthetic generator writing one month of about N line items: time and peak RSS, at the
usual intensity (more customers) and at a high one (more line items per customer).

    python -m benchmarks.bench_generate --lines 10000000

Each generation runs in its own process, so its peak RSS is its own. Above intensity 20 a block's
transactions are made in chunks (``segflow.synth.transactions.TX_INTENSITY_PER_CHUNK``), so memory
follows the customers per block, not the line items per customer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from benchmarks.bench_features import LINES_PER_CUSTOMER, PERIOD
from benchmarks.common import machine, peak_rss_mb

INTENSITIES = (20.0, 80.0)


def child(out: str, customers: int, intensity: float) -> dict:
    from segflow.synth import SynthConfig, generate

    started = time.perf_counter()
    manifest = generate(
        out, SynthConfig(customers=customers, months=1, start=PERIOD, seed=5, intensity=intensity)
    )
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
        "line_items": manifest["row_counts"]["transactions"][PERIOD],
    }


def run(lines: int = 10_000_000) -> dict:
    results = []
    for intensity in INTENSITIES:
        customers = max(1, round(lines / LINES_PER_CUSTOMER * 20.0 / intensity))
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "benchmarks.bench_generate", "--child", tmp]
            command += ["--customers", str(customers), "--intensity", str(intensity)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"generate failed:\n{done.stderr[-3000:]}")
        measured = json.loads(done.stdout[done.stdout.index("{") :])
        results.append({"customers": customers, "intensity": intensity, **measured})
    return {"benchmark": "generate", "machine": machine(), "lines": lines, "results": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--intensity", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.customers, args.intensity)))
    else:
        print(json.dumps(run(args.lines), indent=1))
