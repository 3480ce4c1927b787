"""Small versions of the benchmarks, so that their code keeps working (figures are not asserted)."""

from __future__ import annotations


def test_gx_gating_benchmark_runs() -> None:
    from benchmarks.bench_gx import run

    result = run(customers=800, intensity=1.0, runs=1)
    assert result["line_items"] > 1000 and result["profiles"] > 700
    assert result["compute_seconds"]["median"] > 0 and result["gx_seconds"]["median"] > 0
    assert result["ratio"] == result["gx_seconds"]["median"] / result["compute_seconds"]["median"]


def test_model_selection_benchmark_runs() -> None:
    from benchmarks.bench_selection import run
    from benchmarks.run import selection_section

    result = run(customers=2000, runs=1)
    assert result["customers"] == 2000 and result["design_columns"] == 11
    assert result["chosen"]["k"] == 5 and result["ari_vs_planted"] > 0.9  # five groups planted
    assert result["ratio"] == result["sweep_seconds"]["median"] / result["kmeans_baseline_seconds"]["median"]
    table = "\n".join(selection_section([(result, "python -m benchmarks.bench_selection --customers 2000")]))
    assert "| 2,000 | 11 |" in table


def test_backfill_benchmark_runs() -> None:
    from benchmarks.bench_backfill import run
    from benchmarks.run import backfill_section

    # One month: each backfill is a CLI process (about 10 s of imports) and one run per job, and a
    # second month exercised nothing the first does not (two months cost 130 s of the test budget).
    result = run(months=1, customers=200)
    assert result["sequential"]["runs"] == 2  # ingest and modelling
    # With workers, modelling runs in three parts: features and publish in order, the fits in parallel.
    assert result["workers_2"]["runs"] == 4
    for mode in ("sequential", "workers_2"):
        assert 0 < result[mode]["step_seconds"] <= result[mode]["run_seconds"]
    assert "| sequential |" in "\n".join(backfill_section(result, "python -m benchmarks.bench_backfill"))


def _edge_cases(path) -> None:
    """A few lines for every rule and corner the baselines must treat as segflow does."""
    from datetime import datetime

    import polars as pl

    from segflow.lib.schema import TRANSACTIONS

    t = datetime(2024, 1, 10, 12)
    rows = [  # invoice, customer, quantity, price, channel, when
        ("1", "c1", 2, 3.10, "web", t), ("1", "c1", 1, 9.99, "web", t),  # a normal invoice
        ("1", "c1", 1, 9.99, "web", t),  # exact duplicate: dropped, not counted twice
        ("C1", "c1", -1, 9.99, "web", t),  # a return
        ("2", " c2 ", 1, 5.0, " Web ", t),  # codes are trimmed and folded
        ("3", None, 1, 5.0, "app", t), ("3", "c3", 2, 4.0, "app", t),  # first line null: no conflict
        ("4", "c4", 1, 7.0, "store", t), ("4", "c5", 1, 7.0, "store", t),  # c5 conflicts with c4
        ("A5", "c4", 1, 50.0, "store", t),  # adjustment
        ("6", "c6", 0, 5.0, "web", t), ("7", "c6", -2, 5.0, "web", t),  # zero qty, write-off
        ("8", "c6", 1, 0.0, "web", t), ("9", "c6", 1, -5.0, "web", t),  # free and negative price
        ("C10", "c6", 1, 5.0, "web", t), ("11", "c6", 1, 5.0, "fax", t),  # + on cancel, bad channel
        ("12", "c6", 2000, 5.0, "web", t), ("13", "c6", 1, 60000.0, "web", t),  # outliers
        ("14", "c6", 1, 5.0, "web", datetime(2024, 2, 1)),  # next month
        ("15", "c6", 1, float("nan"), "web", t), ("16", "c7", 3, 2.5, None, datetime(2024, 1, 31, 23)),
        ("C17", "c8", -1, 5.0, "web", t),  # only a cancellation: no RFM row
    ]  # fmt: skip
    frame = pl.DataFrame(
        [
            dict(
                zip(
                    ("invoice_id", "customer_id", "quantity", "unit_price", "channel", "invoiced_at"),
                    r,
                    strict=True,
                )
            )
            for r in rows
        ]
    ).with_columns(pl.lit("p1").alias("product_id"), pl.lit("books").alias("category"))
    frame.select(list(TRANSACTIONS)).cast(TRANSACTIONS).write_parquet(path)


