"""KPI audit per segment and the stakeholder HTML report."""


import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS, lineage, table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import AUTOMATION, PUBLISHED_FRESHNESS
from segflow.defs.resources import SegflowSettings
from segflow.lib import storage
from segflow.lib.kpis import segment_kpis
from segflow.lib.report import ReportInputs, render_report, segment_profile_z
from segflow.lib.report.methods import methods_text


@dg.asset(
    partitions_def=monthly_partitions,
    group_name="audit",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    code_version="1",
    automation_condition=AUTOMATION,
    freshness_policy=PUBLISHED_FRESHNESS,
)
def kpi_audit(context: dg.AssetExecutionContext, segment_assignments: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Per segment: customers and share, net revenue and its share, average order value, mean frequency
    and recency, over the RFM window.
    """
    kpis = segment_kpis(segment_assignments).with_columns(pl.lit(context.partition_key).alias("period"))
    return dg.Output(
        kpis,
        metadata=lineage(
            context, rows_in={"segment_assignments": segment_assignments.height}, rows_out=kpis.height,
            kpis=table_metadata(kpis.select("segment_id", "segment_name", "customers", "customer_share", "revenue_share")),
        ),  # fmt: skip
    )


@dg.asset(
    partitions_def=monthly_partitions,
    group_name="audit",
    kinds={"html"},
    owners=OWNERS,
    code_version="1",
    automation_condition=AUTOMATION,
    freshness_policy=PUBLISHED_FRESHNESS,
)
def audit_report(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    kpi_audit: pl.DataFrame,
    segment_assignments: pl.DataFrame,
    customer_features: pl.DataFrame,
    segmentation_model: dict,
    quarantined_rows: pl.DataFrame,
    row_accounting: pl.DataFrame,
) -> dg.MaterializeResult:
    """A self-contained HTML report for the month (inline SVG charts, no external assets, no PII; cells
    under the minimum customer count are suppressed), written to `<storage>/reports/<YYYY-MM>.html`.
    """
    config = settings.load()
    period = context.partition_key
    quality = {
        "accounting": {r["source"]: r for r in row_accounting.iter_rows(named=True)},
        "quarantine_by_rule": quarantined_rows.group_by("source", "rule_id").len("rows").sort("source", "rule_id")
        .to_dicts(),
    }
    inputs = ReportInputs(
        period=period,
        kpis=kpi_audit,
        profile_z=segment_profile_z(customer_features, segment_assignments),
        sweep=segmentation_model["sweep"],
        rfm_counts=segment_assignments.group_by("rfm_segment").len("customers").sort(
            ["customers", "rfm_segment"], descending=[True, False]
        ),
        model=segmentation_model,
        methods=methods_text(config, segmentation_model),
        quality=quality,
        min_cell=config.report.min_cell_customers,
    )
    path = storage.write_text(render_report(inputs), config.reports_dir / f"{period}.html")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.url(path.as_uri()),
            "bytes": path.stat().st_size,
            "model_version": segmentation_model["version"],
        }
    )
