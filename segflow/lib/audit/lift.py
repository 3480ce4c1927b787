"""Campaign lift per segment and campaign: treatment against control response rates.

For each (segment, campaign): response rates p_t and p_c, absolute lift p_t - p_c, relative lift
(p_t - p_c) / p_c, a two-sided two-proportion z-test (pooled standard error) and a 95% Wald
confidence interval of the difference (unpooled standard error). A campaign with no control arm
in the segment (nobody held out) is "no control group", one with no treated customer "no treatment
group": there is nothing to compare, whatever the sample size. Arms with fewer than
``min_arm_size`` exposed customers are marked "insufficient sample" and get no test.

Many segment x campaign tests are read together, so ``significant`` uses Holm-adjusted p-values
(family: the period's tested rows), which keeps the chance of any false "significant" at ``alpha``.
"""

from __future__ import annotations

import math

import polars as pl

from segflow.lib.audit.kpis import first_exposures

INSUFFICIENT = "insufficient sample"
NO_CONTROL = "no control group"
NO_TREATMENT = "no treatment group"
UNTESTED = (INSUFFICIENT, NO_CONTROL, NO_TREATMENT)

LIFT_SCHEMA: dict[str, pl.DataType] = {
    "segment_id": pl.Int64(),
    "segment_name": pl.String(),
    "campaign_id": pl.String(),
    "treatment_n": pl.Int64(),
    "treatment_responders": pl.Int64(),
    "treatment_rate": pl.Float64(),
    "control_n": pl.Int64(),
    "control_responders": pl.Int64(),
    "control_rate": pl.Float64(),
    "abs_lift": pl.Float64(),
    "rel_lift": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "z": pl.Float64(),
    "p_value": pl.Float64(),
    "p_value_holm": pl.Float64(),
    "significant": pl.Boolean(),
    "status": pl.String(),
}


def two_proportion_test(
    x_t: int, n_t: int, x_c: int, n_c: int, confidence: float = 0.95
) -> dict[str, float | None]:
    """z statistic and two-sided p-value (pooled SE), and the CI of p_t - p_c (unpooled SE)."""
    from scipy import stats

    p_t, p_c = x_t / n_t, x_c / n_c
    diff = p_t - p_c
    pooled = (x_t + x_c) / (n_t + n_c)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if se_pooled > 0:
        z = diff / se_pooled
        p_value = float(2 * stats.norm.sf(abs(z)))
    else:  # both arms all-or-nothing and equal: no evidence of a difference
        z, p_value = 0.0, 1.0
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return {"z": z, "p_value": p_value, "ci_low": diff - half, "ci_high": diff + half}


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def campaign_lift(
    exposures: pl.DataFrame,
    segments: pl.DataFrame,
    min_arm_size: int = 50,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """One row per (segment, campaign) with exposures in the month; columns as ``LIFT_SCHEMA``.

    ``exposures``: the month's cleaned exposures (``campaign_id, customer_id, arm, responded``; the
    profiles stage's ``campaign_exposures``). ``segments``: ``customer_id, segment_id, segment_name``.
    Exposed customers without a segment (no purchase in the window) are left out.
    """
    exposures = first_exposures(exposures).join(
        segments.select("customer_id", pl.col("segment_id").cast(pl.Int64), "segment_name"), on="customer_id"
    )
    if exposures.height == 0:
        return pl.DataFrame(schema=LIFT_SCHEMA)
    counts = (
        exposures.group_by("segment_id", "segment_name", "campaign_id")
        .agg(
            *[
                (pl.col("arm") == arm).sum().cast(pl.Int64).alias(f"{arm}_n")
                for arm in ("treatment", "control")
            ],
            *[
                (pl.col("responded") & (pl.col("arm") == arm)).sum().cast(pl.Int64).alias(f"{arm}_responders")
                for arm in ("treatment", "control")
            ],
        )
        .sort("segment_id", "campaign_id")
    )
    rows = []
    for r in counts.iter_rows(named=True):
        n_t, n_c, x_t, x_c = (
            r["treatment_n"],
            r["control_n"],
            r["treatment_responders"],
            r["control_responders"],
        )
        p_t = x_t / n_t if n_t else None
        p_c = x_c / n_c if n_c else None
        row = {
            **r,
            "treatment_rate": p_t,
            "control_rate": p_c,
            "abs_lift": None,
            "rel_lift": None,
            "ci_low": None,
            "ci_high": None,
            "z": None,
            "p_value": None,
            "p_value_holm": None,
            "significant": None,
        }
        if n_c == 0:
            row["status"] = NO_CONTROL
        elif n_t == 0:
            row["status"] = NO_TREATMENT
        elif min(n_t, n_c) < min_arm_size:
            row["status"] = INSUFFICIENT
        else:
            row["status"] = "tested"
            row["abs_lift"] = p_t - p_c
            row["rel_lift"] = (p_t - p_c) / p_c if p_c else None
            row.update(two_proportion_test(x_t, n_t, x_c, n_c, confidence))
        rows.append(row)
    tested = [i for i, row in enumerate(rows) if row["status"] == "tested"]
    for i, adjusted in zip(tested, holm([rows[i]["p_value"] for i in tested]), strict=True):
        rows[i]["p_value_holm"] = adjusted
        rows[i]["significant"] = adjusted < alpha
    return pl.DataFrame(rows, schema=LIFT_SCHEMA)
