"""End to end through Dagster: the whole graph for consecutive months, on the real IO manager.

A synthetic landing zone (clean enough to check outcomes, with the default dirt) is generated into
a temporary segflow home; runs go through the same jobs and resources as the CLI and the UI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from segflow.lib.periods import month_range
from segflow_tests.conftest import home_layout

FIRST, LAST = "2024-01", "2024-08"
TARGETS = ("2024-07", "2024-08")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segflow.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("segflow_home")
    generate(root / "landing", SynthConfig(customers=2500, months=8, start=FIRST, seed=7))
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGFLOW_HOME", str(root))
    mp.delenv("SEGFLOW_CONFIG", raising=False)
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def instance():
    # In memory (see conftest.memory_instance): the lineage test reads it back within the module.
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="module")
def defs(home: Path):  # after `home`: the settings are read from its SEGFLOW_HOME
    from segflow.definitions import defs as load

    return load()


def _run(defs: dg.Definitions, instance, job: str, period: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=period, instance=instance, raise_on_error=False
    )


@pytest.fixture(scope="module")
def built(defs, instance, home: Path) -> dict[str, dg.ExecuteInProcessResult]:
    for period in month_range(FIRST, "2024-06"):
        assert _run(defs, instance, "ingest_job", period).success, period
    # The out-of-time anchor of 2024-08 (T-h-1 with h = 3); 2024-07's, 2024-03, stays unbuilt.
    assert _run(defs, instance, "features_job", "2024-04").success
    return {period: _run(defs, instance, "segmentation_job", period) for period in TARGETS}


def test_full_graph_materialises_every_asset(built, defs, home: Path) -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for period, result in built.items():
        assert result.success, period
        materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialised == keys
        assert home_layout(home).report_page(period).exists()


def test_outputs_hold_what_they_promise(built, home: Path) -> None:
    profiles = pl.read_parquet(home_layout(home).table("customer_profiles", "2024-08"))
    assert profiles["customer_id"].is_unique().all() and profiles["customer_id"].null_count() == 0
    assert not {"name", "email"} & set(profiles.columns)
    features = pl.read_parquet(home_layout(home).table("customer_features", "2024-08"))
    assert (features["frequency"] > 0).all() and features["recency_days"].min() >= 1
    # Every synthetic line carries a category, so the per-category list nets to the month's revenue.
    listed = profiles["category_revenue"].list.eval(pl.element().struct.field("net_revenue")).list.sum()
    assert ((listed - profiles["net_revenue"]).abs() < 1e-6).all()
    shares = [c for c in features.columns if c.startswith("category_share_")]
    assert len(shares) == 8 + 1 and shares[-1] == "category_share_other"  # top features.category_top_n
    sums = features.select(shares).drop_nulls().select(pl.sum_horizontal(shares)).to_series()
    assert ((sums - 1).abs() < 1e-9).all() and sums.len() > 0.99 * features.height
    assignments = pl.read_parquet(home_layout(home).table("segment_assignments", "2024-08"))
    model = json.loads(home_layout(home).model("segmentation_model", "2024-08").read_text())
    assert assignments.height == features.height
    assert set(assignments["segment_id"].unique()) == set(range(model["k"]))
    assert (assignments["model_version"] == model["version"]).all()
    kpis = pl.read_parquet(home_layout(home).table("kpi_audit", "2024-08"))
    assert kpis["customers"].sum() == assignments.height
    assert abs(kpis["customer_share"].sum() - 1) < 1e-9 and abs(kpis["revenue_share"].sum() - 1) < 1e-9
    accounting = pl.read_parquet(home_layout(home).table("row_accounting", "2024-08"))
    balance = accounting["accepted_rows"] + accounting["quarantined_rows"] + accounting["duplicates_dropped"]
    assert (accounting["raw_rows"] == balance).all()
    quarantine = pl.read_parquet(home_layout(home).table("quarantined_rows", "2024-08"))
    assert {"missing_customer_id", "negative_price", "outside_partition", "quantity_outlier"} <= set(
        quarantine["rule_id"]
    )


def test_fit_reads_the_out_of_time_months_or_says_which_is_missing(built, home: Path) -> None:
    """Issue 17.7 through Dagster: the fit of T scores its candidates on the customers of T-4 and
    the profiles of T-3..T-1 when they are built, and records why not when they are not."""
    fits = {p: json.loads(home_layout(home).model("segmentation_fit", p).read_text()) for p in TARGETS}
    later = fits["2024-08"]["out_of_time"]
    assert later["available"] and later["anchor_period"] == "2024-04"
    assert later["outcome_periods"] == ["2024-05", "2024-06", "2024-07"]
    features = pl.read_parquet(home_layout(home).table("customer_features", "2024-04"))
    assert later["customers"] == features.height
    assert all(
        r["oot_separation"] is not None for r in fits["2024-08"]["sweep"] if r["silhouette"] is not None
    )
    earlier = fits["2024-07"]["out_of_time"]
    assert earlier == {"available": False, "anchor_period": "2024-03", "reason": earlier["reason"],
                       "outcome_periods": ["2024-04", "2024-05", "2024-06"]}  # fmt: skip
    assert "no customer_features for 2024-03" in earlier["reason"]
    assert all(r["oot_separation"] is None for r in fits["2024-07"]["sweep"])
    model = json.loads(home_layout(home).model("segmentation_model", "2024-08").read_text())
    assert model["out_of_time"] == later and "out-of-time shortfall" in model["selection_rule"]


def test_planted_segments_are_recovered(built, home: Path) -> None:
    truth = pl.read_parquet(home / "landing" / "_ground_truth" / "segments.parquet")
    for period in TARGETS:
        assignments = pl.read_parquet(home_layout(home).table("segment_assignments", period))
        joined = assignments.join(truth, on="customer_id", how="inner")
        assert joined.height == assignments.height
        ari = adjusted_rand_score(joined["segment"].to_list(), joined["segment_id"].to_list())
        print(f"ARI {period}: {ari:.3f}")
        assert ari >= 0.8


def test_pipeline_never_reads_ground_truth() -> None:
    sources = Path(__file__).resolve().parents[1] / "segflow"
    readers = [
        p
        for p in sources.rglob("*.py")
        if "_ground_truth" in p.read_text() and p.relative_to(sources).parts[0] != "synth"
    ]
    assert readers == []


def test_rebuild_is_identical(built, defs, instance, home: Path) -> None:
    layout = home_layout(home)
    paths = {
        "customer_profiles": layout.table("customer_profiles", "2024-08"),
        "customer_features": layout.table("customer_features", "2024-08"),
        "segmentation_model": layout.model("segmentation_model", "2024-08"),
        "segment_assignments": layout.table("segment_assignments", "2024-08"),
        "kpi_audit": layout.table("kpi_audit", "2024-08"),
    }

    def digest(asset: str) -> str:
        return hashlib.sha256(paths[asset].read_bytes()).hexdigest()

    assets = tuple(paths)
    before = {a: digest(a) for a in assets}
    report_before = layout.report_page("2024-08").read_bytes()
    assert _run(defs, instance, "segmentation_job", "2024-08").success
    assert {a: digest(a) for a in assets} == before
    assert layout.report_page("2024-08").read_bytes() == report_before


def test_lineage_metadata_recorded(built, instance) -> None:
    event = instance.get_latest_materialization_event(dg.AssetKey("customer_features"))
    meta = event.asset_materialization.metadata
    upstream = meta["upstream_partitions"].value["customer_profiles"]
    assert upstream == month_range("2024-01", event.asset_materialization.partition)[-12:]
    assert meta["dagster/row_count"].value > 0
    lineage = meta["dagster/column_lineage"].value.deps_by_column
    assert {d.column_name for d in lineage["recency_days"]} == {"last_purchase_at"}
    mix = meta["category_mix"].value
    assert mix["available"] and len(mix["categories"]) == 8
    assert all(
        {d.column_name for d in lineage[c["column"]]} == {"category_revenue"} for c in mix["categories"]
    )
    assert all(d.asset_key == dg.AssetKey("customer_profiles") for deps in lineage.values() for d in deps)
    version = event.asset_materialization.tags["dagster/data_version"]
    assert version.startswith(f"{meta['dagster/row_count'].value}-")
    segments = instance.get_latest_materialization_event(dg.AssetKey("segment_assignments"))
    deps = segments.asset_materialization.metadata["dagster/column_lineage"].value.deps_by_column
    assert {d.column_name for d in deps["recency_days"]} == {"recency_days"}
    assert {d.asset_key for d in deps["previous_segment_id"]} == {dg.AssetKey("segment_assignments")}
    assert "recency_days" in {d.column_name for d in deps["segment_id"]}
