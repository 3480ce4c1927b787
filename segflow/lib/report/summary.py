"""The executive summary: what changed this month (sentences) and what to do about it (actions), as
plain text, from the other sections' results.
"""

from __future__ import annotations

import polars as pl

from segflow.lib.audit.drift import MAJOR, MODERATE
from segflow.lib.report.audits import _backtest_section, _drift_section, _lift_section
from segflow.lib.report.cells import _count, _fmt, _visible
from segflow.lib.report.inputs import ReportInputs
from segflow.lib.report.months import _continues, _previous_kpis, _window_filling
from segflow.lib.report.quality import _quality_section


def _summary(
    inputs: ReportInputs, drift: dict, lift: dict, backtest: dict, quality: dict
) -> tuple[list[str], list[str]]:
    """What changed (sentences) and what to do (actions): the month's size and value first, then
    what each audit section found, in the order the report shows them."""
    visible = _visible(inputs.kpis, inputs.min_cell)
    if visible.height == 0:
        return ["No segment is large enough to report."], []
    previous = _previous_kpis(inputs)
    lines = [_headline(inputs, previous)]
    if filling := _window_filling(inputs):
        lines.append(filling)
    lines += _missing_rfm(inputs.families)
    lines.append(_top_revenue(visible))
    lines += _biggest_shift(inputs, visible, previous)
    drift_lines, drift_actions = _drift_summary(drift)
    lift_lines, lift_actions = _lift_summary(lift, inputs.alpha)
    quality_lines, quality_actions = _quality_summary(quality)
    lines += drift_lines + lift_lines + _backtest_summary(backtest) + quality_lines
    actions = drift_actions + lift_actions + quality_actions
    if not actions:
        actions.append("No action needed: the segments are stable and the data passed its checks.")
    return lines, actions


def _headline(inputs: ReportInputs, previous: pl.DataFrame | None) -> str:
    """How many customers were segmented into how many segments, the change on last month, and the
    flows in and out (customer counts suppressed under ``min_cell``)."""
    k = inputs.min_cell
    kpis = inputs.kpis
    total = int(kpis["customers"].sum())
    flows = ""
    if kpis["new_customers"].null_count() < kpis.height:
        new, lost = (
            int(kpis["new_customers"].fill_null(0).sum()),
            int(kpis["lost_customers"].fill_null(0).sum()),
        )
        flows = f" ({_count(new, k)} new, {_count(lost, k)} lost since {inputs.previous_period})"
    change = ""
    if previous is not None and previous.height:
        before = int(previous["customers"].sum())
        direction = "up" if total >= before else "down"
        change = f", {direction} {abs(total - before) / before:.1%} on {inputs.previous_period}"
    population = (
        "customers in the behaviour snapshot"
        if inputs.model.feature_set == "snapshot"
        else "customers with a purchase in the trailing window"
    )
    return f"{total:,} {population} were segmented into {kpis.height} segments{change}{flows}."


def _missing_rfm(families: list[dict]) -> list[str]:
    """A sentence when the sources gave no RFM features, saying what the segments are built from."""
    missing = [f["family"] for f in families if not f["available"]]
    if "rfm" not in missing:
        return []
    used = [f["family"] for f in families if f["used_in_model"]]
    return [
        f"Segments are built from {', '.join(used)} features; RFM was not available "
        "(no transaction line items), so there are no RFM scores or RFM segments."
    ]


def _top_revenue(visible: pl.DataFrame) -> str:
    """The reportable segment with the most revenue (the lower id on a tie)."""
    top = visible.sort(["revenue", "segment_id"], descending=[True, False]).row(0, named=True)
    return (
        f"“{top['segment_name']}” brings the most revenue: {_fmt(top['revenue_share'], 'pct')} of the total "
        f"from {_fmt(top['customer_share'], 'pct')} of customers."
    )


