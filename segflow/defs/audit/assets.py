"""Audit of each month's segments: KPIs, campaign lift, migration, drift, an out-of-time backtest,
and the stakeholder HTML report with its index page. Logic lives in segflow.lib; this is wiring.

Inputs of other months (the previous month, a trend window, the backtest's assignment month) are
read through time-window partition mappings with ``allow_missing_partitions``: a month that does
not exist (before the first partition) or was never built is simply absent from the dict, and the
asset reports "no previous month" instead of failing.

The audit tables are guarded by their blocking contract checks, evaluated in each table's own step
before the table is stored (write-audit-publish, ``with_contract_checks``): a failing table is never
written, and its failure stops the report in the same run. One validation serves both the gate and
the check results.
"""

import json
from typing import Any

import dagster as dg
import polars as pl

from segflow.defs.contract_checks import contract_metadata, contract_specs, with_contract_checks
from segflow.defs.lineage import OWNERS, lineage, table_metadata
from segflow.defs.partitions import monthly_partitions, months
from segflow.defs.policies import AUTOMATION, PUBLISHED_FRESHNESS
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib import storage
from segflow.lib.audit.backtest import BACKTEST_SCHEMA, backtest
from segflow.lib.audit.drift import DRIFT_SCHEMA, feature_drift, major_drift
from segflow.lib.audit.kpis import segment_kpis
from segflow.lib.audit.lift import campaign_lift as compute_lift
from segflow.lib.audit.migration import MIGRATION_SCHEMA, migration_matrix, stay_rate
from segflow.lib.features.snapshot import feature_families
from segflow.lib.models.alignment import aligned_ids
from segflow.lib.models.clv import ClvModel
from segflow.lib.models.model_types import ChurnModel, SegmentationModel
from segflow.lib.periods import shift
from segflow.lib.profiles.imputation import imputation_rates
from segflow.lib.report import ReportInputs, render_report, segment_profile_z
from segflow.lib.report.methods import methods_text
from segflow.lib.report.render import PROFILE_FEATURES, executive_summary, render_index, summary_record
from segflow.lib.report.value import clv_text

# Segment profiles of the snapshot feature set (no RFM), in the report's heatmap.
SNAPSHOT_PROFILE_FEATURES = (
    "recency_days", "purchases_per_month", "spend_per_month", "avg_order_value", "deal_share",
    "digital_share", "web_visits_per_month", "campaign_response_rate", "age", "income", "children",
)  # fmt: skip


def _months_in(start: int, end: int) -> dg.AssetIn:
    """An input of several months (relative offsets), missing months skipped. Every window ends at the
    current month, so it always maps to at least one partition and the IO manager gives a dict."""
    return dg.AssetIn(partition_mapping=months(start, end), metadata={"allow_missing_partitions": True})


def _frames(value: Any) -> dict[str, Any]:
    """The dict a multi-month input gives, without the months that were not there."""
    if not value:
        return {}
    return {key: frame for key, frame in sorted(value.items()) if frame is not None}


def _current(frames: dict[str, Any], period: str, name: str) -> Any:
    if period not in frames:
        raise dg.Failure(f"{name} {period} is not materialized; build the month before its audit.")
    return frames[period]


def _tagged(frame: pl.DataFrame, period: str) -> pl.DataFrame:
    return frame.select(pl.lit(period).alias("period"), pl.all())


_AUDIT = {
    "group_name": "audit",
    "owners": OWNERS,
    "automation_condition": AUTOMATION,
}