def test_features_baselines_equal_segflow(tmp_path) -> None:
    """The pandas and duckdb baselines compute segflow's definitions: same customers, same RFM and
    behaviour values, on a generated month with dirt and on hand-made edge cases."""
    import json

    import polars as pl
    import pytest

    from benchmarks.bench_features import PERIOD, landing
    from benchmarks.features_impl import MAX_ABS_QUANTITY, MAX_UNIT_PRICE, assert_same, features
    from segflow.config import CleaningSettings

    defaults = CleaningSettings()
    assert (defaults.max_abs_quantity, defaults.max_unit_price) == (MAX_ABS_QUANTITY, MAX_UNIT_PRICE)
    assert defaults.adjustment_prefixes == ("A",)
    generated = landing(tmp_path / "landing", 40_000)
    injected = json.loads((tmp_path / "landing" / "_manifest.json").read_text())["injected_dirt"]
    assert all(n[PERIOD] > 0 for n in injected["transactions"].values())  # every kind of dirt is there
    _edge_cases(tmp_path / "edge.parquet")
    for path, customers in ((generated, 400), (tmp_path / "edge.parquet", 4)):
        reference = features("segflow", str(path), PERIOD)
        assert reference.height >= customers
        for implementation in ("pandas", "duckdb"):
            assert_same(reference, features(implementation, str(path), PERIOD))
    assert reference["customer_id"].to_list() == ["c1", "c2", "c3", "c4", "c7"]
    # The tolerance is far tighter than any definition difference: one cent off fails.
    first = pl.int_range(pl.len()) == 0
    off = reference.with_columns(
        pl.when(first).then(pl.col("monetary") + 0.01).otherwise("monetary").alias("monetary")
    )
    with pytest.raises(AssertionError):
        assert_same(reference, off)


def test_features_benchmark_runs() -> None:
    from benchmarks.bench_features import run
    from benchmarks.run import features_section

    small, larger = run(lines=10_000, runs=1), run(lines=30_000, runs=1)
    assert small["outputs_equal"] and set(small["implementations"]) == {"segflow", "pandas", "duckdb"}
    for impl, m in small["implementations"].items():
        assert m["seconds"]["median"] > 0 and m["peak_rss_mb"] > 50, impl
    assert {"read_source", "build_features"} <= set(small["implementations"]["segflow"]["phases"])
    segflow = small["implementations"]["segflow"]["seconds"]["median"]
    assert small["ratios"]["pandas"] == small["implementations"]["pandas"]["seconds"]["median"] / segflow
    table = "\n".join(features_section([(small, "a"), (larger, "b")]))
    assert f"| {small['line_items']:,} | pandas |" in table and "time exponent" in table
    assert "Where segflow's time goes" in table


def test_e2e_benchmark_runs() -> None:
    from benchmarks.bench_e2e import run
    from benchmarks.run import e2e_section

    result = run(lines=5_000, runs=1)
    assert result["dagster_runs"] == 2  # ingest, then modelling
    wall, runs, steps = (result[k]["median"] for k in ("wall_seconds", "run_seconds", "step_seconds"))
    assert 0 < steps <= runs <= wall
    assert {"raw", "profiles", "features", "models", "segments", "audit"} <= set(result["stages"])
    peak = result["peak_rss_mb"]["median"]
    assert all(100 < s["peak_rss_mb"] <= peak for s in result["stages"].values())
    assert f"| {result['line_items']:,} | {result['wall_seconds']['median']:.1f} |" in "\n".join(
        e2e_section([(result, "python -m benchmarks.bench_e2e")])
    )


