"""The report's "Predicted value" section and its Methods entry, from the month's CLV model (JSON)
and the per-segment KPI table: value by segment, the out-of-time calibration by decile and by
segment, or why the prediction is withheld. Aggregates only; cells under ``min_cell`` customers
are suppressed like everywhere else in the report. A module of its own so that the renderer's
other sections change without touching it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from segflow.config import Settings
from segflow.lib.report import charts

if TYPE_CHECKING:
    from segflow.lib.models.clv import ClvModel

# Template label -> validation column (per group the column's mean per customer, in total its sum).
_COMPARED = {
    "predicted": "predicted_purchases",
    "baseline": "baseline_purchases",
    "actual": "actual_purchases",
    "predicted_revenue": "predicted_revenue",
    "baseline_revenue": "baseline_revenue",
    "actual_revenue": "actual_revenue",
}


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None or value == float("inf") else f"{100 * value:.1f}%"


def _segment_rows(kpis: pl.DataFrame, min_cell: int) -> tuple[list[dict], int]:
    if "predicted_value" not in kpis.columns:
        return [], 0
    visible = kpis.filter(pl.col("customers") >= min_cell)
    rows = [
        {
            "segment": f"{r['segment_id']}: {r['segment_name']}",
            "customers": f"{r['customers']:,}",
            "value": _num(r["predicted_value"]),
            "share": _pct(r["predicted_value_share"]),
            "per_customer": _num(
                r["predicted_value"] / r["customers"] if r["predicted_value"] is not None else None
            ),
            "purchases": _num(r["expected_purchases"], 1),
            "p_alive": _pct(r["mean_p_alive"]),
        }
        for r in visible.sort("segment_id").iter_rows(named=True)
    ]
    return rows, kpis.height - visible.height


def _validation_rows(groups: list[dict], key: str, min_cell: int) -> tuple[list[dict], int]:
    rows = [
        {
            "group": str(g[key]) if key == "decile" else g["segment_name"] + (
                f" ({g['segment_id']})" if g.get("segment_id") is not None else ""),
            "customers": f"{g['customers']:,}",
            **{label: _num(g[f"mean_{column}"]) for label, column in _COMPARED.items()},
        }
        for g in groups
        if g["customers"] >= min_cell
    ]  # fmt: skip
    return rows, len(groups) - len(rows)


def _calibration_chart(deciles: list[dict], min_cell: int) -> str:
    shown = [d for d in deciles if d["customers"] >= min_cell]
    if not shown:
        return ""
    return charts.line_chart(
        [d["decile"] for d in shown],
        {
            "predicted (BG/NBD)": [d["mean_predicted_purchases"] for d in shown],
            "naive baseline (past rate)": [d["mean_baseline_purchases"] for d in shown],
            "actual": [d["mean_actual_purchases"] for d in shown],
        },
        "Out-of-time calibration: repeat purchases by decile of prediction",
        "mean repeat purchase days per customer",
        "decile of predicted purchases (1 lowest)",
    )


def value_section(clv: ClvModel | None, kpis: pl.DataFrame, min_cell: int) -> dict:
    """What the template's "Predicted value" section shows; empty when there is no CLV model input."""
    if not clv:
        return {}
    validation = clv.validation or {}
    totals = validation.get("totals")
    section = {"available": bool(clv.available), "reason": clv.reason,
               "horizon": clv.horizon_months, "discount": _pct(clv.discount_rate),
               "calibration": (clv.fit or {}).get("calibration_period")}  # fmt: skip
    if section["available"]:
        section["rows"], section["suppressed"] = _segment_rows(kpis, min_cell)
    if totals:
        section["totals"] = {
            "customers": f"{totals['customers']:,}",
            # Purchase totals as whole numbers, revenue to the cent.
            **{
                label: _num(totals[column], 2 if "revenue" in label else 0)
                for label, column in _COMPARED.items()
            },
            "error": _pct(totals["purchases_error"]),
            "baseline_error": _pct(totals["baseline_purchases_error"]),
            "revenue_error": _pct(totals["revenue_error"]),
            "baseline_revenue_error": _pct(totals["baseline_revenue_error"]),
            "mae": _num(totals["purchases_mae"], 3),
            "baseline_mae": _num(totals["baseline_purchases_mae"], 3),
        }
        section["chart"] = _calibration_chart(validation["deciles"], min_cell)
        section["deciles"], section["deciles_suppressed"] = _validation_rows(
            validation["deciles"], "decile", min_cell
        )
        segments = validation.get("segments", [])
        section["segments"], section["segments_suppressed"] = _validation_rows(segments, "segment", min_cell)
    return section


def clv_text(settings: Settings, clv: ClvModel | None) -> str:
    """How predicted value is defined and validated, with this month's figures, or why it is missing."""
    m = settings.model
    definition = (
        f"BG/NBD (Fader, Hardie and Lee 2005) for repeat purchases and dropout, and Gamma-Gamma for spend "
        f"per purchase, fitted by maximum likelihood (scipy) on each customer's repeat purchase days, "
        f"recency, age and mean net revenue per purchase day, read from every monthly profile up to the "
        f"as-of date. P(alive): the probability the customer has not dropped out. Expected purchases: "
        f"purchase days expected in the next {m.clv_horizon_months} months. Predicted value: those "
        f"purchases times the expected spend per purchase, month by month, discounted at "
        f"{m.clv_discount_rate:.1%} a month. Fitted on the history up to {m.clv_horizon_months} months "
        f"before the month and validated out of time on those months against a naive baseline (each "
        f"customer repeats their past purchase rate at their own mean value); withheld when a fit does "
        f"not converge or the model's error (total and per customer) is not below the baseline's"
    )
    if not clv or not clv.available:
        reason = (clv.reason if clv else None) or "no CLV model for this month"
        return f"{definition}. Not available this month: {reason}."
    t = clv.validation["totals"]
    return (
        f"{definition}. Fitted on the history to {clv.fit['calibration_period']}; out of time, "
        f"{t['predicted_purchases']:,.0f} repeat purchases predicted against {t['actual_purchases']:,.0f} "
        f"actual ({t['purchases_error']:.1%} off; the baseline {t['baseline_purchases_error']:.1%}). "
        f"Model version {clv.version}."
    )
