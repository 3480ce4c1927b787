"""Churn risk: labels from later feature tables, an out-of-time validated logistic model, scoring.

Definitions (h = ``model.churn_horizon_months``):

- A customer in the feature table of month M (someone with a purchase in M's window) has
  **churned** when they make no purchase in the h months after M, i.e. no purchase dated on or
  after ``as_of(M)`` (the first day after M) up to ``as_of(M + h)``. This is read from the feature
  table of month M + h alone: the customer is absent from it (no purchase in its whole window,
  which covers M+1..M+h because h <= window_months) or their last purchase there is before
  ``as_of(M)``. Labels come from data only, never from the synthetic ground truth or a clock.
- The model for month T is **fitted** on the features of T - 2h labelled by T - h, and
  **validated out of time** on the features of T - h labelled by T, against a recency-only
  logistic baseline. The validated model (not a refit) is the one stored and applied to the
  customers of T, so the reported metrics describe exactly the model that scores.
- The model is plain data (``ChurnModel``, stored as JSON): per-feature transform, fill value, clip bounds, scaler mean and
  scale, coefficients and intercept. Scoring is a few numpy operations on those numbers, so a
  reloaded model reproduces the stored scores bit for bit and no pickle is ever loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from segflow.config import ModelSettings
from segflow.lib import periods
from segflow.lib.models.churn_guard import auc_intervals, calibration, decide
from segflow.lib.models.model_types import ChurnModel, LogisticParams

# (feature column, transform). Only features whose scale does not depend on how long the window
# is: the model is fitted on an earlier month than it scores, and in a young history the earlier
# window is shorter, so window totals (frequency, monetary) and tenure would shift between fit and
# scoring. On planted data, dropping them kept the AUC and cut the worst reliability-decile gap of
# the last month from 0.28 to 0.04. log1p tames the long right tails of days, counts and money;
# order value can be negative (returns of older purchases), so it gets a sign-preserving log.
CHURN_FEATURES: tuple[tuple[str, str], ...] = (
    ("recency_days", "log1p"),
    ("invoices_per_month", "log1p"),
    ("avg_order_value", "signed_log1p"),
    ("return_rate", "identity"),
    ("digital_share", "identity"),
    ("sessions_per_month", "log1p"),
    ("pages_per_session", "log1p"),
    ("email_open_rate", "identity"),
    ("email_click_rate", "identity"),
    ("campaign_response_rate", "identity"),
)
BASELINE_FEATURES: tuple[tuple[str, str], ...] = (("recency_days", "log1p"),)

# L2 strength of the logistic regression (sklearn's C, inverse regularisation) on standardised
# features. Mild: thousands of rows and ~20 columns need little shrinkage, and stronger shrinkage
# pulls probabilities towards the base rate (worse calibration).
LOGISTIC_C = 1.0
LOGISTIC_MAX_ITER = 1_000
RELIABILITY_BINS = 10
_CONSTANT = 1e-9  # a column whose training standard deviation is below this carries no signal


@dataclass(frozen=True)
class ChurnPeriods:
    """The months one churn model reads, for the model of month ``score``."""

    train: str  # features of T - 2h, labelled by ``validation``'s table
    validation: str  # features of T - h, labelled by ``score``'s table
    score: str  # T: the customers scored


def churn_periods(period: str, horizon_months: int) -> ChurnPeriods:
    return ChurnPeriods(
        train=periods.shift(period, -2 * horizon_months),
        validation=periods.shift(period, -horizon_months),
        score=period,
    )


def churn_labels(at: pl.DataFrame, later: pl.DataFrame, period: str, horizon_months: int) -> pl.DataFrame:
    """Churn label of every customer in ``at`` (the features of ``period``), read from ``later``.

    ``at``: features of month M (needs ``customer_id``). ``later``: features of month M + h
    (``customer_id``, ``recency_days`` in days before ``as_of(M + h)``); an empty frame means
    nobody bought. Returns ``customer_id`` (String) and ``churned`` (Boolean), one row per customer
    of ``at``, sorted by id. Valid only for h <= the feature window, which the caller checks.
    """
    cutoff = periods.as_of(period)
    later_as_of = periods.as_of(periods.shift(period, horizon_months))
    # Last purchase date in `later` = later_as_of - recency_days; it falls on or after the cutoff
    # (a purchase in M+1..M+h) exactly when recency_days <= the days between the two as-of dates.
    days_between = (later_as_of - cutoff).days
    bought = pl.col("recency_days") <= days_between
    active = later.filter(bought).select("customer_id", pl.lit(True).alias("_active"))
    return (
        at.select("customer_id")
        .unique(maintain_order=True)
        .join(active, on="customer_id", how="left")
        .select("customer_id", pl.col("_active").is_null().alias("churned"))
        .sort("customer_id")
    )


def _column(frame: pl.DataFrame, source: str, transform: str) -> pl.Expr:
    """The transformed column as Float64; nulls (undefined ratios) stay null, NaN becomes null."""
    if source not in frame.columns:
        value = pl.lit(None, dtype=pl.Float64)
    else:
        value = pl.col(source).cast(pl.Float64).fill_nan(None)
    if transform == "is_null":
        return value.is_null().cast(pl.Float64)
    if transform == "log1p":
        return value.clip(lower_bound=0.0).log1p()
    if transform == "signed_log1p":
        return value.sign() * value.abs().log1p()
    if transform == "identity":
        return value
    raise ValueError(f"unknown churn feature transform {transform!r}")


def _raw(frame: pl.DataFrame, spec: list[dict]) -> pl.DataFrame:
    return frame.select([_column(frame, f["source"], f["transform"]).alias(f["name"]) for f in spec])


def fit_design(frame: pl.DataFrame, features: tuple[tuple[str, str], ...]) -> list[dict]:
    """Per design column: source, transform, fill value, clip bounds, scaler mean and scale.

    Learnt from ``frame`` (the training features) only. A feature with undefined values also gets
    an ``is_null`` indicator column, because "never opened an e-mail it was sent" and "was never
    sent one" are different customers. Constant columns are dropped (no signal, zero scale).
    """
    candidates = []
    for source, transform in features:
        candidates.append({"name": source, "source": source, "transform": transform})
        if source in frame.columns and frame[source].cast(pl.Float64).fill_nan(None).null_count():
            candidates.append({"name": f"{source}_missing", "source": source, "transform": "is_null"})
    raw = _raw(frame, candidates)
    spec = []
    for f in candidates:
        column = raw[f["name"]]
        median = column.median()
        fill = float(median) if median is not None else 0.0
        values = column.fill_null(fill).to_numpy()
        # Winsorise at the training 1st/99th percentiles: a few extreme customers would otherwise
        # dominate a linear model's coefficients.
        lower, upper = (float(v) for v in np.percentile(values, [1, 99]))
        clipped = np.clip(values, lower, upper)
        scale = float(clipped.std())
        if scale <= _CONSTANT:
            continue
        spec.append({**f, "fill": fill, "clip_lower": lower, "clip_upper": upper,
                     "mean": float(clipped.mean()), "scale": scale})  # fmt: skip
    return spec


def design_matrix(frame: pl.DataFrame, spec: list[dict]) -> np.ndarray:
    """The standardised design matrix, shape (rows of ``frame``, len(spec)), in ``frame``'s order."""
    if not spec:
        return np.zeros((frame.height, 0))
    raw = _raw(frame, spec)
    columns = [np.clip(raw[f["name"]].fill_null(f["fill"]).to_numpy(), f["clip_lower"], f["clip_upper"])
               for f in spec]  # fmt: skip
    matrix = np.column_stack(columns)
    return (matrix - np.array([f["mean"] for f in spec])) / np.array([f["scale"] for f in spec])


