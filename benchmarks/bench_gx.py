"""GX gating overhead: contract validation of raw_transactions and customer_profiles against the
compute of those two assets, on one month of synthetic line items, measured in the same run.

    python -m benchmarks.bench_gx --customers 150000 --intensity 20   # about 10M line items
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import machine, peak_rss_mb, repeat, timed


def _landing(root: Path, customers: int, intensity: float) -> None:
    from segflow.synth import SynthConfig, generate

    generate(root, SynthConfig(customers=customers, months=1, start="2024-01", seed=5, intensity=intensity))


def run(customers: int = 150_000, intensity: float = 20.0, runs: int = 3) -> dict:
    import polars as pl

    from segflow.config import load_settings
    from segflow.lib import periods
    from segflow.lib.contracts.spec import load_contract
    from segflow.lib.contracts.validation import validate_frame
    from segflow.lib.profiles.profiles import RawSources, build_profiles
    from segflow.lib.sources.ingest import empty_source, read_source

    settings = load_settings()
    start, end = periods.bounds("2024-01")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _landing(root, customers, intensity)

        def read(source: str) -> pl.DataFrame:
            location = settings.sources[source].location.format(landing=str(root), period="2024-01")
            if not settings.sources[source].enabled:  # no file: empty, as its raw asset is
                return empty_source(source)
            return read_source(source, settings.sources[source], location).frame

        def compute() -> tuple:
            raw = {s: read(s) for s in settings.sources}
            return raw, build_profiles(RawSources(**raw), "2024-01", start, end, settings.cleaning, 42)

        raw, build = compute()
        lines = raw["transactions"].height
        contracts = {
            "raw_transactions": load_contract("raw_transactions"),
            "customer_profiles": load_contract("customer_profiles"),
        }
        import_seconds, _ = timed(
            lambda: validate_frame(raw["transactions"].head(10), contracts["raw_transactions"], "error")
        )

        def gate() -> float:
            seconds = 0.0
            for frame, name in (
                (raw["transactions"], "raw_transactions"),
                (build.profiles, "customer_profiles"),
            ):
                for severity in ("error", "warn"):
                    elapsed, _ = timed(
                        lambda f=frame, n=name, s=severity: validate_frame(
                            f, contracts[n], s, None, start, end
                        )
                    )
                    seconds += elapsed
            return seconds

        compute_stats = repeat(lambda: timed(compute)[0], runs)
        gate_stats = repeat(gate, runs)
    return {
        "benchmark": "gx_gating",
        "machine": machine(),
        "line_items": lines,
        "profiles": build.profiles.height,
        "compute_seconds": compute_stats,
        "gx_seconds": gate_stats,
        "gx_first_call_seconds": import_seconds,
        "ratio": gate_stats["median"] / compute_stats["median"],
        "target_ratio": 0.30,
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=150_000)
    parser.add_argument("--intensity", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.customers, args.intensity, args.runs), indent=1))
