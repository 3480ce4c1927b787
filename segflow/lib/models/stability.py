"""Bootstrap stability of a clustering (Hennig 2007) and id alignment between fits.

Per-segment Jaccard: refit on B seeded bootstrap resamples, and for every reference segment take the
best Jaccard overlap with any refit segment on the resampled points; average over resamples. Hennig
reads a mean Jaccard of 0.75 or more as stable, 0.5 or less as dissolved. ARI between the reference
labels and each refit's labels on the same points is reported alongside.
"""

from __future__ import annotations

import numpy as np


def jaccard_per_segment(reference: np.ndarray, refit: np.ndarray, k: int) -> np.ndarray:
    """For each reference segment 0..k-1, the best Jaccard with any refit segment (NaN if absent)."""
    out = np.full(k, np.nan)
    refit_ids = np.unique(refit)
    for c in range(k):
        a = reference == c
        if not a.any():
            continue
        best = 0.0
        for d in refit_ids:
            b = refit == d
            inter = np.count_nonzero(a & b)
            if inter:
                best = max(best, inter / np.count_nonzero(a | b))
        out[c] = best
    return out


def bootstrap_stability(
    reference: np.ndarray, k: int, refits: list[tuple[np.ndarray, np.ndarray | None]]
) -> dict:
    """Hennig's bootstrap Jaccard per segment and the mean ARI of refits against ``reference``.

    ``reference`` holds the stability sample's labels from the candidate fitted on all the data;
    ``refits`` one (points, labels) pair per bootstrap resample: the distinct sample rows drawn and their
    labels under the candidate refitted on the resample (None when the refit was degenerate, which
    counts as Jaccard 0 for every segment and ARI 0).
    """
    from sklearn.metrics import adjusted_rand_score

    jaccards, aris = [], []
    for points, labels in refits:
        if labels is None:
            jaccards.append(np.zeros(k))
            aris.append(0.0)
            continue
        jaccards.append(jaccard_per_segment(reference[points], labels, k))
        aris.append(float(adjusted_rand_score(reference[points], labels)))
    per_segment = np.nan_to_num(np.nanmean(np.vstack(jaccards), axis=0), nan=0.0) if jaccards else np.zeros(k)
    return {
        "segment_jaccard": [round(float(v), 6) for v in per_segment],
        "stability": float(per_segment.mean()) if k else 0.0,
        "stability_min": float(per_segment.min()) if k else 0.0,
        "ari_refits": float(np.mean(aris)) if aris else 0.0,
        # The standard error of that mean, the noise of the combined criterion's ARI term: select()
        # treats candidates closer than this noise as tied (segflow.lib.models.selection).
        "ari_refits_se": float(np.std(aris, ddof=1) / np.sqrt(len(aris))) if len(aris) > 1 else 0.0,
    }


def align_segments(
    current: np.ndarray, previous: np.ndarray, max_distance: float
) -> tuple[dict[int, int], list[int], list[int]]:
    """Hungarian matching of current to previous segment profiles (rows: segments, same columns).

    Returns ({current index: previous index} for pairs closer than ``max_distance``, unmatched current
    indices (new segments), unmatched previous indices (vanished segments)).
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.sqrt(((current[:, None, :] - previous[None, :, :]) ** 2).sum(axis=2))
    rows, cols = linear_sum_assignment(cost)
    matched = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= max_distance}
    new = [i for i in range(len(current)) if i not in matched]
    vanished = [j for j in range(len(previous)) if j not in set(matched.values())]
    return matched, new, vanished
