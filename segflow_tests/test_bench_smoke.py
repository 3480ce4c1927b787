"""Small versions of the benchmarks, so that their code keeps working (figures are not asserted)."""

from __future__ import annotations


def test_gx_gating_benchmark_runs() -> None:
    from benchmarks.bench_gx import run

    result = run(customers=800, intensity=1.0, runs=1)
    assert result["line_items"] > 1000 and result["profiles"] > 700
    assert result["compute_seconds"]["median"] > 0 and result["gx_seconds"]["median"] > 0
    assert result["ratio"] == result["gx_seconds"]["median"] / result["compute_seconds"]["median"]
