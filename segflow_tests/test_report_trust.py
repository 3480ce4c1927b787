"""Issue 16, the report's trust defects, unit by unit (pure functions, no pipeline run): names bound
to ids, stay rate from ids, drift and lift wording, personas and families from what the source
delivers, plain axis numbers and one index line per segment id."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from segflow.lib.audit.drift import feature_drift
from segflow.lib.audit.lift import INSUFFICIENT, NO_CONTROL, campaign_lift
from segflow.lib.audit.migration import migration_matrix, stay_rate
from segflow.lib.features.snapshot import feature_families
from segflow.lib.models.naming import _PHRASES, NAME_HOLDS_Z, bind_names
from segflow.lib.models.personas import build_personas
from segflow.lib.report.audits import _drift_section
from segflow.lib.report.render import _share_lines, render_index
from segflow_tests.report_fixtures import report_inputs

LAST = {"period": "2024-01", "segment_names": {"0": "Frequent, recently active customers"},
        "segment_name_basis": {"0": [{"feature": "invoices_per_month", "direction": "higher", "z": 1.2},
                                     {"feature": "recency_days", "direction": "lower", "z": -1.0}]},
        "segment_named_since": {"0": "2023-11"}}  # fmt: skip
MATCHED = {"matched": {"0": {"previous_id": 0, "distance": 0.1}}}


@pytest.fixture(scope="module")
def inputs():
    return report_inputs()  # built once: its KPIs and matrices take seconds


def test_a_name_survives_a_reshuffle_of_its_features() -> None:
    # Recency now ranks first: a fresh name would read "Recently active, frequent customers".
    z = {0: {"recency_days": -1.4, "invoices_per_month": 0.9, "monetary": 0.2}}
    naming = bind_names(z, _PHRASES, MATCHED, LAST, "2024-02")
    assert naming["segment_names"] == {"0": "Frequent, recently active customers"}
    assert naming["segment_renames"] == [] and naming["segment_named_since"] == {"0": "2023-11"}
    assert naming["segment_name_basis"]["0"][0] == {"feature": "invoices_per_month", "direction": "higher", "z": 0.9}


def test_a_material_change_renames_and_says_why() -> None:
    z = {0: {"recency_days": 1.5, "invoices_per_month": 0.9, "monetary": -0.8}}  # now lapsing
    naming = bind_names(z, _PHRASES, MATCHED, LAST, "2024-02")
    assert naming["segment_names"]["0"] == "Lapsing, frequent customers"
    [change] = naming["segment_renames"]
    assert change["previous_name"] == "Frequent, recently active customers" and change["segment_id"] == 0
    assert "days since last purchase no longer clearly lower" in change["reason"] and str(NAME_HOLDS_Z) in change["reason"]
    assert naming["segment_named_since"] == {"0": "2024-02"}


def test_unmatched_segments_get_fresh_unique_names() -> None:
    z = {0: {"recency_days": -1.4, "invoices_per_month": 0.9}, 1: {"recency_days": -1.3, "invoices_per_month": 0.8}}
    naming = bind_names(z, _PHRASES, MATCHED, LAST, "2024-02")
    assert naming["segment_names"] == {"0": "Frequent, recently active customers",
                                       "1": "Recently active, frequent customers"}  # fmt: skip
    naming = bind_names(z, _PHRASES, {"matched": {}}, None, "2024-02")
    assert naming["segment_names"]["1"].endswith("(segment 1)") and naming["segment_renames"] == []


def test_stay_rate_compares_ids_not_names() -> None:
    before = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "segment_id": [0, 0, 1, 1],
                           "segment_name": ["Old name", "Old name", "y", "y"]})  # fmt: skip
    after = before.with_columns(pl.lit("New name").alias("segment_name"), pl.Series("segment_id", [0, 1, 1, 1]))
    matrix = migration_matrix(before, after, "cluster")
    assert stay_rate(matrix) == 0.75  # a, c, d kept their id; by names only c and d "stayed"
    assert set(matrix.filter(pl.col("from_id") == pl.col("to_id"))["customers"]) == {1, 2}


def test_segment_share_psi_only_between_aligned_segments() -> None:
    features = pl.DataFrame({"x": np.arange(100.0)})
    before = pl.DataFrame({"segment_id": [0] * 50 + [1] * 50, "rfm_segment": ["Loyal"] * 100})
    after = pl.DataFrame({"segment_id": [0] * 50 + [2] * 50, "rfm_segment": ["Loyal"] * 100})  # 1 vanished, 2 new
    everything = feature_drift(features, features, before, after)
    aligned = feature_drift(features, features, before, after, aligned_ids=[0])
    share = {r["name"]: r for r in everything.iter_rows(named=True)}["cluster segments"]
    assert share["band"] == "major"  # ids 1 and 2 compared as if one were the other's shift
    row = aligned.filter(pl.col("kind") == "segment_share").row(0, named=True)
    assert row["name"] == "cluster segments (1 aligned)" and row["psi"] is None and row["band"] == "n/a"
    # With two aligned segments their shares are compared among themselves, the new one left out.
    before = pl.DataFrame({"segment_id": [0] * 40 + [1] * 40 + [2] * 20, "rfm_segment": ["Loyal"] * 100})
    after = pl.DataFrame({"segment_id": [0] * 30 + [1] * 30 + [3] * 40, "rfm_segment": ["Loyal"] * 100})
    row = feature_drift(features, features, before, after, aligned_ids=[0, 1]).filter(
        pl.col("kind") == "segment_share"
    ).row(0, named=True)
    assert row["psi"] < 1e-9 and row["bins"] == 2 and row["band"] == "stable"


def test_segment_share_drift_alone_never_asks_for_a_refit(inputs) -> None:
    drift = pl.DataFrame({"kind": ["feature", "segment_share"], "name": ["monetary", "cluster segments"],
                          "psi": [0.02, 0.9], "band": ["stable", "major"], "bins": [10, 5],
                          "reference_mean": [1.0, None], "current_mean": [1.0, None]})  # fmt: skip
    section = _drift_section(inputs.__class__(**{**inputs.__dict__, "drift": drift}))
    assert not section["refit"] and section["major"] == [] and section["shares_moved"]


def test_no_control_arm_is_not_an_insufficient_sample() -> None:
    exposures = pl.DataFrame({"campaign_id": ["A"] * 300 + ["B"] * 20, "customer_id": [f"c{i}" for i in range(320)],
                              "arm": ["treatment"] * 300 + ["treatment", "control"] * 10,
                              "responded": [i % 7 == 0 for i in range(320)]})  # fmt: skip
    segments = pl.DataFrame({"customer_id": [f"c{i}" for i in range(320)], "segment_id": 0, "segment_name": "s"})
    status = dict(campaign_lift(exposures, segments, min_arm_size=50).select("campaign_id", "status").iter_rows())
    assert status == {"A": NO_CONTROL, "B": INSUFFICIENT}


def _channel_frame(n: int, channel: bool) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    web = rng.random(n) if channel else np.zeros(n)
    return pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "monetary": rng.gamma(2, 50, n),
                         "invoices_per_month": rng.gamma(2, 1, n), "web_share": web,
                         "store_share": 1 - web if channel else np.zeros(n), "app_share": np.zeros(n)})  # fmt: skip


def test_personas_and_families_claim_only_what_the_source_delivers() -> None:
    labels = np.array([0, 1] * 100)
    for channel in (True, False):
        frame = _channel_frame(200, channel)
        cards = build_personas(frame, labels, {0: "a", 1: "b"}, "2024-02")
        claims = [c["purchase_channel"] for c in cards.values()]
        assert all(claims) if channel else claims == [None, None]
        assert ("via" in cards["0"]["description"]) == channel
        families = {f["family"]: f for f in feature_families("transactions", {"transactions": True}, [], {}, frame)}
        assert families["channel_mix"]["available"] is channel
        assert families["category_mix"]["available"] is False  # no category_share_* column
        assert "no product category" in families["category_mix"]["note"]
    with_categories = _channel_frame(200, True).with_columns(pl.lit(0.5).alias("category_share_books"))
    families = {f["family"]: f for f in feature_families("transactions", {"transactions": True}, [], {}, with_categories)}
    assert families["category_mix"]["available"] is True


def test_index_draws_one_line_per_id_with_plain_axis_numbers() -> None:
    records = [
        {"period": "2024-01", "customers": 900, "revenue": 2_400_000.0, "segments": 2, "max_feature_psi": 0.1,
         "refit_recommended": False, "significant_lifts": 0, "model_version": "a",
         "segment_share": {"0: Frequent, recently active customers": 60.0, "1: Lapsing customers": 40.0}},
        {"period": "2024-02", "customers": 950, "revenue": 2_600_000.0, "segments": 2, "max_feature_psi": 0.1,
         "refit_recommended": False, "significant_lifts": 0, "model_version": "b", "currency": "GBP",
         "window_filling": True, "segment_share": {"0": 58.0, "1": 42.0},
         "segment_names": {"0": "Recently active, frequent customers", "1": "Lapsing customers"}},
    ]  # the first written before ids were the key, the second after a rename
    page = render_index(records)
    assert page.count("Recently active, frequent customers") == 1 and "0: Frequent, recently active" not in page
    assert page.count("1: Lapsing customers") == 1
    assert "1e6" not in page and "2,500,000" in page and "net revenue (GBP)" in page
    assert "window was still filling up" in page
    # A new segment that takes over id 1 (no match last month): still one legend entry per id, but
    # the line is broken there (drawn as two runs), so it never joins two different segments.
    records.append({**records[1], "period": "2024-03", "new_ids": ["1"], "segment_share": {"0": 50.0, "1": 50.0},
                    "segment_names": {"0": "Recently active, frequent customers", "1": "Big-basket customers"}})
    lines, breaks = _share_lines(records)
    assert list(lines) == ["0: Recently active, frequent customers", "1: Big-basket customers"]
    assert breaks == {"0: Recently active, frequent customers": set(), "1: Big-basket customers": {2}}
    page = render_index(records)
    assert page.count("1: Big-basket customers") == 1 and "Lapsing customers" not in page


def test_a_new_segment_reusing_an_id_is_not_compared_with_last_months_id(inputs) -> None:
    import dataclasses

    from segflow.lib.report.segments import _segment_cards
    from segflow.lib.report.summary import executive_summary

    alignment = {**inputs.model.alignment, "new": [0, 4],
                 "matched": {str(i): {"previous_id": i, "distance": 0.1} for i in (1, 2, 3)}}  # fmt: skip
    inputs = dataclasses.replace(inputs, model=dataclasses.replace(inputs.model, alignment=alignment))
    lines, _ = executive_summary(inputs)
    assert not any("biggest shift is “Big spenders”" in line for line in lines)
    card = next(c for c in _segment_cards(inputs) if c["label"] == "0: Big spenders")  # no chart rendering
    assert card["change"] == "new this month: no segment of 2024-02 matches it"
    assert all("pp share vs" in c["change"] for c in _segment_cards(inputs) if c["label"] != "0: Big spenders")


def test_a_month_where_no_segment_reaches_the_minimum_cell_still_renders(inputs) -> None:
    # The profile heatmap of no reportable segment was an empty image, and matplotlib raised.
    from segflow.lib.report import render_report

    html = render_report(inputs.__class__(**{**inputs.__dict__, "min_cell": 10**9}))
    assert 'id="chart-segment-profiles"' not in html
    assert 'id="chart-segment-profiles"' in render_report(inputs)
