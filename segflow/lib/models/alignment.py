"""Segment ids kept from month to month: Hungarian matching of this month's segments to last month's
on the segment means of the design columns both share, so a segment's id, name and trend continue."""

from __future__ import annotations

import numpy as np

from segflow.lib.features.category_mix import OTHER, SHARE_PREFIX, share_column
from segflow.lib.models.design import design_columns
from segflow.lib.models.model_types import DesignParams, SegmentationModel


def aligned_ids(model: SegmentationModel) -> list[int] | None:
    """This month's segment ids that the model matched to the same id last month: the segments whose
    shares, names and trends continue last month's. None when the model records no alignment."""
    if model.alignment is None:
        return None
    matched = model.alignment.get("matched", {})
    return sorted(int(i) for i, m in matched.items() if m["previous_id"] == int(i))


def segment_means(centroids: list[list[float]], design: DesignParams) -> dict[str, np.ndarray]:
    """Per-segment means of the transformed, unscaled design columns (log1p where declared), by column.

    Centroids are means in the scaled (or PCA) space, so mapping them back (through the PCA loadings,
    then un-scaling) gives every family's segment profile in a space that models with different
    feature sets or scalers share column by column.
    """
    means = np.asarray(centroids, dtype=np.float64)
    if design.pca:
        means = means @ np.asarray(design.pca["components"]) + np.asarray(design.pca["mean"])
    means = means * np.asarray(design.scaler_scale) + np.asarray(design.scaler_mean)
    return {c: means[:, j] for j, c in enumerate(design_columns(design))}


def _incomparable(current: list[str], previous: list[str]) -> list[str]:
    """Design columns that share a name across two months but not a meaning: ``category_share_other``
    sums every category outside the month's top N, so when the named categories differ between
    the months it covers different categories and must not be matched on. The named shares are
    compared where both months have them, whatever else changed."""
    other = share_column(OTHER)
    named = [{c for c in cols if c.startswith(SHARE_PREFIX) and c != other} for cols in (current, previous)]
    return [other] if other in current and other in previous and named[0] != named[1] else []


def _unaligned(k: int, previous: SegmentationModel | None) -> dict:
    """The alignment record when nothing can be matched: every segment is new."""
    if previous is None:
        return {"previous_period": None, "matched": {}, "new": list(range(k)), "vanished": []}
    return {"previous_period": previous.period, "matched": {}, "new": list(range(k)),
            "vanished": list(range(previous.k)), "common_features": []}  # fmt: skip


def align_to_previous(
    k: int,
    centroids: list[list[float]],
    design: DesignParams,
    previous: SegmentationModel | None,
    max_distance: float,
) -> tuple[list[int], dict]:
    """Hungarian matching of this fit's ``k`` segments (``centroids`` in ``design``'s space) to the
    previous month's model, on segment means of the features both share, in units of this month's
    pooled standard deviation.

    Returns (order, record): ``order[new_id]`` is the current segment index that takes id ``new_id``.
    Matched segments keep the previous id when it is below k; the others (new segments, or matches
    whose old id no longer fits 0..k-1) take the lowest free ids. Ids stay 0..k-1 within a month.
    """
    from segflow.lib.models.stability import align_segments

    if not previous:
        return list(range(k)), _unaligned(k, None)
    columns = design_columns(design)
    cur, prev = segment_means(centroids, design), segment_means(previous.centroids, previous.design)
    incomparable = _incomparable(columns, list(prev))
    common = [c for c in columns if c in prev and c not in incomparable]
    if not common:
        return list(range(k)), _unaligned(k, previous)
    scale = dict(zip(columns, design.scaler_scale, strict=True))
    a = np.column_stack([cur[f] / scale[f] for f in common])
    b = np.column_stack([prev[f] / scale[f] for f in common])
    matched, new, vanished = align_segments(a, b, max_distance)
    ids: dict[int, int] = {c: p for c, p in matched.items() if p < k}
    free = iter(i for i in range(k) if i not in ids.values())
    for c in sorted(set(range(k)) - set(ids)):
        ids[c] = next(free)
    order = [c for _, c in sorted((i, c) for c, i in ids.items())]
    record = {
        "previous_period": previous.period,
        "previous_version": previous.version,
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
