"""A behaviour shift planted between two months shows in PSI, in migration, and the drift check warns."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl
import pytest

from segflow.defs.audit.checks import drift_check_result
from segflow.lib.audit.drift import band, feature_drift, psi_categorical, psi_numeric
from segflow.lib.audit.migration import LOST, NEW, migration_matrix


def _month(seed: int, n: int = 4000, shift: float = 0.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    monetary = rng.lognormal(5, 1, n)
    shifted = rng.random(n) < shift
    monetary = np.where(shifted, monetary * 5, monetary)  # the planted shift: some customers spend 5x
    features = pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "monetary": monetary,
            "recency_days": rng.integers(1, 365, n),
            "email_open_rate": rng.beta(2, 5, n),
        }
    )
    high = monetary > 300
    assignments = pl.DataFrame(
        {
            "customer_id": features["customer_id"],
            "segment_id": high.astype(np.int64),
            "segment_name": np.where(high, "big spenders", "small spenders"),
            "rfm_segment": np.where(high, "Champions", "Hibernating"),
        }
    )
    return features, assignments


def test_psi_bands_and_identical_distributions() -> None:
    assert (band(0.05), band(0.1), band(0.2), band(0.26), band(None)) == (
        "stable",
        "moderate",
        "moderate",
        "major",
        "n/a",
    )
    values = pl.Series("x", np.arange(1000.0))
    assert psi_numeric(values, values)[0] == pytest.approx(0.0)
    shares = pl.Series("s", ["a"] * 50 + ["b"] * 50)
    assert psi_categorical(shares, shares)[0] == pytest.approx(0.0)


def test_planted_shift_shows_in_psi_migration_and_the_check() -> None:
    before_f, before_a = _month(1)
    after_f, after_a = _month(1, shift=0.5)
    drift = feature_drift(before_f, after_f, before_a, after_a)
    psi = {r["name"]: r["psi"] for r in drift.iter_rows(named=True)}
    print({k: round(v, 4) for k, v in psi.items()})
    assert psi["monetary"] > 0.25 and drift.filter(pl.col("name") == "monetary")["band"].item() == "major"
    assert psi["recency_days"] < 0.1 and psi["email_open_rate"] < 0.1  # unchanged features stay stable
    assert psi["cluster segments"] > 0.1
    matrix = migration_matrix(before_a, after_a, "cluster")
    p = {(r["from_segment"], r["to_segment"]): r["probability"] for r in matrix.iter_rows(named=True)}
    print(p)
    assert p[("0: small spenders", "1: big spenders")] > 0.2
    assert p.get(("1: big spenders", "0: small spenders"), 0.0) == 0.0
    for _, rows in matrix.group_by("from_segment"):
        assert rows["probability"].sum() == pytest.approx(1.0)
    result = drift_check_result(drift)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "monetary" in result.metadata["major_drift"].value


def test_no_shift_is_stable_and_the_check_passes() -> None:
    before_f, before_a = _month(1)
    after_f, after_a = _month(2)
    drift = feature_drift(before_f, after_f, before_a, after_a)
    assert (drift["band"] == "stable").all(), drift
    assert drift_check_result(drift).passed


def test_migration_counts_new_and_lost() -> None:
    before = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "segment_id": [0, 0, 1],
            "segment_name": ["x", "x", "y"],
            "rfm_segment": ["Lost", "Loyal", "Loyal"],
        }
    )
    after = pl.DataFrame(
        {
            "customer_id": ["a", "c", "d"],
            "segment_id": [1, 1, 0],
            "segment_name": ["y", "y", "x"],
            "rfm_segment": ["Loyal", "Loyal", "Recent"],
        }
    )
    cluster = {
        (r["from_segment"], r["to_segment"]): (r["customers"], r["probability"])
        for r in migration_matrix(before, after, "cluster").iter_rows(named=True)
    }
    assert cluster == {
        ("0: x", "1: y"): (1, 0.5),
        ("0: x", LOST): (1, 0.5),
        ("1: y", "1: y"): (1, 1.0),
        (NEW, "0: x"): (1, 1.0),
    }
    rfm = migration_matrix(before, after, "rfm")
    assert set(rfm["kind"]) == {"rfm"} and rfm["customers"].sum() == 4