def _biggest_shift(inputs: ReportInputs, visible: pl.DataFrame, previous: pl.DataFrame | None) -> list[str]:
    """The largest move in customer share since last month, among segments that continue last
    month's under the same id and were reportable both months; none without a last month."""
    if previous is None:
        return []
    k = inputs.min_cell
    before = {r["segment_id"]: r for r in previous.iter_rows(named=True) if r["customers"] >= k}
    moves = [
        (r["customer_share"] - before[r["segment_id"]]["customer_share"], r)
        for r in visible.iter_rows(named=True)
        if r["segment_id"] in before and _continues(inputs, r["segment_id"])
    ]
    if not moves:
        return []
    delta, row = max(moves, key=lambda m: (abs(m[0]), -m[1]["segment_id"]))
    if abs(delta) >= 0.005:
        return [
            f"The biggest shift is “{row['segment_name']}”: {'+' if delta > 0 else ''}"
            f"{100 * delta:.1f} percentage points of customers, "
            f"now {_fmt(row['customer_share'], 'pct')}."
        ]
    return ["Segment sizes are stable: no segment moved by half a percentage point or more."]


def _drift_summary(drift: dict) -> tuple[list[str], list[str]]:
    """The summary's drift sentence and action: only feature drift counts (see _drift_section)."""
    lines: list[str] = []
    actions: list[str] = []
    if drift["refit"]:
        lines.append(f"Major drift (PSI > {MAJOR}) in: {', '.join(drift['major'][:5])}.")
        actions.append(
            "Review the segments before reusing last month's audiences: the customer base drifted, and "
            "this month's model (refit on this month's data, as every month) may group customers differently."
        )
    elif drift["moderate"]:
        lines.append(
            f"Moderate drift (PSI {MODERATE}–{MAJOR}) in: {', '.join(drift['moderate'][:5])}; nothing major."
        )
        actions.append("Keep the model; watch the moderately drifting features next month.")
    elif drift["rows"] and not drift["shares_moved"]:
        lines.append("No feature or segment share drifted (every PSI below 0.1).")
    elif drift["rows"]:
        lines.append("No feature drifted (every feature PSI below 0.1).")
    return lines, actions


def _lift_summary(lift: dict, alpha: float) -> tuple[list[str], list[str]]:
    """The summary's campaign sentence and action: the first significant lift, or none at ``alpha``."""
    lines: list[str] = []
    actions: list[str] = []
    wins = [r for r in lift["rows"] if r["significant"]]
    if wins:
        best = wins[0]
        lines.append(
            f"Campaign {best['campaign']} lifted response in “{best['segment']}” by {best['abs']} "
            f"(95% CI {best['ci']}); {len(wins)} of {sum(r['tested'] for r in lift['rows'])} segment×campaign tests "
            "were significant (tests in the appendix)."
        )
        segments = sorted({r["segment"] for r in wins})
        actions.append(
            f"Prioritise campaigns for {', '.join(f'“{s}”' for s in segments)}, where treatment beat control."
        )
    elif lift["rows"]:
        lines.append(f"No campaign showed a significant lift in any segment at α = {alpha}.")
        actions.append("Do not scale the month's campaigns on these results; keep the control groups.")
    return lines, actions


def _backtest_summary(backtest: dict) -> list[str]:
    """Whether the segments assigned h months ago told apart the revenue realised since."""
    if not backtest:
        return []
    return [
        f"Segments assigned in {backtest['assigned']} "
        + ("did" if backtest["separates"] else "did not clearly")
        + f" predict revenue over the following {backtest['observed']} month(s)"
        + f" (Kruskal-Wallis p {backtest['p']})."
    ]


def _quality_summary(quality: dict) -> tuple[list[str], list[str]]:
    """The summary's data-quality sentence and action: failed checks first, else the warnings."""
    if quality.get("checks_failed"):
        return (
            [f"{quality['checks_failed']} data-quality check(s) failed this month."],
            ["Review the failed data-quality checks below before acting on this report."],
        )
    if quality.get("checks"):
        passed = f"All blocking data-quality checks passed ({quality['checks_warned']} advisory warning(s))."
        return [passed], []
    return [], []


def executive_summary(inputs: ReportInputs) -> tuple[list[str], list[str]]:
    """The summary sentences and the recommended actions, as plain text (also used for metadata)."""
    return _summary(
        inputs,
        _drift_section(inputs),
        _lift_section(inputs),
        _backtest_section(inputs),
        _quality_section(inputs),
    )
