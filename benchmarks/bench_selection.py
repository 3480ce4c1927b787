"""Model selection at scale: the full sweep (four families, validity indices, gap statistic, bootstrap
stability, selection, naming, personas) on N customers, against one plain k-means fit of the same
design matrix measured in the same run.

    python -m benchmarks.bench_selection --customers 1000000 --runs 3

The feature table is drawn directly (five planted groups in the default design's columns), not
built through the pipeline, so the figure is the modelling cost alone. Each size should run in its
own process, because peak RSS is a per-process high-water mark.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from benchmarks.common import machine, peak_rss_mb, repeat, timed

PLANTED = 5
# Default design columns (model.feature_families rfm, behaviour, engagement, channel_mix) plus the
# columns the model reads to number and name segments (monetary, digital_share): 13 in all.
_COLUMNS = {
    "recency_days": (20.0, 300.0, "gamma"),
    "invoices_per_month": (0.2, 3.0, "gamma"),
    "avg_order_value": (15.0, 120.0, "gamma"),
    "return_rate": (0.02, 0.12, "beta"),
    "sessions_per_month": (0.5, 12.0, "gamma"),
    "pages_per_session": (2.0, 8.0, "gamma"),
    "email_open_rate": (0.1, 0.6, "beta"),
    "email_click_rate": (0.02, 0.2, "beta"),
    "web_share": (0.1, 0.8, "beta"),
    "app_share": (0.05, 0.5, "beta"),
}


def planted_features(customers: int, seed: int = 7):
    """A feature table of ``customers`` rows in ``PLANTED`` groups whose means differ per column."""
    import polars as pl

    rng = np.random.default_rng(seed)
    group = rng.integers(0, PLANTED, customers)
    columns: dict[str, np.ndarray] = {}
    for j, (name, (low, high, kind)) in enumerate(_COLUMNS.items()):
        means = np.linspace(low, high, PLANTED)[np.roll(np.arange(PLANTED), j)]
        mean = means[group]
        if kind == "gamma":
            columns[name] = rng.gamma(8.0, mean / 8.0)
        else:
            columns[name] = rng.beta(20.0 * mean, 20.0 * (1 - mean))
    columns["web_share"] = columns["web_share"] * (1 - columns["app_share"])
    columns["store_share"] = 1 - columns["web_share"] - columns["app_share"]
    columns["digital_share"] = columns["web_share"] + columns["app_share"]
    columns["monetary"] = columns["invoices_per_month"] * 12 * columns["avg_order_value"]
    frame = pl.DataFrame({"customer_id": [f"C{i:08d}" for i in range(customers)], **columns})
    return frame, group


def run(customers: int = 1_000_000, runs: int = 3, seed: int = 7) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from segflow.config import ModelSettings
    from segflow.lib.models.clustering import assign, fit_model
    from segflow.lib.models.design import fit_design

    settings = ModelSettings(seed=seed)
    features, truth = planted_features(customers, seed)
    design = fit_design(features, settings)

    def baseline() -> float:
        # One k-means at the planted k on every row: the least a segmentation run can cost.
        with threadpool_limits(limits=1):
            return timed(lambda: KMeans(PLANTED, n_init=10, random_state=seed).fit(design.matrix))[0]

    models: list[dict] = []

    def sweep() -> float:
        seconds, model = timed(lambda: fit_model(features, settings, "2024-01"))
        models.append(model)
        return seconds

    baseline_stats = repeat(baseline, runs)
    sweep_stats = repeat(sweep, runs)
    model = models[-1]
    labels = assign(features, model)["segment_id"].to_numpy()
    return {
        "benchmark": "model_selection",
        "machine": machine(),
        "customers": customers,
        "design_columns": int(design.matrix.shape[1]),
        "candidates": len(model.sweep),
        "sampling": model.sampling,
        "chosen": {"family": model.family, "k": model.k, "stability": model.stability},
        "ari_vs_planted": float(adjusted_rand_score(truth, labels)),
        "identical_across_runs": len({m.version for m in models}) == 1,
        "sweep_seconds": sweep_stats,
        "kmeans_baseline_seconds": baseline_stats,
        "ratio": sweep_stats["median"] / baseline_stats["median"],
        "target_seconds": 120.0,
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.customers, args.runs), indent=1))
