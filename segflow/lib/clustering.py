"""Segmentation model: feature transform, k-means sweep, selection, naming and assignment.

The fitted model is plain data (a JSON-able dict: transform parameters, centroids, sweep table),
never a pickle, so a stored model can be reloaded from any path safely and re-assigning with it
reproduces the stored assignments exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from segflow.config import ModelSettings

# (feature, transform). log1p tames the long right tails of money and counts.
MODEL_FEATURES: tuple[tuple[str, str], ...] = (
    ("recency_days", "log1p"),
    ("invoices_per_month", "log1p"),
    ("avg_order_value", "log1p"),
    ("return_rate", "identity"),
    ("digital_share", "identity"),
    ("sessions_per_month", "log1p"),
    ("email_open_rate", "identity"),
    ("email_click_rate", "identity"),
)
MODEL_FAMILY = "kmeans"

# Phrases for naming a segment by its most distinctive features: (above average, below average).
_PHRASES = {
    "monetary": ("High-value", "Low-value"),
    "invoices_per_month": ("Frequent", "Infrequent"),
    "avg_order_value": ("Big-basket", "Small-basket"),
    "recency_days": ("Lapsing", "Recently active"),
    "sessions_per_month": ("Highly engaged", "Disengaged"),
    "return_rate": ("Return-prone", "Low-return"),
    "digital_share": ("Digital-first", "Store-first"),
    "email_open_rate": ("Email-responsive", "Email-quiet"),
}


@dataclass(frozen=True)
class Design:
    matrix: np.ndarray  # scaled features, rows in the frame's order
    model: dict  # transform parameters


def _raw_matrix(frame: pl.DataFrame, features: list[tuple[str, str]], fill: dict[str, float]) -> np.ndarray:
    columns = []
    for name, transform in features:
        col = pl.col(name).cast(pl.Float64).fill_null(fill[name]).fill_nan(fill[name])
        if transform == "log1p":
            col = col.clip(lower_bound=0.0).log1p()
        columns.append(col.alias(name))
    return frame.select(columns).to_numpy()


def fit_design(frame: pl.DataFrame) -> Design:
    """Choose usable features (non-constant), fill values and scaling from ``frame``."""
    fill = {}
    for name, _ in MODEL_FEATURES:
        median = frame[name].cast(pl.Float64).fill_nan(None).median()
        fill[name] = float(median) if median is not None else 0.0
    candidates = list(MODEL_FEATURES)
    raw = _raw_matrix(frame, candidates, fill)
    # Winsorise at the 1st and 99th percentiles: a handful of extreme customers (a fully returned
    # order, a window that nets returns of older purchases) otherwise claim a cluster of their own.
    lower, upper = np.percentile(raw, 1, axis=0), np.percentile(raw, 99, axis=0)
    raw = np.clip(raw, lower, upper)
    std = raw.std(axis=0)
    usable = [f for f, s in zip(candidates, std, strict=True) if s > 1e-9]
    dropped = [f[0] for f, s in zip(candidates, std, strict=True) if s <= 1e-9]
    keep = np.array([s > 1e-9 for s in std])
    mean = raw[:, keep].mean(axis=0)
    scale = raw[:, keep].std(axis=0)
    model = {
        "features": [{"name": n, "transform": t} for n, t in usable],
        "dropped_constant_features": dropped,
        "fill_values": {n: fill[n] for n, _ in usable},
        "clip_lower": lower[keep].tolist(),
        "clip_upper": upper[keep].tolist(),
        "scaler_mean": mean.tolist(),
        "scaler_scale": scale.tolist(),
    }
    return Design((raw[:, keep] - mean) / scale, model)


def transform(frame: pl.DataFrame, model: dict) -> np.ndarray:
    features = [(f["name"], f["transform"]) for f in model["features"]]
    raw = np.clip(_raw_matrix(frame, features, model["fill_values"]), model["clip_lower"], model["clip_upper"])
    return (raw - np.array(model["scaler_mean"])) / np.array(model["scaler_scale"])


def nearest(matrix: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per row (ties go to the lower index, deterministically)."""
    out = np.empty(len(matrix), dtype=np.int64)
    for start in range(0, len(matrix), 100_000):  # chunked: n x k x d at once would not fit at 1M+
        block = matrix[start : start + 100_000]
        out[start : start + len(block)] = ((block[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    return out


def _shares(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels, minlength=k) / len(labels)


def sweep_kmeans(matrix: np.ndarray, settings: ModelSettings) -> tuple[pl.DataFrame, dict[int, np.ndarray]]:
    """Fit k-means for every k in the range; score each by validity indices on seeded samples."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    rng = np.random.default_rng(settings.seed)
    fit_rows = np.sort(rng.permutation(len(matrix))[: settings.max_fit_rows])
    score_rows = np.sort(rng.permutation(len(matrix))[: settings.silhouette_sample])
    rows, centroids = [], {}
    for k in range(settings.k_min, settings.k_max + 1):
        if k >= len(fit_rows):
            break
        estimator_cls = MiniBatchKMeans if len(fit_rows) > 100_000 else KMeans
        estimator = estimator_cls(n_clusters=k, n_init=settings.n_init, random_state=settings.seed)
        estimator.fit(matrix[fit_rows])
        labels = nearest(matrix, estimator.cluster_centers_)
        sample_labels = labels[score_rows]
        valid = len(set(sample_labels)) > 1
        rows.append(
            {
                "k": k,
                "silhouette": float(silhouette_score(matrix[score_rows], sample_labels)) if valid else None,
                "calinski_harabasz": float(calinski_harabasz_score(matrix[score_rows], sample_labels)) if valid else None,
                "davies_bouldin": float(davies_bouldin_score(matrix[score_rows], sample_labels)) if valid else None,
                "inertia": float(estimator.inertia_),
                "min_segment_share": float(_shares(labels, k).min()),
            }
        )
        centroids[k] = estimator.cluster_centers_
    return pl.DataFrame(rows), centroids


def select_k(sweep: pl.DataFrame, min_share: float) -> int:
    """Best silhouette among candidates whose smallest segment holds at least ``min_share``.

    If none qualifies, the best silhouette overall is returned and the model's gating check fails.
    """
    ranked = sweep.filter(pl.col("silhouette").is_not_null()).sort(["silhouette", "k"], descending=[True, False])
    viable = ranked.filter(pl.col("min_segment_share") >= min_share)
    chosen = viable if viable.height else ranked
    return int(chosen["k"][0])


def _segment_profiles(frame: pl.DataFrame, labels: np.ndarray) -> pl.DataFrame:
    columns = list(_PHRASES)
    labelled = frame.select(columns).with_columns(pl.Series("segment_id", labels, dtype=pl.Int32))
    return labelled.group_by("segment_id").agg([pl.col(c).mean() for c in columns]).sort("segment_id")


def name_segments(frame: pl.DataFrame, labels: np.ndarray) -> dict[int, str]:
    """A short name per segment from its two most distinctive features (z-score of its mean)."""
    profiles = _segment_profiles(frame, labels)
    names: dict[int, str] = {}
    for row in profiles.iter_rows(named=True):
        z = {}
        for feature in _PHRASES:
            col = frame[feature].cast(pl.Float64).fill_nan(None)
            std = col.std()
            if std and row[feature] is not None and np.isfinite(std) and std > 0:
                z[feature] = (row[feature] - col.mean()) / std
        top = sorted(z.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:2]
        words = [_PHRASES[f][0 if v > 0 else 1] for f, v in top]
        name = f"{words[0]}, {words[1].lower()} customers" if len(words) == 2 else "Typical customers"
        if name in names.values():
            name = f"{name} (segment {row['segment_id']})"
        names[int(row["segment_id"])] = name
    return names


def model_version(model: dict) -> str:
    payload = json.dumps({k: v for k, v in model.items() if k != "version"}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def fit_model(features: pl.DataFrame, settings: ModelSettings, period: str) -> dict:
    """Fit the segmentation model on a feature table; return it as plain data."""
    from threadpoolctl import threadpool_limits

    import sklearn.cluster  # noqa: F401 - loaded before the limit below, so the limit covers its OpenMP
    import sklearn.metrics  # noqa: F401

    design = fit_design(features)
    # scikit-learn's OpenMP k-means ran 2.4x (200k rows) to 50x (5k rows) slower with 2 threads
    # than with 1 on our 2-core machines, so the sweep runs single-threaded; partitions and
    # backfill workers provide the parallelism instead. BLAS is pinned too: its thread count
    # changes the last bits of inertia, and a model must be byte-identical however it was run.
    with threadpool_limits(limits=1):
        sweep, centroids_by_k = sweep_kmeans(design.matrix, settings)
    k = select_k(sweep, settings.min_segment_share)
    centroids = centroids_by_k[k]
    labels = nearest(design.matrix, centroids)
    # k-means numbers clusters arbitrarily; order them by mean monetary value (highest first)
    # so that the same model always numbers its segments the same way.
    monetary = features["monetary"].cast(pl.Float64).to_numpy()
    order = np.argsort([-monetary[labels == i].mean() if (labels == i).any() else np.inf for i in range(k)],
                       kind="stable")
    centroids = centroids[order]
    labels = nearest(design.matrix, centroids)
    shares = _shares(labels, k)
    model = {
        "family": MODEL_FAMILY,
        "period": period,
        "seed": settings.seed,
        "k": k,
        **design.model,
        "centroids": centroids.tolist(),
        "segment_names": {str(i): n for i, n in name_segments(features, labels).items()},
        "segment_shares": shares.tolist(),
        "min_segment_share": float(shares.min()),
        "min_segment_share_threshold": settings.min_segment_share,
        "n_customers": int(len(labels)),
        "sweep": sweep.to_dicts(),
        "settings": {"k_min": settings.k_min, "k_max": settings.k_max, "n_init": settings.n_init,
                     "silhouette_sample": settings.silhouette_sample, "max_fit_rows": settings.max_fit_rows},
    }
    model["version"] = model_version(model)
    return model


def assign(features: pl.DataFrame, model: dict) -> pl.DataFrame:
    """Segment every customer with a stored model: customer_id, segment_id, segment_name."""
    labels = nearest(transform(features, model), np.array(model["centroids"]))
    names = model["segment_names"]
    return features.select("customer_id").with_columns(
        pl.Series("segment_id", labels, dtype=pl.Int32),
        pl.Series("segment_name", [names[str(i)] for i in labels], dtype=pl.String),
    )
