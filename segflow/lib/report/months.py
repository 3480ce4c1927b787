"""The month among its neighbours: which segments continue last month's under the same id, last
month's KPIs, each segment's share month by month, and whether the trailing window is still filling.
"""

from __future__ import annotations

import polars as pl

from segflow.lib.models.alignment import aligned_ids
from segflow.lib.report.inputs import ReportInputs


def _history_series(
    inputs: ReportInputs, ids: list[int]
) -> tuple[list[str], dict[int, list[float | None]]]:
    """Share of customers per month for each segment id: one line per id, whatever it was called
    (ids are aligned month to month, names are bound to them)."""
    months = sorted({*inputs.kpi_history, inputs.period})
    history = {**inputs.kpi_history, inputs.period: inputs.kpis}
    series: dict[int, list[float | None]] = {i: [] for i in ids}
    for month in months:
        rows = {
            r["segment_id"]: r for r in history[month].iter_rows(named=True) if r["customers"] >= inputs.min_cell
        }
        for i in ids:
            continues = month == inputs.period or _continues(inputs, i)  # a new segment has no past
            series[i].append(rows[i]["customer_share"] * 100 if i in rows and continues else None)
    return months, series


def _continues(inputs: ReportInputs, segment_id: int) -> bool:
    """Whether the segment is last month's under the same id (matched by the model's alignment), so
    that comparing it with last month's same id means something. A new segment may reuse an id."""
    aligned = aligned_ids(inputs.model)
    return aligned is None or segment_id in aligned


def _previous_kpis(inputs: ReportInputs) -> pl.DataFrame | None:
    if inputs.previous_period and inputs.previous_period in inputs.kpi_history:
        return inputs.kpi_history[inputs.previous_period]
    return None


def _window_filling(inputs: ReportInputs) -> str:
    """A sentence when the trailing window is not yet full of data: early growth is then the window
    accumulating months of history, not the customer base growing."""
    filled = inputs.window_months_with_data
    if filled is None or filled >= inputs.window_months or inputs.model.feature_set == "snapshot":
        return ""
    return (
        f"The {inputs.window_months}-month window holds only {filled} month(s) of data so far: until it "
        "is full, growth in customers and revenue is partly the window filling up, not the business growing."
    )
