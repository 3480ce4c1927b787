"""Imputation error and CPU time of ``impute_demographics`` against the classifier's boosting
iterations, on a synthetic month's customers.

    python -m benchmarks.bench_imputation --customers 1000 10000 100000 --iterations 50 10

The error is measured where the truth is known: a seeded fifth of the observed cells of every
demographic column is hidden, imputed, and compared with the hidden value (numeric: mean absolute
error over that of filling with the column mean, as in segflow_tests/test_imputation.py;
categorical: share of hidden cells recovered, against the majority class's share).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

DEMOGRAPHICS = ("birth_year", "income", "household_size", "gender", "education")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synthetic_customers(customers: int) -> pl.DataFrame:
    """One synthetic month's customers, their demographics as delivered (source gaps included)."""
    from segflow.config import load_settings
    from segflow.lib.sources.ingest import read_source
    from segflow.synth import SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), SynthConfig(customers=customers, months=1, seed=11))
        source = load_settings().sources["customers"]
        frame = read_source("customers", source, source.location.format(landing=tmp, period="2024-01")).frame
    return frame.select("customer_id", "region", *DEMOGRAPHICS).unique("customer_id", keep="first")


def hide(truth: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """``truth`` with a seeded fifth of each column's observed cells set null, and where."""
    rng = np.random.default_rng(seed)
    hidden = {c: truth[c].is_not_null().to_numpy() & (rng.random(truth.height) < 0.2) for c in DEMOGRAPHICS}
    masked = truth.with_columns(
        [pl.when(pl.Series(h)).then(None).otherwise(pl.col(c)).alias(c) for c, h in hidden.items()]
    )
    return masked, hidden


def errors(truth: pl.DataFrame, masked: pl.DataFrame, filled: pl.DataFrame, hidden: dict) -> dict:
    out = {}
    for column, where in hidden.items():
        actual, guess = truth[column].to_numpy()[where], filled[column].to_numpy()[where]
        if truth.schema[column] == pl.String:
            majority = masked[column].drop_nulls().mode().sort()[0]
            out[column] = f"{(guess == actual).mean():.4f} (majority {(actual == majority).mean():.4f})"
        else:
            mean = masked[column].cast(pl.Float64).mean()
            ratio = np.abs(guess.astype(float) - actual).mean() / np.abs(mean - actual.astype(float)).mean()
            out[column] = f"{ratio:.4f}"
    return out


def main() -> None:
    from segflow.lib.profiles import imputation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument(
        "--iterations", type=int, nargs="+", default=[imputation.CLASSIFIER_PARAMS["max_iter"]]
    )
    args = parser.parse_args()
    for customers in args.customers:
        truth = synthetic_customers(customers)
        masked, hidden = hide(truth, seed=5)
        imputation.impute_demographics(masked.head(200), seed=42)  # imports and first-call costs
        for iterations in args.iterations:
            # What-if: the classifier's iteration count, as if the module constant were set to it.
            imputation.CLASSIFIER_PARAMS = {**imputation.CLASSIFIER_PARAMS, "max_iter": iterations}
            started = _cpu()
            filled = imputation.impute_demographics(masked, seed=42)
            cpu = _cpu() - started
            print(f"customers={truth.height} classifier_max_iter={iterations} cpu_s={cpu:.2f}",
                  errors(truth, masked, filled, hidden))  # fmt: skip


if __name__ == "__main__":
    main()