def predict(frame: pl.DataFrame, params: LogisticParams) -> np.ndarray:
    """Churn probability per row of ``frame`` (0..1), from stored logistic parameters.

    ``params``: ``design`` (from ``fit_design``), ``coefficients`` (one per design column) and
    ``intercept``. The same function scores at fit time and after reload, so both agree exactly.
    """
    from scipy.special import expit

    logit = design_matrix(frame, params.design) @ np.asarray(params.coefficients, dtype=np.float64)
    return expit(logit + float(params.intercept))


def _fit_logistic(
    frame: pl.DataFrame, y: np.ndarray, features: tuple[tuple[str, str], ...], seed: int
) -> LogisticParams:
    """Fit an L2 logistic regression of ``y`` (0/1 per row) on ``features``; return its parameters."""
    from sklearn.linear_model import LogisticRegression

    from segflow.lib.threads import single_threaded

    spec = fit_design(frame, features)
    estimator = LogisticRegression(
        C=LOGISTIC_C, solver="lbfgs", max_iter=LOGISTIC_MAX_ITER, random_state=seed
    )
    # Single-threaded BLAS: the matrices are small, and threads only add scheduling noise here.
    with single_threaded():
        estimator.fit(design_matrix(frame, spec), y)
    return LogisticParams(
        design=spec,
        coefficients=[float(c) for c in estimator.coef_[0]],
        intercept=float(estimator.intercept_[0]),
        iterations=int(estimator.n_iter_[0]),
    )


