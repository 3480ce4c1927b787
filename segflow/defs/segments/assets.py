"""Segment assignments: every customer's cluster segment, RFM segment and the model that assigned them."""

from collections.abc import Iterator
from typing import Optional

import dagster as dg
import polars as pl

from segflow.defs.contract_checks import contract_metadata, contract_specs, publish_checked
from segflow.defs.lineage import OWNERS, lineage_output
from segflow.defs.models.assets import previous_partition
from segflow.defs.partitions import PREVIOUS_MONTH, clv_history, monthly_partitions
from segflow.defs.policies import AUTOMATION, PUBLISHED_FRESHNESS
from segflow.defs.scope import settings_in_scope
from segflow.lib.models.churn import CHURN_FEATURES, churn_scores
from segflow.lib.models.clustering import assign
from segflow.lib.models.clv import SCORE_COLUMNS, ClvModel, clv_scores
from segflow.lib.models.model_types import ChurnModel, SegmentationModel

ASSIGNMENT_COLUMNS = (
    "customer_id", "period", "rfm_segment", "rfm_code", "r_score", "f_score", "m_score",
    "recency_days", "frequency", "monetary", "invoices_window", "net_revenue_window",
)  # fmt: skip


def segment_assignments(
    context: dg.AssetExecutionContext,
    customer_features: pl.DataFrame,
    segmentation_model: SegmentationModel,
    churn_model: ChurnModel,
    previous_assignments: Optional[pl.DataFrame],  # noqa: UP045 - Dagster resolves typing.Optional
    clv_model: ClvModel,
    customer_profiles: dict[str, pl.LazyFrame],
) -> Iterator:
    """Per customer: segment id and name from the month's model, last month's segment id (null for a
    customer not segmented last month), RFM segment and scores, the RFM values, churn risk (the
    probability of no purchase in the next ``model.churn_horizon_months`` months, from the month's
    ``churn_model``; null for everyone when there is not yet enough history for one) and the model
    versions, so every assignment can be traced to its models. Predicted value from the month's
    ``clv_model``, applied to each customer's purchase history in ``customer_profiles`` as of the
    month's end: ``p_alive``, ``expected_purchases`` and ``predicted_value`` (discounted net revenue)
    over the next ``model.clv_horizon_months`` months; null for everyone when the model is withheld.
    With the snapshot feature set (no transactions) there is no RFM: the RFM columns are absent, and
    recency, purchases and spend come from the snapshot.
    The table is published: its contract (data_contracts/segment_assignments.yaml) is validated
    before it is written, so a violating month is never visible, and the same report is its checks.
    """
    segments = assign(customer_features, segmentation_model)
    churn = churn_scores(customer_features, churn_model)
    clv = clv_model
    value = clv_scores(customer_features.select("customer_id"), customer_profiles or {}, clv,
                       context.partition_key)  # fmt: skip
    previous = previous_partition(previous_assignments)
    if previous is None:
        previous = pl.DataFrame(schema={"customer_id": pl.String, "previous_segment_id": pl.Int32})
    else:
        previous = previous.select(
            "customer_id", pl.col("segment_id").cast(pl.Int32).alias("previous_segment_id")
        )
    # The snapshot feature set has no RFM: its assignments carry the value columns it does have.
    carried = [c for c in ASSIGNMENT_COLUMNS if c in customer_features.columns]
    assignments = (
        customer_features.select(carried)
        .join(segments, on="customer_id", how="left", maintain_order="left")
        .join(previous, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.lit(segmentation_model.version).alias("model_version"))
        .join(churn, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.lit(churn_model.version, dtype=pl.String).alias("churn_model_version"))
        .join(value, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.lit(clv.version, dtype=pl.String).alias("clv_model_version"))
        .select("customer_id", "period", "segment_id", "segment_name",
                pl.exclude("customer_id", "period", "segment_id", "segment_name"))
    )  # fmt: skip
    checks = publish_checked(context, "segment_assignments", assignments, "segment_assignments")
    kept = assignments.filter(pl.col("previous_segment_id").is_not_null())
    stayed = float((kept["segment_id"] == kept["previous_segment_id"]).mean()) if kept.height else None
    yield lineage_output(
        context,
        assignments,
        rows_in={"customer_features": customer_features.height},
        rows_out=assignments.height,
        model_version=segmentation_model.version,
        segments=dg.MetadataValue.md(_segment_table(assignments)),
        same_segment_as_last_month=round(stayed, 4) if stayed is not None else "no previous month",
        churn_risk=dg.MetadataValue.md(_churn_summary(churn_model, assignments)),
        predicted_value=dg.MetadataValue.md(_clv_summary(clv, assignments)),
        **{"dagster/column_lineage": _column_lineage(assignments.columns, segmentation_model)},
    )
    yield from checks


