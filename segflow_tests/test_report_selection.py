"""The report's model-selection section (issue 16.3): the rule in one place, shared by the footnote,
Methods and the code; a family column; "(chosen)" on the chosen candidate only; HDBSCAN rows with
their real values; one chart line per family; and both scores of issue 17.7 in the table."""

from __future__ import annotations

import dataclasses
import re
from html import unescape

import pytest

from segflow.config import ModelSettings, load_settings
from segflow.lib.models.model_types import SegmentationModel
from segflow.lib.models.selection import rule_text
from segflow.lib.report import render_report
from segflow.lib.report.methods import methods_text
from segflow_tests.report_fixtures import report_inputs


def _row(family: str, params: dict, k: int | None, silhouette: float | None, **scores) -> dict:
    base = {"family": family, "params": params, "k": k, "silhouette": silhouette,
            "calinski_harabasz": None if silhouette is None else 800.0 + 10 * (k or 0),
            "davies_bouldin": None if silhouette is None else 1.2, "min_segment_share": None if k is None else 0.06,
            "noise_share": None, "stability": None, "ari_refits": None, "oot_revenue": None,
            "oot_purchases": None, "oot_separation": None, "combined": None, "finalist": False, "viable": False}  # fmt: skip
    return {**base, **scores}


def _sweep() -> list[dict]:
    oot = {"oot_revenue": 0.21, "oot_purchases": 0.25, "oot_separation": 0.23}
    return [
        _row("kmeans", {"k": 2}, 2, 0.385, **oot, stability=0.95, ari_refits=0.9, combined=1.2, finalist=True,
             viable=True, oot_beyond_rfm=0.002, oot_shortfall=0.68),
        _row("kmeans", {"k": 3}, 3, 0.341, **{**oot, "oot_separation": 0.31}, stability=0.91, ari_refits=0.88,
             combined=1.3, finalist=True, viable=True, oot_beyond_rfm=0.031, oot_shortfall=0.0),
        _row("ward", {"k": 2}, 2, 0.37, **oot),
        _row("ward", {"k": 3}, 3, 0.33, **oot),
        _row("hdbscan", {"min_cluster_share": 0.02, "metric": "euclidean"}, None, None),  # degenerate fit
        _row("hdbscan", {"min_cluster_share": 0.05, "metric": "euclidean"}, 4, 0.212, noise_share=0.07, **oot),
        _row("gmm", {"k": 2, "covariance_type": "full"}, 2, 0.15, **oot),
        _row("gmm", {"k": 3, "covariance_type": "full"}, 3, 0.18, **oot),
        _row("gmm", {"k": 2, "covariance_type": "diag"}, 2, 0.14, **oot),
        _row("gmm", {"k": 3, "covariance_type": "diag"}, 3, 0.17, **oot),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def inputs():
    base = report_inputs()
    rule = rule_text(ModelSettings())
    model = SegmentationModel.from_dict(
        {**base.model.to_dict(), "family": "kmeans", "k": 3, "chosen_index": 1, "sweep": _sweep(),
         "selection_rule": rule, "features": [], "dropped_constant_features": [],
         "settings": {"k_min": 2, "k_max": 8, "n_init": 10},
         "out_of_time": {"available": True, "anchor_period": "2023-11", "customers": 2048, "rfm_separation": 0.24,
                         "outcome_periods": ["2023-12", "2024-01", "2024-02"]}})  # fmt: skip
    methods = methods_text(load_settings(), model)
    return dataclasses.replace(base, model=model, sweep=model.sweep, methods=methods)


@pytest.fixture(scope="module")
def html(inputs) -> str:
    return render_report(inputs)  # one render (charts take seconds) for the section's tests


def _section(html: str) -> str:
    return html[
        html.index('<section id="model">') : html.index("</section>", html.index('<section id="model">'))
    ]


def test_selection_section_has_families_one_chosen_row_and_real_values(inputs, html: str) -> None:
    section = _section(html)
    sweep_table = section[: section.index("</table>")]  # the stability table follows in the section
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", sweep_table, flags=re.S)
    header, body = rows[0], rows[1:]
    assert (
        "<th>Family</th>" in header
        and "<th>Out-of-time separation</th>" in header
        and "<th>Score</th>" in header
    )
    assert len(body) == len(inputs.sweep)
    chosen = [r for r in body if "(chosen)" in r]
    assert len(chosen) == 1 and "k-means (chosen)" in chosen[0] and "k = 3" in chosen[0]
    assert "0.310 (0.210 / 0.250), +0.031 beyond RFM" in chosen[0] and "1.300" in chosen[0]  # both scores
    assert "0.230 (0.210 / 0.250), +0.002 beyond RFM, 68% short" in body[0]  # the recency split's shortfall
    assert "which alone explain 0.240" in section  # the RFM segments' own separation, the gain's base
    hdbscan = [r for r in body if "HDBSCAN" in r]
    assert "no segmentation: the fit found fewer than two segments" in hdbscan[0]
    assert "0.212" in hdbscan[1] and "noise 7.0%" in hdbscan[1] and "min cluster 5% of sample" in hdbscan[1]
    assert "None" not in section
    assert "not measured: could not win" in body[2]  # a non-finalist's stability is not a zero
    assert "customers of 2023-11, scored on their revenue and purchases in 2023-12..2024-02" in section


def test_selection_rule_is_one_text_for_footnote_methods_and_code(inputs, html: str) -> None:
    rule = rule_text(ModelSettings())
    assert f"Rule: {rule}." in unescape(_section(html))  # the footnote
    assert f"by the selection rule: {rule}." in inputs.methods["Model"]  # Methods
    assert "best silhouette" not in html
    # The words carry the thresholds and weights the code applies.
    strict = dataclasses.replace(ModelSettings(), min_segment_share=0.05, min_stability=0.8, oot_weight=2.0)
    assert "under 5% of customers" in rule_text(strict) and "under 0.80" in rule_text(strict)
    assert "− 2 × out-of-time shortfall" in rule_text(strict) and "+ 0.5 × mean ARI" in rule_text(strict)


def test_selection_chart_draws_one_line_per_family(inputs, monkeypatch) -> None:
    from segflow.lib.report import charts
    from segflow.lib.report.selection import selection_chart

    drawn = {}
    monkeypatch.setattr(charts, "family_lines", lambda series, panels, title: drawn.update(series) or "")
    selection_chart(inputs.sweep)
    assert set(drawn) == {"k-means", "Ward", "HDBSCAN (euclidean)", "Gaussian mixture (full)",
                          "Gaussian mixture (diag)"}  # fmt: skip
    assert drawn["k-means"]["silhouette (sampled, −1 to 1)"] == [(2, 0.385), (3, 0.341)]
    assert drawn["Gaussian mixture (diag)"]["out-of-time separation (η², 0 to 1)"] == [(2, 0.23), (3, 0.23)]
