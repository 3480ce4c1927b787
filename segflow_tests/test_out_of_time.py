"""Out-of-time value separation as a selection criterion (issue 17.7), through lib functions only:
the measure, the months it reads (strictly before T), and a sweep where it changes the choice."""

from __future__ import annotations

import dataclasses

import dagster as dg
import numpy as np
import polars as pl
import pytest

from segflow.config import ModelSettings, load_settings
from segflow.lib.models.out_of_time import (
    RfmBaseline,
    build_evidence,
    evidence_periods,
    rank_eta_squared,
    ranks,
    rfm_codes,
    separation,
)
from segflow.lib.models.selection import OutOfTime, rule_text, select, sweep
from segflow.lib.threads import single_threaded


def test_rank_eta_squared_on_known_input() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 200)
    separated = ranks(labels * 100.0 + rng.random(600))  # each segment's values above the last's
    # Ranks still vary within a segment, so three equal, perfectly ordered segments explain 8/9.
    assert rank_eta_squared(labels, separated) == pytest.approx(8 / 9, abs=0.002)
    noise = ranks(rng.random(600))
    assert abs(rank_eta_squared(labels, noise)) < 0.02  # corrected for k: about 0 by chance
    assert rank_eta_squared(np.zeros(600, dtype=int), separated) == 0.0  # one segment explains nothing
    assert ranks(np.zeros(600)) is None  # nobody bought again: nothing to explain
    assert separation(labels, separated, None) == {
        "oot_revenue": rank_eta_squared(labels, separated),
        "oot_purchases": None,
        "oot_separation": rank_eta_squared(labels, separated),
        "oot_beyond_rfm": None,
        "oot_beyond_rfm_noise": None,
    }
    # Kruskal-Wallis' H (tie-corrected) is what the eta squared is built from.
    from scipy.stats import kruskal

    tied = np.round(labels + rng.random(600) * 3)
    h = kruskal(*[tied[labels == c] for c in range(3)]).statistic
    assert rank_eta_squared(labels, ranks(tied)) == pytest.approx((h - 2) / (600 - 3))


def test_separation_beyond_rfm_is_what_a_segmentation_adds_to_the_rfm_segments() -> None:
    rng = np.random.default_rng(1)
    rfm = np.repeat([0, 1], 600)  # "recent" and "lapsing"
    within = np.tile(np.repeat([0, 1], 300), 2)  # a split the RFM segments do not make
    value = ranks(np.array([10.0, 100.0, 1_000.0, 10_000.0])[rfm * 2 + within] * rng.gamma(4.0, 0.25, 1200))
    baseline = RfmBaseline.of(rfm, value, value)
    recency_split = separation(rfm, value, value, baseline)
    four = separation(rfm * 2 + within, value, value, baseline)
    assert recency_split["oot_separation"] > 0.6  # it explains much of later value itself...
    assert abs(recency_split["oot_beyond_rfm"]) < 1e-9  # ...and nothing the RFM segments do not
    assert four["oot_beyond_rfm"] > max(0.1, 30 * four["oot_beyond_rfm_noise"])
    # A split at random within the RFM segments adds only chance, within a few of its noise's sd.
    noise = separation(rng.integers(0, 4, 1200), value, value, baseline)
    assert abs(noise["oot_beyond_rfm"]) < 3 * noise["oot_beyond_rfm_noise"]
    # RFM codes from the anchor's features; the snapshot feature set has none.
    anchor = pl.DataFrame({"rfm_segment": ["Champions", None, "At Risk", "Champions"]})
    assert rfm_codes(anchor).tolist() == [2, 0, 1, 2]  # unscored customers are one more segment
    assert rfm_codes(pl.DataFrame({"recency_days": [1]})) is None


def _profile(customers: list[str], revenue: float) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": customers, "net_revenue": [revenue] * len(customers),
                         "n_invoices": [1] * len(customers)})  # fmt: skip


def test_evidence_reads_only_months_strictly_before_the_fit() -> None:
    assert evidence_periods("2024-06", 3) == ("2024-02", ["2024-03", "2024-04", "2024-05"])
    anchor = pl.DataFrame({"customer_id": ["a", "b", "c"], "recency_days": [1, 2, 3]})
    poison = pl.DataFrame({"unreadable": [1]})  # T and later: reading them would fail
    features = {"2024-02": anchor, "2024-06": poison, "2024-07": poison}
    profiles = {"2024-03": _profile(["a"], 10.0), "2024-04": _profile(["a", "b"], 5.0),
                "2024-05": _profile(["b"], 1.0), "2024-06": poison, "2024-07": poison}  # fmt: skip
    evidence = build_evidence("2024-06", 3, features, profiles)
    assert evidence.anchor == "2024-02" and evidence.outcome_periods == ("2024-03", "2024-04", "2024-05")
    assert evidence.revenue.tolist() == [15.0, 6.0, 0.0] and evidence.purchases.tolist() == [2, 2, 0]
    # The first months have no anchor, or a month between is missing: no criterion, and why.
    first = build_evidence("2024-03", 3, {"2024-03": anchor}, profiles)
    assert first["available"] is False and "no customer_features for 2023-11" in first["reason"]
    gap = build_evidence("2024-06", 3, features, {**profiles, "2024-04": None})
    assert gap["available"] is False and gap["reason"] == "no customer_profiles for 2024-04"
    snapshot = build_evidence("2024-06", 3, features, profiles, feature_set="snapshot")
    assert snapshot["available"] is False and "snapshot" in snapshot["reason"]


