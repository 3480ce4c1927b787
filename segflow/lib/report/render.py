"""Build the HTML report from aggregate tables only; customer-level data never reaches it."""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
import polars as pl

from segflow.lib.report import charts

PROFILE_FEATURES = ("recency_days", "invoices_per_month", "avg_order_value", "monetary", "return_rate",
                    "digital_share", "sessions_per_month", "email_open_rate")  # fmt: skip


@dataclass(frozen=True)
class ReportInputs:
    period: str
    kpis: pl.DataFrame  # segment_kpis output
    profile_z: pl.DataFrame  # segment_id, segment_name, customers, one z column per profile feature
    sweep: list[dict]
    rfm_counts: pl.DataFrame  # rfm_segment, customers
    model: dict
    methods: dict[str, str]
    quality: dict = field(default_factory=dict)  # accounting per source + quarantine counts by rule
    min_cell: int = 10


def segment_profile_z(features: pl.DataFrame, assignments: pl.DataFrame) -> pl.DataFrame:
    """z-score of each segment's feature means against the whole population."""
    joined = features.join(assignments.select("customer_id", "segment_id", "segment_name"), on="customer_id")
    stats = {f: (joined[f].cast(pl.Float64).fill_nan(None).mean(), joined[f].cast(pl.Float64).fill_nan(None).std())
             for f in PROFILE_FEATURES}  # fmt: skip
    z = [
        ((pl.col(f).cast(pl.Float64).fill_nan(None).mean() - (mean or 0.0)) / (std if std else 1.0)).fill_null(0.0).alias(f)
        for f, (mean, std) in stats.items()
    ]
    return joined.group_by("segment_id", "segment_name").agg(pl.len().alias("customers"), *z).sort("segment_id")


def _fmt(value, kind: str) -> str:
    if value is None:
        return "–"
    return {"int": f"{value:,.0f}", "pct": f"{100 * value:.1f}%", "money": f"{value:,.2f}", "num": f"{value:,.2f}"}[kind]


def _kpi_rows(kpis: pl.DataFrame, min_cell: int) -> tuple[list[dict], int]:
    rows, suppressed = [], 0
    for row in kpis.iter_rows(named=True):
        if row["customers"] < min_cell:
            suppressed += 1
            continue
        rows.append({
            "segment": f"{row['segment_id']}: {row['segment_name']}",
            "customers": _fmt(row["customers"], "int"), "share": _fmt(row["customer_share"], "pct"),
            "revenue": _fmt(row["revenue"], "money"), "revenue_share": _fmt(row["revenue_share"], "pct"),
            "aov": _fmt(row["avg_order_value"], "money"), "frequency": _fmt(row["mean_frequency"], "num"),
            "recency": _fmt(row["mean_recency_days"], "num"),
        })  # fmt: skip
    return rows, suppressed


def _summary(kpis: pl.DataFrame, inputs: ReportInputs) -> list[str]:
    visible = kpis.filter(pl.col("customers") >= inputs.min_cell)
    if visible.height == 0:
        return ["No segment is large enough to report."]
    top = visible.sort("revenue", descending=True).row(0, named=True)
    big = visible.sort("customers", descending=True).row(0, named=True)
    return [
        f"{int(kpis['customers'].sum()):,} customers with a purchase in the trailing window were segmented "
        f"into {kpis.height} segments.",
        f"“{top['segment_name']}” brings the most revenue: {_fmt(top['revenue_share'], 'pct')} of the total "
        f"from {_fmt(top['customer_share'], 'pct')} of customers.",
        f"The largest segment is “{big['segment_name']}”, with {_fmt(big['customer_share'], 'pct')} of customers.",
    ]


def render_report(inputs: ReportInputs) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segflow.lib.report", "templates"), autoescape=True, keep_trailing_newline=True
    )
    visible = inputs.kpis.filter(pl.col("customers") >= inputs.min_cell)
    labels = [f"{r['segment_id']}: {r['segment_name']}" for r in visible.iter_rows(named=True)]
    size_chart = charts.bar_chart(labels, visible["customers"].cast(pl.Float64).to_list(),
                                  "Customers per segment", "customers")  # fmt: skip
    revenue_chart = charts.bar_chart(labels, (visible["revenue_share"] * 100).to_list(),
                                     "Share of revenue per segment", "share of net revenue in window (%)")
    profile = inputs.profile_z.filter(pl.col("customers") >= inputs.min_cell)
    profile_chart = charts.profile_heatmap(
        [f"{r['segment_id']}: {r['segment_name']}" for r in profile.iter_rows(named=True)],
        list(PROFILE_FEATURES), profile.select(PROFILE_FEATURES).rows(), "Segment profiles"
    )
    sweep = [r for r in inputs.sweep if r.get("silhouette") is not None]
    sweep_chart = charts.line_chart([r["k"] for r in sweep], {"silhouette (sampled)": [r["silhouette"] for r in sweep]},
                                    "Model selection: silhouette by number of segments", "silhouette", "k (segments)")
    kpi_rows, suppressed = _kpi_rows(inputs.kpis, inputs.min_cell)
    rfm = inputs.rfm_counts.filter(pl.col("customers") >= inputs.min_cell)
    return env.get_template("report.html").render(
        period=inputs.period, summary=_summary(inputs.kpis, inputs), kpi_rows=kpi_rows, suppressed=suppressed,
        min_cell=inputs.min_cell, size_chart=size_chart, revenue_chart=revenue_chart, profile_chart=profile_chart,
        sweep_chart=sweep_chart, sweep=inputs.sweep, model=inputs.model, methods=inputs.methods,
        rfm_rows=rfm.iter_rows(named=True), rfm_suppressed=inputs.rfm_counts.height - rfm.height,
        quality=inputs.quality,
    )