def kpi_audit(
    context: dg.AssetExecutionContext,
    segment_assignments: dict[str, pl.DataFrame],
    customer_features: pl.DataFrame,
    raw_campaigns: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Per segment and month: customers and share; new (not segmented last month), retained and lost
    (segmented last month, no purchase in this window) customers; net revenue and its share, average
    order value, mean frequency and recency over the RFM window; return rate, email open and click
    rates, sessions per month; mean churn risk (when the model provides it); campaign exposures and
    response rate per arm (treatment, control).
    """
    period = context.partition_key
    months = _frames(segment_assignments)
    current = _current(months, period, "segment_assignments")
    previous = months.get(shift(period, -1))
    kpis = _tagged(segment_kpis(current, customer_features, previous, raw_campaigns), period)
    return dg.Output(
        kpis,
        metadata=lineage(
            context,
            rows_in={
                "segment_assignments": current.height,
                "previous_assignments": previous.height if previous is not None else 0,
                "raw_campaigns": raw_campaigns.height,
            },
            rows_out=kpis.height,
            previous_period=shift(period, -1) if previous is not None else "none",
            kpis=table_metadata(
                kpis.select(
                    "segment_id",
                    "segment_name",
                    "customers",
                    "customer_share",
                    "new_customers",
                    "lost_customers",
                    "revenue_share",
                )
            ),
        ),
    )


def campaign_lift(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    segment_assignments: pl.DataFrame,
    raw_campaigns: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Per segment and campaign of the month: treatment and control response rates, absolute and relative
    lift, two-proportion z-test p-value (raw and Holm-adjusted over the month's tests) and 95% CI.
    Arms under `report.min_arm_size` exposed customers are "insufficient sample", with no p-value.
    The arm comes from `raw_campaigns`, the canonical exposures of the same month (upstream of profiles).
    """
    config = settings.report
    period = context.partition_key
    lift = _tagged(
        compute_lift(raw_campaigns, segment_assignments, config.min_arm_size, config.alpha), period
    )
    tested = lift.filter(pl.col("status") == "tested")
    return dg.Output(
        lift,
        metadata=lineage(
            context,
            rows_in={
                "segment_assignments": segment_assignments.height,
                "raw_campaigns": raw_campaigns.height,
            },
            rows_out=lift.height,
            tests=tested.height,
            significant=int(tested["significant"].sum()),
            min_arm_size=config.min_arm_size,
            alpha=config.alpha,
        ),
    )


def segment_migration(
    context: dg.AssetExecutionContext, segment_assignments: dict[str, pl.DataFrame]
) -> dg.Output[pl.DataFrame]:
    """Transitions from last month's segment to this month's, for cluster segments and RFM segments:
    counts and row-normalised probabilities, with "(new)" and "(lost)" as pseudo-segments. Empty in a
    month without a previous month.
    """
    period = context.partition_key
    months = _frames(segment_assignments)
    current = _current(months, period, "segment_assignments")
    previous = months.get(shift(period, -1))
    if previous is None:
        matrix = pl.DataFrame(schema=MIGRATION_SCHEMA)
    else:
        kinds = [k for k in ("cluster", "rfm") if k == "cluster" or "rfm_segment" in current.columns]
        matrix = pl.concat([migration_matrix(previous, current, kind) for kind in kinds])
    matrix = _tagged(matrix, period).with_columns(pl.lit(shift(period, -1)).alias("previous_period"))
    stays = {kind: stay_rate(matrix.filter(pl.col("kind") == kind)) for kind in ("cluster", "rfm")}
    return dg.Output(
        matrix,
        metadata=lineage(
            context,
            rows_in={"segment_assignments": sum(f.height for f in months.values())},
            rows_out=matrix.height,
            previous_period=shift(period, -1) if previous is not None else "none",
            # Computed from segment ids (a customer stayed when the aligned id is the same).
            stay_rate_cluster=round(stays["cluster"], 4) if stays["cluster"] is not None else "n/a",
            stay_rate_rfm=round(stays["rfm"], 4) if stays["rfm"] is not None else "n/a",
        ),
    )


def segment_drift(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    customer_features: dict[str, pl.DataFrame],
    segment_assignments: dict[str, pl.DataFrame],
    segmentation_model: SegmentationModel,
) -> dg.Output[pl.DataFrame]:
    """Population stability index against the previous month: per numeric feature of customer_features
    (bins: the previous month's deciles) and for cluster and RFM segment shares, with its band (< 0.1
    stable, 0.1-0.25 moderate, > 0.25 major). Cluster shares are compared only between segments the
    model aligned to the same id last month (a new or vanished segment has no counterpart). The
    `segment_drift_major` check warns on major drift. Empty in a month without a previous month.
    """
    config = settings.report
    period = context.partition_key
    features, assignments = _frames(customer_features), _frames(segment_assignments)
    current = _current(features, period, "customer_features")
    prev_key = shift(period, -1)
    if prev_key in features:
        drift = feature_drift(
            features[prev_key],
            current,
            assignments.get(prev_key),
            _current(assignments, period, "segment_assignments"),
            config.psi_bins,
            aligned_ids(segmentation_model),
        )
    else:
        drift = pl.DataFrame(schema=DRIFT_SCHEMA)
    drift = _tagged(drift, period).with_columns(pl.lit(prev_key).alias("previous_period"))
    major = major_drift(drift)
    return dg.Output(
        drift,
        metadata=lineage(
            context,
            rows_in={"customer_features": sum(f.height for f in features.values())},
            rows_out=drift.height,
            previous_period=prev_key if prev_key in features else "none",
            major_drift=", ".join(major["name"].to_list()) or "none",
            max_feature_psi=round(float(drift.filter(pl.col("kind") == "feature")["psi"].max() or 0.0), 4),
        ),
    )


def segment_backtest(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    segment_assignments: dict[str, pl.DataFrame],
    customer_profiles: dict[str, pl.LazyFrame],
) -> dg.Output[pl.DataFrame]:
    """Out-of-time backtest, computed at month T for the segments assigned at T-h (h =
    `report.backtest_horizon_months`): per segment of T-h, realised net revenue, invoices and repeat
    purchase rate over the months T-h+1..T, read from the monthly profiles, and the Kruskal-Wallis test
    of realised revenue across segments. Keyed on the month the outcomes complete, so it never waits on
    a later partition. Empty until T-h has assignments. (Its assignments window is T-h..T, so that it
    always includes one existing month; only T-h is used.)
    """
    period = context.partition_key
    horizon = settings.report.backtest_horizon_months
    assigned_period = shift(period, -horizon)
    assigned = _frames(segment_assignments).get(assigned_period)
    outcome_months = {
        k: v.select("customer_id", "net_revenue", "n_invoices").collect()
        for k, v in _frames(customer_profiles).items()
        if k > assigned_period
    }
    if assigned is None:
        result = pl.DataFrame(schema=BACKTEST_SCHEMA)
    else:
        result = backtest(assigned, outcome_months, assigned_period, horizon)
    result = _tagged(result, period)
    p_value = result["kruskal_p"][0] if result.height else None
    return dg.Output(
        result,
        metadata=lineage(
            context,
            rows_in={
                "segment_assignments": assigned.height if assigned is not None else 0,
                "customer_profiles": sum(f.height for f in outcome_months.values()),
            },
            rows_out=result.height,
            assigned_period=assigned_period if assigned is not None else "none",
            horizon_months=horizon,
            kruskal_p=float(p_value) if p_value is not None else "n/a",
        ),
    )


_UPSTREAM_GROUPS = ("raw", "profiles", "features", "models", "segments")


def _check_summary(context: dg.AssetExecutionContext, period: str) -> list[dict]:
    """Per upstream asset: its checks' latest evaluations for this month (passed / warned / failed).

    Audit-group checks are left out: they may run after the report in the same run, and their
    outcome (drift) is recomputed in the report itself.
    """
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    job_graph = context.job_def.asset_layer.asset_graph
    graph = getattr(job_graph, "source_asset_graph", job_graph)  # the whole code location, not only this job
    keys = sorted(
        (k for k in graph.asset_check_keys if graph.get(k.asset_key).group_name in _UPSTREAM_GROUPS),
        key=lambda k: (k.asset_key.to_user_string(), k.name),
    )
    try:
        latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(
            keys, partition_filter=PartitionKeyFilter(key=period)
        )
    except Exception:  # noqa: BLE001 - a storage without per-partition check history: report none
        latest = {}
    rows: dict[str, dict] = {}
    for key in keys:
        row = rows.setdefault(
            key.asset_key.to_user_string(),
            {
                "asset": key.asset_key.to_user_string(),
                "passed": 0,
                "warned": 0,
                "failed": 0,
                "missing": 0,
                "failing": [],
            },
        )
        record = latest.get(key)
        evaluation = None
        if record is not None and record.event is not None and record.event.dagster_event is not None:
            evaluation = record.event.dagster_event.event_specific_data
        if record is None or record.status not in (Status.SUCCEEDED, Status.FAILED) or evaluation is None:
            row["missing"] += 1
        elif getattr(evaluation, "passed", record.status == Status.SUCCEEDED):
            row["passed"] += 1
        else:
            warn = getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN
            row["warned" if warn else "failed"] += 1
            rules = getattr(evaluation, "metadata", {}).get("failing_rules")
            row["failing"].append(f"{key.name}" + (f" ({rules.value})" if rules is not None else ""))
    return [{**r, "failing": "; ".join(r["failing"]) or "–"} for r in rows.values()]


def _drift_check_row(drift: pl.DataFrame) -> dict:
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


def audit_report(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    kpi_audit: dict[str, pl.DataFrame],
    campaign_lift: pl.DataFrame,
    segment_migration: pl.DataFrame,
    segment_drift: pl.DataFrame,
    segment_backtest: pl.DataFrame,
    segment_assignments: pl.DataFrame,
    customer_features: pl.DataFrame,
    segmentation_model: SegmentationModel,
    churn_model: ChurnModel,
    clv_model: ClvModel,
    quarantined_rows: pl.DataFrame,
    row_accounting: dict[str, pl.DataFrame],
    recoded_values: pl.DataFrame,
    customer_profiles: pl.LazyFrame,
) -> dg.MaterializeResult:
    """The stakeholder report for the month, `<storage>/reports/<YYYY-MM>.html`: executive summary and
    actions, segment cards with trends, KPI tables, campaign lift, migration heatmaps, drift, backtest,
    model selection and stability, data quality (check outcomes, quarantine by rule, imputed cells and
    their rate per column, trend) and methods
    (including how churn risk is defined and how it validated out of time, or why it is missing),
    and predicted value by segment with its out-of-time calibration by decile (or why it is withheld).
    One self-contained file (inline SVG and CSS, no scripts or external assets), no PII, and any cell
    describing fewer than `report.min_cell_customers` customers suppressed. Also rewrites
    `reports/index.html`, linking every month's report with trends across months.
    """
    period = context.partition_key
    kpi_months = _frames(kpi_audit)
    kpis = _current(kpi_months, period, "kpi_audit").drop("period")
    accounting_months = _frames(row_accounting)
    accounting = _current(accounting_months, period, "row_accounting")
    trend = {
        month: {
            r["source"]: round(100 * r["quarantined_rows"] / r["raw_rows"], 4) if r["raw_rows"] else 0.0
            for r in frame.iter_rows(named=True)
        }
        for month, frame in accounting_months.items()
    }
    checks = _check_summary(context, period)
    imputed = imputation_rates(customer_profiles)  # a lazy scan: only the flag columns are read
    if segment_drift.height:
        checks.append(_drift_check_row(segment_drift))
    quality = {
        "accounting": {r["source"]: r for r in accounting.sort("source").iter_rows(named=True)},
        "quarantine_by_rule": quarantined_rows.group_by("source", "rule_id")
        .len("rows")
        .sort("source", "rule_id")
        .to_dicts(),
        "checks": checks,
        "trend": trend,
        "recoded": recoded_values.sort("source", "column", "rule_id", "value").to_dicts(),
        "imputation": imputed.to_dicts(),
        "ignored_columns": _ignored_columns(context, settings, period),
        "orphan_setting": settings.cleaning.orphans if settings.sources["customers"].enabled else None,
    }
    snapshot = settings.feature_set == "snapshot"
    profile_features = SNAPSHOT_PROFILE_FEATURES if snapshot else PROFILE_FEATURES
    if "rfm_segment" in segment_assignments.columns:
        rfm_counts = (
            segment_assignments.group_by("rfm_segment")
            .len("customers")
            .sort(["customers", "rfm_segment"], descending=[True, False])
        )
    else:
        rfm_counts = pl.DataFrame(schema={"rfm_segment": pl.String, "customers": pl.UInt32})
    families = feature_families(
        settings.feature_set,
        {name: source.enabled for name, source in settings.sources.items()},
        [f["name"] for f in segmentation_model.features],
        segmentation_model.design.unavailable_families or {},
        customer_features,
    )
    previous_period = shift(period, -1)
    inputs = ReportInputs(
        period=period,
        kpis=kpis,
        profile_z=segment_profile_z(customer_features, segment_assignments, profile_features),
        sweep=segmentation_model.sweep,
        rfm_counts=rfm_counts,
        model=segmentation_model,
        methods={
            **methods_text(settings, segmentation_model, churn_model),
            "Predicted value (CLV)": clv_text(settings, clv_model),
        },
        quality=quality,
        min_cell=settings.report.min_cell_customers,
        kpi_history={m: f.drop("period") for m, f in kpi_months.items() if m != period},
        lift=campaign_lift,
        migration=segment_migration if segment_migration.height else None,
        drift=segment_drift if segment_drift.height else None,
        backtest=segment_backtest if segment_backtest.height else None,
        previous_period=previous_period if segment_drift.height or previous_period in kpi_months else None,
        alpha=settings.report.alpha,
        min_arm_size=settings.report.min_arm_size,
        profile_features=profile_features,
        families=families,
        clv=clv_model,
        currency=settings.report.currency,
        window_months=settings.features.window_months,
        window_months_with_data=(
            int(customer_features["tenure_months"].max()) if "tenure_months" in customer_features.columns else None
        ),
    )
    reports = settings.reports_dir
    path = storage.write_text(render_report(inputs), reports / f"{period}.html")
    record = summary_record(inputs)
    storage.write_text(json.dumps(record, sort_keys=True, indent=1), reports / f"{period}.json")
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(reports.glob("????-??.json"))]
    index = storage.write_text(render_index(records), reports / "index.html")
    summary_md = _markdown(inputs, record, path.as_uri(), index.as_uri())
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary_md),
            "path": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.url(path.as_uri()),
            "index": dg.MetadataValue.url(index.as_uri()),
            "bytes": path.stat().st_size,
            "model_version": segmentation_model.version,
            "refit_recommended": record["refit_recommended"],
            "imputation_rates": table_metadata(imputed),
            **lineage(
                context,
                rows_in={"kpi_audit": kpis.height, "segment_assignments": segment_assignments.height},
                rows_out=kpis.height,
            ),
        }
    )