def _nested_blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two far-apart blobs, each of two nearer sub-blobs: the geometry says k = 2; only the
    sub-blob tells later value (the outcome below), as a marketer's segments should."""
    sub = np.repeat(np.arange(4), n // 4)
    centres = np.array([[0, 0], [0, 1.2], [12, 0], [12, 1.2]], dtype=float)
    return centres[sub] + rng.normal(0, 0.35, (len(sub), 2)), sub


# A k-means sweep small enough for one core, with enough refits for the stability floor.
SMALL_SWEEP = ModelSettings(families=("kmeans",), k_max=5, n_init=3, stability_resamples=3,
                            stability_sample=400, silhouette_sample=400)  # fmt: skip


def _blob_history(seed: int, sub_values: list[float], spread: float):
    """(rng, this month's matrix, the anchor's matrix, its sub-blobs, its later value): value by
    sub-blob times a mean-1 gamma noise of shape ``spread``."""
    rng = np.random.default_rng(seed)
    matrix, _ = _nested_blobs(rng, 800)
    anchor, sub = _nested_blobs(rng, 800)
    value = np.array(sub_values)[sub] * rng.gamma(spread, 1 / spread, len(sub))
    return rng, matrix, anchor, sub, value


def _ranks(oot: OutOfTime) -> tuple:
    return oot.revenue_ranks, oot.purchase_ranks


def test_out_of_time_separation_changes_the_choice_on_merit() -> None:
    _, matrix, anchor, sub, value = _blob_history(3, [0.0, 50.0, 5.0, 200.0], 2.0)
    settings = SMALL_SWEEP
    oot = OutOfTime(anchor, ranks(value), ranks(np.round(value / 20)))
    with single_threaded():  # as fit_segments runs it: OpenMP k-means crawls on a loaded machine
        rows, _, _ = sweep(matrix, settings, oot)
        plain_rows, _, _ = sweep(matrix, settings)
        off = dataclasses.replace(settings, oot_weight=0.0)
        off_rows, _, _ = sweep(matrix, off, oot)
    chosen = rows[select(rows)]
    plain = plain_rows[select(plain_rows)]
    assert plain["k"] == 2 and plain["oot_separation"] is None  # before: the geometry alone
    assert chosen["k"] == 4 and chosen["viable"]  # after: the split that explains later value
    by_k = {r["k"]: r for r in rows}
    assert by_k[4]["oot_separation"] > by_k[2]["oot_separation"] + 0.3
    # Both scores are in every row, and the floors still hold: a tiny-segment split never wins.
    assert all(r["silhouette"] is not None and r["oot_separation"] is not None for r in rows)
    assert off_rows[select(off_rows)]["k"] == 2  # weight 0 is the old rule, scores still reported
    assert off_rows[select(off_rows)]["oot_separation"] is not None
    assert "out-of-time shortfall" in rule_text(settings) and "out-of-time" not in rule_text(off)


def test_a_recency_split_loses_to_segments_that_add_to_rfm() -> None:
    """The issue's k = 2 ("recent vs lapsing"): the far blobs are the RFM segments and order later
    value steeply, so k = 2 explains most of it by itself and passes the raw separation's bar; the
    sub-blobs order it within them. Beyond RFM, k = 2 adds nothing and k = 4 wins on merit."""
    rng, matrix, anchor, sub, value = _blob_history(5, [10.0, 100.0, 1_000.0, 10_000.0], 4.0)
    settings = SMALL_SWEEP
    rfm = sub // 2
    raw = OutOfTime(anchor, ranks(value), ranks(np.round(value / 50)))
    beyond = OutOfTime(anchor, raw.revenue_ranks, raw.purchase_ranks, RfmBaseline.of(rfm, *_ranks(raw)))
    with single_threaded():
        raw_rows, _, _ = sweep(matrix, settings, raw)
        rows, _, _ = sweep(matrix, settings, beyond)
    assert raw_rows[select(raw_rows)]["k"] == 2  # its own separation is within the tolerance
    by_k = {r["k"]: r for r in rows}
    assert by_k[2]["oot_separation"] > 0.75 * by_k[4]["oot_separation"]
    assert by_k[2]["oot_beyond_rfm"] < 0.01 < 0.1 < by_k[4]["oot_beyond_rfm"]
    chosen = rows[select(rows)]
    assert chosen["k"] == 4 and chosen["viable"] and chosen["oot_shortfall"] == 0.0
    assert by_k[2]["oot_shortfall"] > 0.7  # nearly all of the tolerated share of the best is missed
    # Later value at random: no gain beyond chance, no bar, and the geometry decides again.
    noise = ranks(rng.random(len(sub)))
    with single_threaded():
        chance, _, _ = sweep(
            matrix, settings, OutOfTime(anchor, noise, noise, RfmBaseline.of(rfm, noise, noise))
        )
    assert all(r["oot_shortfall"] is None for r in chance if r["silhouette"] is not None)
    assert chance[select(chance)]["k"] == 2


def test_fit_reads_the_backtest_horizon_months_before_it() -> None:
    """The fit's inputs follow ``report.backtest_horizon_months``: features of T-h-1..T (T's own and
    the anchor's are read) and profiles of T-h..T (T's are never read; see the asset)."""
    from segflow.config import ReportSettings
    from segflow.definitions import build_defs

    base = load_settings()
    short = dataclasses.replace(base, report=dataclasses.replace(ReportSettings(), backtest_horizon_months=2))
    for settings, h in ((base, 3), (short, 2)):
        fit = build_defs(settings).resolve_assets_def("segmentation_fit")
        windows = {
            upstream: (m.start_offset, m.end_offset)
            for upstream in ("customer_features", "customer_profiles")
            for m in [fit.get_partition_mapping(dg.AssetKey(upstream))]
        }
        assert windows == {"customer_features": (-h - 1, 0), "customer_profiles": (-h, 0)}
