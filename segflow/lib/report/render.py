"""Assemble the HTML pages: a month's report from its sections, and the index across months from
each month's summary record. Both are built from aggregate tables only; customer-level data never
reaches them, and a segment under ``min_cell`` customers is named on neither.
"""

from __future__ import annotations

import html

import jinja2
import polars as pl

from segflow.lib.audit.drift import MAJOR
from segflow.lib.report import charts
from segflow.lib.report.audits import (
    _appendix,
    _backtest_section,
    _drift_section,
    _lift_section,
    _migration_section,
    _stability_section,
)
from segflow.lib.report.cells import _label, _visible
from segflow.lib.report.inputs import ReportInputs
from segflow.lib.report.months import _continues, _history_series, _window_filling
from segflow.lib.report.quality import _quality_section
from segflow.lib.report.segments import _kpi_rows, _segment_cards
from segflow.lib.report.selection import selection_section
from segflow.lib.report.summary import _summary
from segflow.lib.report.value import value_section


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("segflow.lib.report", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )


def _overview_charts(inputs: ReportInputs) -> dict[str, str]:
    """The overview's charts of the reportable segments: size, revenue share, profile heatmap, and
    share over time (only with more than one month)."""
    k = inputs.min_cell
    visible = _visible(inputs.kpis, k)
    labels = [_label(r) for r in visible.iter_rows(named=True)]
    size_chart = charts.bar_chart(
        labels, visible["customers"].cast(pl.Float64).to_list(), "Customers per segment", "customers (count)"
    )
    revenue_chart = charts.bar_chart(
        labels,
        (visible["revenue_share"].fill_null(0) * 100).to_list(),
        "Share of revenue per segment",
        "share of net revenue in window (%)",
    )
    profile = inputs.profile_z.filter(pl.col("customers") >= k)
    profile_chart = charts.profile_heatmap(
        [_label(r) for r in profile.iter_rows(named=True)],
        list(inputs.profile_features),
        profile.select(inputs.profile_features).rows(),
        "Segment profiles",
    )
    months, by_id = _history_series(inputs, visible["segment_id"].to_list())
    share_series = dict(zip(labels, by_id.values(), strict=True))  # one line per id, today's name
    trend_chart = (
        charts.multi_line_chart(months, share_series, "Segment share over time", "share of customers (%)")
        if len(months) > 1
        else ""
    )
    return {
        "size_chart": size_chart,
        "revenue_chart": revenue_chart,
        "profile_chart": profile_chart,
        "trend_chart": trend_chart,
    }


def render_report(inputs: ReportInputs) -> str:
    """A month's report page, one self-contained HTML file (charts inline as SVG)."""
    k = inputs.min_cell
    overview = _overview_charts(inputs)
    selection = selection_section(inputs.sweep, inputs.model)
    kpi_rows, suppressed = _kpi_rows(inputs)
    rfm = inputs.rfm_counts.filter(pl.col("customers") >= k)
    lift = _lift_section(inputs)
    drift = _drift_section(inputs)
    backtest = _backtest_section(inputs)
    quality = _quality_section(inputs)
    summary, actions = _summary(inputs, drift, lift, backtest, quality)
    return (
        _environment()
        .get_template("report.html")
        .render(
            period=inputs.period,
            previous_period=inputs.previous_period,
            summary=summary,
            actions=actions,
            cards=_segment_cards(inputs),
            kpi_rows=kpi_rows,
            suppressed=suppressed,
            min_cell=k,
            **overview,
            selection=selection,
            model=inputs.model,
            methods=inputs.methods,
            rfm_rows=rfm.iter_rows(named=True),
            rfm_suppressed=inputs.rfm_counts.height - rfm.height,
            quality=quality,
            lift=lift,
            alpha=inputs.alpha,
            min_arm_size=inputs.min_arm_size,
            cluster_migration=_migration_section(inputs, "cluster"),
            rfm_migration=_migration_section(inputs, "rfm"),
            drift=drift,
            backtest=backtest,
            stability=_stability_section(inputs),
            appendix=_appendix(inputs, lift, backtest),
            families=inputs.families,
            value=value_section(inputs.clv, inputs.kpis, k),
            currency=inputs.currency,
            window_note=_window_filling(inputs),
        )
    )


# ---------------------------------------------------------------------------------------------
# Index across months


