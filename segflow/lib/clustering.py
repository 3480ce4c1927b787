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


SELECTION_RULE = (
    "discard candidates with a segment under the minimum share or mean bootstrap Jaccard under the minimum "
    "stability; choose the highest (silhouette + 1/(1+DB) + CH/max CH)/3 + 0.5 * mean ARI of refits "
    "(ties: family order, then smaller k)"
)


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


def fit_design(frame: pl.DataFrame, features: tuple[tuple[str, str], ...] = MODEL_FEATURES) -> Design:
    """Choose usable features (non-constant), fill values and scaling from ``frame``."""
    fill = {}
    for name, _ in features:
        median = frame[name].cast(pl.Float64).fill_nan(None).median()
        fill[name] = float(median) if median is not None else 0.0
    candidates = list(features)
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
    raw = np.clip(
        _raw_matrix(frame, features, model["fill_values"]), model["clip_lower"], model["clip_upper"]
    )
    return (raw - np.array(model["scaler_mean"])) / np.array(model["scaler_scale"])


def _shares(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels, minlength=k) / len(labels)


def _segment_profiles(frame: pl.DataFrame, labels: np.ndarray, phrases: dict = _PHRASES) -> pl.DataFrame:
    columns = list(phrases)
    labelled = frame.select(columns).with_columns(pl.Series("segment_id", labels, dtype=pl.Int32))
    return labelled.group_by("segment_id").agg([pl.col(c).mean() for c in columns]).sort("segment_id")


def name_segments(frame: pl.DataFrame, labels: np.ndarray, phrases: dict | None = None) -> dict[int, str]:
    """A short name per segment from its two most distinctive features (z-score of its mean)."""
    phrases = _PHRASES if phrases is None else {f: p for f, p in phrases.items() if f in frame.columns}
    profiles = _segment_profiles(frame, labels, phrases)
    names: dict[int, str] = {}
    for row in profiles.iter_rows(named=True):
        z = {}
        for feature in phrases:
            col = frame[feature].cast(pl.Float64).fill_nan(None)
            std = col.std()
            if std and row[feature] is not None and np.isfinite(std) and std > 0:
                z[feature] = (row[feature] - col.mean()) / std
        top = sorted(z.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:2]
        words = [phrases[f][0 if v > 0 else 1] for f, v in top]
        name = f"{words[0]}, {words[1].lower()} customers" if len(words) == 2 else "Typical customers"
        if name in names.values():
            name = f"{name} (segment {row['segment_id']})"
        names[int(row["segment_id"])] = name
    return names