def _ignored_columns(context: dg.AssetExecutionContext, config, period: str) -> list[dict]:
    """Columns of the enabled sources' files that no mapping reads, from the raw assets' metadata
    for this month. A file read by several sources (a CRM export read as customers and as snapshot)
    only ignores what none of them reads. Constant columns say so: they carry no information."""
    by_files: dict[tuple, dict] = {}
    for name, source in sorted(config.sources.items()):
        if not source.enabled:
            continue
        try:
            wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey(f"raw_{name}"), asset_partitions=[period])
            records = context.instance.fetch_materializations(wanted, limit=1).records
        except Exception:  # noqa: BLE001 - an instance without the history: report none
            records = []
        if not records or records[0].asset_materialization is None:
            continue
        metadata = records[0].asset_materialization.metadata
        if "unmapped_columns" not in metadata:
            continue
        files = tuple(metadata["source_files"].value) if "source_files" in metadata else (name,)
        group = by_files.setdefault(files, {"sources": [], "unmapped": None, "constant": set()})
        group["sources"].append(name)
        unmapped = set(metadata["unmapped_columns"].value)
        group["unmapped"] = unmapped if group["unmapped"] is None else group["unmapped"] & unmapped
        group["constant"].update(metadata["constant_columns"].value if "constant_columns" in metadata else ())
    rows = []
    for group in by_files.values():
        for column in sorted(group["unmapped"] or ()):
            constant = group["constant"]
            # The value is never shown: an ignored column may hold anything, e-mail addresses included.
            why = (
                "constant (one value in every row): carries no information, not mapped"
                if column in constant
                else "not mapped to any canonical column"
            )
            rows.append({"source": ", ".join(group["sources"]), "column": column, "why": why})
    return rows


