"""Segmentation model: feature transform, k-means sweep, selection, naming and assignment.

The fitted model is plain data (a JSON-able dict: transform parameters, centroids, sweep table),
never a pickle, so a stored model can be reloaded from any path safely and re-assigning with it
reproduces the stored assignments exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from segflow.config import ModelSettings
from segflow.lib.features.category_mix import NO_CATEGORY, OTHER, SHARE_PREFIX, share_column
from segflow.lib.schema import SURVEY_QUESTIONS

if TYPE_CHECKING:  # only for annotations: clustering imports its helpers lazily
    from segflow.lib.models.out_of_time import OutOfTimeEvidence

# Feature families the design can draw on: family -> ((column, transform), ...). Transforms:
# ``log1p`` for skewed money, counts and rates (clipped at 0 first), ``identity`` for shares and
# rates in 0..1 and Likert answers, ``onehot`` for categoricals (one 0/1 column per level seen at fit).
# Which families are used is ``ModelSettings.feature_families``; the choice, every transform, the
# winsorising quantiles, the scaler and any PCA are recorded in the fitted model.
FEATURE_FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "rfm": (
        ("recency_days", "log1p"),
        ("invoices_per_month", "log1p"),
        ("avg_order_value", "log1p"),
    ),
    "behaviour": (("return_rate", "identity"),),
    "engagement": (
        ("sessions_per_month", "log1p"),
        ("pages_per_session", "log1p"),
        ("email_open_rate", "identity"),
        ("email_click_rate", "identity"),
    ),
    # Invoice shares per channel (they sum to 1). A single digital share (web + app) hid the split
    # between web-first and app-first shoppers, which tells planted segments apart.
    "channel_mix": (("web_share", "identity"), ("store_share", "identity"), ("app_share", "identity")),
    "psychographic": tuple((f"survey_{q}", "identity") for q in SURVEY_QUESTIONS),
    "demographic": (
        ("birth_year", "identity"),
        ("income", "log1p"),
        ("household_size", "identity"),
        ("gender", "onehot"),
        ("education", "onehot"),
        ("region", "onehot"),
        ("marital_status", "onehot"),
        # Bands are categories (segflow.lib.profiles.bands); a source that delivers values has none, and a
        # column without a value is left out of the design, as is any constant one.
        ("age_band", "onehot"),
        ("income_band", "onehot"),
        ("household_size_band", "onehot"),
    ),
}
# Families whose columns the data decides: family -> (column prefix, transform). ``category_mix`` is
# one revenue share per top category plus ``other`` (segflow.lib.features.category_mix), so which columns it
# holds differs between data sets and months; the fitted model records the ones it used.
# Transform ``share``: a value in 0..1 used as it is, neither log-transformed nor winsorised (it is
# bounded already, and clipping a rare category's share at its 99th percentile would erase the
# very customers who favour it), and scaled with one scale for the whole family (see fit_design).
PREFIX_FAMILIES: dict[str, tuple[str, str]] = {"category_mix": (SHARE_PREFIX, "share")}
KNOWN_FAMILIES = (*FEATURE_FAMILIES, *PREFIX_FAMILIES)
SCALERS = ("standard", "robust")

# The default design (``ModelSettings().feature_families``), kept as a flat tuple for callers.
MODEL_FEATURES: tuple[tuple[str, str], ...] = tuple(
    f for fam in ("rfm", "behaviour", "engagement", "channel_mix") for f in FEATURE_FAMILIES[fam]
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


@dataclass(frozen=True)
class Design:
    matrix: np.ndarray  # scaled (and optionally PCA-projected) features, rows in the frame's order
    model: dict  # transform parameters


def _family_features(
    families: tuple[str, ...], columns: list[str]
) -> tuple[list[tuple[str, str, str]], dict]:
    """(family, column, transform) for every declared family, in declaration order, and the
    declared families the frame cannot supply (family -> reason). A prefix family takes the
    frame's matching columns in their order (the features stage orders them by window revenue)."""
    unknown = [f for f in families if f not in KNOWN_FAMILIES]
    if unknown:
        raise ValueError(f"unknown feature families {unknown}; known are {list(KNOWN_FAMILIES)}")
    wanted, unavailable = [], {}
    for fam in families:
        if fam in PREFIX_FAMILIES:
            prefix, transform_name = PREFIX_FAMILIES[fam]
            matching = [c for c in columns if c.startswith(prefix)]
            if not matching:
                unavailable[fam] = f"customer_features has no {prefix}* column: {NO_CATEGORY}"
            wanted += [(fam, c, transform_name) for c in matching]
        else:
            wanted += [(fam, name, t) for name, t in FEATURE_FAMILIES[fam]]
    return wanted, unavailable


