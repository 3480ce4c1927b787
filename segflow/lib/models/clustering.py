"""Segmentation model: fit a month's segments, publish them aligned and named, and assign customers.

The fitted model is plain data (``segflow.lib.models.model_types``: transform parameters,
centroids, sweep table, stored as JSON), never a pickle, so a stored model can be reloaded from
any path safely and re-assigning with it reproduces the stored assignments exactly. The design
lives in ``design``, the candidate sweep in ``selection``, id alignment in ``alignment`` and
naming in ``naming``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from segflow.config import ModelSettings
from segflow.lib.models.design import Design, fit_design, transform
from segflow.lib.models.model_types import SegmentationFit, SegmentationModel

if TYPE_CHECKING:  # only for annotations: clustering imports its helpers lazily
    from segflow.lib.models.out_of_time import OutOfTimeEvidence


def _shares(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels, minlength=k) / len(labels)


def fit_model(
    features: pl.DataFrame,
    settings: ModelSettings,
    period: str,
    previous: SegmentationModel | None = None,
    feature_set: str = "transactions",
    evidence: OutOfTimeEvidence | dict | None = None,
) -> SegmentationModel:
    """Fit every candidate family, select one, number its segments stably; return the model.

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
    from segflow.lib.models.out_of_time import OutOfTimeEvidence, ranks, rfm_baseline
    from segflow.lib.models.selection import OutOfTime

    if not isinstance(evidence, OutOfTimeEvidence):
        return None, evidence or {"available": False, "reason": "no out-of-time evidence was given"}
    frame = evidence.features
    absent = [f["name"] for f in design.params.features if f["name"] not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(name) for name in absent)
    revenue, purchases = ranks(evidence.revenue), ranks(evidence.purchases)
    record = evidence.record()
    if revenue is None and purchases is None:
        return None, {**record, "available": False, "reason": "every anchor customer had the same outcome"}
    rfm = rfm_baseline(frame, revenue, purchases)
    oot = OutOfTime(transform(frame, design.params), revenue, purchases, rfm)
    if rfm is not None:  # what the RFM segments alone explain: the base the candidates' gain adds to
        record["rfm_separation"] = rfm.separation
    return oot, {**record, **({"filled_columns": absent} if absent else {})}


def fit_segments(
    features: pl.DataFrame,
    settings: ModelSettings,
    period: str,
    feature_set: str = "transactions",
    evidence: OutOfTimeEvidence | dict | None = None,
) -> SegmentationFit:
    """The heavy half, which needs nothing but the month and months before it: the design, the sweep
    of every candidate family and the selection, with segments numbered by mean value (highest
    first), so that a month always numbers its segments the same way. Stored as JSON by the fit
    asset. ``evidence``: an earlier month's customers and their later value
    (``segflow.lib.models.out_of_time.build_evidence``), or the record of why there is none.
    """
    from segflow.lib.models.families import apply, permute
    from segflow.lib.models.selection import select, sweep
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
    chosen = select(rows, out_of_time=bool(settings.oot_weight))
    rule, k = rules[chosen], rows[chosen]["k"]
    labels = apply(rule, design.matrix)
    monetary = features[value_column].cast(pl.Float64).fill_nan(None).fill_null(0.0).to_numpy()
    order = np.argsort(
        [-monetary[labels == i].mean() if (labels == i).any() else np.inf for i in range(k)], kind="stable"
    ).tolist()
    return SegmentationFit(
        period=period,
        feature_set=feature_set,
        k=k,
        design=design.params,
        rule=permute(rule, order),
        segment_jaccard=[rows[chosen]["segment_jaccard"][i] for i in order],
        chosen_index=chosen,
        sampling=sampling,
        out_of_time=oot_record,
        sweep=rows,
    )


