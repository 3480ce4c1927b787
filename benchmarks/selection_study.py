"""Which k the selection rule chooses, and why, with and without out-of-time value separation.

    python -m benchmarks.selection_study online_retail   # examples/online_retail_ii.yaml
    python -m benchmarks.selection_study personality     # examples/customer_personality.yaml
    python -m benchmarks.selection_study amounts         # generated: dates, customers, amounts only

A study, not a benchmark of speed: for every month it fits the sweep twice on the same features,
once as before (``model.oot_weight`` 0: validity and stability only) and once as now, and prints the
chosen family, k and out-of-time separation of each, with the candidates' scores. Profiles and
features are built through lib functions (no Dagster run) and cached under ``--work``, so a second
run only refits. The "before" choice is exactly the old rule's: with weight 0 the criterion adds 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "online_retail": ROOT / "examples" / "online_retail_ii.yaml",
    "personality": ROOT / "examples" / "customer_personality.yaml",
}


def _amounts_config(work: Path, seed: int = 5) -> Path:
    """A transaction log of dates, customers and amounts only: the synthetic generator's purchases
    (planted behaviour, no dirt kept) summed per invoice, with ids, products and channels dropped."""
    from segflow.synth import SynthConfig, generate

    landing = work / "landing"
    out = work / "amounts.parquet"
    if not out.exists():
        generate(landing, SynthConfig(customers=3000, months=18, start="2023-01", seed=seed))
        lines = pl.read_parquet(landing / "transactions" / "*.parquet")
        (
            lines.filter(
                pl.col("quantity") > 0, pl.col("unit_price") > 0, pl.col("customer_id").is_not_null()
            )
            .group_by("customer_id", pl.col("invoiced_at").dt.date().alias("day"))
            .agg((pl.col("quantity") * pl.col("unit_price")).sum().round(2).alias("amount"))
            .sort("day", "customer_id")
            .write_parquet(out)
        )
    config = work / "amounts.yaml"
    config.write_text(
        json.dumps(
            {
                "storage_dir": str(work / "storage"),
                "partitions": {"start": "2023-01", "end": "2024-06"},
                "sources": {
                    "transactions": {
                        "location": str(out),
                        "columns": {
                            "customer_id": "customer_id",
                            "invoiced_at": "CAST(day AS TIMESTAMP)",
                            "quantity": "=1",
                            "unit_price": "amount",
                        },  # fmt: skip
                    },
                    **{s: {"enabled": False} for s in ("customers", "engagement", "surveys", "campaigns")},
                },
            }
        )
    )
    return config


def build_months(settings, work: Path) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """Every month's profiles and features (cached as Parquet under ``work``)."""
    from segflow.lib import periods
    from segflow.lib.features.behaviour import build_features
    from segflow.lib.features.category_mix import category_mix
    from segflow.lib.features.snapshot import build_snapshot_features
    from segflow.lib.profiles.profiles import RawSources, build_profiles
    from segflow.lib.sources.ingest import period_filter_for, read_source

    months = periods.month_range(settings.partitions_start, settings.partitions_end)
    (work / "profiles").mkdir(parents=True, exist_ok=True)
    (work / "features").mkdir(parents=True, exist_ok=True)
    profiles, features = {}, {}
    for i, month in enumerate(months):
        cached = work / "profiles" / f"{month}.parquet"
        if not cached.exists():
            start, end = periods.bounds(month)
            raw = {}
            for name, src in settings.sources.items():
                if not src.enabled:
                    raw[name] = None
                    continue
                split = period_filter_for(name, src.location, start, end, i == 0, src.time_column)
                raw[name] = read_source(
                    name, src, settings.source_location(name, month), split, (start, end)
                ).frame
            if raw.get("transactions") is None:
                raw["transactions"] = None
            build = build_profiles(
                RawSources(**raw),
                month,
                start,
                end,
                settings.cleaning,
                settings.model.seed,
                settings.imputation,
            )
            build.profiles.write_parquet(cached)
        profiles[month] = pl.read_parquet(cached)
        history = [m for m in months[: i + 1]][-settings.features.window_months :]
        if len(history) < settings.features.min_history_months:
            continue
        cached = work / "features" / f"{month}.parquet"
        if not cached.exists():
            if settings.feature_set == "snapshot":
                frame = build_snapshot_features(
                    profiles[month].lazy(), month, settings.features.snapshot_months
                )
            else:
                window = pl.concat([profiles[m].lazy() for m in history], how="diagonal_relaxed")
                frame = build_features(
                    window, profiles[month].lazy(), month, periods.as_of(month), settings.features.frequency,
                    settings.features.monetary, categories=category_mix(window, settings.features.category_top_n),
                )  # fmt: skip
            frame.write_parquet(cached)
        features[month] = pl.read_parquet(cached)
    return profiles, features