def _ranked_deciles(risk: np.ndarray, ids: list[str], bins: int) -> np.ndarray:
    """Decile 1 (lowest risk) .. ``bins`` (highest) by rank; ties broken by customer id, so the
    bins are equal-sized and the same on every run."""
    order = np.lexsort((np.array(ids, dtype=str), risk))
    ranks = np.empty(len(risk), dtype=np.int64)
    ranks[order] = np.arange(len(risk))
    return ranks * bins // len(risk) + 1


def evaluate(risk: np.ndarray, churned: np.ndarray, ids: list[str]) -> dict:
    """Validation metrics of predicted probabilities against observed labels.

    ``auc``: ROC AUC; ``brier``: mean squared error of the probability (0 best); ``top_decile_lift``:
    churn rate among the 10% highest-risk customers over the overall churn rate; ``reliability``:
    per risk decile, customers, mean predicted and observed churn rate.
    """
    from sklearn.metrics import roc_auc_score

    y = churned.astype(np.float64)
    deciles = _ranked_deciles(risk, ids, RELIABILITY_BINS)
    base = float(y.mean())
    table = []
    for d in range(1, RELIABILITY_BINS + 1):
        mask = deciles == d
        table.append({"decile": d, "customers": int(mask.sum()),
                      "mean_predicted": round(float(risk[mask].mean()), 6),
                      "observed_rate": round(float(y[mask].mean()), 6)})  # fmt: skip
    top = y[deciles == RELIABILITY_BINS].mean()
    return {
        "auc": float(roc_auc_score(y, risk)),
        "brier": float(np.mean((risk - y) ** 2)),
        "top_decile_lift": float(top / base) if base > 0 else None,
        "reliability": table,
    }


def _skipped(period: str, horizon: int, reason: str, **extra: object) -> ChurnModel:
    return ChurnModel(available=False, period=period, horizon_months=horizon, reason=reason, version=None,
                      **extra)  # fmt: skip


def fit_churn_model(
    features_by_period: Mapping[str, pl.DataFrame], period: str, settings: ModelSettings, window_months: int
) -> ChurnModel:
    """The churn model of month ``period`` (T), or a record of why there is none.

    ``features_by_period``: customer feature tables keyed "YYYY-MM"; it must hold T - 2h, T - h and
    T (months not built are simply absent). With ``available`` True the model holds the fitted
    parameters (see ``predict``), the recency-only baseline's parameters, the train/validation
    sizes and churn rates, and validation metrics of both. With ``available`` False it holds
    ``reason``: too little history, too few labelled customers, or a single class.
    """
    horizon = settings.churn_horizon_months
    months = churn_periods(period, horizon)
    required = {"train": months.train, "validation": months.validation, "score": months.score}
    if not 1 <= horizon <= window_months:
        return _skipped(period, horizon, f"churn_horizon_months must be 1..{window_months} (the feature "
                        f"window), so that absence from a later feature table means no purchase")  # fmt: skip
    missing = sorted(m for m in required.values() if m not in features_by_period)
    if missing:
        reason = (
            f"not enough history: customer_features missing for {', '.join(missing)} (train on "
            f"{months.train}, validate on {months.validation}, score {months.score})"
        )
        return _skipped(period, horizon, reason, required_periods=required, missing_periods=missing)

    def labelled(at: str, later: str) -> pl.DataFrame:
        frame = features_by_period[at].sort("customer_id")
        labels = churn_labels(frame, features_by_period[later], at, horizon)
        return frame.join(labels, on="customer_id", how="left", maintain_order="left")

    train = labelled(months.train, months.validation)
    validation = labelled(months.validation, months.score)
    too_little = _too_little(train, validation, required, settings.churn_min_customers)
    if too_little is not None:
        sizes = {"train": train.height, "validation": validation.height}
        return _skipped(period, horizon, too_little, required_periods=required, labelled_customers=sizes)
    return _fitted(train, validation, period, settings, months, required)


def _too_little(
    train: pl.DataFrame, validation: pl.DataFrame, required: dict[str, str], min_customers: int
) -> str | None:
    """Why the labelled months cannot fit and validate a model (too few customers, or one class)."""
    for name, frame in (("train", train), ("validation", validation)):
        if frame.height < min_customers:
            return (
                f"not enough history: {frame.height} labelled customers in {name} ({required[name]}), "
                f"churn_min_customers is {min_customers}"
            )
        if frame["churned"].n_unique() < 2:
            return f"{name} ({required[name]}) holds a single class: all labelled customers churned or none"
    return None


