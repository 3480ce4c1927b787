"""Predicted value (BG/NBD + Gamma-Gamma) through lib functions and the assets called directly:
parameter recovery, published reference values, the BTYD summary, out-of-time validation against
the naive baseline, and withholding (no convergence, losing to the baseline, short history).

Parameter recovery tolerance: every parameter within 15% (relative) of the one the 20,000 simulated
customers were drawn from. At that size the estimates' sampling error is a few percent (measured:
r, alpha, a, b within 4%, p, q, v within 9%), so 15% fails on a wrong likelihood, not on noise.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from segflow.config import ModelSettings
from segflow.lib import periods
from segflow.lib.models import btyd
from segflow.lib.models.clv import SCORE_COLUMNS, ClvModel, btyd_summary, clv_scores, fit_clv_model, score

TRUE_BG = btyd.BgNbdParams(r=0.24, alpha=30.9, a=0.79, b=2.43)  # CDNOW's, alpha in days (4.41 weeks)
TRUE_GG = btyd.GammaGammaParams(p=6.25, q=3.74, v=15.44)  # CDNOW's (Fader and Hardie 2013)
TOLERANCE = 0.15
START, MONTHS = "2023-01", 24


def _close(fitted: dict, true: dict) -> dict[str, float]:
    return {k: abs(fitted[k] - v) / v for k, v in true.items()}


def test_bgnbd_and_gamma_gamma_recover_known_parameters() -> None:
    T = np.random.default_rng(1).uniform(30, 540, 20_000)
    x, t_x, T = btyd.simulate_bgnbd(TRUE_BG, T, seed=3)
    bg = btyd.fit_bgnbd(x, t_x, T)
    assert bg.converged, bg.message
    errors = _close(bg.params.to_dict(), TRUE_BG.to_dict())
    assert max(errors.values()) < TOLERANCE, errors
    repeat = x > 0
    m = btyd.simulate_gamma_gamma(TRUE_GG, x[repeat], seed=4)
    gg = btyd.fit_gamma_gamma(x[repeat], m)
    assert gg.converged, gg.message
    errors = _close(gg.params.to_dict(), TRUE_GG.to_dict())
    assert max(errors.values()) < TOLERANCE, errors
    # A wrong model is not "recovered": fitted on spend with half the true shape p, p is far off.
    wrong = btyd.fit_gamma_gamma(
        x[repeat], btyd.simulate_gamma_gamma(dataclasses.replace(TRUE_GG, p=3.1), x[repeat], 4)
    )
    assert _close(wrong.params.to_dict(), TRUE_GG.to_dict())["p"] > TOLERANCE


def test_predictions_match_the_published_cdnow_example() -> None:
    # Fader, Hardie and Lee (2005), section 5: with CDNOW's parameters (weeks), a customer with
    # x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226 purchases in the next 39 weeks.
    weeks = btyd.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    one = np.array([2.0]), np.array([30.43]), np.array([38.86])
    assert btyd.expected_purchases(weeks, 39.0, *one)[0] == pytest.approx(1.226, abs=0.001)
    assert 0 < btyd.p_alive(weeks, *one)[0] < 1
    # No repeat purchase: alive by the model's assumption; a long silence after many purchases: not.
    assert btyd.p_alive(weeks, np.array([0.0]), np.array([0.0]), np.array([50.0]))[0] == 1.0
    assert btyd.p_alive(weeks, np.array([10.0]), np.array([5.0]), np.array([60.0]))[0] < 0.05
    # Gamma-Gamma: no purchase gives the population mean, p v / (q - 1) = 35.22 for CDNOW.
    assert btyd.expected_spend(TRUE_GG, np.array([0.0]), np.array([0.0]))[0] == pytest.approx(35.22, abs=0.01)


def _profiles(customers: int, seed: int, regular: bool = False) -> dict[str, pl.DataFrame]:
    """Monthly profiles (the columns the summary reads) of customers whose first purchases fall in
    the first 12 months and who then buy as BG/NBD + Gamma-Gamma say, or, with ``regular``, every
    20 days without ever dropping out (where the naive past-rate baseline is nearly exact)."""
    rng = np.random.default_rng(seed)
    start, end = periods.bounds(START)[0], periods.bounds(periods.shift(START, MONTHS - 1))[1]
    births = rng.integers(0, 365, customers)
    T = (end - start).days - births - 1.0
    if regular:
        counts = (T // 20).astype(int)
        who = np.repeat(np.arange(customers), counts)
        when = np.concatenate([20.0 * np.arange(1, c + 1) for c in counts])
    else:
        who, when = btyd.simulate_purchases(TRUE_BG, T, seed)
    who = np.concatenate([np.arange(customers), who])
    when = np.concatenate([np.zeros(customers), when])
    nu = rng.gamma(TRUE_GG.q, 1.0 / TRUE_GG.v, customers)
    days = births[who] + np.floor(when).astype(int)
    lines = pl.DataFrame({
        "customer_id": [f"C{i:05d}" for i in who],
        "at": [start + timedelta(days=int(d), hours=10) for d in days],
        "value": rng.gamma(TRUE_GG.p, 1.0 / nu[who]),
    }).with_columns(pl.col("at").dt.strftime("%Y-%m").alias("period"))  # fmt: skip
    monthly = lines.group_by("period", "customer_id").agg(
        pl.col("at").dt.date().n_unique().cast(pl.Int64).alias("purchase_days"),
        pl.col("value").sum().alias("net_revenue"),
        pl.col("at").min().alias("first_purchase_at"),
        pl.col("at").max().alias("last_purchase_at"),
    )
    return {p: g.drop("period").sort("customer_id") for (p,), g in monthly.group_by("period")}


@pytest.fixture(scope="module")
def history() -> dict[str, pl.DataFrame]:
    return _profiles(4_000, seed=5)


@pytest.fixture(scope="module")
def model(history) -> ClvModel:
    """The model of the last month, fitted once for the tests that only read it."""
    return fit_clv_model(history, max(history), ModelSettings())


@pytest.fixture(scope="module")
def lost(history) -> ClvModel:
    """Customers who buy three times as often in the holdout's last month as the history says: the
    baseline, which ignores dropout, over-predicts and so comes closer; the model loses."""
    period = max(history)
    boom = {**history, period: history[period].with_columns(pl.col("purchase_days") * 3)}
    return fit_clv_model(boom, period, ModelSettings())


def test_btyd_summary_on_hand_built_profiles() -> None:
    def month(rows: list[tuple]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=["customer_id", "purchase_days", "net_revenue", "first_purchase_at",
                                          "last_purchase_at"], orient="row")  # fmt: skip

    jan = month([("a", 2, 30.0, datetime(2024, 1, 5, 9), datetime(2024, 1, 20, 18)),
                 ("b", 0, -10.0, None, None)])  # fmt: skip
    feb = month([("a", 1, 15.0, datetime(2024, 2, 10), datetime(2024, 2, 10)),
                 ("c", 1, 8.0, datetime(2024, 2, 29), datetime(2024, 2, 29))])  # fmt: skip
    summary = btyd_summary({"2024-01": jan, "2024-02": feb}, date(2024, 3, 1))
    # b only returned goods (no purchase day): not a customer of the BTYD model.
    assert summary.to_dicts() == [
        {"customer_id": "a", "frequency": 2.0, "recency_days": 36.0, "age_days": 56.0, "mean_value": 15.0},
        {"customer_id": "c", "frequency": 0.0, "recency_days": 0.0, "age_days": 1.0, "mean_value": 8.0},
    ]


def test_out_of_time_validation_beats_the_naive_baseline(history) -> None:
    period = max(history)
    segments = pl.DataFrame({"customer_id": ["C00000", "C00001"], "segment_id": [1, 2],
                             "segment_name": ["One", "Two"]})  # fmt: skip
    model = fit_clv_model(history, period, ModelSettings(), segments)
    assert model.available, model.reason
    totals = model.validation["totals"]
    print(f"\n[clv] synthetic BG/NBD history: {json.dumps(totals)}")
    assert totals["purchases_error"] < 0.10 and totals["purchases_error"] < totals["baseline_purchases_error"]
    assert totals["purchases_mae"] < totals["baseline_purchases_mae"]
    deciles = model.validation["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["customers"] for d in deciles) == totals["customers"]
    assert deciles[-1]["mean_actual_purchases"] > 5 * deciles[0]["mean_actual_purchases"]
    names = [s["segment_name"] for s in model.validation["segments"]]
    assert names == ["One", "Two", "not segmented"]
    # Fitted on the months up to T - h only: changing the holdout months leaves the parameters alone.
    altered = {**history, period: history[period].with_columns(pl.col("purchase_days") * 3)}
    refit = fit_clv_model(altered, period, ModelSettings(), segments)
    assert refit.fit == model.fit and refit.validation != model.validation
    # Stored as JSON, reloaded into the typed object, it scores the same.
    reloaded = ClvModel.from_dict(json.loads(json.dumps(model.to_dict())))
    customers = history[period].select("customer_id")
    first = clv_scores(customers, history, model, period)
    assert first.equals(clv_scores(customers, history, reloaded, period))
    assert first["p_alive"].is_between(0, 1).all() and (first["predicted_value"] > 0).all()
    assert first.null_count().sum_horizontal().item() == 0
    # A history the special functions overflow on is scored null, not NaN or infinity.
    extreme = pl.DataFrame({"customer_id": ["z"], "frequency": [1e308], "recency_days": [1.0],
                            "age_days": [1e308], "mean_value": [1.0]})  # fmt: skip
    scored = score(extreme, model, period)
    assert scored["expected_purchases"].null_count() == 1 and scored["predicted_value"].null_count() == 1


def test_discounting_lowers_the_value_and_not_the_purchases(history, model) -> None:
    period = max(history)
    summary = btyd_summary(history, periods.as_of(period))
    plain = score(summary, dataclasses.replace(model, discount_rate=0.0), period)
    discounted = score(summary, dataclasses.replace(model, discount_rate=0.05), period)
    assert plain["expected_purchases"].equals(discounted["expected_purchases"])
    assert (discounted["predicted_value"] < plain["predicted_value"]).all()
    assert (plain["predicted_value"] / discounted["predicted_value"]).is_between(1.05, 1.05**3).all()


def test_withheld_with_the_reason(history, lost, monkeypatch: pytest.MonkeyPatch) -> None:
    period = max(history)
    assert lost.available is False and "naive baseline" in lost.reason, lost.reason
    totals = lost.validation["totals"]
    assert totals["baseline_purchases_error"] <= totals["purchases_error"]
    # Regular buyers every 20 days who never drop out: BG/NBD's dropout and rate spread have no
    # maximum (they run to the boundary), so the fit does not converge and is withheld.
    regular = fit_clv_model(_profiles(1_000, seed=6, regular=True), period, ModelSettings())
    assert regular.available is False and "did not converge" in regular.reason, regular.reason
    # Too short a history: the holdout months are not there.
    short = fit_clv_model({START: history[START]}, periods.shift(START, 1), ModelSettings())
    assert short.available is False and "not enough history" in short.reason
    # An optimiser stopped after one step has not converged: withheld, never used.
    monkeypatch.setattr(btyd, "MAX_ITER", 1)
    stopped = fit_clv_model(history, period, ModelSettings())
    assert stopped.available is False and "did not converge" in stopped.reason
    scores = clv_scores(history[period].select("customer_id"), history, stopped, period)
    assert scores["predicted_value"].null_count() == scores.height


def test_clv_model_asset_records_validation_or_reason(history, model) -> None:
    import dagster as dg

    from segflow.config import load_settings
    from segflow.definitions import build_defs

    settings = load_settings()
    defs = build_defs(settings)
    clv_model = defs.get_assets_def("clv_model")
    # The whole history (within clv_history_months) for the summary; month T-h for the segments.
    windows = {
        upstream: (mapping.start_offset, mapping.end_offset)
        for upstream in ("customer_profiles", "customer_features", "segmentation_model")
        for mapping in [defs.resolve_assets_def("clv_model").get_partition_mapping(dg.AssetKey(upstream))]
    }
    assert windows == {
        "customer_profiles": (-119, 0),
        "customer_features": (-3, -3),
        "segmentation_model": (-3, -3),
    }
    assignments = defs.resolve_assets_def("segment_assignments")
    assert assignments.get_partition_mapping(dg.AssetKey("customer_profiles")).start_offset == -119
    period = max(history)
    lazy = {m: f.lazy() for m, f in history.items()}
    with dg.build_asset_context(partition_key=period, resources={"settings": settings}) as context:
        out = clv_model(context, customer_profiles=lazy, validation_features=None, validation_model=None)
    assert out.value == model  # the default settings' model
    meta = {key: getattr(value, "value", value) for key, value in out.metadata.items()}
    assert meta["available"] is True and meta["model_version"] == out.value.version
    assert (
        meta["validation_totals"]["purchases_error"] < meta["validation_totals"]["baseline_purchases_error"]
    )
    with dg.build_asset_context(partition_key=START, resources={"settings": settings}) as context:
        skipped = clv_model(context, customer_profiles={START: lazy[START]}, validation_features=None,
                            validation_model=None)  # fmt: skip
    assert skipped.value.available is False and "not enough history" in skipped.metadata["reason"].value
    # No line items (the snapshot feature set): withheld, saying why, whatever the profiles hold.
    sources = {
        **settings.sources,
        "transactions": dataclasses.replace(settings.sources["transactions"], enabled=False),
    }
    snapshot = dataclasses.replace(settings, sources=sources)
    with dg.build_asset_context(partition_key=period, resources={"settings": snapshot}) as context:
        none = clv_model(context, customer_profiles=lazy, validation_features=None, validation_model=None)
    assert none.value.available is False and "no transaction line items" in none.value.reason


def test_report_section_shows_value_calibration_and_definitions(history, model, lost) -> None:
    from segflow.config import load_settings
    from segflow.lib.report import render_report
    from segflow.lib.report.value import clv_text, value_section
    from segflow_tests.report_fixtures import report_inputs

    inputs = report_inputs()
    n = inputs.kpis.height
    kpis = inputs.kpis.with_columns(
        pl.Series("predicted_value", [1000.0 * (i + 1) for i in range(n)]),
        pl.Series("predicted_value_share", [(i + 1) / (n * (n + 1) / 2) for i in range(n)]),
        pl.Series("expected_purchases", [10.0] * n),
        pl.Series("mean_p_alive", [0.5] * n),
    )
    settings = load_settings()
    methods = {**inputs.methods, "Predicted value (CLV)": clv_text(settings, model)}
    page = render_report(dataclasses.replace(inputs, kpis=kpis, clv=model, methods=methods))
    section = page[
        page.index('<section id="value">') : page.index("</section>", page.index('<section id="value">'))
    ]
    assert 'id="chart-value-calibration"' in section and "<svg" in section
    assert "Out-of-time validation" in section and "naive baseline" in section
    assert f"{model.validation['totals']['actual_purchases']:,.0f} actual" in section
    assert "1,000.00" in section and "Withheld" not in section  # value by segment
    assert "Predicted value (CLV)" in page and "BG/NBD" in page and model.version in page
    # A small segment is not shown; a decile under min_cell customers neither.
    small = value_section(model, kpis, min_cell=10_000)
    assert small["chart"] == "" and small["rows"] == [] and small["deciles"] == []
    assert small["suppressed"] == n and small["deciles_suppressed"] == 10
    # Withheld: the reason is shown, with the validation that made it lose.
    page = render_report(dataclasses.replace(inputs, kpis=kpis, clv=lost))
    assert "Withheld this month:" in page and "naive baseline" in page and "1,000.00" not in page
    assert "Not available this month: out of time" in clv_text(settings, lost)


def test_kpis_per_segment_total_share_and_null_when_withheld() -> None:
    from segflow.lib.audit.kpis import segment_kpis

    base = {"customer_id": ["a", "b", "c"], "segment_id": [0, 0, 1], "segment_name": ["X", "X", "Y"],
            "net_revenue_window": [10.0, 20.0, 30.0], "invoices_window": [1, 2, 3], "recency_days": [5, 6, 7]}  # fmt: skip
    scored = pl.DataFrame({**base, "p_alive": [0.5, 1.0, 0.25], "expected_purchases": [1.0, 2.0, 3.0],
                           "predicted_value": [100.0, 200.0, 100.0]})  # fmt: skip
    kpis = segment_kpis(scored).select("segment_id", "predicted_value", "predicted_value_share",
                                       "expected_purchases", "mean_p_alive")  # fmt: skip
    assert kpis.to_dicts() == [
        {"segment_id": 0, "predicted_value": 300.0, "predicted_value_share": 0.75, "expected_purchases": 3.0,
         "mean_p_alive": 0.75},
        {"segment_id": 1, "predicted_value": 100.0, "predicted_value_share": 0.25, "expected_purchases": 3.0,
         "mean_p_alive": 0.25},
    ]  # fmt: skip
    # Withheld (null columns) or absent: null, never a predicted value of 0.
    nulls = scored.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in SCORE_COLUMNS)
    for frame in (nulls, pl.DataFrame(base)):
        kpis = segment_kpis(frame)
        for column in ("predicted_value", "predicted_value_share", "expected_purchases", "mean_p_alive"):
            assert kpis[column].null_count() == kpis.height, column
