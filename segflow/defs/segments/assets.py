"""Segment assignments: every customer's cluster segment, RFM segment and the model that assigned them."""


import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS, lineage
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import AUTOMATION, PUBLISHED_FRESHNESS
from segflow.lib.clustering import assign


@dg.asset(
    partitions_def=monthly_partitions,
    group_name="segments",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    code_version="1",
    automation_condition=AUTOMATION,
    freshness_policy=PUBLISHED_FRESHNESS,
)
def segment_assignments(
    context: dg.AssetExecutionContext, customer_features: pl.DataFrame, segmentation_model: dict
) -> dg.Output[pl.DataFrame]:
    """Per customer: segment id and name from the month's model, RFM segment and scores, the RFM values,
    and the model version, so every assignment can be traced to the model that made it.
    """
    segments = assign(customer_features, segmentation_model)
    assignments = customer_features.select(
        "customer_id", "period", "rfm_segment", "rfm_code", "r_score", "f_score", "m_score",
        "recency_days", "frequency", "monetary", "invoices_window", "net_revenue_window",
    ).join(segments, on="customer_id", how="left", maintain_order="left").with_columns(
        pl.lit(segmentation_model["version"]).alias("model_version")
    ).select("customer_id", "period", "segment_id", "segment_name", pl.exclude("customer_id", "period", "segment_id",
                                                                               "segment_name"))  # fmt: skip
    sizes = assignments.group_by("segment_id").len().sort("segment_id")
    return dg.Output(
        assignments,
        metadata=lineage(
            context,
            rows_in={"customer_features": customer_features.height},
            rows_out=assignments.height,
            model_version=segmentation_model["version"],
            segment_sizes=dg.MetadataValue.json({str(r[0]): r[1] for r in sizes.iter_rows()}),
        ),
    )
