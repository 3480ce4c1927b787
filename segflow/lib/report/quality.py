"""The data-quality section: row accounting and orphans, quarantine trend, imputation rates and the
check tallies, counts under ``min_cell`` suppressed.
"""

from __future__ import annotations

from segflow.lib.report import charts
from segflow.lib.report.cells import _count, _fmt
from segflow.lib.report.inputs import ReportInputs


def _imputation_rows(rates: list[dict], k: int) -> list[dict]:
    """Imputed cells and their rate per column. A count under k customers is suppressed, and so is
    its rate, which with the customer count would give it back."""
    rows = []
    for r in rates:
        hidden = 0 < r["imputed"] < k
        rows.append({
            "column": r["column"],
            "imputed": _count(r["imputed"], k),
            "customers": _count(r["customers"], k),
            "rate": "–" if hidden or 0 < r["customers"] < k else _fmt(r["rate"], "pct"),
        })  # fmt: skip
    return rows


def _orphans_note(quality: dict, k: int) -> str:
    """What ``cleaning.orphans`` did with rows of customers missing from the CRM, with the count.
    Sources are summed for rows; customers are counted once each (they may be in several)."""
    setting = quality.get("orphan_setting")
    accounting = quality.get("accounting") or {}
    if setting is None or "customers" not in accounting:
        return ""
    if setting == "quarantine":
        return ("Rows of customers missing from the CRM are quarantined as orphan_customer_id "
                "(cleaning.orphans: quarantine).")  # fmt: skip
    rows = sum(a.get("orphan_rows") or 0 for a in accounting.values())
    customers = accounting["customers"].get("orphan_customers") or 0  # the CRM row: all, once each
    return (
        f"{rows:,} accepted rows of {_count(customers, k)} customers missing from the CRM were kept "
        "(cleaning.orphans: keep): these customers are profiled with unknown demographics, "
        "imputed and flagged like any missing value."
    )


def _orphans_cell(accounting: dict, k: int) -> str:
    """Rows / customers missing from the CRM on one source's accounting row (customers suppressed)."""
    return f"{accounting.get('orphan_rows') or 0:,} / {_count(accounting.get('orphan_customers') or 0, k)}"


def _quality_section(inputs: ReportInputs) -> dict:
    quality = dict(inputs.quality)
    trend = quality.get("trend") or {}
    chart = ""
    if len(trend) >= 2:
        months = sorted(trend)
        sources = sorted({s for m in months for s in trend[m]})
        series = {s: [trend[m].get(s) for m in months] for s in sources}
        chart = charts.multi_line_chart(
            months, series, "Quarantined share of raw rows, by source", "rows quarantined (% of raw rows)"
        )
    quality["trend_chart"] = chart
    quality["imputation_rows"] = _imputation_rows(quality.get("imputation") or [], inputs.min_cell)
    quality["orphans"] = _orphans_note(quality, inputs.min_cell)
    # The column only where orphans are kept: without a CRM nobody is one, and quarantined ones
    # are in the quarantine table.
    quality["orphans_column"] = quality.get("orphan_setting") == "keep" and bool(quality["orphans"])
    quality["accounting"] = {
        source: {**a, "orphans_cell": _orphans_cell(a, inputs.min_cell)}
        for source, a in (quality.get("accounting") or {}).items()
    }
    checks = quality.get("checks") or []
    quality["checks_failed"] = sum(c["failed"] for c in checks)
    quality["checks_warned"] = sum(c["warned"] for c in checks)
    quality["checks_passed"] = sum(c["passed"] for c in checks)
    return quality
