"""Scoring and selection of the candidate segmentation models (the four families of
``segflow.lib.models.families``): validity and stability scores, the sweep, and the rule.

Scores per candidate: silhouette, Calinski-Harabasz and Davies-Bouldin on a seeded sample of
``silhouette_sample`` rows; the gap statistic (Tibshirani 2001; reference sets uniform over the
sample's bounding box, clustered by k-means) for kmeans and ward; the smallest segment's share on
every row; bootstrap stability on ``stability_sample`` rows (see ``segflow.lib.models.stability``), for the
finalists only (below).

Selection rule (deterministic; ``rule_text`` words it for the report from the same constants, so
the text and the code cannot disagree): discard candidates whose smallest segment holds less than
``min_segment_share`` or whose mean per-segment Jaccard is below ``min_stability``; among the rest
take the highest combined criterion ``(silhouette + 1 / (1 + davies_bouldin) + calinski_harabasz /
max calinski_harabasz over the sweep) / 3 + ARI_WEIGHT * ari_refits - oot_weight * oot_shortfall``
(three validity indices on comparable 0-1 scales, a partition that refits to itself, and segments
that explain later revenue and purchases nearly as well as the best candidate the rule could
choose: ``_oot_target`` and ``segflow.lib.models.out_of_time``; 0 while no earlier month is built).
Near ties (``tie_tolerance``): a candidate whose combined criterion is within ``TIE_SE`` standard
errors of the best's (the standard error of a difference of two bootstrap ARI means, from the best's
own refits) is tied with it, since the bootstrap cannot tell them apart; among the tied, the larger
out-of-time separation wins (segments that explain more of later value are the ones to act on),
then the higher criterion without its ARI term (validity and out-of-time shortfall, measured on the
same sample for every candidate, so free of the bootstrap's noise; it decides alone while no earlier
month is built), then the earlier family in ``families`` and the smaller k. If nothing is viable, the
same rule over every measured candidate is returned, and the gating checks fail.

Finalists: the bootstrap refits are most of a sweep's fits, and only the rule's winner needs them.
ARI is at most 1, so every candidate's combined criterion is at most its ``combined_bound``
(validity term + 0.5). Stability is measured in decreasing bound until the best viable candidate's
combined criterion, less its tie tolerance, exceeds every remaining bound (``_finalists``): the rest
could neither win nor tie, and keep ``finalist`` False with their stability and combined criterion
None. The winner is the candidate the rule would pick had every candidate been measured. With the
out-of-time criterion on, the candidates that set its target are measured too (``_oot_target``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segflow.lib.models.families import FAMILY_NAMES, FAMILY_ORDER, apply, fit_family, grids
from segflow.lib.models.out_of_time import RfmBaseline

ARI_WEIGHT = 0.5  # weight of the mean ARI of bootstrap refits in the combined criterion
# Candidates closer than TIE_SE standard errors of the ARI term's difference are tied (about a 95%
# two-sided band). Without it, the planted histories' choice flipped between k-means k = 4 and 5,
# 0.003 apart (1.6 standard errors), with a change as small as keeping orphan customers' lines.
TIE_SE = 2.0


def tie_tolerance(row: dict) -> float:
    """How far below ``row``'s combined criterion a candidate still ties with it: ``TIE_SE`` times
    the standard error of the difference of two bootstrap ARI means, each with ``row``'s standard
    error (the only score measured on resamples; the rest are on one sample common to every
    candidate, so they carry no noise between candidates)."""
    return TIE_SE * ARI_WEIGHT * float(np.sqrt(2.0)) * float(row.get("ari_refits_se") or 0.0)


def rule_text(settings) -> str:
    """The selection rule in words, with the thresholds and weights ``sweep`` and ``select`` use:
    stored with each model and printed by the report's footnote and Methods alike."""
    order = ", ".join(FAMILY_NAMES[f] for f in FAMILY_ORDER if f in settings.families)
    tie_oot = "the larger out-of-time separation beyond the RFM segments wins, then " if settings.oot_weight else ""
    oot = (
        f" − {settings.oot_weight:g} × out-of-time shortfall (the share of the best candidate's "
        f"out-of-time separation beyond the RFM segments by which the candidate's falls below "
        f"{1 - settings.oot_tolerance:.0%} of it, the best among candidates that pass both floors; "
        "separation beyond the RFM segments: the share of the rank variance of the revenue and "
        "purchases of the months after an earlier month that the segments, crossed with that month's "
        "RFM segments, explain beyond the RFM segments alone; 0 while no earlier month is built, or "
        f"when the best is within {OOT_CHANCE_Z:g} standard deviations of chance)"
        if settings.oot_weight
        else ""
    )
    return (
        f"candidates with a segment under {settings.min_segment_share:.0%} of customers or a mean "
        f"bootstrap Jaccard under {settings.min_stability:.2f} are discarded; the highest score "
        "wins: (silhouette + 1/(1 + Davies-Bouldin) + Calinski-Harabasz / its maximum in the sweep) / 3 "
        f"+ {ARI_WEIGHT:g} × mean ARI of bootstrap refits{oot}; candidates within {TIE_SE:g} standard "
        f"errors of the best score (the bootstrap ARI's) are tied, and among them {tie_oot}the higher "
        "score without its ARI term wins, then the family order "
        f"({order}) and the smaller k; if no candidate passes both floors, the same rule over every "
        "candidate is applied and the gating checks fail"
    )


