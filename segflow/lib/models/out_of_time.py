"""Out-of-time value separation: the segment backtest turned into a model-selection criterion.

For the fit of month T, every candidate segmentation (fitted on T's features) is applied, through
T's own design transform, to the customers of an earlier *anchor* month A, as they were at A. The
criterion is how much of what those customers then did in the h months after A (net revenue, and
purchase invoices) the candidate's segments explain. It is the question ``segment_backtest`` asks
of the published segments, asked of every candidate before one is chosen.

Which months: A = T - h - 1, scored on the months A+1..A+h = T-h..T-1. Only months strictly before
T are read, so the fit of T stays month-local: it never waits for, or sees, T's own outcomes or
any later month, and months still fit in parallel once their features exist. The first months of
a history have no such anchor (A before the first partition, or its features not built); they get
no criterion, the rule ranks them on the other scores alone, and the model records why.

The measure is a rank eta squared: the share of the variance of the outcome's ranks that lies
between segments, corrected for the number of segments as Kruskal-Wallis' eta squared
(H - k + 1) / (n - k) is (Tomczak and Tomczak 2014). On ranks, because revenue is heavy-tailed and
can be negative (returns): on raw money one wholesaler would decide the score, and ranks are what
the backtest's Kruskal-Wallis test already reads. The correction keeps a split into more segments
from scoring higher by chance alone. Both outcomes count equally: ``separation`` is their mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from segflow.lib import periods


@dataclass(frozen=True)
class OutOfTimeEvidence:
    """The anchor month's customers and what they did afterwards, row for row.

    ``features``: customer_features of ``anchor`` (one row per customer). ``revenue`` and
    ``purchases``: per row of ``features``, net revenue and purchase invoices summed over
    ``outcome_periods`` (0 in a month without a profile row).
    """

    anchor: str
    outcome_periods: tuple[str, ...]
    features: pl.DataFrame
    revenue: np.ndarray
    purchases: np.ndarray

    def record(self) -> dict:
        return {
            "available": True,
            "anchor_period": self.anchor,
            "outcome_periods": list(self.outcome_periods),
            "customers": int(self.features.height),
        }


def evidence_periods(period: str, horizon: int) -> tuple[str, list[str]]:
    """(anchor month, outcome months) read for the fit of ``period``: T-h-1, and T-h..T-1."""
    anchor = periods.shift(period, -horizon - 1)
    return anchor, [periods.shift(anchor, i) for i in range(1, horizon + 1)]


def unavailable(period: str, horizon: int, reason: str) -> dict:
    """The record of a fit without out-of-time evidence, with the reason."""
    anchor, outcomes = evidence_periods(period, horizon)
    return {"available": False, "anchor_period": anchor, "outcome_periods": outcomes, "reason": reason}


def build_evidence(
    period: str,
    horizon: int,
    features: dict[str, pl.DataFrame | None],
    profiles: dict[str, pl.DataFrame | None],
    feature_set: str = "transactions",
) -> OutOfTimeEvidence | dict:
    """The evidence for the fit of ``period`` from the months given (absent or None: not built), or
    the ``unavailable`` record saying which month is missing. Reads nothing at or after ``period``.
    """
    from segflow.lib.audit.backtest import future_value

    anchor, outcome_months = evidence_periods(period, horizon)
    if feature_set == "snapshot":
        # A snapshot reports running totals over its own window, not a month's purchases.
        return unavailable(period, horizon, "the snapshot feature set has no monthly revenue to score")
    anchor_features = features.get(anchor)
    if anchor_features is None or anchor_features.height == 0:
        return unavailable(
            period, horizon, f"no customer_features for {anchor} (the anchor month, T-{horizon + 1})"
        )
    missing = [m for m in outcome_months if profiles.get(m) is None]
    if missing:
        return unavailable(period, horizon, f"no customer_profiles for {', '.join(missing)}")
    outcomes = future_value(anchor_features.select("customer_id"), {m: profiles[m] for m in outcome_months})
    return OutOfTimeEvidence(
        anchor=anchor,
        outcome_periods=tuple(outcome_months),
        features=anchor_features,
        revenue=outcomes["future_revenue"].to_numpy().astype(np.float64),
        purchases=outcomes["future_invoices"].to_numpy().astype(np.float64),
    )


def ranks(values: np.ndarray) -> np.ndarray | None:
    """Average ranks (ties share their mean rank); None when every value is the same (no variance
    to explain, as in a month where nobody bought again)."""
    from scipy.stats import rankdata

    r = rankdata(values, method="average")
    return r if r.var() > 0 else None


def rank_eta_squared(labels: np.ndarray, rank: np.ndarray | None) -> float | None:
    """Kruskal-Wallis eta squared of ``rank`` (from ``ranks``) across the segments in ``labels``:
    (H - k + 1) / (n - k), with H the tie-corrected statistic and k the segments present."""
    if rank is None:
        return None
    _, groups = np.unique(labels, return_inverse=True)
    k, n = int(groups.max()) + 1, len(rank)
    if n <= k:
        return None
    if k < 2:  # every anchor customer in one segment: nothing is explained
        return 0.0
    sizes = np.bincount(groups)
    means = np.bincount(groups, weights=rank) / sizes
    between = float((sizes * (means - rank.mean()) ** 2).sum())
    h = (n - 1) * between / float(((rank - rank.mean()) ** 2).sum())  # tie-corrected H
    return (h - k + 1) / (n - k)


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def rfm_codes(features: pl.DataFrame) -> np.ndarray | None:
    """The anchor customers' RFM segments as integer codes (unscored customers one more code), or
    None when the feature table has no RFM segment (the snapshot feature set)."""
    if "rfm_segment" not in features.columns:
        return None
    values = features["rfm_segment"].cast(pl.String).fill_null("\x00unscored").to_numpy()
    return np.unique(values, return_inverse=True)[1]


@dataclass(frozen=True)
class RfmBaseline:
    """The anchor customers' RFM segment codes and what they alone explain of each outcome: the base
    every candidate's gain adds to, computed once per fit rather than once per candidate."""

    codes: np.ndarray
    revenue: float | None
    purchases: float | None

    @classmethod
    def of(cls, codes: np.ndarray, revenue_ranks: np.ndarray | None, purchase_ranks: np.ndarray | None):
        return cls(codes, rank_eta_squared(codes, revenue_ranks), rank_eta_squared(codes, purchase_ranks))

    @property
    def separation(self) -> float | None:
        return _mean((self.revenue, self.purchases))