def publish_segments(
    fit: SegmentationFit, features: pl.DataFrame, settings: ModelSettings, previous: SegmentationModel | None
) -> SegmentationModel:
    """The light half, a chain from month to month: segment ids aligned to last month's model
    (``previous``, if any) by Hungarian matching, then the segments named and described as personas.
    ``features`` are the month's, which ``fit`` was fitted on.
    """
    from segflow.lib.models.alignment import align_to_previous
    from segflow.lib.models.families import apply, permute
    from segflow.lib.models.naming import _PHRASES, bind_names, previous_naming, segment_z
    from segflow.lib.models.personas import build_personas
    from segflow.lib.models.selection import rule_text

    k, winner = fit.k, fit.winner
    aligned, alignment = align_to_previous(
        k, fit.rule["centroids"], fit.design, previous, settings.align_max_distance
    )
    rule = permute(fit.rule, aligned)
    labels = apply(rule, transform(features, fit.design))
    shares = _shares(labels, k)
    phrases = _feature_set(fit.feature_set)[2] or _PHRASES
    naming = bind_names(
        segment_z(features, labels, phrases), phrases, alignment, previous_naming(previous), fit.period
    )
    names = {int(i): n for i, n in naming["segment_names"].items()}
    return SegmentationModel(
        family=winner["family"],
        params=winner["params"],
        period=fit.period,
        seed=settings.seed,
        k=k,
        design=fit.design,
        rule={key: v for key, v in rule.items() if key != "centroids"},
        centroids=rule["centroids"],
        **naming,
        personas=build_personas(features, labels, names, fit.period),
        segment_shares=shares.tolist(),
        min_segment_share=float(shares.min()),
        min_segment_share_threshold=settings.min_segment_share,
        stability=winner["stability"],
        segment_jaccard=[fit.segment_jaccard[i] for i in aligned],
        ari_refits=winner["ari_refits"],
        min_stability_threshold=settings.min_stability,
        selection_rule=rule_text(settings),
        chosen_index=fit.chosen_index,
        out_of_time=fit.out_of_time,
        sampling=fit.sampling,
        alignment=alignment,
        n_customers=int(len(labels)),
        sweep=fit.sweep,
        settings={
            "k_min": settings.k_min,
            "k_max": settings.k_max,
            "n_init": settings.n_init,
            "silhouette_sample": settings.silhouette_sample,
            "max_fit_rows": settings.max_fit_rows,
        },
        feature_set=fit.feature_set,
    ).versioned()


def rule_of(model: SegmentationModel) -> dict:
    """The model's assignment rule with its centroids (models stored before rules were centroid)."""
    return {**(model.rule if model.rule is not None else {"kind": "centroid"}), "centroids": model.centroids}


def assign(features: pl.DataFrame, model: SegmentationModel) -> pl.DataFrame:
    """Segment every customer with a stored model: customer_id, segment_id, segment_name."""
    from segflow.lib.models.families import apply

    labels = apply(rule_of(model), transform(features, model.design))
    names = model.segment_names
    return features.select("customer_id").with_columns(
        pl.Series("segment_id", labels, dtype=pl.Int32),
        pl.Series("segment_name", [names[str(i)] for i in labels], dtype=pl.String),
    )


def gating_failures(model: SegmentationModel) -> dict[str, list[str]]:
    """Why a model must not be published: segments under the minimum share, and an unstable model
    (mean bootstrap Jaccard under the threshold; the segments below it are named with their Jaccard).
    """
    names, threshold = model.segment_names, model.min_segment_share_threshold
    size = [
        f"segment {i}: {names[str(i)]} holds {share:.2%}, {threshold - share:.2%} below the minimum "
        f"{threshold:.0%}"
        for i, share in enumerate(model.segment_shares)
        if share < threshold
    ]
    stability = []
    minimum = model.min_stability_threshold
    if minimum is not None and model.stability is not None and model.stability < minimum:
        weak = [
            f"segment {i}: {names[str(i)]} Jaccard {j:.2f}"
            for i, j in enumerate(model.segment_jaccard)
            if j < minimum
        ]
        stability = [
            f"mean bootstrap Jaccard {model.stability:.3f} is {minimum - model.stability:.3f} "
            f"below the minimum {minimum:.2f} ({', '.join(weak)})"
        ]
    return {"size": size, "stability": stability}