def _segment_table(assignments: pl.DataFrame) -> str:
    """Customers per segment as a Markdown table, for people reading the UI (not a JSON blob)."""
    sizes = assignments.group_by("segment_id", "segment_name").len("customers").sort("segment_id")
    total = max(assignments.height, 1)
    rows = [
        f"| {r['segment_id']} | {r['segment_name']} | {r['customers']:,} | {r['customers'] / total:.1%} |"
        for r in sizes.iter_rows(named=True)
    ]
    return "\n".join(["| id | name | customers | share |", "|---:|---|---:|---:|", *rows])


def _column_lineage(columns: list[str], segmentation_model: SegmentationModel) -> dg.TableColumnLineage:
    """Carried columns come from customer_features as they are; the segment from the features the
    model's design reads; churn risk from the churn model's features; the previous segment from last
    month's assignments. (The models themselves are JSON, not tables, so they have no columns.)"""
    features, assignments = dg.AssetKey("customer_features"), dg.AssetKey("segment_assignments")
    design = [f["name"] for f in segmentation_model.features]
    derived = {
        "segment_id": [(features, c) for c in design],
        "segment_name": [(features, c) for c in design],
        "churn_risk": [(features, c) for c, _ in CHURN_FEATURES],
        "previous_segment_id": [(assignments, "segment_id")],
        **{c: [(dg.AssetKey("customer_profiles"), p) for p in ("purchase_days", "net_revenue",
               "first_purchase_at", "last_purchase_at")] for c in SCORE_COLUMNS},
    }  # fmt: skip
    deps = {
        column: [dg.TableColumnDep(asset_key=key, column_name=name) for key, name in derived[column]]
        if column in derived
        else [dg.TableColumnDep(asset_key=features, column_name=column)]
        for column in columns
        if column in derived or column in ASSIGNMENT_COLUMNS
    }
    return dg.TableColumnLineage(deps_by_column=deps)


def _churn_summary(churn_model: ChurnModel, assignments: pl.DataFrame) -> str:
    """What the churn_risk column holds this month, in words: the model and its validation, or why
    it is null."""
    if not churn_model.available:
        return f"Not available: {churn_model.reason or 'no churn model'}."
    metrics = churn_model.metrics
    scorer = ""
    if churn_model.guard is not None:  # the guard may fall back to the recency-only baseline, and says why
        scorer = f" Scored by {churn_model.guard['scorer']}: {churn_model.guard['reason']}"
    return (
        f"Churn model {churn_model.version}, horizon {churn_model.horizon_months} months: mean churn "
        f"risk {float(assignments['churn_risk'].mean()):.1%}; validation AUC {metrics['auc']:.3f} "
        f"(recency-only baseline {metrics['baseline_auc']:.3f}).{scorer}"
    )


def _clv_summary(clv: ClvModel, assignments: pl.DataFrame) -> str:
    """What the predicted-value columns hold this month, in words: the model and its validation, or
    why they are null."""
    if not clv.available:
        return f"Not available: {clv.reason}."
    totals = clv.validation["totals"]
    # Customers without a score: no purchase in the history read, or a value that was not finite.
    missing = int(assignments["predicted_value"].null_count())
    return (
        f"CLV model {clv.version}, horizon {clv.horizon_months} months, discounted at "
        f"{clv.discount_rate:.1%} a month: total predicted value {float(assignments['predicted_value'].sum()):,.2f}; "
        f"{missing:,} customers without a value. Out-of-time purchases error {totals['purchases_error']:.1%} "
        f"(naive baseline {totals['baseline_purchases_error']:.1%})."
    )


@dg.definitions
def segment_defs() -> dg.Definitions:
    previous = dg.AssetIn(
        key="segment_assignments",
        partition_mapping=PREVIOUS_MONTH,
        metadata={"allow_missing_partitions": True},
    )
    settings = settings_in_scope()
    history = dg.AssetIn(partition_mapping=clv_history(settings), metadata={"allow_missing_partitions": True})
    asset = dg.asset(
        partitions_def=monthly_partitions(settings),
        group_name="segments",
        kinds={"polars", "parquet"},
        owners=OWNERS,
        code_version="4",
        metadata=contract_metadata("segment_assignments"),
        check_specs=contract_specs("segment_assignments", "segment_assignments"),
        automation_condition=AUTOMATION,
        freshness_policy=PUBLISHED_FRESHNESS,
        ins={"previous_assignments": previous, "customer_profiles": history},
    )(segment_assignments)
    return dg.Definitions(assets=[asset])
