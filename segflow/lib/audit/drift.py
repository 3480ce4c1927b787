"""Population stability index (PSI) against the previous month.

PSI = sum_b (c_b - r_b) * ln(c_b / r_b) over bins b, with r the reference (previous month) and c
the current shares. Numeric features are binned on the reference's deciles (unique edges, so a
discrete feature gets fewer bins); segment shares use the segments as bins. Empty bins are floored
at ``EPSILON`` so the logarithm stays finite. Bands (GUIDE §4): < 0.1 stable, 0.1–0.25 moderate,
> 0.25 major.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

EPSILON = 1e-4
MODERATE, MAJOR = 0.1, 0.25

# Left out because their distribution moves by construction, not because customers changed:
# quintile scores are uniform every month (PSI ~0), tenure grows by one month for everyone every
# month, and active months grow while the trailing window is still filling (the first year).
EXCLUDED_FEATURES = frozenset({"r_score", "f_score", "m_score", "tenure_months", "active_months"})

DRIFT_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "name": pl.String(),
    "psi": pl.Float64(),
    "band": pl.String(),
    "bins": pl.Int64(),
    "reference_mean": pl.Float64(),
    "current_mean": pl.Float64(),
}


def band(psi: float | None) -> str:
    if psi is None or math.isnan(psi):
        return "n/a"
    return "major" if psi > MAJOR else "moderate" if psi >= MODERATE else "stable"


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    r = np.maximum(reference / reference.sum(), EPSILON)
    c = np.maximum(current / current.sum(), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(reference: pl.Series, current: pl.Series, bins: int = 10) -> tuple[float | None, int]:
    """PSI of a numeric feature on the reference's quantile bins; (None, 0) without data."""
    ref = reference.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
    cur = current.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
    if len(ref) == 0 or len(cur) == 0:
        return None, 0
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1], method="linear"))
    # Right-closed bins (searchsorted 'left' puts a value equal to an edge in the lower bin).
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1)
    return _psi(ref_counts.astype(float), cur_counts.astype(float)), len(edges) + 1


def psi_categorical(reference: pl.Series, current: pl.Series) -> tuple[float | None, int]:
    """PSI of category shares (e.g. segment shares); categories missing on one side count as empty."""
    ref = reference.cast(pl.String).value_counts(name="n")
    cur = current.cast(pl.String).value_counts(name="n")
    name = reference.name
    both = ref.join(cur, on=name, how="full", coalesce=True, suffix="_cur").fill_null(0).sort(name)
    if both.height == 0 or ref.height == 0 or cur.height == 0:
        return None, 0
    return _psi(both["n"].cast(pl.Float64).to_numpy(), both["n_cur"].cast(pl.Float64).to_numpy()), both.height


def numeric_features(frame: pl.DataFrame) -> list[str]:
    """The numeric columns of a feature table worth a PSI (not ids, not quintile scores)."""
    return [c for c, t in frame.schema.items() if t.is_numeric() and c not in EXCLUDED_FEATURES]


def feature_drift(
    previous_features: pl.DataFrame,
    current_features: pl.DataFrame,
    previous_assignments: pl.DataFrame | None = None,
    current_assignments: pl.DataFrame | None = None,
    bins: int = 10,
    aligned_ids: list[int] | None = None,
) -> pl.DataFrame:
    """PSI per numeric feature (kind "feature") and for segment shares (kind "segment_share":
    cluster segments by id, RFM segments by name), current month against the previous one.

    ``aligned_ids`` are this month's cluster ids matched to the same id last month (the model's
    alignment). Only their shares are compared, renormalised among them: a new or vanished segment
    (k changed, a segment split) has no counterpart, so its share is not a shift of the same
    segment. None compares every id (ids known to be the same segments)."""
    rows = []
    for column in numeric_features(current_features):
        if column not in previous_features.columns:
            continue
        psi, n_bins = psi_numeric(previous_features[column], current_features[column], bins)
        rows.append(
            {
                "kind": "feature",
                "name": column,
                "psi": psi,
                "band": band(psi),
                "bins": n_bins,
                "reference_mean": previous_features[column].cast(pl.Float64).fill_nan(None).mean(),
                "current_mean": current_features[column].cast(pl.Float64).fill_nan(None).mean(),
            }
        )
    if previous_assignments is not None and current_assignments is not None:
        for name, column in (("cluster segments", "segment_id"), ("RFM segments", "rfm_segment")):
            if column not in current_assignments.columns or column not in previous_assignments.columns:
                continue  # no RFM segments in the snapshot feature set
            before, after = previous_assignments[column], current_assignments[column]
            if column == "segment_id" and aligned_ids is not None:
                before, after = before.filter(before.is_in(aligned_ids)), after.filter(after.is_in(aligned_ids))
                name = f"cluster segments ({len(aligned_ids)} aligned)"
            # Shares among fewer than two segments are 100% on both sides: nothing to compare.
            comparable = len(before) and len(after) and (aligned_ids is None or len(aligned_ids) >= 2)
            psi, n_bins = psi_categorical(before, after) if comparable else (None, 0)
            rows.append(
                {
                    "kind": "segment_share",
                    "name": name,
                    "psi": psi,
                    "band": band(psi),
                    "bins": n_bins,
                    "reference_mean": None,
                    "current_mean": None,
                }
            )
    return pl.DataFrame(rows, schema=DRIFT_SCHEMA)


def major_drift(drift: pl.DataFrame) -> pl.DataFrame:
    """The rows in the major band (PSI > 0.25)."""
    return drift.filter(pl.col("band") == "major")
