"""Churn risk through lib functions only (no Dagster run): labels, out-of-time validation against a
recency-only baseline on planted churn, skipping on short history, and exact JSON round trips.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from segflow.config import ModelSettings
from segflow.lib import periods
from segflow.lib.models.churn import churn_labels, churn_periods, churn_scores, fit_churn_model, predict
from segflow.lib.models.model_types import ChurnModel
from segflow_tests.synthetic_history import synthetic_profiles

START = "2024-01"
MONTHS = 10
WINDOW = 12


def _feature_history(root: Path, customers: int, seed: int) -> dict[str, pl.DataFrame]:
    """Feature tables of every month of a planted synthetic history, built without Dagster."""
    from segflow.lib.features.behaviour import build_features
    from segflow.synth import SynthConfig

    config = SynthConfig(customers=customers, months=MONTHS, start=START, seed=seed)
    profiles = synthetic_profiles(root, config)
    months = sorted(profiles)
    out = {}
    for month in months:
        lazy = [profiles[m].lazy() for m in months if m <= month][-WINDOW:]
        window = pl.concat(lazy, how="diagonal_relaxed")
        out[month] = build_features(
            window, profiles[month].lazy(), month, periods.as_of(month), "invoices", "sum"
        )
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    return _feature_history(tmp_path_factory.mktemp("churn_history"), 3000, 11)


def _last(history: dict[str, pl.DataFrame]) -> str:
    return max(history)


def test_out_of_time_auc_beats_recency_baseline(history) -> None:
    period = _last(history)
    model = fit_churn_model(history, period, ModelSettings(), WINDOW)
    assert model.available, model.reason
    m = model.metrics
    print(
        f"\n[churn] T={period} train={model.train} validation={model.validation}\n"
        f"[churn] AUC {m['auc']:.4f} vs recency-only {m['baseline_auc']:.4f}; "
        f"Brier {m['brier']:.4f} vs {m['baseline_brier']:.4f}; "
        f"top-decile lift {m['top_decile_lift']:.3f} vs {m['baseline_top_decile_lift']:.3f}"
    )
    months = churn_periods(period, ModelSettings().churn_horizon_months)
    assert (model.train["features_period"], model.validation["features_period"]) == (
        months.train,
        months.validation,
    )
    assert m["auc"] > m["baseline_auc"] + 0.01
    assert m["auc"] > 0.75
    assert m["brier"] < m["baseline_brier"]
    # Issue 17.8: the guard lets a model that beats its baseline score, and the record carries the
    # churner counts, the AUC intervals and the calibration check the report prints.
    assert model.guard["scorer"] == "model"
    val = model.validation
    assert (
        val["churners"] == round(val["churn_rate"] * val["customers"]) >= ModelSettings().churn_min_churners
    )
    assert m["auc_ci_low"] < m["auc"] < m["auc_ci_high"] and m["auc_gain_ci_low"] > 0
    assert 0 <= model.calibration["expected_calibration_error"] < 0.1
    # Calibrated on the later period: each reliability decile's mean prediction is near its rate,
    # and the deciles partition the validation customers.
    table = model.reliability
    assert [r["decile"] for r in table] == list(range(1, 11))
    assert sum(r["customers"] for r in table) == model.validation["customers"]
    assert max(abs(r["mean_predicted"] - r["observed_rate"]) for r in table) < 0.15
    assert table[-1]["observed_rate"] > table[0]["observed_rate"]


def test_labels_on_a_hand_built_frame() -> None:
    # M = 2024-03, h = 3: as_of(M) = 2024-04-01, as_of(M+h) = 2024-07-01, 91 days later.
    at = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e", "f"], "recency_days": [5, 40, 3, 10, 1, 80]})
    later = pl.DataFrame(
        {
            # a: bought on 2024-04-01, the first day after M (91 days before 2024-07-01): active.
            # b: last bought 2024-03-31, the last day of M (92 days): churned.
            # c: bought in June: active. d: absent from M+h (no purchase in its window): churned.
            # e: bought yesterday relative to as_of(M+h): active. g: new in M+h, not labelled.
            # f: last purchase long before M: churned.
            "customer_id": ["a", "b", "c", "e", "f", "g"],
            "recency_days": [91, 92, 20, 1, 171, 2],
        }
    )
    labels = churn_labels(at, later, "2024-03", 3)
    assert labels.schema == pl.Schema({"customer_id": pl.String, "churned": pl.Boolean})
    assert labels.to_dict(as_series=False) == {
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "churned": [False, True, False, True, False, True],
    }
    # Nobody bought in the horizon: every customer churned.
    empty = later.clear()
    assert churn_labels(at, empty, "2024-03", 3)["churned"].all()


def test_too_little_history_skips_with_the_reason(history) -> None:
    period = _last(history)
    settings = ModelSettings()
    months = churn_periods(period, settings.churn_horizon_months)
    short = {m: f for m, f in history.items() if m != months.train}
    skipped = fit_churn_model(short, period, settings, WINDOW)
    assert skipped.available is False and skipped.version is None
    assert skipped.missing_periods == [months.train]
    assert "not enough history" in skipped.reason and months.train in skipped.reason
    # The first partitions have no earlier months at all.
    first = fit_churn_model({START: history[START]}, START, settings, WINDOW)
    assert first.available is False and "not enough history" in first.reason
    # Enough months, but too few labelled customers.
    strict = dataclasses.replace(settings, churn_min_customers=10**6)
    few = fit_churn_model(history, period, strict, WINDOW)
    assert few.available is False and "churn_min_customers is 1000000" in few.reason
    assert few.labelled_customers["train"] == history[months.train].height
    # Skipped models score nobody: churn_risk is null.
    scores = churn_scores(history[period], few)
    assert scores.height == history[period].height and scores["churn_risk"].null_count() == scores.height


def test_stored_json_model_reloads_and_reproduces_scores_exactly(history, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from segflow.lib.models.churn import design_matrix

    period = _last(history)
    model = fit_churn_model(history, period, ModelSettings(), WINDOW)
    path = tmp_path / "churn_model.json"
    path.write_text(model.to_json(), encoding="utf-8")
    reloaded = ChurnModel.from_json(path.read_text(encoding="utf-8"))
    assert reloaded == model
    features = history[period]
    before = churn_scores(features, model)
    after = churn_scores(features, reloaded)
    assert before["customer_id"].to_list() == features["customer_id"].to_list()
    assert np.array_equal(before["churn_risk"].to_numpy(), after["churn_risk"].to_numpy())
    assert before["churn_risk"].is_between(0, 1).all() and before["churn_risk"].null_count() == 0
    # The stored numbers are the estimator's: sklearn with the same coefficients gives the same
    # probabilities (to rounding), so nothing but plain parameters is needed to score.
    estimator = LogisticRegression()
    estimator.classes_ = np.array([0, 1])
    estimator.coef_ = np.array([reloaded.coefficients])
    estimator.intercept_ = np.array([reloaded.intercept])
    sk = estimator.predict_proba(design_matrix(features, reloaded.design))[:, 1]
    assert np.allclose(sk, predict(features, reloaded.scorer), rtol=0, atol=1e-12)
    # Refitting on the same data gives the same model (seeded, deterministic solver).
    assert fit_churn_model(history, period, ModelSettings(), WINDOW).version == model.version


def test_churn_model_asset_records_validation_or_reason(history) -> None:
    import dagster as dg

    from segflow.config import load_settings
    from segflow.definitions import build_defs

    settings = load_settings()
    churn_model = build_defs(settings).get_assets_def("churn_model")
    period = _last(history)
    lazy = {m: f.lazy() for m, f in history.items()}
    with dg.build_asset_context(partition_key=period, resources={"settings": settings}) as context:
        output = churn_model(context, customer_features=lazy)
    assert output.value == fit_churn_model(history, period, ModelSettings(), WINDOW)
    meta = {key: getattr(value, "value", value) for key, value in output.metadata.items()}
    assert meta["available"] is True and meta["validation_auc"] > meta["validation_baseline_auc"]
    assert meta["scored_customers"] == history[period].height
    assert 0 < meta["mean_churn_risk"] < 1
    assert ChurnModel.from_json(output.value.to_json()) == output.value  # what the JSON IO manager stores
    # A month without the earlier history: a stored reason, not a failure.
    with dg.build_asset_context(partition_key=START, resources={"settings": settings}) as context:
        skipped = churn_model(context, customer_features={START: lazy[START]})
    assert skipped.value.available is False and skipped.metadata["available"].value is False
    assert "not enough history" in skipped.metadata["reason"].value


def test_segment_assignments_carry_the_months_churn_risk(history) -> None:
    import dagster as dg

    from segflow.config import load_settings
    from segflow.definitions import build_defs
    from segflow.lib.audit.kpis import segment_kpis
    from segflow.lib.models.clustering import fit_model
    from segflow.lib.models.clv import withheld

    segment_assignments = build_defs(load_settings()).get_assets_def("segment_assignments")
    period = _last(history)
    features = history[period]
    quick = dataclasses.replace(ModelSettings(), families=("kmeans",), k_max=5, stability_resamples=2)
    segmentation = fit_model(features, quick, period)
    churn = fit_churn_model(history, period, ModelSettings(), WINDOW)
    no_clv = withheld(period, ModelSettings(), "not under test here")
    with dg.build_asset_context(partition_key=period) as context:
        out = _published(segment_assignments(context, features, segmentation, churn, None, no_clv, {}))
    assignments = out.value
    expected = churn_scores(features, churn)
    assert assignments["customer_id"].to_list() == expected["customer_id"].to_list()
    assert np.array_equal(assignments["churn_risk"].to_numpy(), expected["churn_risk"].to_numpy())
    assert (assignments["churn_model_version"] == churn.version).all()
    summary = out.metadata["churn_risk"].value  # in words, for people reading the UI
    assert summary.startswith(f"Churn model {churn.version}")
    assert f"validation AUC {churn.metrics['auc']:.3f}" in summary
    kpis = segment_kpis(assignments, features)
    assert kpis["mean_churn_risk"].is_between(0, 1).all() and kpis["mean_churn_risk"].null_count() == 0
    # Without a model the column is null for everyone and the metadata says why.
    skipped = fit_churn_model({}, period, ModelSettings(), WINDOW)
    with dg.build_asset_context(partition_key=period) as context:
        out = _published(segment_assignments(context, features, segmentation, skipped, None, no_clv, {}))
    assert out.value["churn_risk"].null_count() == features.height
    assert out.metadata["churn_risk"].value == f"Not available: {skipped.reason}."


def test_report_methods_state_the_churn_validation_or_why_not() -> None:
    from segflow.config import load_settings
    from segflow.lib.report.methods import churn_text

    settings = load_settings()
    reason = "not enough history: customer_features missing"
    skipped = churn_text(settings, ChurnModel(available=False, period="2024-10", horizon_months=3, reason=reason))
    assert "no purchase in the next 3 months" in skipped and "Not available this month: not enough" in skipped
    metrics = {"auc": 0.93, "baseline_auc": 0.89, "brier": 0.09, "baseline_brier": 0.12,
               "top_decile_lift": 3.4, "baseline_top_decile_lift": 3.1}  # fmt: skip
    model = ChurnModel(available=True, period="2024-10", horizon_months=3, metrics=metrics, version="abc123",
                       train={"features_period": "2024-04", "labels_period": "2024-07"},
                       validation={"features_period": "2024-07", "labels_period": "2024-10", "customers": 3001,
                                   "churn_rate": 0.267})  # fmt: skip
    text = churn_text(settings, model)
    assert "AUC 0.930 against 0.890 for a recency-only logistic baseline" in text
    assert "validated out of time on 2024-07 labelled by 2024-10" in text and "abc123" in text


def test_churn_guard_withholds_churn_risk_with_too_few_churners(history) -> None:
    """Issue 17.8: fewer churners than ``model.churn_min_churners`` in train or validation: no churn
    risk, the reason names the counts, and the validation figures are kept for the report."""
    from segflow.config import load_settings
    from segflow.lib.report.methods import churn_text

    period = _last(history)
    strict = dataclasses.replace(ModelSettings(), churn_min_churners=10**6)
    withheld = fit_churn_model(history, period, strict, WINDOW)
    churners = withheld.validation["churners"]
    assert withheld.available is False and withheld.version is None
    assert withheld.guard["scorer"] == "withheld"
    assert (
        f"{churners} in validation" in withheld.reason
        and "churn_min_churners is 1000000" in withheld.reason
    )
    scores = churn_scores(history[period], withheld)
    assert scores["churn_risk"].null_count() == history[period].height
    text = churn_text(load_settings(), withheld)
    assert f"{churners:,} churners" in text and "Not scored this month: too few churners" in text


def test_churn_guard_falls_back_to_the_baseline_when_the_model_does_not_beat_it(history, monkeypatch) -> None:
    """A model on features that carry no churn signal (return rate, email click rate) loses to the
    recency-only baseline on validation: the baseline scores, and the record says why."""
    import segflow.lib.models.churn as churn

    monkeypatch.setattr(
        churn, "CHURN_FEATURES", (("return_rate", "identity"), ("email_click_rate", "identity"))
    )
    period = _last(history)
    model = fit_churn_model(history, period, ModelSettings(), WINDOW)
    m = model.metrics
    assert m["auc"] <= m["baseline_auc"]
    assert model.available and model.guard["scorer"] == "baseline"
    assert "does not beat the recency-only baseline" in model.guard["reason"]
    scores = churn_scores(history[period], model)["churn_risk"].to_numpy()
    np.testing.assert_array_equal(scores, predict(history[period], model.baseline))
    assert {f["name"] for f in model.fitted_model.design} <= {
        "return_rate",
        "email_click_rate",
        "email_click_rate_missing",
    }


def test_churn_guard_calibration_and_intervals_on_known_input() -> None:
    from segflow.lib.models.churn_guard import auc_intervals, calibration, decide

    table = [{"customers": 100, "mean_predicted": p, "observed_rate": p} for p in np.linspace(0.05, 0.95, 10)]
    assert (
        calibration(table)["expected_calibration_error"] == 0 and calibration(table)["hosmer_lemeshow_p"] == 1
    )
    off = [{**r, "observed_rate": min(1.0, r["mean_predicted"] + 0.2)} for r in table]
    assert calibration(off)["hosmer_lemeshow_p"] < 0.001 and calibration(off)["calibration_in_the_large"] < 0
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.3
    signal = y + rng.normal(0, 1, 2000)
    ci = auc_intervals(y, signal, rng.random(2000), seed=1)
    assert ci["auc_ci"][0] > 0.6 and 0.45 < ci["baseline_auc_ci"][0] < 0.5 < ci["baseline_auc_ci"][1]
    assert ci["auc_gain_ci"][0] > 0
    baseline = rng.random(2000)
    assert auc_intervals(y, signal, baseline, seed=3) == auc_intervals(y, signal, baseline, seed=3)  # seeded
    assert (
        decide({"auc": 0.7, "baseline_auc": 0.75}, {"train": 40, "validation": 17}, 30)["scorer"]
        == "withheld"
    )
    assert (
        decide({"auc": 0.70, "baseline_auc": 0.75}, {"train": 40, "validation": 40}, 30)["scorer"]
        == "baseline"
    )
    assert (
        decide({"auc": 0.80, "baseline_auc": 0.75}, {"train": 40, "validation": 40}, 30)["scorer"] == "model"
    )


def test_weighted_auc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from segflow.lib.models.churn_guard import _auc

    rng = np.random.default_rng(4)
    y = (rng.random(500) < 0.4).astype(np.float64)
    score = np.round(y * 0.3 + rng.random(500), 1)  # coarse: many ties
    u, inv = np.unique(score, return_inverse=True)
    assert _auc(inv, y, np.ones(500), len(u)) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    counts = np.bincount(rng.integers(0, 500, 500), minlength=500)
    repeated = np.repeat(np.arange(500), counts)
    assert _auc(inv, y, counts.astype(float), len(u)) == pytest.approx(
        roc_auc_score(y[repeated], score[repeated]), abs=1e-12
    )


def _published(events):  # -> dg.Output
    """The table the asset publishes (it yields its contract checks' results after it)."""
    import dagster as dg

    return next(event for event in events if isinstance(event, dg.Output))
