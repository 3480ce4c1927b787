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


def test_no_lib_module_sets_a_limit_of_its_own() -> None:
    lib = Path(segflow.lib.__file__).parent
    setters = [p.name for p in lib.rglob("*.py") if "threadpool_limits" in p.read_text(encoding="utf-8")]
    assert setters == ["threads.py"]
