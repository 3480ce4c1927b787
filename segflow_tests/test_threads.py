"""The one-thread limit takes effect on a fresh process's first call, and is the only one set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import segflow.lib

# Each probe runs in a fresh interpreter: numpy is loaded, as by any lib module, scikit-learn is not.
HELPER = "from segflow.lib.threads import single_threaded as limit"
BARE = "from functools import partial; from threadpoolctl import threadpool_limits; limit = partial(threadpool_limits, 1)"
PROBE = """
import json, numpy, threadpoolctl
{limit}
with limit():
    import sklearn.ensemble
    print(json.dumps(threadpoolctl.threadpool_info()))
"""


def _pools_inside(limit: str) -> list[dict]:
    # No thread-count variables: every pool starts at its default, a thread per core.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    probe = PROBE.format(limit=limit)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_limit_holds_for_every_pool_on_the_first_call() -> None:
    pools = _pools_inside(HELPER)
    assert {"openmp", "blas"} <= {p["user_api"] for p in pools}, pools
    assert all(p["num_threads"] == 1 for p in pools), pools


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every pool has one thread anyway")
def test_a_bare_limit_misses_the_pools_loaded_after_it() -> None:
    """The bug the helper fixes, so the test above would catch its return."""
    pools = _pools_inside(BARE)
    assert any(p["user_api"] == "openmp" and p["num_threads"] > 1 for p in pools), pools


# The first modelling call of a fresh process, a step after its first fit (so scikit-learn is loaded)
# wrapped to report the pools it runs with.
CALL_SITES = """
import json, sys, threadpoolctl
import numpy as np, polars as pl
from segflow.lib.profiles import imputation
from segflow.lib.models import selection

seen = []
def spy(module, name):
    inner = getattr(module, name)
    def wrapped(*args, **kwargs):
        seen.append(threadpoolctl.threadpool_info())
        return inner(*args, **kwargs)
    setattr(module, name, wrapped)

rng = np.random.default_rng(0)
if sys.argv[1] == "imputation":
    spy(imputation, "_impute_categorical")
    frame = pl.DataFrame({"birth_year": rng.integers(1950, 2000, 300), "income": rng.uniform(2e4, 9e4, 300),
                          "household_size": rng.integers(1, 5, 300), "gender": rng.choice(["F", "M"], 300),
                          "education": rng.choice(["basic", "master"], 300), "region": ["north"] * 300})
    frame = frame.with_columns(pl.when(pl.int_range(300) % 5 == 0).then(None).otherwise(pl.col("income")).alias("income"))
    imputation.impute_demographics(frame, seed=1)
else:
    from benchmarks.bench_selection import planted_features
    from segflow.config import ModelSettings
    from segflow.lib.models.clustering import fit_model
    spy(selection, "apply")
    settings = ModelSettings(families=("kmeans",), k_max=3, stability_resamples=1)
    fit_model(planted_features(300)[0], settings, "2024-01")
print(json.dumps(seen[0]))
"""


@pytest.mark.parametrize("call", ["imputation", "segmentation"])
def test_the_first_modelling_call_of_a_process_runs_single_threaded(call: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    root = Path(__file__).parents[1]  # benchmarks/ is importable from there
    done = subprocess.run(
        [sys.executable, "-c", CALL_SITES, call],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    pools = json.loads(done.stdout.splitlines()[-1])
    assert {"openmp", "blas"} <= {p["user_api"] for p in pools}, pools
    wanted = ("openmp",) if call == "imputation" else ("openmp", "blas")  # imputation: BLAS only for KNN
    assert all(p["num_threads"] == 1 for p in pools if p["user_api"] in wanted), pools


def test_no_lib_module_sets_a_limit_of_its_own() -> None:
    lib = Path(segflow.lib.__file__).parent
    setters = [p.name for p in lib.rglob("*.py") if "threadpool_limits" in p.read_text(encoding="utf-8")]
    assert setters == ["threads.py"]