def _chosen(fit) -> dict:
    row = fit.winner
    return {
        "family": row["family"], "k": row["k"], "silhouette": row["silhouette"],
        "stability": row["stability"], "oot_revenue": row["oot_revenue"],
        "oot_purchases": row["oot_purchases"], "oot_separation": row["oot_separation"],
        "oot_beyond_rfm": row.get("oot_beyond_rfm"), "oot_shortfall": row.get("oot_shortfall"),
    }  # fmt: skip


def study(settings, profiles: dict, features: dict, months: list[str] | None) -> list[dict]:
    from segflow.lib.models.clustering import fit_segments
    from segflow.lib.models.out_of_time import build_evidence

    horizon = settings.report.backtest_horizon_months
    before_settings = dataclasses.replace(settings.model, oot_weight=0.0)
    out = []
    for month in months or sorted(features):
        evidence = build_evidence(month, horizon, features, profiles, settings.feature_set)
        before = fit_segments(features[month], before_settings, month, settings.feature_set, evidence)
        after = fit_segments(features[month], settings.model, month, settings.feature_set, evidence)
        row = {"month": month, "customers": features[month].height, "evidence": after.out_of_time,
               "before": _chosen(before), "after": _chosen(after),
               "candidates": [{k: r[k] for k in ("family", "params", "k", "silhouette", "min_segment_share",
                                                 "stability", "oot_separation", "oot_beyond_rfm",
                                                 "oot_beyond_rfm_noise", "oot_shortfall", "combined", "viable")}
                              for r in after.sweep]}  # fmt: skip
        out.append(row)
        print(_line(row), flush=True)
    return out


def _fmt(value) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _line(row: dict) -> str:
    b, a = row["before"], row["after"]
    return (
        f"{row['month']} n={row['customers']:>5}  before {b['family']:>7} k={b['k']} oot={_fmt(b['oot_separation'])}"
        f"  after {a['family']:>7} k={a['k']} oot={_fmt(a['oot_separation'])}"
        f" beyond RFM {_fmt(a.get('oot_beyond_rfm'))}"
        f" (revenue {_fmt(a['oot_revenue'])}, purchases {_fmt(a['oot_purchases'])})"
        + ("" if row["evidence"]["available"] else f"  [no evidence: {row['evidence']['reason']}]")
    )


def main(argv: list[str] | None = None) -> int:
    from segflow.config import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=[*CONFIGS, "amounts"])
    parser.add_argument("--work", type=Path, default=ROOT / ".segflow" / "selection_study")
    parser.add_argument("--months", nargs="*", help="YYYY-MM months to fit (default: every modelled month)")
    parser.add_argument("--out", type=Path, help="write the per-month results as JSON here")
    args = parser.parse_args(argv)
    work = args.work / args.data
    work.mkdir(parents=True, exist_ok=True)
    config = _amounts_config(work) if args.data == "amounts" else CONFIGS[args.data]
    settings = load_settings(config)
    profiles, features = build_months(settings, work)
    rows = study(settings, profiles, features, args.months)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