def _expanded(feature: dict) -> list[str]:
    """Design column names of one stored feature (a one-hot feature gives one column per level)."""
    if feature["transform"] == "onehot":
        return [f"{feature['name']}={level}" for level in feature["levels"]]
    return [feature["name"]]


def _raw_matrix(frame: pl.DataFrame, features: list[dict], fill: dict[str, float | str]) -> np.ndarray:
    columns = []
    for f in features:
        name, transform = f["name"], f["transform"]
        if transform == "onehot":
            col = pl.col(name).cast(pl.String).fill_null(str(fill[name]))
            columns += [(col == level).cast(pl.Float64).alias(f"{name}={level}") for level in f["levels"]]
            continue
        col = pl.col(name).cast(pl.Float64).fill_null(fill[name]).fill_nan(fill[name])
        if transform == "log1p":
            col = col.clip(lower_bound=0.0).log1p()
        columns.append(col.alias(name))
    return frame.select(columns).to_numpy()


def _fit_scaler(raw: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "standard":
        return raw.mean(axis=0), raw.std(axis=0)
    # Robust: median and interquartile range; a column whose IQR is 0 (a zero-inflated share, a one-hot
    # level) falls back to its standard deviation, so it is neither dropped nor blown up.
    q1, median, q3 = np.percentile(raw, [25, 50, 75], axis=0)
    iqr = q3 - q1
    return median, np.where(iqr > 1e-9, iqr, raw.std(axis=0))


def fit_design(
    frame: pl.DataFrame,
    settings: ModelSettings | None = None,
    wanted: list[tuple[str, str, str]] | None = None,
) -> Design:
    """Fit the feature preparation on ``frame``: declared families, fill values (median, or the
    most frequent level), winsorising, scaling and optional PCA. Constant columns are dropped.

    ``wanted`` overrides the families with explicit (family, column, transform) triples: the
    snapshot feature set (no line items) has its own columns. A declared family the frame cannot
    supply (``category_mix`` without share columns) is recorded under ``unavailable_families``
    with the reason, and the design is fitted on the others. Returns the design matrix (n rows x d
    columns, unitless) and the parameters ``transform`` needs.
    """
    settings = settings or ModelSettings()
    if settings.scaling not in SCALERS:
        raise ValueError(f"scaling {settings.scaling!r} is not one of {SCALERS}")
    unavailable: dict[str, str] = {}
    if wanted is None:
        wanted, unavailable = _family_features(settings.feature_families, frame.columns)
    declared = [(fam, n, t) for fam, n, t in wanted if n in frame.columns]
    if not declared:
        raise ValueError(
            f"no feature of {settings.feature_families} is in the frame; unavailable: {unavailable}"
        )
    missing = [n for _, n, _ in wanted if n not in frame.columns]
    features, fill = [], {}
    for fam, name, transform in declared:
        if transform == "onehot":
            col = frame[name].cast(pl.String)
            counts = col.drop_nulls().value_counts(sort=True, name="n")
            if counts.is_empty():
                continue
            levels = sorted(counts[name].to_list())
            fill[name] = counts.sort(["n", name], descending=[True, False])[name][0]
            features.append({"name": name, "transform": transform, "family": fam, "levels": levels})
        else:
            median = frame[name].cast(pl.Float64).fill_nan(None).median()
            fill[name] = float(median) if median is not None else 0.0
            features.append({"name": name, "transform": transform, "family": fam})
    raw = _raw_matrix(frame, features, fill)
    columns = [c for f in features for c in _expanded(f)]
    # Winsorise: a handful of extreme customers (a fully returned order, a window that nets returns of
    # older purchases) otherwise claim a cluster of their own. One-hot columns are left as they are.
    # Shares are bounded already: clipped to 0..1 like one-hot columns, never to their quantiles.
    q = settings.winsorize_quantile
    bounded = np.array(
        [f["transform"] in ("onehot", "share") for f in features for _ in _expanded(f)], dtype=bool
    )
    lower, upper = np.percentile(raw, 100 * q, axis=0), np.percentile(raw, 100 * (1 - q), axis=0)
    lower, upper = np.where(bounded, 0.0, lower), np.where(bounded, 1.0, upper)
    raw = np.clip(raw, lower, upper)
    std = raw.std(axis=0)
    keep = std > 1e-9
    dropped = [c for c, k in zip(columns, keep, strict=True) if not k]
    # A feature survives if any of its columns varies (a one-hot feature keeps its varying levels).
    kept_features = [f for f in features if any(c not in dropped for c in _expanded(f))]
    center, scale = _fit_scaler(raw[:, keep], settings.scaling)
    shares = any(f["transform"] == "share" for f in kept_features)
    if shares and not settings.category_mix_weight > 0:
        raise ValueError(f"category_mix_weight must be above 0, got {settings.category_mix_weight}")
    kept_columns = [c for c, k in zip(columns, keep, strict=True) if k]
    scale = _pool_share_scales(scale, kept_columns, kept_features, settings.category_mix_weight)
    matrix = (raw[:, keep] - center) / scale
    model = {
        "features": [{**f, "columns": [c for c in _expanded(f) if c not in dropped]} for f in kept_features],
        "feature_families": list(dict.fromkeys(fam for fam, _, _ in wanted)),
        "missing_feature_columns": missing,
        "dropped_constant_features": dropped,
        "fill_values": {f["name"]: fill[f["name"]] for f in kept_features},
        "winsorize_quantile": q,
        **({"category_mix_weight": settings.category_mix_weight} if shares else {}),
        "clip_lower": lower[keep].tolist(),
        "clip_upper": upper[keep].tolist(),
        "scaling": settings.scaling,
        "scaler_mean": center.tolist(),
        "scaler_scale": scale.tolist(),
        "pca": None,
    }
    if unavailable:  # recorded only when a family is missing, so default model versions stay put
        model["unavailable_families"] = unavailable
    if settings.pca_components:
        matrix, model["pca"] = _fit_pca(matrix, settings.pca_components)
    return Design(matrix, model)


def _pool_share_scales(
    scale: np.ndarray, columns: list[str], features: list[dict], weight: float
) -> np.ndarray:
    """One scale for every ``share`` column of a family, chosen so that the family's total variance
    in the design is ``weight`` (in units of one standardised feature).

    Shares of one family are parts of one whole on one unit, so a move of ten points should weigh
    the same in any category: scaling each column to unit spread instead stretches a rarely bought
    category's small shares as far as the main categories', and makes the family weigh as many
    features as it has columns. Its width is the data's (top N + other), so the balance with the
    other families would shift with N. Measured on the planted synthetic data (2,500 customers,
    seed 1, default families + category_mix): per-column scaling gave k=2 and ARI 0.30; a family
    weight of 1, 2, 3 gave k=5 and ARI 0.950, 0.960, 0.968; 4 fell back to k=2 (ARI 0.30), the
    category split swamping the rest. The default, 1, keeps well clear of that edge.
    """
    shares: dict[str, list[int]] = {}
    for f in features:
        if f["transform"] == "share":
            shares.setdefault(f["family"], []).append(columns.index(f["name"]))
    scale = scale.copy()
    for index in shares.values():
        scale[index] = float(np.sqrt(np.sum(scale[index] ** 2) / weight))
    return scale


def _fit_pca(matrix: np.ndarray, components: float) -> tuple[np.ndarray, dict]:
    """Principal components of the scaled matrix: an int keeps that many, a float in (0, 1) keeps the
    fewest components explaining that share of the variance."""
    mean = matrix.mean(axis=0)
    _, sv, vt = np.linalg.svd(matrix - mean, full_matrices=False)
    explained = sv**2 / max(float((sv**2).sum()), 1e-300)
    if isinstance(components, float) and 0 < components < 1:
        n = int(np.searchsorted(np.cumsum(explained), components) + 1)
    else:
        n = int(components)
    n = max(1, min(n, vt.shape[0]))
    record = {
        "components": vt[:n].tolist(),
        "mean": mean.tolist(),
        "explained_variance_ratio": explained[:n].tolist(),
        "requested": components,
    }
    return (matrix - mean) @ vt[:n].T, record


def _design_columns(model: dict) -> list[str]:
    return [c for f in model["features"] for c in f.get("columns", _expanded(f))]


def transform(frame: pl.DataFrame, model: dict) -> np.ndarray:
    """The design matrix of ``frame`` under a fitted model's stored preparation (no refitting)."""
    features = [{"transform": "identity", **f} for f in model["features"]]
    raw = _raw_matrix(frame, features, model["fill_values"])
    if any(f["transform"] == "onehot" for f in features):
        built = [c for f in features for c in _expanded(f)]
        raw = raw[:, [built.index(c) for c in _design_columns(model)]]
    raw = np.clip(raw, model["clip_lower"], model["clip_upper"])
    matrix = (raw - np.array(model["scaler_mean"])) / np.array(model["scaler_scale"])
    if model.get("pca"):
        matrix = (matrix - np.array(model["pca"]["mean"])) @ np.array(model["pca"]["components"]).T
    return matrix


def _shares(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels, minlength=k) / len(labels)


# Money, counts and recency are judged on log1p, as the design sees them: on the raw scale a few
# very large spenders make every segment's mean monetary value look ordinary.
_NAMING_LOG = ("monetary", "invoices_per_month", "avg_order_value", "recency_days", "sessions_per_month")


def segment_z(frame: pl.DataFrame, labels: np.ndarray, phrases: dict | None = None) -> dict[int, dict[str, float]]:
    """Per segment, the z-score of its mean of each naming feature against all customers."""
    phrases = _PHRASES if phrases is None else {f: p for f, p in phrases.items() if f in frame.columns}
    columns = [
        (pl.col(c).cast(pl.Float64).fill_nan(None).clip(lower_bound=0.0).log1p() if c in _NAMING_LOG
         else pl.col(c).cast(pl.Float64).fill_nan(None)).alias(c)
        for c in phrases
    ]  # fmt: skip
    values = frame.select(columns)
    stats = {c: (values[c].mean(), values[c].std()) for c in phrases}
    profiles = (
        values.with_columns(pl.Series("segment_id", labels, dtype=pl.Int32))
        .group_by("segment_id")
        .agg([pl.col(c).mean() for c in phrases])
        .sort("segment_id")
    )
    out: dict[int, dict[str, float]] = {}
    for row in profiles.iter_rows(named=True):
        out[int(row["segment_id"])] = {
            feature: (row[feature] - mean) / std
            for feature, (mean, std) in stats.items()
            if std and row[feature] is not None and np.isfinite(std) and std > 0
        }
    return out


def _basis(z: dict[str, float]) -> list[dict]:
    """The two most distinctive features of a segment: what its name says about it."""
    top = sorted(z.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:2]
    return [{"feature": f, "direction": "higher" if v > 0 else "lower", "z": round(v, 3)} for f, v in top]


def _fresh_name(basis: list[dict], phrases: dict) -> str:
    words = [phrases[b["feature"]][0 if b["direction"] == "higher" else 1] for b in basis]
    return f"{words[0]}, {words[1].lower()} customers" if len(words) == 2 else "Typical customers"


def name_segments(frame: pl.DataFrame, labels: np.ndarray, phrases: dict | None = None) -> dict[int, str]:
    """A short name per segment from its two most distinctive features (z-score of its mean)."""
    phrases = _PHRASES if phrases is None else phrases
    fresh = {i: _fresh_name(_basis(z), phrases) for i, z in segment_z(frame, labels, phrases).items()}
    return _unique(fresh, {})


def _unique(fresh: dict[int, str], kept: dict[int, str]) -> dict[int, str]:
    """Kept names first, then fresh ones; a fresh name already taken gets its segment id appended."""
    names = dict(kept)
    for i in sorted(fresh):
        name = fresh[i]
        names[i] = f"{name} (segment {i})" if name in names.values() else name
    return dict(sorted(names.items()))


def aligned_ids(model: dict) -> list[int] | None:
    """This month's segment ids that the model matched to the same id last month: the segments whose
    shares, names and trends continue last month's. None when the model records no alignment."""
    alignment = model.get("alignment")
    if alignment is None:
        return None
    matched = alignment.get("matched", {})
    return sorted(int(i) for i, m in matched.items() if m["previous_id"] == int(i))


def model_version(model: dict) -> str:
    payload = json.dumps({k: v for k, v in model.items() if k != "version"}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def segment_means(model: dict) -> dict[str, np.ndarray]:
    """Per-segment means of the transformed, unscaled design columns (log1p where declared), by column.

    Centroids are means in the scaled (or PCA) space, so mapping them back (through the PCA loadings,
    then un-scaling) gives every family's segment profile in a space that models with different
    feature sets or scalers share column by column. Models stored before one-hot columns existed
    name their columns by feature.
    """
    centroids = np.asarray(model["centroids"], dtype=np.float64)
    if model.get("pca"):
        centroids = centroids @ np.asarray(model["pca"]["components"]) + np.asarray(model["pca"]["mean"])
    centroids = centroids * np.asarray(model["scaler_scale"]) + np.asarray(model["scaler_mean"])
    return {c: centroids[:, j] for j, c in enumerate(_design_columns(model))}


def _incomparable(current: list[str], previous: list[str]) -> list[str]:
    """Design columns that share a name across two months but not a meaning: ``category_share_other``
    sums every category outside the month's top N, so when the named categories differ between
    the months it covers different categories and must not be matched on. The named shares are
    compared where both months have them, whatever else changed."""
    other = share_column(OTHER)
    named = [{c for c in cols if c.startswith(SHARE_PREFIX) and c != other} for cols in (current, previous)]
    return [other] if other in current and other in previous and named[0] != named[1] else []


def align_to_previous(model: dict, previous: dict | None, max_distance: float) -> tuple[list[int], dict]:
    """Hungarian matching of this model's segments to the previous month's, on segment means of the
    features both share, in units of this month's pooled standard deviation.

    Returns (order, record): ``order[new_id]`` is the current segment index that takes id ``new_id``.
    Matched segments keep the previous id when it is below k; the others (new segments, or matches
    whose old id no longer fits 0..k-1) take the lowest free ids. Ids stay 0..k-1 within a month.
    """
    from segflow.lib.models.stability import align_segments

    k = model["k"]
    if not previous:
        return list(range(k)), {"previous_period": None, "matched": {}, "new": list(range(k)), "vanished": []}
    cur, prev = segment_means(model), segment_means(previous)
    incomparable = _incomparable(_design_columns(model), list(prev))
    common = [c for c in _design_columns(model) if c in prev and c not in incomparable]
    if not common:
        return list(range(k)), {
            "previous_period": previous.get("period"),
            "matched": {},
            "new": list(range(k)),
            "vanished": list(range(previous["k"])),
            "common_features": [],
        }
    scale = dict(zip(_design_columns(model), model["scaler_scale"], strict=True))
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
        **({"incomparable_features": incomparable} if incomparable else {}),
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
    evidence: OutOfTimeEvidence | dict | None = None,
) -> dict:
    """Fit every candidate family, select one, number its segments stably; return it as plain data.

    ``previous`` is last month's stored model, if any: segments are renumbered to match it.
    ``feature_set`` is ``transactions`` (MODEL_FEATURES, numbered by monetary value) or ``snapshot``
    (segflow.lib.features.snapshot.MODEL_FEATURES, numbered by spend per month). The two halves,
    ``fit_segments`` and ``publish_segments``, are separate assets, so that months fit in parallel.
    """
    return publish_segments(
        fit_segments(features, settings, period, feature_set, evidence), features, settings, previous
    )


def _feature_set(feature_set: str) -> tuple[list | None, str, dict | None]:
    """The model features, the column that numbers segments, and the naming phrases of a feature set."""
    if feature_set == "snapshot":
        from segflow.lib.features import snapshot

        wanted = [("snapshot", name, transform) for name, transform in snapshot.MODEL_FEATURES]
        return wanted, snapshot.VALUE_COLUMN, snapshot.PHRASES
    return None, "monetary", None


def _out_of_time(evidence: OutOfTimeEvidence | dict | None, design: Design) -> tuple[object, dict]:
    """The sweep's out-of-time input from ``evidence`` (segflow.lib.models.out_of_time), and its record.
    The anchor's customers go through this fit's own design transform, as ``assign`` would put them;
    a design column the anchor month lacks (a category outside its top N) is filled like a null."""
    from segflow.lib.models.out_of_time import OutOfTimeEvidence, ranks
    from segflow.lib.models.selection import OutOfTime

    if not isinstance(evidence, OutOfTimeEvidence):
        return None, evidence or {"available": False, "reason": "no out-of-time evidence was given"}
    frame = evidence.features
    absent = [f["name"] for f in design.model["features"] if f["name"] not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(name) for name in absent)
    oot = OutOfTime(transform(frame, design.model), ranks(evidence.revenue), ranks(evidence.purchases))
    record = evidence.record()
    if oot.revenue_ranks is None and oot.purchase_ranks is None:
        return None, {**record, "available": False, "reason": "every anchor customer had the same outcome"}
    return oot, {**record, **({"filled_columns": absent} if absent else {})}


def fit_segments(
    features: pl.DataFrame,
    settings: ModelSettings,
    period: str,
    feature_set: str = "transactions",
    evidence: OutOfTimeEvidence | dict | None = None,
) -> dict:
    """The heavy half, which needs nothing but the month and months before it: the design, the sweep
    of every candidate family and the selection, with segments numbered by mean value (highest
    first), so that a month always numbers its segments the same way. Plain data (the JSON the fit
    asset stores). ``evidence``: an earlier month's customers and their later value
    (``segflow.lib.models.out_of_time.build_evidence``), or the record of why there is none.
    """
    from segflow.lib.models.selection import apply, permute, select, sweep
    from segflow.lib.threads import single_threaded

    wanted, value_column, _ = _feature_set(feature_set)
    design = fit_design(features, settings, wanted)
    oot, oot_record = _out_of_time(evidence, design)  # scored even at weight 0, to be reported
    # scikit-learn's OpenMP k-means ran 2.4x (200k rows) to 50x (5k rows) slower with 2 threads
    # than with 1 on our 2-core machines, so the sweep runs single-threaded (OpenMP and BLAS: BLAS
    # threads cost another ~1.4x on the sweep's small matrices); partitions and backfill workers
    # provide the parallelism instead.
    with single_threaded():
        rows, rules, sampling = sweep(design.matrix, settings, oot)
    chosen = select(rows)
    rule, k = rules[chosen], rows[chosen]["k"]
    labels = apply(rule, design.matrix)
    monetary = features[value_column].cast(pl.Float64).fill_nan(None).fill_null(0.0).to_numpy()
    order = np.argsort(
        [-monetary[labels == i].mean() if (labels == i).any() else np.inf for i in range(k)], kind="stable"
    ).tolist()
    winner = rows[chosen]
    return {
        "period": period,
        "feature_set": feature_set,
        "k": k,
        "design": design.model,
        "rule": permute(rule, order),
        "segment_jaccard": [winner["segment_jaccard"][i] for i in order],
        "chosen_index": chosen,
        "sampling": sampling,
        "out_of_time": oot_record,
        "sweep": rows,
    }


def publish_segments(
    fit: dict, features: pl.DataFrame, settings: ModelSettings, previous: dict | None
) -> dict:
    """The light half, a chain from month to month: segment ids aligned to last month's model
    (``previous``, if any) by Hungarian matching, then the segments named and described as personas.
    ``features`` are the month's, which ``fit`` was fitted on.
    """
    from segflow.lib.models.personas import build_personas
    from segflow.lib.models.selection import apply, permute, rule_text

    k, design, winner = fit["k"], fit["design"], fit["sweep"][fit["chosen_index"]]
    draft = {"k": k, "centroids": fit["rule"]["centroids"], **design}
    aligned, alignment = align_to_previous(draft, previous, settings.align_max_distance)
    rule = permute(fit["rule"], aligned)
    labels = apply(rule, transform(features, draft))
    shares = _shares(labels, k)
    from segflow.lib.models.naming import bind_names

    phrases = _feature_set(fit["feature_set"])[2] or _PHRASES
    naming = bind_names(segment_z(features, labels, phrases), phrases, alignment, previous, fit["period"])
    names = {int(i): n for i, n in naming["segment_names"].items()}
    model = {
        "family": winner["family"],
        "params": winner["params"],
        "period": fit["period"],
        "seed": settings.seed,
        "k": k,
        **design,
        "rule": {key: v for key, v in rule.items() if key != "centroids"},
        "centroids": rule["centroids"],
        **naming,
        "personas": build_personas(features, labels, names, fit["period"]),
        "segment_shares": shares.tolist(),
        "min_segment_share": float(shares.min()),
        "min_segment_share_threshold": settings.min_segment_share,
        "stability": winner["stability"],
        "segment_jaccard": [fit["segment_jaccard"][i] for i in aligned],
        "ari_refits": winner["ari_refits"],
        "min_stability_threshold": settings.min_stability,
        "selection_rule": rule_text(settings),
        "chosen_index": fit["chosen_index"],
        "out_of_time": fit.get("out_of_time", {"available": False, "reason": "fitted before the criterion"}),
        "sampling": fit["sampling"],
        "alignment": alignment,
        "n_customers": int(len(labels)),
        "sweep": fit["sweep"],
        "settings": {
            "k_min": settings.k_min,
            "k_max": settings.k_max,
            "n_init": settings.n_init,
            "silhouette_sample": settings.silhouette_sample,
            "max_fit_rows": settings.max_fit_rows,
        },
    }
    if fit["feature_set"] != "transactions":  # recorded only off the default, so default versions stay put
        model["feature_set"] = fit["feature_set"]
    model["version"] = model_version(model)
    return model


def rule_of(model: dict) -> dict:
    return {**model.get("rule", {"kind": "centroid"}), "centroids": model["centroids"]}


def assign(features: pl.DataFrame, model: dict) -> pl.DataFrame:
    """Segment every customer with a stored model: customer_id, segment_id, segment_name."""
    from segflow.lib.models.selection import apply

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