def test_generate_benchmark_runs() -> None:
    from benchmarks.bench_generate import run
    from benchmarks.run import generate_section

    result = run(lines=20_000)
    low, high = result["results"]
    assert (low["intensity"], high["intensity"]) == (20.0, 80.0) and abs(
        low["customers"] - 4 * high["customers"]
    ) <= 4
    assert all(10_000 < r["line_items"] < 30_000 and r["peak_rss_mb"] > 50 for r in result["results"])
    assert f"| {high['customers']:,} | 80 |" in "\n".join(generate_section(result, "python -m ..."))


def test_peer_notebook_rfm_and_sweep_are_sane() -> None:
    """The fixed-cost baseline on 300 customers of the real file: quintile scores, a silhouette for
    every k of the sweep. No segflow run here: those take minutes."""
    from threadpoolctl import threadpool_limits

    from benchmarks.peer_notebook import KS, notebook
    from segflow_tests.conftest import ONLINE_RETAIL, require

    # One thread: on a few hundred rows, k-means' OpenMP threads only spin on the shared cores.
    with threadpool_limits(1):
        table, scores = notebook(require(ONLINE_RETAIL), "2011-11", customers=300)
    assert 100 < len(table) <= 300 and table.index.is_unique
    for score in ("R", "F", "M"):
        assert set(table[score]) == {1, 2, 3, 4, 5}
    assert (table["Recency"] >= 0).all() and (table["Recency"] < 366).all()
    assert (table["Frequency"] >= 1).all() and (table["Monetary"] > 0).all()
    # The most recent buyers get R = 5: the R score falls as recency (days) grows.
    assert table.groupby("R")["Recency"].mean().is_monotonic_decreasing
    assert list(scores) == list(KS) == list(range(2, 11))
    assert all(-1 <= s <= 1 for s in scores.values())


def test_fixed_cost_section_states_every_target() -> None:
    from benchmarks.run import fixed_cost_section

    result = {
        "machine": "x86_64, 2 cores",
        "runs": 3,
        "months": 23,
        "customers_limit": None,
        "date": "2026-12-01",
        "load_average": {"start": (1.0, 1.0, 1.0), "end": (2.0, 2.0, 2.0)},
        "notebook": {"seconds": {"median": 10.0, "min": 9.0, "max": 11.0}, "customers": 4297, "best_k": 2},
        "month": {"median": 25.0, "min": 24.0, "max": 26.0},
        "backfill": 1000.0,
        "ratios": {"month": 2.5, "backfill": 1000.0 / 230.0},
        "targets": {"month": 3.0, "backfill": 3.0, "workers": 1.6, "demo": 60.0},
    }
    table = "\n".join(fixed_cost_section(result, "python -m benchmarks.bench_fixed_cost"))
    assert "| 25.0 | notebook, 10.0 s | **2.50** | ≤ 3 | met |" in table
    assert "| 1000.0 | 23 x notebook, 230 s | **4.35** | ≤ 3 | NOT met |" in table
    assert table.count("| not run |") == 2 and "≥ 1.6" in table and "load average" in table.lower()


def test_clv_fit_benchmark_runs() -> None:
    from benchmarks.bench_clv import measure
    from benchmarks.run import clv_section

    result = measure(customers=2000, runs=1)
    assert result["customers"] == 2000 and result["converged"] and 0 < result["repeaters"] < 2000
    assert result["ratio_clv_over_churn"] == result["clv_fit_s"]["median"] / result["churn_fit_s"]["median"]
    table = "\n".join(clv_section({"results": [result]}, "python -m benchmarks.bench_clv --customers 2000"))
    assert "| 2,000 |" in table


def test_spark_line_item_benchmark_runs() -> None:
    from benchmarks.bench_spark import run
    from benchmarks.run import spark_section

    result = run(lines=5_000, runs=1, master="local[2]")  # raises unless both engines' outputs are equal
    polars, spark = result["engines"]["polars"], result["engines"]["spark"]
    assert polars["accounting"] == spark["accounting"] and polars["accounting"]["raw_rows"] == result["lines"]
    assert spark["session_start_seconds"] > 0 and spark["jvm_peak_rss_mb"] > 100
    assert result["spark_over_polars"] == spark["seconds"]["median"] / polars["seconds"]["median"]
    assert f"| {result['lines']:,} | local[2] |" in "\n".join(spark_section([result], "python -m ..."))
