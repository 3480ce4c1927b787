"""Model-based filling of missing demographics and survey answers, with every filled cell flagged.

Numeric demographics are filled by the model ``ImputationSettings.method`` names: scikit-learn's
IterativeImputer (each column regressed on the others, the default) or KNNImputer (the mean of the
nearest customers). Categorical demographics are filled by a gradient-boosting classifier on the
numeric demographics and region, whichever the method. Survey answers (Likert 1..5) of a partly
answered questionnaire are filled by the same numeric model, rounded and clipped to the scale.
Models are fitted on a seeded sample of rows, so the cost is bounded at any size and the result is
reproducible.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segflow.config import ImputationSettings
from segflow.lib.schema import SURVEY_QUESTIONS

NUMERIC = ("birth_year", "income", "household_size")
CATEGORICAL = ("gender", "education")
SURVEYS = tuple(f"survey_{q}" for q in SURVEY_QUESTIONS)
LIKERT = (1, 5)
FIT_SAMPLE = 50_000
# KNNImputer compares every row with a missing cell against every fitted row, its donors (about
# 110 ns a pair on one core here: 100,000 rows against 5,000 donors took 55 s), so it is fitted
# on a smaller sample. In these few dimensions 5,000 donors still put close neighbours near anyone.
KNN_FIT_SAMPLE = 5_000
ITERATIVE_PARAMS = {"max_iter": 10, "sample_posterior": False}  # estimator: BayesianRidge (default)
# Ten boosting rounds, not 50. With a fifth of a synthetic month's observed cells hidden, the share
# recovered moved by +2.9 / +2.1 points (gender / education) at 1k customers, -0.1 / +1.0 at 10k and
# 0.0 / -0.05 at 100k (50 rounds fit noise; at 100k early stopping already cuts them), for 0.2x,
# 0.3x and 0.8x the CPU seconds (python -m benchmarks.bench_imputation --iterations 50 10).
CLASSIFIER_PARAMS = {"max_iter": 10}


def imputed_flag(column: str) -> str:
    return f"{column}_imputed"


def imputation_record(settings: ImputationSettings, seed: int) -> dict:
    """The method, its parameters and the seed, as recorded on ``customer_profiles``."""
    if settings.method == "knn":
        params = {"n_neighbors": settings.n_neighbors, "weights": "uniform", "metric": "nan_euclidean",
                  "inputs": "standardised on the fit sample (mean and sd)"}  # fmt: skip
    else:
        params = {"estimator": "BayesianRidge", **ITERATIVE_PARAMS}
    return {
        "method": settings.method,
        "params": params,
        "categorical": {
            "model": "HistGradientBoostingClassifier",
            **CLASSIFIER_PARAMS,
            "fit_sample": FIT_SAMPLE,
        },
        "surveys": settings.surveys,
        "fit_sample": fit_sample(settings),
        "seed": seed,
    }


def _fill(matrix: np.ndarray, fit_rows: np.ndarray, settings: ImputationSettings, seed: int) -> np.ndarray:
    """``matrix`` (n rows x d columns, NaN where missing) with every NaN filled by the model fitted
    on ``fit_rows``. Each column must hold an observed value among the fit rows."""
    if settings.method == "knn":
        from sklearn.impute import KNNImputer

        from segflow.lib.threads import single_threaded

        # Distances are euclidean over the columns, so unscaled, income (tens of thousands) would
        # decide every neighbour alone and birth year or a 1..5 answer would not count. Each column
        # is standardised on the fit sample first; the filled values are mapped back.
        fit = matrix[fit_rows]
        center = np.nanmean(fit, axis=0)
        scale = np.nanstd(fit, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        scaled = (matrix - center) / scale
        imputer = KNNImputer(n_neighbors=settings.n_neighbors, weights="uniform")
        # One BLAS thread: distances then do not depend on the core count, nor do the neighbours.
        with single_threaded("blas"):
            imputer.fit(scaled[fit_rows])
            filled = imputer.transform(scaled) * scale + center
    else:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401 - enables the import below
        from sklearn.impute import IterativeImputer

        imputer = IterativeImputer(random_state=seed, **ITERATIVE_PARAMS)
        imputer.fit(matrix[fit_rows])
        filled = imputer.transform(matrix)
    # Observed cells keep their exact value (the KNN round trip through the scaling would not).
    return np.where(np.isnan(matrix), filled, matrix)


def _numeric_matrix(frame: pl.DataFrame, columns: tuple[str, ...] = NUMERIC) -> np.ndarray:
    return frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy()


def fit_sample(settings: ImputationSettings) -> int:
    """At most this many rows fit the numeric model (the categorical one always takes FIT_SAMPLE)."""
    return KNN_FIT_SAMPLE if settings.method == "knn" else FIT_SAMPLE


def _fit_rows(n: int, seed: int, settings: ImputationSettings) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n)[: fit_sample(settings)])


def _impute_numeric(frame: pl.DataFrame, seed: int, settings: ImputationSettings) -> pl.DataFrame:
    matrix = _numeric_matrix(frame)
    missing = np.isnan(matrix)
    if not missing.any():
        return frame
    fit_rows = _fit_rows(len(matrix), seed, settings)
    # A column with no observed value (not delivered by the source) cannot be modelled: it stays
    # null and unflagged, and the others are imputed from each other.
    observed = ~np.isnan(matrix[fit_rows]).all(axis=0)
    if not observed.any():
        return frame
    columns = [c for c, seen in zip(NUMERIC, observed, strict=True) if seen]
    filled = _fill(matrix[:, observed], fit_rows, settings, seed)
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
        model = HistGradientBoostingClassifier(random_state=seed, **CLASSIFIER_PARAMS)
        model.fit(features[fit_rows], labels[fit_rows])
        predicted = model.predict(features[~known])
    filled = labels.copy()
    filled[~known] = predicted
    return frame.with_columns(pl.Series(column, filled, dtype=pl.String))


def _confirm_flags(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """A flag stays true only where a value was really filled in."""
    return frame.with_columns(
        [(pl.col(imputed_flag(c)) & pl.col(c).is_not_null()).alias(imputed_flag(c)) for c in columns]
    )


def impute_demographics(
    customers: pl.DataFrame, seed: int, settings: ImputationSettings | None = None
) -> pl.DataFrame:
    """Fill missing demographics and add one ``<column>_imputed`` flag per demographic column."""
    from segflow.lib.threads import single_threaded

    settings = settings or ImputationSettings()
    flags = [pl.col(c).is_null().alias(imputed_flag(c)) for c in (*NUMERIC, *CATEGORICAL)]
    flagged = customers.with_columns(flags)
    # Single-threaded OpenMP: see segflow.lib.models.clustering.fit_model for the measurement.
    with single_threaded("openmp"):
        filled = _impute_numeric(flagged, seed, settings)
        for column in CATEGORICAL:
            filled = _impute_categorical(filled, column, seed)
    return _confirm_flags(filled, (*NUMERIC, *CATEGORICAL))


def impute_surveys(
    profiles: pl.DataFrame, seed: int, settings: ImputationSettings | None = None
) -> pl.DataFrame:
    """Fill the unanswered questions of partly answered questionnaires; add ``survey_<q>_imputed``.

    Only a customer who answered at least one of the month's questions, but not all, is imputed:
    their own answers carry most of the information about the rest. A customer who answered none is
    left null, because a model would invent every trait of theirs from demographics alone, and a
    full questionnaire has nothing to fill. The model is fitted on the respondents (any answer) with
    the numeric demographics as extra inputs; values are rounded and clipped to the 1..5 scale.
    """
    settings = settings or ImputationSettings()
    answered = pl.sum_horizontal([pl.col(c).is_not_null() for c in SURVEYS])
    partial = (answered > 0) & (answered < len(SURVEYS))
    if settings.surveys == "none":
        return profiles.with_columns([pl.lit(False).alias(imputed_flag(c)) for c in SURVEYS])
    flagged = profiles.with_columns([(pl.col(c).is_null() & partial).alias(imputed_flag(c)) for c in SURVEYS])
    if not flagged.select(partial.any()).item():
        return flagged
    respondents = np.flatnonzero(flagged.select(answered > 0).to_series().to_numpy())
    aux = tuple(c for c in NUMERIC if c in profiles.columns)
    matrix = _numeric_matrix(flagged[respondents], (*SURVEYS, *aux))
    fit_rows = _fit_rows(len(matrix), seed, settings)
    observed = ~np.isnan(matrix[fit_rows]).all(axis=0)  # a question nobody answered stays null
    filled = _fill(matrix[:, observed], fit_rows, settings, seed)
    columns = [c for c, seen in zip((*SURVEYS, *aux), observed, strict=True) if seen and c in SURVEYS]
    updates = []
    for i, column in enumerate(columns):
        values = np.full(flagged.height, np.nan)
        values[respondents] = filled[:, i]
        answer = pl.Series(values).fill_nan(None).round(0).clip(*LIKERT).cast(pl.Int32)
        updates.append(
            pl.when(pl.col(imputed_flag(column))).then(answer).otherwise(pl.col(column)).alias(column)
        )
    return _confirm_flags(flagged.with_columns(updates), SURVEYS)


def imputation_rates(profiles: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per flagged column of a month's profiles: imputed cells, customers (rows) and their ratio.

    Columns in the profiles' order: column (without ``_imputed``), imputed, customers, rate (null
    when there are no customers).
    """
    frame = profiles.lazy()
    flags = [c for c in frame.collect_schema().names() if c.endswith("_imputed")]
    counts = frame.select(
        pl.len().cast(pl.Int64).alias("customers"), *[pl.col(f).sum().cast(pl.Int64) for f in flags]
    ).collect()
    customers = counts["customers"][0]
    return pl.DataFrame(
        {
            "column": [f.removesuffix("_imputed") for f in flags],
            "imputed": [counts[f][0] for f in flags],
            "customers": [customers] * len(flags),
        },
        schema={"column": pl.String, "imputed": pl.Int64, "customers": pl.Int64},
    ).with_columns(
        pl.when(pl.col("customers") > 0).then(pl.col("imputed") / pl.col("customers")).alias("rate")
    )