def _markdown(inputs: ReportInputs, record: dict, report_uri: str, index_uri: str) -> str:
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


def _table(name: str, kinds: set[str], code_version: str, **extra: Any) -> dict[str, Any]:
    """The decorator arguments of an audit table: its contract's schema and checks, and its kinds."""
    return {"kinds": kinds, "code_version": code_version, "metadata": contract_metadata(name),
            "check_specs": contract_specs(name, name), **extra}  # fmt: skip


@dg.definitions
def audit_defs() -> dg.Definitions:
    settings = settings_in_scope()
    horizon, trend = settings.report.backtest_horizon_months, settings.report.trend_months
    audit = {**_AUDIT, "partitions_def": monthly_partitions(settings)}
    last_two = _months_in(-1, 0)
    tables = {
        kpi_audit: _table("kpi_audit", {"polars", "parquet"}, "3", ins={"segment_assignments": last_two},
                          freshness_policy=PUBLISHED_FRESHNESS),
        campaign_lift: _table("campaign_lift", {"polars", "parquet", "scipy"}, "1"),
        segment_migration: _table("segment_migration", {"polars", "parquet"}, "1",
                                  ins={"segment_assignments": last_two}),
        segment_drift: _table("segment_drift", {"polars", "parquet"}, "1",
                              ins={"customer_features": last_two, "segment_assignments": last_two}),
        segment_backtest: _table("segment_backtest", {"polars", "parquet", "scipy"}, "1", ins={
            "segment_assignments": _months_in(-horizon, 0),
            "customer_profiles": _months_in(-(horizon - 1), 0),
        }),
    }  # fmt: skip
    report = dg.asset(
        **audit,
        ins={"kpi_audit": _months_in(-(trend - 1), 0), "row_accounting": _months_in(-(trend - 1), 0)},
        kinds={"html"},
        code_version="5",
        freshness_policy=PUBLISHED_FRESHNESS,
    )(audit_report)
    checked = [
        dg.asset(**audit, **args)(with_contract_checks(fn, fn.__name__)) for fn, args in tables.items()
    ]
    return dg.Definitions(assets=[*checked, report])
