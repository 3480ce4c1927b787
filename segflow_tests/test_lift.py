"""Campaign lift on synthetic data with a campaign effect planted in one segment only."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from segflow.lib.audit.kpis import segment_kpis
from segflow.lib.audit.lift import INSUFFICIENT, campaign_lift, holm, two_proportion_test
from segflow.synth import SEGMENTS, SynthConfig, generate


def _month(
    tmp: Path, seed: int, lift_segment: str | None = "bargain_hunters"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    generate(tmp, SynthConfig(customers=20_000, months=1, seed=seed, campaign_lift_segment=lift_segment))
    campaigns = pl.read_parquet(tmp / "campaigns" / "2024-01.parquet")
    truth = pl.read_parquet(tmp / "_ground_truth" / "segments.parquet")
    segments = truth.select(
        "customer_id",
        pl.col("segment")
        .replace_strict({s: i for i, s in enumerate(SEGMENTS)}, return_dtype=pl.Int64)
        .alias("segment_id"),
        pl.col("segment").alias("segment_name"),
    )
    return campaigns, segments


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_planted_lift_is_found_in_its_segment_only(tmp_path: Path, seed: int) -> None:
    campaigns, segments = _month(tmp_path, seed)
    lift = campaign_lift(campaigns, segments, min_arm_size=50, alpha=0.05)
    print(
        lift.select(
            "segment_name", "campaign_id", "treatment_n", "control_n", "abs_lift", "p_value", "p_value_holm"
        )
    )
    assert (lift["status"] == "tested").all()
    planted = lift.filter(pl.col("segment_name") == "bargain_hunters")
    others = lift.filter(pl.col("segment_name") != "bargain_hunters")
    assert planted.height >= 1 and planted["significant"].all()
    assert (planted["abs_lift"] > 0).all() and (planted["ci_low"] > 0).all()
    assert not others["significant"].any()
    # The CI of the difference covers zero wherever nothing was planted.
    assert ((others["ci_low"] < 0) & (others["ci_high"] > 0)).all()


def test_no_planted_effect_means_no_significant_lift(tmp_path: Path) -> None:
    campaigns, segments = _month(tmp_path, 4, lift_segment=None)
    lift = campaign_lift(campaigns, segments)
    assert lift.height > 0 and not lift["significant"].any()


def test_small_arms_are_insufficient_and_untested() -> None:
    campaigns = pl.DataFrame(
        {
            "campaign_id": ["C1"] * 40,
            "customer_id": [f"c{i}" for i in range(40)],
            "arm": ["treatment", "control"] * 20,
            "responded": [True, False, False, False] * 10,
        }
    )
    segments = pl.DataFrame(
        {"customer_id": [f"c{i}" for i in range(40)], "segment_id": [0] * 40, "segment_name": ["a"] * 40}
    )
    lift = campaign_lift(campaigns, segments, min_arm_size=50)
    row = lift.row(0, named=True)
    assert row["status"] == INSUFFICIENT and row["p_value"] is None and row["significant"] is None
    assert row["treatment_n"] == 20 and row["treatment_rate"] == 0.5 and row["control_rate"] == 0.0


def test_z_test_matches_scipy_chi_square_and_holm() -> None:
    from scipy import stats

    result = two_proportion_test(60, 500, 40, 500)
    table = [[60, 440], [40, 460]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert result["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)
    assert result["ci_low"] < 0.04 < result["ci_high"]
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_kpis_carry_response_per_arm_and_flows() -> None:
    current = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "segment_id": [0, 0, 1, 1],
            "segment_name": ["x", "x", "y", "y"],
            "net_revenue_window": [10.0, 30.0, 5.0, 5.0],
            "invoices_window": [1, 3, 1, 1],
            "recency_days": [5, 10, 50, 70],
        }
    )
    previous = current.filter(pl.col("customer_id") != "d").vstack(
        pl.DataFrame(
            {
                "customer_id": ["e"],
                "segment_id": [1],
                "segment_name": ["y"],
                "net_revenue_window": [1.0],
                "invoices_window": [1],
                "recency_days": [3],
            }
        )
    )
    campaigns = pl.DataFrame(
        {
            "campaign_id": ["C"] * 4,
            "customer_id": ["a", "b", "c", None],
            "arm": ["treatment", "control", "treatment", "control"],
            "responded": [True, False, False, True],
        }
    )
    kpis = segment_kpis(current, None, previous, campaigns)
    x, y = kpis.row(0, named=True), kpis.row(1, named=True)
    assert (x["customers"], x["new_customers"], x["retained_customers"], x["lost_customers"]) == (2, 0, 2, 0)
    assert (y["customers"], y["new_customers"], y["retained_customers"], y["lost_customers"]) == (2, 1, 1, 1)
    assert x["revenue_share"] == pytest.approx(0.8) and x["avg_order_value"] == pytest.approx(10.0)
    assert (x["treatment_exposed"], x["treatment_response_rate"], x["control_response_rate"]) == (1, 1.0, 0.0)
    assert y["control_exposed"] == 0 and y["control_response_rate"] is None
    assert x["mean_churn_risk"] is None
    first = segment_kpis(current.with_columns(pl.lit(0.25).alias("churn_risk")))
    assert first["new_customers"].null_count() == 2 and first["mean_churn_risk"].to_list() == [0.25, 0.25]
