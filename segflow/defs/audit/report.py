"""The stakeholder report of each month, and the index page over every month's report.

``audit_report`` gathers its upstream values into the report's inputs (``segflow.lib.audit.
report_inputs``) and writes the month's HTML report and its index record; ``report_index``, an
unpartitioned asset downstream of every month's report, rebuilds the index page from the records
of the months whose report is materialised. The logic lives in ``segflow.lib``; what is here reads
the instance (check outcomes, the raw assets' column metadata) and wires the assets.
"""

from typing import Any

import dagster as dg
import polars as pl

from segflow.config import Settings
from segflow.defs.audit.months import AUDIT, current, frames, months_in
from segflow.defs.lineage import lineage, table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import PUBLISHED_FRESHNESS
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib import storage
from segflow.lib.audit.report_inputs import (
    AuditUpstream,
    CheckOutcome,
    RawColumns,
    check_rows,
    gather_report_inputs,
    ignored_columns,
    summary_markdown,
)
from segflow.lib.models.clv import ClvModel
from segflow.lib.models.model_types import ChurnModel, SegmentationModel
from segflow.lib.report import render_report
from segflow.lib.report.render import render_index, summary_record

_UPSTREAM_GROUPS = ("raw", "profiles", "features", "models", "segments")
_EVALUATED = ("SUCCEEDED", "FAILED")  # an execution status with an evaluation (not only planned)


def _check_outcomes(context: dg.AssetExecutionContext, period: str) -> list[CheckOutcome]:
    """Per upstream check: its latest evaluation for this month, as the instance records it.

    Audit-group checks are left out: they may run after the report in the same run, and their
    outcome (drift) is recomputed in the report itself.
    """
    job_graph = context.job_def.asset_layer.asset_graph
    graph = getattr(job_graph, "source_asset_graph", job_graph)  # the whole code location, not only this job
    keys = sorted(
        (k for k in graph.asset_check_keys if graph.get(k.asset_key).group_name in _UPSTREAM_GROUPS),
        key=lambda k: (k.asset_key.to_user_string(), k.name),
    )
    try:
        # The query the UI's partition view uses: the latest execution of each check for the month.
        infos = context.instance.event_log_storage.get_asset_check_partition_info(
            keys, partition_keys=[period]
        )
    except Exception:  # noqa: BLE001 - a storage without per-partition check history: report none
        infos = []
    latest = {info.check_key: info for info in infos}
    evaluated = [info for info in latest.values() if info.latest_execution_status.value in _EVALUATED]
    evaluations = _evaluations(context.instance, evaluated, period)
    return [_outcome(key, latest.get(key), evaluations) for key in keys]


def _evaluations(instance: dg.DagsterInstance, infos: list, period: str) -> dict[tuple, Any]:
    """The evaluations of these latest executions, keyed by (run id, check key): one read per run.
    (Matched by check and month, not by storage id: a SQLite instance numbers a run's events in the
    run's own shard, apart from the index the execution records point into.)"""
    found: dict[tuple, Any] = {}
    for run_id in sorted({info.latest_planned_run_id for info in infos}):
        events = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for record in events.records:  # oldest first: a check evaluated twice in a run keeps its last
            event = record.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event is not None else None
            if evaluation is not None and evaluation.partition == period:
                found[(run_id, evaluation.asset_check_key)] = evaluation
    return found


def _outcome(key: dg.AssetCheckKey, info: Any, evaluations: dict[tuple, Any]) -> CheckOutcome:
    asset = key.asset_key.to_user_string()
    evaluation = evaluations.get((info.latest_planned_run_id, key)) if info is not None else None
    if info is None or info.latest_execution_status.value not in _EVALUATED or evaluation is None:
        return CheckOutcome(asset, key.name, "missing")
    if getattr(evaluation, "passed", info.latest_execution_status.value == "SUCCEEDED"):
        return CheckOutcome(asset, key.name, "passed")
    warned = getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN
    rules = getattr(evaluation, "metadata", {}).get("failing_rules")
    return CheckOutcome(
        asset, key.name, "warned" if warned else "failed", f"{rules.value}" if rules is not None else None
    )


