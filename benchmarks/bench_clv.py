"""Fit time of the CLV model (BG/NBD + Gamma-Gamma, segflow.lib.models.btyd) at scale, as a ratio against
the month's churn model fit measured in the same run, plus the parameters recovered.

    python -m benchmarks.bench_clv --customers 10000 100000

Customers are drawn from known BG/NBD and Gamma-Gamma parameters (CDNOW's, alpha in days) with
ages uniform over 30..540 days, so the fit can be checked against the truth at every size. The
baseline is the fit ``clv_model`` sits beside: the churn model's L2 logistic regression (lbfgs) on
as many customers with ten standardised features, which is what a month already spends on a
model per customer. Prints one JSON object: the machine, and per size the median, min and max of
``--runs`` fits and the parameters recovered.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

TRUE_BG = {"r": 0.24, "alpha": 30.9, "a": 0.79, "b": 2.43}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def _timed(fit, runs: int) -> tuple[dict, object]:
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fit()
        seconds.append(time.perf_counter() - started)
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)}, result


def _churn_baseline(customers: int, seed: int):
    """The churn model's estimator and settings on a standardised design of the same size."""
    from sklearn.linear_model import LogisticRegression

    from segflow.lib.models.churn import LOGISTIC_C, LOGISTIC_MAX_ITER

    rng = np.random.default_rng(seed)
    design = rng.standard_normal((customers, 10))
    labels = (design @ rng.standard_normal(10) + rng.logistic(size=customers) > 0).astype(int)
    estimator = LogisticRegression(
        C=LOGISTIC_C, solver="lbfgs", max_iter=LOGISTIC_MAX_ITER, random_state=seed
    )
    return lambda: estimator.fit(design, labels)


def measure(customers: int, runs: int, seed: int = 3) -> dict:
    from segflow.lib.models import btyd
    from segflow.lib.threads import single_threaded

    T = np.random.default_rng(seed).uniform(30, 540, customers)
    x, t_x, T = btyd.simulate_bgnbd(btyd.BgNbdParams(**TRUE_BG), T, seed)
    repeat = x > 0
    m = btyd.simulate_gamma_gamma(btyd.GammaGammaParams(**TRUE_GG), x[repeat], seed + 1)
    # Both fits single-threaded, as the assets run them next to other partitions' work.
    with single_threaded():
        clv, (bg, gg) = _timed(lambda: (btyd.fit_bgnbd(x, t_x, T), btyd.fit_gamma_gamma(x[repeat], m)), runs)
        churn, _ = _timed(_churn_baseline(customers, seed), runs)
    return {
        "customers": customers,
        "repeaters": int(repeat.sum()),
        "clv_fit_s": clv,
        "churn_fit_s": churn,
        "ratio_clv_over_churn": clv["median"] / churn["median"],
        "converged": bg.converged and gg.converged,
        "bgnbd": {k: round(v, 4) for k, v in bg.params.to_dict().items()},
        "gamma_gamma": {k: round(v, 4) for k, v in gg.params.to_dict().items()},
        "max_relative_error": max(
            abs(bg.params.to_dict()[k] / v - 1) for k, v in TRUE_BG.items()
        ),  # BG/NBD only; Gamma-Gamma's is printed per parameter above
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from benchmarks.common import machine

    results = [measure(customers, args.runs) for customers in args.customers]
    print(json.dumps({"machine": machine(), "results": results}))


if __name__ == "__main__":
    main()