def rfm_baseline(
    features: pl.DataFrame, revenue_ranks: np.ndarray | None, purchase_ranks: np.ndarray | None
) -> RfmBaseline | None:
    """The baseline of the anchor's features (``rfm_codes``), or None without RFM segments."""
    codes = rfm_codes(features)
    return None if codes is None else RfmBaseline.of(codes, revenue_ranks, purchase_ranks)


def separation(
    labels: np.ndarray,
    revenue_ranks: np.ndarray | None,
    purchase_ranks: np.ndarray | None,
    rfm: RfmBaseline | None = None,
) -> dict:
    """The sweep scores of one candidate's segments on the anchor's customers: its own separation
    (revenue, purchases, their mean) and, with the anchor's RFM baseline, what it adds beyond it
    (``beyond_rfm``, with its chance level ``beyond_rfm_noise``; None without a baseline)."""
    revenue = rank_eta_squared(labels, revenue_ranks)
    purchases = rank_eta_squared(labels, purchase_ranks)
    gain, noise = None, None
    if rfm is not None:
        _, joint = np.unique(np.stack([rfm.codes, labels]), axis=1, return_inverse=True)
        joint = joint.ravel()
        crossed = (rank_eta_squared(joint, revenue_ranks), rank_eta_squared(joint, purchase_ranks))
        base = (rfm.revenue, rfm.purchases)
        gain = _mean(c - b for c, b in zip(crossed, base, strict=True) if c is not None and b is not None)
        cells, base_cells = int(joint.max()) + 1, int(rfm.codes.max()) + 1
        if gain is not None:
            noise = float(np.sqrt(2.0 * max(cells - base_cells, 1)) / max(len(labels) - cells, 1))
    return {
        "oot_revenue": revenue,
        "oot_purchases": purchases,
        "oot_separation": _mean((revenue, purchases)),
        "oot_beyond_rfm": gain,
        "oot_beyond_rfm_noise": noise,
    }