def month_ignored_columns(context: Any, settings: Settings, period: str) -> list[dict]:
    """The enabled sources' columns no mapping reads this month, from what their raw assets recorded
    (``context.instance``: the materialisations of ``raw_<source>``)."""
    found = [_raw_columns(context, settings, name, period) for name in sorted(settings.sources)]
    return ignored_columns([columns for columns in found if columns is not None])


def _raw_columns(context: Any, settings: Settings, name: str, period: str) -> RawColumns | None:
    """What an enabled source's raw asset recorded about its files' columns for this month."""
    if not settings.sources[name].enabled:
        return None
    try:
        wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey(f"raw_{name}"), asset_partitions=[period])
        records = context.instance.fetch_materializations(wanted, limit=1).records
    except Exception:  # noqa: BLE001 - an instance without the history: report none
        records = []
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    if "unmapped_columns" not in metadata:
        return None
    files = tuple(metadata["source_files"].value) if "source_files" in metadata else (name,)
    constant = metadata["constant_columns"].value if "constant_columns" in metadata else ()
    return RawColumns(name, files, frozenset(metadata["unmapped_columns"].value), frozenset(constant))


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
    describing fewer than `report.min_cell_customers` customers suppressed. Beside it,
    `reports/<YYYY-MM>.json`, the month's record for the index page (`report_index`).
    """
    period = context.partition_key
    kpi_months, accounting_months = frames(kpi_audit), frames(row_accounting)
    # The trend windows may miss months; the month's own KPIs and accounting may not.
    kpis = current(kpi_months, period, "kpi_audit")
    current(accounting_months, period, "row_accounting")
    upstream = AuditUpstream(
        period=period, kpi_months=kpi_months, lift=campaign_lift, migration=segment_migration,
        drift=segment_drift, backtest=segment_backtest, assignments=segment_assignments,
        features=customer_features, segmentation_model=segmentation_model, churn_model=churn_model,
        clv_model=clv_model, quarantined=quarantined_rows, accounting_months=accounting_months,
        recoded=recoded_values, profiles=customer_profiles,
    )  # fmt: skip
    checks = check_rows(_check_outcomes(context, period))
    ignored = month_ignored_columns(context, settings, period)
    inputs, imputed = gather_report_inputs(settings, upstream, checks, ignored)
    layout = storage.StorageLayout(settings.storage_dir)
    path = storage.write_text(render_report(inputs), layout.report_page(period))
    record = summary_record(inputs)
    storage.write_json(record, layout.report_record(period))
    index_uri = layout.report_index.as_uri()
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary_markdown(inputs, path.as_uri(), index_uri)),
            "path": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.url(path.as_uri()),
            "index": dg.MetadataValue.url(index_uri),
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


def report_index(context: dg.AssetExecutionContext, settings: SegflowSettings) -> dg.MaterializeResult:
    """`<storage>/reports/index.html`: a link to every month's report, with trends across months,
    built from the index records of the months whose `audit_report` is materialised."""
    months = sorted(context.instance.get_materialized_partitions(dg.AssetKey("audit_report")))
    layout = storage.StorageLayout(settings.storage_dir)
    records = layout.report_records(months)
    index = storage.write_text(render_index(records), layout.report_index)
    return dg.MaterializeResult(
        metadata={
            "index": dg.MetadataValue.url(index.as_uri()),
            "path": dg.MetadataValue.path(str(index)),
            "months": dg.MetadataValue.json([r["period"] for r in records]),
        }
    )


@dg.definitions
def report_defs() -> dg.Definitions:
    settings = settings_in_scope()
    trend = settings.report.trend_months
    report = dg.asset(
        **AUDIT,
        partitions_def=monthly_partitions(settings),
        ins={"kpi_audit": months_in(-(trend - 1), 0), "row_accounting": months_in(-(trend - 1), 0)},
        kinds={"html"},
        code_version="5",
        freshness_policy=PUBLISHED_FRESHNESS,
    )(audit_report)
    index = dg.asset(**AUDIT, deps=[report], kinds={"html"}, code_version="1")(report_index)
    return dg.Definitions(assets=[report, index])
