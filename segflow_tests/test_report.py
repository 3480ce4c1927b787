"""The stakeholder report: sections, suppression, determinism, self-containment, the index, and no PII
in a report built through the real pipeline from data with names and e-mails."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from segflow.lib.display import rounded
from segflow.lib.report import render_report
from segflow.lib.report.render import render_index, summary_record
from segflow.lib.report.summary import executive_summary
from segflow_tests.report_fixtures import TINY, report_inputs


@pytest.fixture(scope="module")
def html() -> str:
    return render_report(report_inputs())


def test_report_has_every_section(html: str) -> None:
    for section in (
        "summary",
        "segments",
        "kpis",
        "lift",
        "migration",
        "drift",
        "backtest",
        "model",
        "quality",
        "methods",
    ):
        assert f'<section id="{section}">' in html
    for chart in (
        "chart-segment-sizes",
        "chart-campaign-lift",
        "chart-migration-cluster",
        "chart-migration-rfm",
        "chart-drift",
        "chart-backtest",
        "chart-model-sweep",
        "chart-quality-trend",
        "chart-segment-trend",
    ):
        assert f'id="{chart}"' in html
    assert "High-value loyal customers who buy often." in html and "Price-driven shoppers." in html


def test_drift_and_lift_reach_the_summary() -> None:
    inputs = report_inputs()
    lines, actions = executive_summary(inputs)
    assert any("Major drift" in line for line in lines)
    # Major feature drift asks for a review; the model is refit every month, so never "refit".
    assert any(a.startswith("Review the segments before reusing") for a in actions)
    assert not any("refit recommended" in a.lower() for a in [*lines, *actions])
    assert any("Bargain hunters" in a for a in actions)  # the planted campaign effect
    record = summary_record(inputs)
    assert record["refit_recommended"] and record["significant_lifts"] >= 1


def test_small_segment_is_suppressed(html: str) -> None:
    assert TINY not in html
    assert "1 segment(s) with fewer than 10 customers are not shown" in html
    assert TINY not in str(summary_record(report_inputs()))


def test_report_is_self_contained_and_deterministic(html: str) -> None:
    assert render_report(report_inputs()) == html
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\((?!#)", html)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert all(u.startswith(("http://www.w3.org/", "https://www.w3.org/")) for u in urls), urls


def test_quality_section_shows_imputation_rates_with_small_counts_suppressed(html: str) -> None:
    quality = html[html.index('<section id="quality">') : html.index('<section id="methods">')]
    assert '<h3 id="imputation">Imputed values</h3>' in quality
    assert "<tr><td>income</td><td>150</td><td>3,000</td><td>5.0%</td></tr>" in quality
    # 4 imputed birth years describe fewer than k = 10 customers: neither the count nor the rate shows.
    assert "<tr><td>birth_year</td><td>&lt;10</td><td>3,000</td><td>–</td></tr>" in quality
    assert "<tr><td>survey_brand_loyalty</td><td>0</td><td>3,000</td><td>0.0%</td></tr>" in quality
    assert "0.1%" not in quality  # 4 / 3,000, the suppressed rate


def test_index_links_every_month_with_trends() -> None:
    records = [summary_record(report_inputs(period=p)) for p in ("2024-03", "2024-04", "2024-05")]
    page = render_index(records)
    for month in ("2024-03", "2024-04", "2024-05"):
        assert f'href="{month}.html"' in page
    assert page.count('<div class="chart">') == 4 and page.count("<svg") >= 4
    assert TINY not in page


# ---------------------------------------------------------------------------------------------
# End to end: names and e-mails in the CRM source never reach the report.


@pytest.fixture(scope="module")
def pipeline_reports(tmp_path_factory: pytest.TempPathFactory):
    from segflow.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("report_home")
    generate(root / "landing", SynthConfig(customers=1200, months=2, start="2024-01", seed=11))
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGFLOW_HOME", str(root))
    mp.delenv("SEGFLOW_CONFIG", raising=False)
    from segflow.definitions import defs

    # In memory: see conftest.memory_instance (the instance is not what is tested here).
    with dg.DagsterInstance.ephemeral() as instance:
        job = defs().resolve_job_def("segmentation_job")
        results = {
            p: job.execute_in_process(partition_key=p, instance=instance, raise_on_error=False)
            for p in ("2024-01", "2024-02")
        }
        yield root, results
    mp.undo()


def test_pipeline_report_has_no_pii(pipeline_reports) -> None:
    root, results = pipeline_reports
    assert all(r.success for r in results.values())
    crm = pl.read_csv(root / "landing" / "crm_customers" / "2024-02.csv", infer_schema=False)
    names = set(crm["name"].drop_nulls()) | set(crm["email"].drop_nulls())
    ids = set(crm["customer_id"].drop_nulls())
    assert len(names) > 1000
    reports = root / "storage" / "reports"
    for page in ("2024-01.html", "2024-02.html", "index.html", "2024-02.json"):
        text = (reports / page).read_text(encoding="utf-8")
        words = set(re.findall(r"[\w.+-]+@[\w.-]+", text))
        assert not words, words
        assert not [n for n in names if n in text]
        tokens = set(re.findall(r"[A-Za-z0-9_-]+", text))
        assert not tokens & ids
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert 'href="2024-01.html"' in index and 'href="2024-02.html"' in index


def test_pipeline_report_metadata_and_drift_check(pipeline_reports) -> None:
    _, results = pipeline_reports
    result = results["2024-02"]
    report = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "audit_report"
    ]
    meta = report[0].materialization.metadata
    assert "## Customer segments 2024-02" in meta["summary"].value and "2024-02.html" in meta["summary"].value
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["segment_drift_major"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["kpi_audit_contract_errors"].passed
    html = Path(meta["path"].value).read_text(encoding="utf-8")
    assert "checks passed" in html or "check(s) passed" in html
    # Imputation: the method and seed on the profiles, the rate per column on the report.
    profiles = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "customer_profiles"
    ][0].materialization.metadata
    assert (
        profiles["imputation"].value["method"] == "iterative" and profiles["imputation"].value["seed"] == 42
    )
    rates = {r.data["column"]: r.data for r in meta["imputation_rates"].value.records}
    assert set(rates) == {"birth_year", "income", "household_size", "gender", "education"} | {
        f"survey_{q}"
        for q in ("price_sensitivity", "brand_loyalty", "eco_conscious", "tech_savvy", "convenience")
    }
    assert {c: r["imputed"] for c, r in rates.items()} == profiles["imputed_cells"].value
    assert rates["income"]["imputed"] == profiles["imputed_cells"].value["income"] > 0
    # The UI's metadata is rounded for people (segflow.lib.display), to exactly the true rate rounded.
    assert rates["income"]["rate"] == rounded(rates["income"]["imputed"] / rates["income"]["customers"])
    assert '<h3 id="imputation">Imputed values</h3>' in html and "<td>survey_convenience</td>" in html


def test_segment_cards_render_persona_cards() -> None:
    import dataclasses

    from segflow.lib.models.personas import build_personas
    from segflow_tests.report_fixtures import _month

    inputs = report_inputs()
    features, assignments = _month(2, 3000, shift=0.6)
    frame = features.join(assignments.select("customer_id", "rfm_segment"), on="customer_id").with_columns(
        pl.Series("country", ["Germany", "France", "Spain"] * 1000),
        pl.Series("preferred_channel", ["web"] * 3000),
    )
    labels = assignments["segment_id"].to_numpy()
    names = {int(i): f"Segment {i}" for i in set(labels.tolist())}
    cards = build_personas(frame, labels, names, "2024-03")
    html = render_report(dataclasses.replace(inputs, model=dataclasses.replace(inputs.model, personas=cards)))
    assert html.count("<summary>Persona card</summary>") == 4  # segment 4 (5 customers) is suppressed
    assert "Stands out by" in html and "RFM segment" in html and "Geography" in html
    # Effect sizes are in the appendix, not on the cards (issue 16.8).
    cards_html = html[html.index('<section id="segments">') : html.index('<section id="kpis">')]
    appendix = html[html.index('<section id="appendix">') :]
    assert not re.search(r"\(d ?= ?[+-]?[0-9]", cards_html) and "Cohen" not in cards_html
    assert "<th>Cohen's d</th>" in appendix.replace("&#39;", "'")
    assert cards["1"]["top_features"][0]["label"] in appendix
    assert cards["1"]["description"] in html
    assert "C000001" not in html  # aggregates only