def model_version(model: dict) -> str:
    payload = json.dumps({k: v for k, v in model.items() if k != "version"}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def segment_means(model: dict) -> dict[str, np.ndarray]:
    """Per-segment means of the transformed, unscaled features (log1p where declared), by feature name.

    Centroids are means in the scaled space, so un-scaling them gives every family's segment profile
    in a space that models with different feature sets or scalers share feature by feature.
    """
    centroids = np.asarray(model["centroids"]) * np.asarray(model["scaler_scale"]) + np.asarray(
        model["scaler_mean"]
    )
    return {f["name"]: centroids[:, j] for j, f in enumerate(model["features"])}


def align_to_previous(model: dict, previous: dict | None, max_distance: float) -> tuple[list[int], dict]:
    """Hungarian matching of this model's segments to the previous month's, on segment means of the
    features both share, in units of this month's pooled standard deviation.

    Returns (order, record): ``order[new_id]`` is the current segment index that takes id ``new_id``.
    Matched segments keep the previous id when it is below k; the others (new segments, or matches
    whose old id no longer fits 0..k-1) take the lowest free ids. Ids stay 0..k-1 within a month.
    """
    from segflow.lib.stability import align_segments

    k = model["k"]
    if not previous:
        return list(range(k)), {"previous_period": None, "matched": {}, "new": list(range(k)), "vanished": []}
    cur, prev = segment_means(model), segment_means(previous)
    common = [f["name"] for f in model["features"] if f["name"] in prev]
    if not common:
        return list(range(k)), {
            "previous_period": previous.get("period"),
            "matched": {},
            "new": list(range(k)),
            "vanished": list(range(previous["k"])),
            "common_features": [],
        }
    scale = {f["name"]: s for f, s in zip(model["features"], model["scaler_scale"], strict=True)}
    a = np.column_stack([cur[f] / scale[f] for f in common])
    b = np.column_stack([prev[f] / scale[f] for f in common])
    matched, new, vanished = align_segments(a, b, max_distance)
    ids: dict[int, int] = {c: p for c, p in matched.items() if p < k}
    free = iter(i for i in range(k) if i not in ids.values())
    for c in sorted(set(range(k)) - set(ids)):
        ids[c] = next(free)
    order = [c for _, c in sorted((i, c) for c, i in ids.items())]
    record = {
        "previous_period": previous.get("period"),
        "previous_version": previous.get("version"),
        "common_features": common,
        "matched": {
            str(ids[c]): {"previous_id": p, "distance": round(float(np.sqrt(((a[c] - b[p]) ** 2).sum())), 6)}
            for c, p in sorted(matched.items())
        },
        "new": sorted(ids[c] for c in new),
        "vanished": vanished,
        "reused_ids": sorted(ids[c] for c, p in matched.items() if p >= k),
    }
    return order, record


def fit_model(
    features: pl.DataFrame,
    settings: ModelSettings,
    period: str,
    previous: dict | None = None,
    feature_set: str = "transactions",
) -> dict:
    """Fit every candidate family, select one, number its segments stably; return it as plain data.

    ``previous`` is last month's stored model, if any: segments are renumbered to match it.
    ``feature_set`` is ``transactions`` (MODEL_FEATURES, numbered by monetary value) or ``snapshot``
    (segflow.lib.snapshot.MODEL_FEATURES, numbered by spend per month).
    """
    from threadpoolctl import threadpool_limits

    from segflow.lib.selection import apply, permute, select, sweep

    model_features, value_column, phrases = MODEL_FEATURES, "monetary", None
    if feature_set == "snapshot":
        from segflow.lib import snapshot

        model_features, value_column = snapshot.MODEL_FEATURES, snapshot.VALUE_COLUMN
        phrases = snapshot.PHRASES
    design = fit_design(features, model_features)
    # scikit-learn's OpenMP k-means ran 2.4x (200k rows) to 50x (5k rows) slower with 2 threads
    # than with 1 on our 2-core machines, so the sweep runs single-threaded (OpenMP and BLAS: BLAS
    # threads cost another ~1.4x on the sweep's small matrices); partitions and backfill workers
    # provide the parallelism instead.
    with threadpool_limits(limits=1):
        rows, rules, sampling = sweep(design.matrix, settings)
    chosen = select(rows)
    rule, k = rules[chosen], rows[chosen]["k"]
    labels = apply(rule, design.matrix)
    # Number segments by mean monetary value (highest first), so a model without a predecessor always
    # numbers its segments the same way; then keep last month's ids where segments match.
    monetary = features[value_column].cast(pl.Float64).fill_nan(None).fill_null(0.0).to_numpy()
    order = np.argsort(
        [-monetary[labels == i].mean() if (labels == i).any() else np.inf for i in range(k)], kind="stable"
    ).tolist()
    rule = permute(rule, order)
    draft = {"k": k, "centroids": rule["centroids"], **design.model}
    aligned, alignment = align_to_previous(draft, previous, settings.align_max_distance)
    rule = permute(rule, aligned)
    labels = apply(rule, design.matrix)
    shares = _shares(labels, k)
    winner = rows[chosen]
    model = {
        "family": winner["family"],
        "params": winner["params"],
        "period": period,
        "seed": settings.seed,
        "k": k,
        **design.model,
        "rule": {key: v for key, v in rule.items() if key != "centroids"},
        "centroids": rule["centroids"],
        "segment_names": {str(i): n for i, n in name_segments(features, labels, phrases).items()},
        "segment_shares": shares.tolist(),
        "min_segment_share": float(shares.min()),
        "min_segment_share_threshold": settings.min_segment_share,
        "stability": winner["stability"],
        "segment_jaccard": [winner["segment_jaccard"][i] for i in order_compose(order, aligned)],
        "ari_refits": winner["ari_refits"],
        "min_stability_threshold": settings.min_stability,
        "selection_rule": SELECTION_RULE,
        "chosen_index": chosen,
        "sampling": sampling,
        "alignment": alignment,
        "n_customers": int(len(labels)),
        "sweep": rows,
        "settings": {
            "k_min": settings.k_min,
            "k_max": settings.k_max,
            "n_init": settings.n_init,
            "silhouette_sample": settings.silhouette_sample,
            "max_fit_rows": settings.max_fit_rows,
        },
    }
    if feature_set != "transactions":  # recorded only off the default, so default versions stay put
        model["feature_set"] = feature_set
    model["version"] = model_version(model)
    return model


def order_compose(first: list[int], second: list[int]) -> list[int]:
    """Original segment index behind each final id after two ``permute`` steps."""
    return [first[j] for j in second]


def rule_of(model: dict) -> dict:
    return {**model.get("rule", {"kind": "centroid"}), "centroids": model["centroids"]}


def assign(features: pl.DataFrame, model: dict) -> pl.DataFrame:
    """Segment every customer with a stored model: customer_id, segment_id, segment_name."""
    from segflow.lib.selection import apply

    labels = apply(rule_of(model), transform(features, model))
    names = model["segment_names"]
    return features.select("customer_id").with_columns(
        pl.Series("segment_id", labels, dtype=pl.Int32),
        pl.Series("segment_name", [names[str(i)] for i in labels], dtype=pl.String),
    )


def gating_failures(model: dict) -> dict[str, list[str]]:
    """Why a model must not be published: segments under the minimum share, and an unstable model
    (mean bootstrap Jaccard under the threshold; the segments below it are named with their Jaccard).
    """
    names, threshold = model["segment_names"], model["min_segment_share_threshold"]
    size = [
        f"segment {i}: {names[str(i)]} holds {share:.2%}, {threshold - share:.2%} below the minimum "
        f"{threshold:.0%}"
        for i, share in enumerate(model["segment_shares"])
        if share < threshold
    ]
    stability = []
    minimum = model.get("min_stability_threshold")
    if minimum is not None and model.get("stability") is not None and model["stability"] < minimum:
        weak = [
            f"segment {i}: {names[str(i)]} Jaccard {j:.2f}"
            for i, j in enumerate(model["segment_jaccard"])
            if j < minimum
        ]
        stability = [
            f"mean bootstrap Jaccard {model['stability']:.3f} is {minimum - model['stability']:.3f} "
            f"below the minimum {minimum:.2f} ({', '.join(weak)})"
        ]
    return {"size": size, "stability": stability}
