"""Model-based filling of missing demographics, with every filled cell flagged.

Numeric demographics are filled by scikit-learn's IterativeImputer (each column regressed on the
others); categorical ones by a gradient-boosting classifier on the numeric demographics and region.
Models are fitted on a seeded sample of complete rows, so the cost is bounded at any size and the
result is reproducible.
"""

from __future__ import annotations

import numpy as np
import polars as pl

NUMERIC = ("birth_year", "income", "household_size")
CATEGORICAL = ("gender", "education")
FIT_SAMPLE = 50_000


def imputed_flag(column: str) -> str:
    return f"{column}_imputed"


def _numeric_matrix(frame: pl.DataFrame) -> np.ndarray:
    return frame.select([pl.col(c).cast(pl.Float64) for c in NUMERIC]).to_numpy()


def _impute_numeric(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401 - enables the import below
    from sklearn.impute import IterativeImputer

    matrix = _numeric_matrix(frame)
    missing = np.isnan(matrix)
    if not missing.any():
        return frame
    # A column with no observed value (not delivered by the source) cannot be modelled: it stays
    # null and unflagged, and the others are imputed from each other.
    observed = ~missing.all(axis=0)
    if not observed.any():
        return frame
    columns = [c for c, seen in zip(NUMERIC, observed, strict=True) if seen]
    matrix = matrix[:, observed]
    rng = np.random.default_rng(seed)
    fit_rows = rng.permutation(len(matrix))[:FIT_SAMPLE]
    imputer = IterativeImputer(random_state=seed, max_iter=10, sample_posterior=False)
    imputer.fit(matrix[np.sort(fit_rows)])
    filled = imputer.transform(matrix)
    updates = []
    for i, column in enumerate(columns):
        values = pl.Series(column, filled[:, i])
        if column != "income":
            values = values.round(0)
        updates.append(values.cast(frame.schema[column]))
    return frame.with_columns(updates)


def _impute_categorical(frame: pl.DataFrame, column: str, seed: int) -> pl.DataFrame:
    from sklearn.ensemble import HistGradientBoostingClassifier

    target = frame[column]
    known = target.is_not_null().to_numpy()
    if known.all() or not known.any():
        return frame
    region_codes = frame["region"].fill_null("").cast(pl.Categorical).to_physical().to_numpy()
    features = np.column_stack([_numeric_matrix(frame), region_codes])
    rng = np.random.default_rng(seed)
    known_rows = np.flatnonzero(known)
    fit_rows = np.sort(rng.permutation(known_rows)[:FIT_SAMPLE])
    labels = target.to_numpy()
    if len(set(labels[fit_rows])) == 1:
        predicted = np.full((~known).sum(), labels[fit_rows][0], dtype=object)
    else:
        model = HistGradientBoostingClassifier(max_iter=50, random_state=seed)
        model.fit(features[fit_rows], labels[fit_rows])
        predicted = model.predict(features[~known])
    filled = labels.copy()
    filled[~known] = predicted
    return frame.with_columns(pl.Series(column, filled, dtype=pl.String))


def impute_demographics(customers: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Fill missing demographics and add one ``<column>_imputed`` flag per demographic column."""
    from threadpoolctl import threadpool_limits

    flags = [pl.col(c).is_null().alias(imputed_flag(c)) for c in (*NUMERIC, *CATEGORICAL)]
    flagged = customers.with_columns(flags)
    # Single-threaded OpenMP: see segflow.lib.clustering.fit_model for the measurement.
    with threadpool_limits(limits=1, user_api="openmp"):
        filled = _impute_numeric(flagged, seed)
        for column in CATEGORICAL:
            filled = _impute_categorical(filled, column, seed)
    # A flag is true only where a value was really filled in.
    return filled.with_columns(
        [
            (pl.col(imputed_flag(c)) & pl.col(c).is_not_null()).alias(imputed_flag(c))
            for c in (*NUMERIC, *CATEGORICAL)
        ]
    )