def _sample(frame: pl.DataFrame, y: np.ndarray, features_period: str, labels_period: str) -> dict:
    """The record of one labelled month: its periods, customers, churners and churn rate."""
    return {"features_period": features_period, "labels_period": labels_period, "customers": frame.height,
            "churners": int(y.sum()), "churn_rate": float(y.mean())}  # fmt: skip


def _fitted(
    train: pl.DataFrame,
    validation: pl.DataFrame,
    period: str,
    settings: ModelSettings,
    months: ChurnPeriods,
    required: dict[str, str],
) -> ChurnModel:
    """Fit the model and its recency-only baseline on ``train``, validate both out of time on
    ``validation``, and let the guard decide which scores (or that neither does)."""
    horizon = settings.churn_horizon_months
    y_train = train["churned"].to_numpy().astype(np.int64)
    y_val = validation["churned"].to_numpy()
    model = _fit_logistic(train, y_train, CHURN_FEATURES, settings.seed)
    baseline = _fit_logistic(train, y_train, BASELINE_FEATURES, settings.seed)
    ids = validation["customer_id"].to_list()
    risk, base_risk = predict(validation, model), predict(validation, baseline)
    metrics = evaluate(risk, y_val, ids)
    base_metrics = evaluate(base_risk, y_val, ids)
    churners = {"train": int(y_train.sum()), "validation": int(y_val.sum())}
    intervals = auc_intervals(y_val, risk, base_risk, settings.seed)
    guard = decide(
        {"auc": metrics["auc"], "baseline_auc": base_metrics["auc"]}, churners, settings.churn_min_churners
    )
    # The parameters that score (``predict``): the model's, or the baseline's when the guard fell
    # back to it; the model's own are kept under ``fitted_model`` either way.
    scorer = baseline if guard["scorer"] == "baseline" else model
    result = ChurnModel(
        available=guard["scorer"] != "withheld",
        period=period,
        horizon_months=horizon,
        seed=settings.seed,
        estimator={"class": "sklearn.linear_model.LogisticRegression", "C": LOGISTIC_C, "solver": "lbfgs",
                   "max_iter": LOGISTIC_MAX_ITER, "penalty": "l2"},  # fmt: skip
        label_definition=f"no purchase in the {horizon} months after the features' month",
        required_periods=required,
        train=_sample(train, y_train, months.train, months.validation),
        validation=_sample(validation, y_val, months.validation, months.score),
        design=scorer.design,
        coefficients=scorer.coefficients,
        intercept=scorer.intercept,
        iterations=scorer.iterations,
        fitted_model=dataclasses.replace(model, features=[name for name, _ in CHURN_FEATURES]),
        baseline=dataclasses.replace(baseline, features=[name for name, _ in BASELINE_FEATURES]),
        guard={**guard, "min_churners": settings.churn_min_churners},
        metrics=_metrics(metrics, base_metrics, intervals),
        auc_ci_method=intervals["auc_ci_method"],
        calibration=calibration(metrics["reliability"]),
        baseline_calibration=calibration(base_metrics["reliability"]),
        reliability=metrics["reliability"],
        baseline_reliability=base_metrics["reliability"],
    )
    if guard["scorer"] == "withheld":
        return dataclasses.replace(result, reason=guard["reason"], version=None)
    return result.versioned()


def _metrics(metrics: dict, base: dict, intervals: dict) -> dict:
    """The out-of-time metrics of the model and the baseline, with bootstrap AUC intervals."""
    return {
        "auc": metrics["auc"],
        "auc_ci_low": intervals["auc_ci"][0],
        "auc_ci_high": intervals["auc_ci"][1],
        "brier": metrics["brier"],
        "top_decile_lift": metrics["top_decile_lift"],
        "baseline_auc": base["auc"],
        "baseline_auc_ci_low": intervals["baseline_auc_ci"][0],
        "baseline_auc_ci_high": intervals["baseline_auc_ci"][1],
        "baseline_brier": base["brier"],
        "baseline_top_decile_lift": base["top_decile_lift"],
        "auc_gain_over_baseline": metrics["auc"] - base["auc"],
        "auc_gain_ci_low": intervals["auc_gain_ci"][0],
        "auc_gain_ci_high": intervals["auc_gain_ci"][1],
    }


def churn_scores(features: pl.DataFrame, model: ChurnModel) -> pl.DataFrame:
    """``customer_id`` and ``churn_risk`` (Float64 probability of no purchase in the next h months),
    one row per row of ``features`` in its order; risk is null for every row when the model is not
    available."""
    if not model.available:
        risk = pl.lit(None, dtype=pl.Float64)
        return features.select("customer_id", risk.alias("churn_risk"))
    return features.select("customer_id").with_columns(
        pl.Series("churn_risk", predict(features, model.scorer), dtype=pl.Float64)
    )
