"""Predicted customer value: the BTYD summary from the monthly profiles, an out-of-time validated
BG/NBD + Gamma-Gamma model (``segflow.lib.models.btyd``), and per-customer scores.

Definitions (h = ``model.clv_horizon_months``, times in days, purchases counted as purchase days):

- The **BTYD summary** of a customer as of a date: ``frequency`` x, the purchase days after the
  first; ``recency_days`` t_x, from the first purchase day to the last; ``age_days`` T, from the
  first purchase day to the as-of date; ``mean_value`` m, net revenue per purchase day over the
  whole history (lifetimes averages the repeat purchases only; the monthly profiles do not separate
  the first purchase's value, so the first is included). Read from every monthly profile up to the
  as-of date, never from line items.
- The model of month T is **fitted** on the summary as of the end of T - h and **validated out of
  time** on (T - h, T]: predicted against actual repeat purchases and net revenue, in total, per
  decile of predicted purchases and per segment (the segments of T - h), next to the naive baseline
  "each customer repeats their past rate" (x / T purchases a day, at their own mean value). The
  validated fit (not a refit) is stored and scores the customers of T, as the churn model does.
- It is **withheld** (``available`` False, with the reason) when either fit does not converge,
  Gamma-Gamma's q <= 1 (no finite mean spend), or the model's error on the holdout purchases is
  not below the baseline's, in total and per customer.
- **Predicted value** of a customer at T: the sum over the next h months of the month's expected
  purchases times the expected spend per purchase, discounted at ``model.clv_discount_rate`` a
  month: sum_i (E[Y(t_i)] - E[Y(t_{i-1})]) E[M] / (1 + d)^i, with t_i the days to the end of month T+i.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np
import polars as pl

from segflow.config import ModelSettings
from segflow.lib import periods
from segflow.lib.exact import exact_mean, exact_sum
from segflow.lib.models import btyd
from segflow.lib.models.churn import _ranked_deciles

SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "frequency": pl.Float64(),
    "recency_days": pl.Float64(),
    "age_days": pl.Float64(),
    "mean_value": pl.Float64(),
}
SCORE_COLUMNS = ("p_alive", "expected_purchases", "predicted_value")
DECILES = 10
NOT_SEGMENTED = "not segmented"


@dataclass(frozen=True)
class ClvModel:
    """The stored CLV model of one month: plain data, saved as JSON by the model IO manager."""

    available: bool
    period: str
    horizon_months: int
    discount_rate: float  # per month
    reason: str | None = None
    bgnbd: btyd.BgNbdParams | None = None
    gamma_gamma: btyd.GammaGammaParams | None = None
    fit: dict = field(default_factory=dict)  # calibration period, sizes, convergence of both fits
    validation: dict = field(default_factory=dict)  # totals, errors, deciles and segments out of time
    version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> ClvModel:
        values = dict(data)
        if values.get("bgnbd"):
            values["bgnbd"] = btyd.BgNbdParams(**values["bgnbd"])
        if values.get("gamma_gamma"):
            values["gamma_gamma"] = btyd.GammaGammaParams(**values["gamma_gamma"])
        return cls(**values)

    def versioned(self) -> ClvModel:
        """The same model with ``version``, a content hash of everything else."""
        payload = json.dumps({k: v for k, v in self.to_dict().items() if k != "version"},
                             sort_keys=True, default=str)  # fmt: skip
        return ClvModel(**{**self.__dict__, "version": hashlib.sha256(payload.encode()).hexdigest()[:12]})


def _purchase_totals(profiles: Mapping[str, pl.DataFrame | pl.LazyFrame], dates: bool) -> pl.DataFrame | None:
    """Per customer over the monthly ``profiles``: purchase ``days`` and net ``revenue``, and with
    ``dates`` the ``first`` and ``last`` purchase dates; None when there are no months."""
    columns = ["customer_id", "purchase_days", "net_revenue"]
    columns += ["first_purchase_at", "last_purchase_at"] if dates else []
    frames = [f.lazy().select(columns) for _, f in sorted(profiles.items())]
    if not frames:
        return None
    span = [pl.col("first_purchase_at").min().dt.date().alias("first"),
            pl.col("last_purchase_at").max().dt.date().alias("last")] if dates else []  # fmt: skip
    return (
        pl.concat(frames, how="diagonal_relaxed")
        .group_by("customer_id")
        .agg(
            pl.col("purchase_days").cast(pl.Int64).sum().alias("days"),
            exact_sum(pl.col("net_revenue").cast(pl.Float64)).alias("revenue"),
            *span,
        )
        .with_columns(pl.col("customer_id").cast(pl.String))
        .collect()
    )


def btyd_summary(profiles: Mapping[str, pl.DataFrame | pl.LazyFrame], as_of: date) -> pl.DataFrame:
    """SUMMARY_SCHEMA per customer with at least one purchase in ``profiles`` (monthly profile
    tables keyed "YYYY-MM", all before ``as_of``), sorted by ``customer_id``."""
    totals = _purchase_totals(profiles, dates=True)
    if totals is None:
        return pl.DataFrame(schema=SUMMARY_SCHEMA)
    totals = totals.filter(pl.col("days") > 0)
    return (
        totals.select(
            "customer_id",
            (pl.col("days") - 1).cast(pl.Float64).alias("frequency"),
            (pl.col("last") - pl.col("first")).dt.total_days().cast(pl.Float64).alias("recency_days"),
            (pl.lit(as_of) - pl.col("first")).dt.total_days().cast(pl.Float64).alias("age_days"),
            (pl.col("revenue") / pl.col("days")).alias("mean_value"),
        )
        .cast(SUMMARY_SCHEMA)
        .sort("customer_id")
    )


def _arrays(summary: pl.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(summary[c].to_numpy() for c in ("frequency", "recency_days", "age_days", "mean_value"))


def days_between(period: str, months: int) -> float:
    """Days from the end of ``period`` to the end of ``months`` months later."""
    return float((periods.as_of(periods.shift(period, months)) - periods.as_of(period)).days)


def score(summary: pl.DataFrame, model: ClvModel, period: str) -> pl.DataFrame:
    """``customer_id`` and SCORE_COLUMNS per row of ``summary`` (the BTYD summary as of ``period``'s
    end): P(alive), expected purchases in the next h months, and the discounted predicted h-month
    value. Null for every row when the model is withheld, and where a value is not finite."""
    if not model.available or summary.height == 0:
        return summary.select(
            "customer_id", *[pl.lit(None, dtype=pl.Float64).alias(c) for c in SCORE_COLUMNS]
        )
    x, t_x, T, m = _arrays(summary)
    spend = btyd.expected_spend(model.gamma_gamma, x, m)
    value, previous = np.zeros(x.size), np.zeros(x.size)
    for month in range(1, model.horizon_months + 1):
        cumulative = btyd.expected_purchases(model.bgnbd, days_between(period, month), x, t_x, T)
        value += (cumulative - previous) * spend / (1.0 + model.discount_rate) ** month
        previous = cumulative
    # A value the special functions cannot give (an overflow for an extreme history) is null, never
    # NaN passed on as a number; segment_assignments counts them in its metadata.
    return summary.select("customer_id").with_columns(
        _finite("p_alive", btyd.p_alive(model.bgnbd, x, t_x, T)),
        _finite("expected_purchases", previous),
        _finite("predicted_value", value),
    )


def _finite(name: str, values: np.ndarray) -> pl.Series:
    return pl.Series(name, np.where(np.isfinite(values), values, np.nan), dtype=pl.Float64).fill_nan(None)


def clv_scores(
    customers: pl.DataFrame, history: Mapping[str, pl.DataFrame | pl.LazyFrame], model: ClvModel, period: str
) -> pl.DataFrame:
    """``customer_id`` and SCORE_COLUMNS for every row of ``customers``, scored on their BTYD summary
    from ``history`` (the monthly profiles up to ``period``). A customer without a purchase in the
    history (none in practice: the assigned customers bought in the window) gets nulls."""
    if not model.available:
        return score(customers.select("customer_id"), model, period)
    summary = btyd_summary({m: f for m, f in history.items() if m <= period}, periods.as_of(period))
    summary = customers.select(pl.col("customer_id").cast(pl.String)).join(summary, on="customer_id")
    scored = score(summary, model, period)
    return customers.select("customer_id").join(scored, on="customer_id", how="left", maintain_order="left")


def holdout_outcomes(
    summary: pl.DataFrame, holdout: Mapping[str, pl.DataFrame | pl.LazyFrame]
) -> pl.DataFrame:
    """Per customer of ``summary``: ``actual_purchases`` (purchase days) and ``actual_revenue`` (net)
    over the ``holdout`` months; 0 for a customer with no profile row there."""
    base = summary.select("customer_id")
    totals = _purchase_totals(holdout, dates=False)
    if totals is None:
        return base.with_columns(pl.lit(0.0).alias("actual_purchases"), pl.lit(0.0).alias("actual_revenue"))
    totals = totals.select(
        "customer_id",
        pl.col("days").cast(pl.Float64).alias("actual_purchases"),
        pl.col("revenue").alias("actual_revenue"),
    )
    return base.join(totals, on="customer_id", how="left", maintain_order="left").fill_null(0.0)


def withheld(period: str, settings: ModelSettings, reason: str, **extra: dict) -> ClvModel:
    """The stored record of a month without a CLV model: why, and the fit and validation if any."""
    return ClvModel(False, period, settings.clv_horizon_months, settings.clv_discount_rate, reason,
                    **extra).versioned()  # fmt: skip


def _fit_record(bg: btyd.Fit, gg: btyd.Fit, calibration: str, customers: int) -> dict:
    def one(f: btyd.Fit) -> dict:
        return {"converged": f.converged, "message": f.message, "log_likelihood": f.log_likelihood,
                "iterations": f.iterations, "customers": f.customers, "params": f.params.to_dict()}  # fmt: skip

    return {
        "calibration_period": calibration,
        "customers": customers,
        "bgnbd": one(bg),
        "gamma_gamma": one(gg),
    }


def fit_clv_model(
    history: Mapping[str, pl.DataFrame | pl.LazyFrame],
    period: str,
    settings: ModelSettings,
    segments: pl.DataFrame | None = None,
) -> ClvModel:
    """The CLV model of month ``period`` (T), or the record of why it is withheld.

    ``history``: monthly customer profiles keyed "YYYY-MM" up to T (missing months absent).
    ``segments``: ``customer_id``, ``segment_id``, ``segment_name`` of T - h, for the validation per
    segment (customers without one are "not segmented"); None leaves that table out.
    """
    h = settings.clv_horizon_months
    calibration = periods.shift(period, -h)
    holdout_months = periods.month_range(periods.shift(calibration, 1), period)
    missing = [m for m in holdout_months if m not in history]
    if h < 1:
        return withheld(period, settings, "clv_horizon_months must be at least 1")
    if missing:
        return withheld(period, settings, f"not enough history: customer_profiles missing for "
                        f"{', '.join(missing)}, the out-of-time holdout ({holdout_months[0]}..{period})")  # fmt: skip
    fitted_months = {month: frame for month, frame in history.items() if month <= calibration}
    summary = btyd_summary(fitted_months, periods.as_of(calibration))
    repeaters = int((summary["frequency"] > 0).sum())
    if summary.height < settings.clv_min_customers or repeaters < settings.clv_min_customers // 2:
        return withheld(period, settings, f"not enough history: {summary.height} customers with a purchase "
                        f"up to {calibration}, {repeaters} of them repeat buyers; clv_min_customers is "
                        f"{settings.clv_min_customers} (and half as many repeat buyers)")  # fmt: skip
    x, t_x, T, m = _arrays(summary)
    bg = btyd.fit_bgnbd(x, t_x, T)
    positive = (x > 0) & (m > 0)
    gg = btyd.fit_gamma_gamma(x[positive], m[positive])
    fit = _fit_record(bg, gg, calibration, summary.height)
    # Gamma-Gamma assumes spend per purchase does not depend on how often a customer buys; the
    # correlation among the customers it is fitted on says how far the data are from that.
    if positive.sum() > 2:
        fit["frequency_value_correlation"] = float(np.corrcoef(x[positive], m[positive])[0, 1])
    problem = _fit_problem(bg, gg)
    if problem:
        return withheld(period, settings, problem, fit=fit)
    model = ClvModel(True, period, h, settings.clv_discount_rate, None, bg.params, gg.params, fit)
    outcomes = holdout_outcomes(summary, {month: history[month] for month in holdout_months})
    validation = validate(summary, outcomes, model, days_between(calibration, h), segments)
    loses = _loses_to_baseline(validation["totals"])
    if loses:
        return withheld(period, settings, loses, fit=fit, validation=validation)
    return ClvModel(True, period, h, settings.clv_discount_rate, None, bg.params, gg.params, fit,
                    validation).versioned()  # fmt: skip


def _fit_problem(bg: btyd.Fit, gg: btyd.Fit) -> str | None:
    if not bg.converged:
        return f"the BG/NBD fit did not converge ({bg.message})"
    if not gg.converged:
        return f"the Gamma-Gamma fit did not converge ({gg.message})"
    if gg.params.q <= 1.0:
        return f"the Gamma-Gamma fit has q = {gg.params.q:.3f} <= 1: mean spend per purchase is not finite"
    return None


def _loses_to_baseline(totals: dict) -> str | None:
    if totals["actual_purchases"] <= 0:
        return "no repeat purchase in the out-of-time holdout, so the model cannot be validated"
    if not np.isfinite(totals["predicted_purchases"]) or not np.isfinite(totals["predicted_revenue"]):
        return "the fitted model gives non-finite predictions on the holdout"
    model, baseline = totals["purchases_error"], totals["baseline_purchases_error"]
    if model >= baseline:
        return (f"out of time the model's total repeat purchases are off by {model:.1%}, the naive "
                f"baseline's by {baseline:.1%}")  # fmt: skip
    if totals["purchases_mae"] >= totals["baseline_purchases_mae"]:
        return (f"out of time the model's mean absolute error per customer ({totals['purchases_mae']:.3f} "
                f"purchases) is not below the naive baseline's ({totals['baseline_purchases_mae']:.3f})")  # fmt: skip
    return None


def _predictions(summary: pl.DataFrame, model: ClvModel, days: float) -> pl.DataFrame:
    """Holdout predictions of the model and the naive baseline per customer of ``summary``."""
    x, t_x, T, m = _arrays(summary)
    purchases = btyd.expected_purchases(model.bgnbd, days, x, t_x, T)
    # Naive baseline: the customer's own repeat rate so far (x / T per day) and their own mean value.
    baseline = x / np.maximum(T, 1.0) * days
    return summary.select("customer_id").with_columns(
        pl.Series("predicted_purchases", purchases, dtype=pl.Float64),
        pl.Series(
            "predicted_revenue", purchases * btyd.expected_spend(model.gamma_gamma, x, m), dtype=pl.Float64
        ),
        pl.Series("baseline_purchases", baseline, dtype=pl.Float64),
        pl.Series("baseline_revenue", baseline * np.clip(m, 0.0, None), dtype=pl.Float64),
    )


_COMPARED = ("predicted_purchases", "baseline_purchases", "actual_purchases",
             "predicted_revenue", "baseline_revenue", "actual_revenue")  # fmt: skip


def _grouped(frame: pl.DataFrame, keys: list[str]) -> list[dict]:
    """Per group: customers and the mean per customer of every compared column, sorted by the keys
    (exact means: a float mean in a group-by differs in the last bit with the rows' order)."""
    table = (
        frame.group_by(keys)
        .agg(pl.len().alias("customers"), *[exact_mean(pl.col(c)).alias(f"mean_{c}") for c in _COMPARED])
        .sort(keys, nulls_last=True)
    )
    return table.to_dicts()


def _relative_error(predicted: float, actual: float) -> float:
    return abs(predicted - actual) / actual if actual > 0 else float("inf")


def validate(
    summary: pl.DataFrame, outcomes: pl.DataFrame, model: ClvModel, days: float, segments: pl.DataFrame | None
) -> dict:
    """Out-of-time comparison of ``model`` and the naive baseline with ``outcomes`` over ``days``.

    ``totals``: summed predicted, baseline and actual repeat purchases and net revenue, the relative
    error of each total (|predicted - actual| / actual) and the mean absolute error per customer;
    ``deciles``: per decile of predicted purchases (1 lowest), means per customer; ``segments``: the
    same per segment of T - h (absent when ``segments`` is None).
    """
    frame = _predictions(summary, model, days).join(outcomes, on="customer_id", maintain_order="left")
    # numpy's sums over whole arrays: the same for any chunking of the frame (polars thread count).
    values = {c: frame[c].to_numpy() for c in _COMPARED}
    sums = {c: float(np.sum(v)) for c, v in values.items()}
    totals = {
        "customers": frame.height,
        "holdout_days": days,
        **sums,
        "purchases_error": _relative_error(sums["predicted_purchases"], sums["actual_purchases"]),
        "baseline_purchases_error": _relative_error(sums["baseline_purchases"], sums["actual_purchases"]),
        "revenue_error": _relative_error(sums["predicted_revenue"], sums["actual_revenue"]),
        "baseline_revenue_error": _relative_error(sums["baseline_revenue"], sums["actual_revenue"]),
        "purchases_mae": float(np.mean(np.abs(values["predicted_purchases"] - values["actual_purchases"]))),
        "baseline_purchases_mae": float(
            np.mean(np.abs(values["baseline_purchases"] - values["actual_purchases"]))
        ),
    }
    ids = frame["customer_id"].to_list()
    deciles = _ranked_deciles(frame["predicted_purchases"].to_numpy(), ids, DECILES)
    result = {
        "totals": totals,
        "deciles": _grouped(frame.with_columns(pl.Series("decile", deciles)), ["decile"]),
    }
    if segments is not None:
        labelled = frame.join(segments.select("customer_id", pl.col("segment_id").cast(pl.Int64), "segment_name"),
                              on="customer_id", how="left", maintain_order="left")  # fmt: skip
        labelled = labelled.with_columns(pl.col("segment_name").fill_null(NOT_SEGMENTED))
        result["segments"] = _grouped(labelled, ["segment_id", "segment_name"])
    return result
