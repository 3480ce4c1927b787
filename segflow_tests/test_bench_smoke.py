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

    result = run(months=2, customers=200)
    for mode in ("sequential", "workers_2"):
        assert result[mode]["runs"] == 4  # two months, ingest and modelling each
        assert 0 < result[mode]["step_seconds"] <= result[mode]["run_seconds"]
    assert "| sequential |" in "\n".join(backfill_section(result, "python -m benchmarks.bench_backfill"))