def summary_record(inputs: ReportInputs) -> dict:
    """What the index page needs from one month: aggregates only, small segments left out."""
    k = inputs.min_cell
    visible = _visible(inputs.kpis, k)
    drift = inputs.drift if inputs.drift is not None else pl.DataFrame({"kind": [], "psi": []})
    features = drift.filter((pl.col("kind") == "feature") & pl.col("psi").is_not_null())
    lift = inputs.lift
    return {
        "period": inputs.period,
        "customers": int(inputs.kpis["customers"].sum()),
        "revenue": round(float(inputs.kpis["revenue"].sum()), 2),
        "segments": inputs.kpis.height,
        # Keyed by segment id (names are bound to ids but may change on a material change of
        # the profile): the index draws one line per id, labelled with its latest name.
        "segment_share": {
            str(r["segment_id"]): round(100 * r["customer_share"], 3) for r in visible.iter_rows(named=True)
        },
        "segment_names": {str(r["segment_id"]): r["segment_name"] for r in visible.iter_rows(named=True)},
        # Ids that start a new segment this month (no match last month): the index ends the id's line.
        "new_ids": [str(i) for i in visible["segment_id"].to_list() if inputs.previous_period and not _continues(inputs, i)],
        "currency": inputs.currency,
        "window_filling": bool(_window_filling(inputs)),
        "max_feature_psi": round(float(features["psi"].max()), 4) if features.height else None,
        "refit_recommended": bool(features.height and float(features["psi"].max()) > MAJOR),
        "significant_lifts": int(lift["significant"].fill_null(False).sum())
        if lift is not None and lift.height
        else 0,
        "model_version": inputs.model.version,
    }


def render_index(records: list[dict]) -> str:
    """The index page: a link to every month's report, and trends across months."""
    records = sorted(records, key=lambda r: r["period"])
    months = [r["period"] for r in records]
    trend_charts = []
    if len(records) >= 1:
        trend_charts.append(
            charts.multi_line_chart(
                months,
                {"customers": [r["customers"] for r in records]},
                "Segmented customers per month",
                "customers (count)",
            )
        )
        currency = records[-1].get("currency", "currency units")
        trend_charts.append(
            charts.multi_line_chart(
                months,
                {"net revenue": [r["revenue"] for r in records]},
                "Net revenue in the trailing window",
                f"net revenue ({currency})",
            )
        )
        lines, breaks = _share_lines(records)
        trend_charts.append(
            charts.multi_line_chart(
                months, lines, "Segment share per month", "share of customers (%)", breaks=breaks
            )
        )
        trend_charts.append(
            charts.multi_line_chart(
                months,
                {"largest feature PSI": [r["max_feature_psi"] for r in records]},
                "Largest feature drift vs previous month (dashed: 0.1 and 0.25)",
                "PSI (unitless)",
                hlines=(0.1, 0.25),
            )
        )
    rows = [{**r, "href": f"{html.escape(r['period'])}.html"} for r in reversed(records)]
    filling = [r["period"] for r in records if r.get("window_filling")]
    note = (
        f"Until {filling[-1]} the trailing window was still filling up with months of data, so the growth of "
        "customers and revenue in those months is partly the window lengthening, not the business growing."
        if filling
        else ""
    )
    return _environment().get_template("index.html").render(rows=rows, charts=trend_charts, window_note=note)


def _share_lines(records: list[dict]) -> tuple[dict[str, list[float | None]], dict[str, set[int]]]:
    """One line per segment id, labelled with its latest name, and per line the months where a new
    segment took the id over (no match the month before): the line is broken there, so it never
    joins two different segments."""
    shares = [_shares_by_id(r) for r in records]
    names = {i: n for r in records for i, n in _names_by_id(r).items()}  # the latest name wins
    ids = sorted({i for share in shares for i in share})
    label = {i: f"{i}: {names.get(i, '')}" for i in ids}
    breaks = {label[i]: {p for p, r in enumerate(records) if str(i) in r.get("new_ids", [])} for i in ids}
    return {label[i]: [share.get(i) for share in shares] for i in ids}, breaks


def _shares_by_id(record: dict) -> dict[int, float]:
    """A month's segment shares by id; records written before ids were the key used "id: name"."""
    return {int(key.split(":", 1)[0]): value for key, value in record["segment_share"].items()}


def _names_by_id(record: dict) -> dict[int, str]:
    if "segment_names" in record:
        return {int(i): n for i, n in record["segment_names"].items()}
    return {int(key.split(":", 1)[0]): key.split(":", 1)[1].strip() for key in record["segment_share"] if ":" in key}
