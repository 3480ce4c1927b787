"""The monthly report's inputs, gathered from the audit stage's upstream values.

``gather_report_inputs`` turns what the ``audit_report`` asset reads (the audit tables, the models,
the profiles stage's quality tables) and what the orchestrator knows (check outcomes, the raw
files' unmapped columns) into one :class:`segflow.lib.report.ReportInputs`, the value the renderer
and the index record are computed from. Nothing here knows Dagster: the instance's records arrive
as plain values (:class:`CheckOutcome`, :class:`RawColumns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from segflow.config import Settings
from segflow.lib.audit.drift import major_drift
from segflow.lib.features.snapshot import feature_families
from segflow.lib.models.clv import ClvModel
from segflow.lib.models.model_types import ChurnModel, SegmentationModel
from segflow.lib.periods import shift
from segflow.lib.profiles.imputation import imputation_rates
from segflow.lib.report import ReportInputs, segment_profile_z
from segflow.lib.report.inputs import PROFILE_FEATURES
from segflow.lib.report.methods import methods_text
from segflow.lib.report.summary import executive_summary
from segflow.lib.report.value import clv_text

# Segment profiles of the snapshot feature set (no RFM), in the report's heatmap.
SNAPSHOT_PROFILE_FEATURES = (
    "recency_days", "purchases_per_month", "spend_per_month", "avg_order_value", "deal_share",
    "digital_share", "web_visits_per_month", "campaign_response_rate", "age", "income", "children",
)  # fmt: skip


@dataclass(frozen=True)
class AuditUpstream:
    """The values the month's report reads; the multi-month inputs without their missing months."""

    period: str
    kpi_months: dict[str, pl.DataFrame]  # kpi_audit of the trend window, with its "period" column
    lift: pl.DataFrame
    migration: pl.DataFrame
    drift: pl.DataFrame
    backtest: pl.DataFrame
    assignments: pl.DataFrame
    features: pl.DataFrame
    segmentation_model: SegmentationModel
    churn_model: ChurnModel
    clv_model: ClvModel
    quarantined: pl.DataFrame
    accounting_months: dict[str, pl.DataFrame]  # row_accounting of the trend window
    recoded: pl.DataFrame
    profiles: pl.LazyFrame  # scanned lazily: only the imputation flags are read


@dataclass(frozen=True)
class CheckOutcome:
    """The latest evaluation of one upstream check for the month, as the instance records it."""

    asset: str
    name: str
    outcome: str  # "passed", "warned", "failed" or "missing" (never evaluated, or only planned)
    failing_rules: str | None = None  # the check's ``failing_rules`` metadata, when it failed


@dataclass(frozen=True)
class RawColumns:
    """What one enabled source's raw asset recorded about its file's columns this month."""

    source: str
    files: tuple[str, ...]  # the files read (the source's name when the asset did not say)
    unmapped: frozenset[str]
    constant: frozenset[str]


def check_rows(outcomes: list[CheckOutcome]) -> list[dict]:
    """Per asset, in the order first seen: how many of its checks passed, warned, failed or never
    reported, and the failing ones with their rules."""
    rows: dict[str, dict] = {}
    for check in outcomes:
        row = rows.setdefault(
            check.asset,
            {"asset": check.asset, "passed": 0, "warned": 0, "failed": 0, "missing": 0, "failing": []},
        )
        row[check.outcome] += 1
        if check.outcome in ("warned", "failed"):
            rules = f" ({check.failing_rules})" if check.failing_rules is not None else ""
            row["failing"].append(f"{check.name}{rules}")
    return [{**r, "failing": "; ".join(r["failing"]) or "–"} for r in rows.values()]


def drift_check_row(drift: pl.DataFrame) -> dict:
    """The advisory drift check's row, recomputed from the month's drift: it may run after the
    report in the same run, so its own evaluation is not read."""
    major = major_drift(drift)
    return {
        "asset": "segment_drift",
        "passed": int(major.height == 0),
        "warned": int(major.height > 0),
        "failed": 0,
        "missing": 0,
        "failing": ("segment_drift_major (" + ", ".join(major["name"].to_list()) + ")")
        if major.height
        else "–",
    }


def ignored_columns(raw: list[RawColumns]) -> list[dict]:
    """Columns of the enabled sources' files that no mapping reads. A file read by several sources
    (a CRM export read as customers and as snapshot) only ignores what none of them reads.
    Constant columns say so: they carry no information."""
    by_files: dict[tuple, dict] = {}
    for columns in raw:
        group = by_files.setdefault(columns.files, {"sources": [], "unmapped": None, "constant": set()})
        group["sources"].append(columns.source)
        unmapped = set(columns.unmapped)
        group["unmapped"] = unmapped if group["unmapped"] is None else group["unmapped"] & unmapped
        group["constant"].update(columns.constant)
    rows = []
    for group in by_files.values():
        for column in sorted(group["unmapped"] or ()):
            # The value is never shown: an ignored column may hold anything, e-mail addresses included.
            why = (
                "constant (one value in every row): carries no information, not mapped"
                if column in group["constant"]
                else "not mapped to any canonical column"
            )
            rows.append({"source": ", ".join(group["sources"]), "column": column, "why": why})
    return rows


