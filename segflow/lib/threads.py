"""One thread per native thread pool (OpenMP, BLAS) for a block of code, from a process's first call.

threadpoolctl limits the pools of the libraries loaded when the limit is set, and does nothing to a
library loaded later. scikit-learn's OpenMP runtime (libgomp) and scipy's OpenBLAS load on first
import, so a limit set before that import, as on the first modelling call of a fresh process, left
every fit with a thread per core: a gradient-boosting fit on 1,000 rows took 17 s instead of 0.8 s
at load 5.8. This module loads them first; it is the one place the limit is set.
"""

from __future__ import annotations


def single_threaded(user_api: str | None = None):
    """``threadpool_limits(limits=1, user_api=user_api)`` with every pool it limits already loaded.

    ``user_api``: None (OpenMP and BLAS), "openmp" or "blas". Use as ``with single_threaded(): ...``.
    """
    import numpy  # noqa: F401 - numpy's OpenBLAS
    import scipy.linalg  # noqa: F401 - scipy's own OpenBLAS, which scikit-learn's estimators call
    import sklearn.utils._openmp_helpers  # noqa: F401 - an OpenMP extension: loads libgomp
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api=user_api)
