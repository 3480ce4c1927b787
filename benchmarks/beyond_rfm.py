"""How much later value candidate segmentations explain beyond the RFM segments (issue 17, item 7).

    python -m benchmarks.beyond_rfm 2011-02 2011-07      # Online Retail II months (features cached
                                                         # by benchmarks.selection_study online_retail)

A per-k view of what the rule reads (selection.py scores every candidate's gain beyond RFM through
the same out_of_time.separation). For the fit of month T, with the same out-of-time evidence the
sweep reads (the customers of T-h-1 and their revenue and purchases in T-h..T-1), it prints the rank
eta squared (segflow.lib.models.out_of_time) of the 11 named RFM segments alone, and for every
k-means candidate its own separation and that of its segments crossed with the RFM segments: the
gain is what the candidate adds to what RFM already says.
"""

from __future__ import annotations

import sys

import polars as pl

from benchmarks.selection_study import CONFIGS, ROOT, build_months


def main(argv: list[str]) -> int:
    from segflow.config import load_settings
    from segflow.lib.models.design import fit_design, transform
    from segflow.lib.models.families import apply
    from segflow.lib.models.out_of_time import build_evidence, ranks, rfm_baseline, separation
    from segflow.lib.models.selection import sweep
    from segflow.lib.threads import single_threaded

    settings = load_settings(CONFIGS["online_retail"])
    profiles, features = build_months(settings, ROOT / ".segflow" / "selection_study" / "online_retail")
    horizon = settings.report.backtest_horizon_months
    for month in argv:
        evidence = build_evidence(month, horizon, features, profiles)
        design = fit_design(features[month], settings.model, None)
        absent = [f["name"] for f in design.params.features if f["name"] not in evidence.features.columns]
        anchor = evidence.features.with_columns(pl.lit(None, dtype=pl.Float64).alias(n) for n in absent)
        anchor_matrix = transform(anchor, design.params)
        revenue, purchases = ranks(evidence.revenue), ranks(evidence.purchases)
        rfm = rfm_baseline(anchor, revenue, purchases)
        base = rfm.separation
        with single_threaded():
            rows, rules, _ = sweep(design.matrix, settings.model)
        print(f"{month}: the 11 RFM segments explain {base:.3f}")
        for row, rule in zip(rows, rules, strict=True):
            if rule is None or row["family"] != "kmeans":
                continue
            scores = separation(apply(rule, anchor_matrix), revenue, purchases, rfm)
            gain = scores["oot_beyond_rfm"]
            stability = "not measured" if row["stability"] is None else f"{row['stability']:.3f}"
            print(f"  k-means k={row['k']}: own {scores['oot_separation']:.3f}, with RFM {base + gain:.3f} "
                  f"(gain {gain:+.3f}), smallest segment {row['min_segment_share']:.3f}, "
                  f"stability {stability}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["2011-02", "2011-07"]))