@dataclass(frozen=True)
class OutOfTime:
    """What the sweep needs to score out-of-time separation (segflow.lib.models.out_of_time): the anchor
    month's customers in this fit's design space, and the ranks of their later revenue and purchases."""

    matrix: np.ndarray
    revenue_ranks: np.ndarray | None
    purchase_ranks: np.ndarray | None
    rfm: RfmBaseline | None = None  # the anchor customers' RFM segments and what they explain


# The out-of-time gain beyond RFM steers the choice only where the best one is clearly above chance
# (its noise: out_of_time.beyond_rfm_noise); below, a shortfall would rank candidates on noise.
OOT_CHANCE_Z = 3.0


def oot_value(row: dict) -> float | None:
    """The out-of-time quantity the rule reads: separation beyond the RFM segments, or the
    separation itself where the anchor has no RFM segments."""
    gain = row.get("oot_beyond_rfm")
    return gain if gain is not None else row.get("oot_separation")


def _sample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return np.sort(rng.permutation(n)[:size])


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from a precomputed distance matrix (sklearn's definition; singletons score 0).

    One matrix product per candidate instead of recomputing distances: the sweep scores ~30 candidates
    on the same sample.
    """
    _, lab = np.unique(labels, return_inverse=True)
    onehot = np.eye(lab.max() + 1)[lab]
    sums, counts = distances @ onehot, onehot.sum(axis=0)
    rows = np.arange(len(lab))
    a = sums[rows, lab] / np.maximum(counts[lab] - 1, 1)
    others = sums / counts
    others[rows, lab] = np.inf
    b = others.min(axis=1)
    s = np.where(counts[lab] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


def _log_w(matrix: np.ndarray, labels: np.ndarray) -> float:
    total = sum(
        ((matrix[labels == c] - matrix[labels == c].mean(axis=0)) ** 2).sum() for c in np.unique(labels)
    )
    return float(np.log(max(total, 1e-12)))


def _reference_log_w(
    sample: np.ndarray, ks: list[int], references: int, seed: int
) -> dict[int, tuple[float, float]]:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    lo, hi = sample.min(axis=0), sample.max(axis=0)
    refs = [rng.uniform(lo, hi, size=sample.shape) for _ in range(references)]
    out = {}
    for k in ks:
        logs = [
            _log_w(r, KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed).fit_predict(r))
            for r in refs
        ]
        out[k] = (float(np.mean(logs)), float(np.std(logs) * np.sqrt(1 + 1 / references)))
    return out


def _row(family: str, params: dict) -> dict:
    """A sweep row before scoring: every score None (a degenerate fit keeps them so)."""
    scores = ("silhouette", "calinski_harabasz", "davies_bouldin", "gap", "gap_sd", "min_segment_share",
              "noise_share", "stability", "stability_min", "ari_refits", "ari_refits_se", "segment_jaccard", "oot_revenue",
              "oot_purchases", "oot_separation", "oot_beyond_rfm", "oot_beyond_rfm_noise", "oot_shortfall", "combined",
              "combined_bound")  # fmt: skip
    return {"family": family, "params": dict(params), "k": params.get("k"), **dict.fromkeys(scores),
            "finalist": False, "viable": False}  # fmt: skip


def _score(row: dict, labels: np.ndarray, k: int, score_rows: np.ndarray, score_x: np.ndarray,
           distances: np.ndarray, gap_ref: dict) -> None:  # fmt: skip
    """The cheap indices of one candidate, from its labels on every row: shares, validity, gap."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    shares = np.bincount(labels, minlength=k) / len(labels)
    row.update(k=k, min_segment_share=float(shares.min()))
    sample_labels = labels[score_rows]
    if len(np.unique(sample_labels)) > 1:
        row.update(
            silhouette=silhouette(distances, sample_labels),
            calinski_harabasz=float(calinski_harabasz_score(score_x, sample_labels)),
            davies_bouldin=float(davies_bouldin_score(score_x, sample_labels)),
        )
    if row["family"] in ("kmeans", "ward") and k in gap_ref:
        ref_mean, ref_sd = gap_ref[k]
        row.update(gap=ref_mean - _log_w(score_x[:2_000], sample_labels[:2_000]), gap_sd=ref_sd)


def _oot_target(rows: list[dict], settings, measure) -> tuple[float, float] | None:
    """(target, best): the out-of-time value (``oot_value``) a candidate must reach to lose nothing,
    ``1 - oot_tolerance`` of the best among the candidates that pass both floors, and that best.
    None: no evidence this month, or the best gain beyond RFM is within ``OOT_CHANCE_Z`` standard
    deviations of chance. ``measure(i)`` bootstraps candidate i's stability if it is not measured yet.

    A shortfall, not a reward: splitting a segment along anything that correlates with value
    always explains a little more of later value, so rewarding separation itself chose k = 7 over
    the planted 5 (ARI 0.88). What the criterion must do is stop a split that explains clearly less
    than the best available (k = 2, "recent vs lapsing", which adds nothing to the RFM segments)
    from winning on geometry alone; among candidates within the tolerance of the best, the validity
    indices and stability decide.

    Only a candidate the rule could choose sets the bar: candidates are measured in decreasing
    value until one passes the stability floor too. When any large-segment candidate set it,
    unstable Gaussian mixtures (mean Jaccard 0.58 to 0.72) explaining 0.35 of later value put the
    bar above the planted k = 5 (0.22) on a planted history, and Ward k = 7 won (ARI 0.888): a
    candidate that is discarded changed which of the others won. With none passing, the best with
    large enough segments sets it, as before; at ``oot_weight`` 0 nothing is measured for it.
    """
    scored = [i for i, r in enumerate(rows) if oot_value(r) is not None and r["silhouette"] is not None]
    large = [i for i in scored if rows[i]["min_segment_share"] >= settings.min_segment_share] or scored
    if not large:
        return None
    large.sort(key=lambda i: (-oot_value(rows[i]), FAMILY_ORDER.index(rows[i]["family"]), rows[i]["k"], i))
    best_row = rows[large[0]]
    if settings.oot_weight:
        for i in large:
            if rows[i]["min_segment_share"] < settings.min_segment_share:
                break  # no candidate has large enough segments: keep the best of them all
            measure(i)
            if rows[i]["stability"] >= settings.min_stability:
                best_row = rows[i]
                break
    best, noise = oot_value(best_row), best_row.get("oot_beyond_rfm_noise")
    if best <= 0 or (best_row.get("oot_beyond_rfm") is not None and best <= OOT_CHANCE_Z * (noise or 0.0)):
        return None
    return (1 - settings.oot_tolerance) * best, best


def oot_shortfall(row: dict, target: tuple[float, float] | None) -> float | None:
    """How far ``row``'s out-of-time value falls below the target, as a share of the best value
    (0 to ``1 - oot_tolerance``): on Online Retail II the gains beyond RFM are a few hundredths, on
    the planted histories tenths, and a shortfall in the gain's own units would fade exactly where
    RFM already says most. None: the criterion does not apply this month."""
    if target is None:
        return None
    bar, best = target
    return max(0.0, bar - (oot_value(row) or 0.0)) / best


def _finalists(rows: list[dict], settings):
    """The candidates whose bootstrap stability the selection rule needs, in the order to measure
    them. A generator read while ``sweep`` measures: each bound test sees the candidates so far.

    ARI is at most 1, so a candidate's combined criterion is at most ``combined_bound``, its validity
    term plus 0.5. Candidates are measured in decreasing bound (then the rule's tie order): once the
    best viable one's combined criterion, less its tie tolerance, exceeds the next bound, no one left
    can win or tie with it. Only candidates with large enough segments can be viable; if none of them
    is, the fallback (the rule over every measured candidate) is bounded the same way over the rest.
    """
    bound = {i: round(r["combined_bound"], 12) for i, r in enumerate(rows) if r["combined_bound"] is not None}
    order = sorted(bound, key=lambda i: (-bound[i], FAMILY_ORDER.index(rows[i]["family"]), rows[i]["k"], i))
    eligible = [i for i in order if rows[i]["min_segment_share"] >= settings.min_segment_share]
    yield from _until_beaten(rows, eligible, bound, lambda r: r["viable"])
    if not any(rows[i]["viable"] for i in eligible):
        rest = [i for i in order if rows[i]["combined"] is None]
        yield from _until_beaten(rows, rest, bound, lambda r: r["combined"] is not None)


def _until_beaten(rows: list[dict], pool: list[int], bound: dict[int, float], counts):
    """``pool`` in order, until the best measured candidate that ``counts``, less its tie tolerance,
    beats the next one's bound."""
    for i in pool:
        measured = [r for r in rows if r["combined"] is not None and counts(r)]
        if measured:
            best = max(measured, key=lambda r: round(r["combined"], 12))
            if round(best["combined"] - tie_tolerance(best), 12) > bound[i]:
                return
        yield i


def _refit(row: dict, stab_x: np.ndarray, draw: np.ndarray, points: np.ndarray, seed: int, settings):
    """Labels of the stability sample's ``points`` under ``row``'s candidate refitted on the bootstrap
    ``draw`` (None if the refit is degenerate). Refits use n_init <= 3: cheaper, and a less lucky
    refit only lowers the measured stability."""
    (fit,) = fit_family(
        row["family"], [row["params"]], stab_x[draw], seed, min(settings.n_init, 3), settings.minibatch_above
    )
    return None if fit is None else apply(fit, stab_x[points])


def _combine(row: dict, validity: float, settings) -> None:
    """A measured candidate's combined criterion and whether it passes both floors."""
    row["combined"] = validity + ARI_WEIGHT * row["ari_refits"]
    row["viable"] = bool(
        row["min_segment_share"] >= settings.min_segment_share and row["stability"] >= settings.min_stability
    )


def sweep(
    matrix: np.ndarray, settings, oot: OutOfTime | None = None
) -> tuple[list[dict], list[dict | None], dict]:
    """Fit and score every candidate; bootstrap only the finalists (see ``_finalists``). ``oot``: the
    anchor month's design matrix and outcome ranks, for the out-of-time separation (None: the
    criterion is not available and counts 0 for every candidate). Returns (sweep rows, rules in the
    same order, sampling record)."""
    from scipy.spatial.distance import cdist

    from segflow.lib.models.out_of_time import separation
    from segflow.lib.models.stability import bootstrap_stability

    n, seed = len(matrix), settings.seed
    rng = np.random.default_rng(seed)
    fit_rows = {
        "kmeans": _sample(rng, n, settings.max_fit_rows),
        "ward": _sample(rng, n, settings.ward_sample),
        "hdbscan": _sample(rng, n, settings.hdbscan_sample),
        "gmm": _sample(rng, n, settings.gmm_fit_rows),
    }
    score_rows = _sample(rng, n, settings.silhouette_sample)
    stab_rows = _sample(rng, n, settings.stability_sample)
    score_x, stab_x = matrix[score_rows], matrix[stab_rows]
    family_grids = grids(settings)
    gap_ks = sorted({p["k"] for f in ("kmeans", "ward") for p in family_grids.get(f, [])})
    gap_ref = _reference_log_w(score_x[:2_000], gap_ks, settings.gap_references, seed) if gap_ks else {}
    distances = cdist(score_x, score_x)
    # The same B resamples for every candidate (common random numbers), so stabilities compare fairly.
    draws = [rng.integers(0, len(stab_x), len(stab_x)) for _ in range(settings.stability_resamples)]
    points = [np.unique(d) for d in draws]
    rows, rules, references, validity = [], [], {}, {}
    for family, grid in family_grids.items():
        fitted = fit_family(
            family, grid, matrix[fit_rows[family]], seed, settings.n_init, settings.minibatch_above
        )
        for params, rule in zip(grid, fitted, strict=True):
            row = _row(family, params)
            rows.append(row)
            rules.append(rule)
            if rule is None:
                continue
            k = len(rule["centroids"])
            labels = apply(rule, matrix)
            _score(row, labels, k, score_rows, score_x, distances, gap_ref)
            if rule["kind"] == "centroid_noise":
                row["noise_share"] = float(np.bincount(labels, minlength=k)[rule["noise_id"]] / n)
            if oot is not None:
                row.update(separation(apply(rule, oot.matrix), oot.revenue_ranks, oot.purchase_ranks, oot.rfm))
            references[len(rows) - 1] = labels[stab_rows]
    ch_max = max((r["calinski_harabasz"] for r in rows if r["calinski_harabasz"] is not None), default=1.0)

    def measure(i: int) -> None:  # bootstrap stability, once per candidate
        row = rows[i]
        if not row["finalist"]:
            refits = [(pts, _refit(row, stab_x, d, pts, seed + b + 1, settings))
                      for b, (d, pts) in enumerate(zip(draws, points, strict=True))]  # fmt: skip
            row.update(bootstrap_stability(references[i], row["k"], refits), finalist=True)

    target = _oot_target(rows, settings, measure)
    for i, row in enumerate(rows):
        if row["silhouette"] is not None:
            row["oot_shortfall"] = oot_shortfall(row, target)
            validity[i] = (
                row["silhouette"] + 1 / (1 + row["davies_bouldin"]) + row["calinski_harabasz"] / ch_max
            ) / 3 - settings.oot_weight * (row["oot_shortfall"] or 0.0)
            row["combined_bound"] = validity[i] + ARI_WEIGHT  # ari_refits is at most 1
            if row["finalist"]:  # measured for the out-of-time target
                _combine(row, validity[i], settings)
    for i in _finalists(rows, settings):
        measure(i)
        _combine(rows[i], validity[i], settings)
    sampling = {"rows": n, "fit_rows": {f: int(len(r)) for f, r in fit_rows.items()},
                "index_sample_rows": int(len(score_rows)), "gap_sample_rows": int(min(2_000, len(score_rows))),
                "stability_sample_rows": int(len(stab_rows)), "stability_resamples": settings.stability_resamples,
                "stability_finalists": sum(r["finalist"] for r in rows)}  # fmt: skip
    return rows, rules, sampling


def select(rows: list[dict], out_of_time: bool = True) -> int:
    """Index of the chosen candidate under the documented rule (see the module docstring): the best
    combined criterion, or among the candidates tied with it (``tie_tolerance``) the larger
    out-of-time separation (``out_of_time`` False, as at ``oot_weight`` 0: not read), then the
    highest criterion without its ARI term, the family order and the smaller k."""
    scored = [i for i, r in enumerate(rows) if r["combined"] is not None]
    if not scored:
        raise ValueError("no candidate produced a valid segmentation (every fit was degenerate)")
    viable = [i for i in scored if rows[i]["viable"]] or scored

    def order(i: int) -> tuple:
        return FAMILY_ORDER.index(rows[i]["family"]), rows[i]["k"], i

    best = min(viable, key=lambda i: (-round(rows[i]["combined"], 12), *order(i)))
    floor = round(rows[best]["combined"] - tie_tolerance(rows[best]), 12)
    tied = [i for i in viable if round(rows[i]["combined"], 12) >= floor]
    return min(
        tied,
        key=lambda i: (
            -(
                oot_value(rows[i])
                if out_of_time and rows[i].get("oot_shortfall") is not None and oot_value(rows[i]) is not None
                else -np.inf
            ),
            -round(rows[i]["combined"] - ARI_WEIGHT * rows[i]["ari_refits"], 12),
            *order(i),
        ),
    )