def _quarantine_trend(accounting_months: dict[str, pl.DataFrame]) -> dict[str, dict[str, float]]:
    """Per month and source: the percentage of raw rows quarantined."""
    return {
        month: {
            r["source"]: round(100 * r["quarantined_rows"] / r["raw_rows"], 4) if r["raw_rows"] else 0.0
            for r in frame.iter_rows(named=True)
        }
        for month, frame in accounting_months.items()
    }


def _quality(
    settings: Settings,
    upstream: AuditUpstream,
    checks: list[dict],
    ignored: list[dict],
    imputed: pl.DataFrame,
) -> dict:
    """The report's data quality section: accounting, quarantine, check outcomes, trend, recoded and
    imputed values, and the columns no mapping reads."""
    accounting = upstream.accounting_months[upstream.period]
    if upstream.drift.height:
        checks = [*checks, drift_check_row(upstream.drift)]
    return {
        "accounting": {r["source"]: r for r in accounting.sort("source").iter_rows(named=True)},
        "quarantine_by_rule": upstream.quarantined.group_by("source", "rule_id")
        .len("rows")
        .sort("source", "rule_id")
        .to_dicts(),
        "checks": checks,
        "trend": _quarantine_trend(upstream.accounting_months),
        "recoded": upstream.recoded.sort("source", "column", "rule_id", "value").to_dicts(),
        "imputation": imputed.to_dicts(),
        "ignored_columns": ignored,
        "orphan_setting": settings.cleaning.orphans if settings.sources["customers"].enabled else None,
    }


def _rfm_counts(assignments: pl.DataFrame) -> pl.DataFrame:
    if "rfm_segment" not in assignments.columns:
        return pl.DataFrame(schema={"rfm_segment": pl.String, "customers": pl.UInt32})
    return (
        assignments.group_by("rfm_segment")
        .len("customers")
        .sort(["customers", "rfm_segment"], descending=[True, False])
    )


def _families(settings: Settings, upstream: AuditUpstream) -> list[dict]:
    model = upstream.segmentation_model
    return feature_families(
        settings.feature_set,
        {name: source.enabled for name, source in settings.sources.items()},
        [f["name"] for f in model.features],
        model.design.unavailable_families or {},
        upstream.features,
    )


def gather_report_inputs(
    settings: Settings, upstream: AuditUpstream, checks: list[dict], ignored: list[dict]
) -> tuple[ReportInputs, pl.DataFrame]:
    """The month's ``ReportInputs``, and the imputation rates per column it reports (also shown in
    the asset's metadata). ``checks``: :func:`check_rows` of the upstream checks; ``ignored``:
    :func:`ignored_columns` of the raw sources."""
    period, model, features = upstream.period, upstream.segmentation_model, upstream.features
    imputed = imputation_rates(upstream.profiles)  # a lazy scan: only the flag columns are read
    profile_features = SNAPSHOT_PROFILE_FEATURES if settings.feature_set == "snapshot" else PROFILE_FEATURES
    drift, previous_period = upstream.drift, shift(period, -1)
    inputs = ReportInputs(
        period=period,
        kpis=upstream.kpi_months[period].drop("period"),
        profile_z=segment_profile_z(features, upstream.assignments, profile_features),
        sweep=model.sweep,
        rfm_counts=_rfm_counts(upstream.assignments),
        model=model,
        methods={
            **methods_text(settings, model, upstream.churn_model),
            "Predicted value (CLV)": clv_text(settings, upstream.clv_model),
        },
        quality=_quality(settings, upstream, checks, ignored, imputed),
        min_cell=settings.report.min_cell_customers,
        kpi_history={m: f.drop("period") for m, f in upstream.kpi_months.items() if m != period},
        lift=upstream.lift,
        migration=upstream.migration if upstream.migration.height else None,
        drift=drift if drift.height else None,
        backtest=upstream.backtest if upstream.backtest.height else None,
        previous_period=previous_period if drift.height or previous_period in upstream.kpi_months else None,
        alpha=settings.report.alpha,
        min_arm_size=settings.report.min_arm_size,
        profile_features=profile_features,
        families=_families(settings, upstream),
        clv=upstream.clv_model,
        currency=settings.report.currency,
        window_months=settings.features.window_months,
        window_months_with_data=(
            int(features["tenure_months"].max()) if "tenure_months" in features.columns else None
        ),
    )
    return inputs, imputed


def summary_markdown(inputs: ReportInputs, report_uri: str, index_uri: str) -> str:
    """The report's executive summary and actions as Markdown, with links to it and the index."""
    lines, actions = executive_summary(inputs)
    return "\n".join(
        [
            f"## Customer segments {inputs.period}",
            "",
            *[f"- {line}" for line in lines],
            "",
            "**What to do**",
            "",
            *[f"- {a}" for a in actions],
            "",
            f"[Open the report]({report_uri}) · [All months]({index_uri})",
        ]
    )
