"""Audit of each month's segments: KPIs, campaign lift, migration, drift and an out-of-time backtest.
Logic lives in segflow.lib; this is wiring (the report and its index page are in ``report.py``).

Inputs of other months are read with missing months skipped (``months.months_in``).

The audit tables are guarded by their blocking contract checks, evaluated in each table's own step
before the table is stored (write-audit-publish, ``with_contract_checks``): a failing table is never
written, and its failure stops the report in the same run. One validation serves both the gate and
the check results.
"""

from typing import Any

import dagster as dg
import polars as pl

from segflow.defs.audit.months import AUDIT, current, frames, months_in, tagged
from segflow.defs.contract_checks import contract_metadata, contract_specs, with_contract_checks
from segflow.defs.lineage import lineage_output, table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import PUBLISHED_FRESHNESS
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib.audit.backtest import BACKTEST_SCHEMA, backtest
from segflow.lib.audit.drift import DRIFT_SCHEMA, feature_drift, major_drift
from segflow.lib.audit.kpis import segment_kpis
from segflow.lib.audit.lift import campaign_lift as compute_lift
from segflow.lib.audit.migration import MIGRATION_SCHEMA, migration_matrix, stay_rate
from segflow.lib.models.alignment import aligned_ids
from segflow.lib.models.model_types import SegmentationModel
from segflow.lib.periods import shift


def _against_previous(table: pl.DataFrame, period: str) -> pl.DataFrame:
    """A comparison with last month, tagged with both months (empty without a last month)."""
    return tagged(table, period).with_columns(pl.lit(shift(period, -1)).alias("previous_period"))


def kpi_audit(
    context: dg.AssetExecutionContext,
    segment_assignments: dict[str, pl.DataFrame],
    customer_features: pl.DataFrame,
    campaign_exposures: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Per segment and month: customers and share; new (not segmented last month), retained and lost
    (segmented last month, no purchase in this window) customers; net revenue and its share, average
    order value, mean frequency and recency over the RFM window; return rate, email open and click
    rates, sessions per month; mean churn risk (when the model provides it); campaign exposures and
    response rate per arm (treatment, control).
    """
    period = context.partition_key
    months = frames(segment_assignments)
    assigned = current(months, period, "segment_assignments")
    previous = months.get(shift(period, -1))
    kpis = tagged(segment_kpis(assigned, customer_features, previous, campaign_exposures), period)
    rows_in = {
        "segment_assignments": assigned.height,
        "previous_assignments": previous.height if previous is not None else 0,
        "campaign_exposures": campaign_exposures.height,
    }
    shown = ("segment_id", "segment_name", "customers", "customer_share", "new_customers", "lost_customers",
             "revenue_share")  # fmt: skip
    return lineage_output(
        context,
        kpis,
        rows_in,
        kpis.height,
        previous_period=shift(period, -1) if previous is not None else "none",
        kpis=table_metadata(kpis.select(*shown)),
    )


def campaign_lift(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    segment_assignments: pl.DataFrame,
    campaign_exposures: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Per segment and campaign of the month: treatment and control response rates, absolute and relative
    lift, two-proportion z-test p-value (raw and Holm-adjusted over the month's tests) and 95% CI.
    Arms under `report.min_arm_size` exposed customers are "insufficient sample", with no p-value.
    The arm comes from `campaign_exposures`, the month's exposures as the profiles stage cleaned them.
    """
    config = settings.report
    period = context.partition_key
    lift = tagged(
        compute_lift(campaign_exposures, segment_assignments, config.min_arm_size, config.alpha), period
    )
    tested = lift.filter(pl.col("status") == "tested")
    rows_in = {
        "segment_assignments": segment_assignments.height,
        "campaign_exposures": campaign_exposures.height,
    }
    return lineage_output(
        context,
        lift,
        rows_in,
        lift.height,
        tests=tested.height,
        significant=int(tested["significant"].sum()),
        min_arm_size=config.min_arm_size,
        alpha=config.alpha,
    )


def segment_migration(
    context: dg.AssetExecutionContext, segment_assignments: dict[str, pl.DataFrame]
) -> dg.Output[pl.DataFrame]:
    """Transitions from last month's segment to this month's, for cluster segments and RFM segments:
    counts and row-normalised probabilities, with "(new)" and "(lost)" as pseudo-segments. Empty in a
    month without a previous month.
    """
    period = context.partition_key
    months = frames(segment_assignments)
    assigned = current(months, period, "segment_assignments")
    previous = months.get(shift(period, -1))
    if previous is None:
        matrix = pl.DataFrame(schema=MIGRATION_SCHEMA)
    else:
        kinds = [k for k in ("cluster", "rfm") if k == "cluster" or "rfm_segment" in assigned.columns]
        matrix = pl.concat([migration_matrix(previous, assigned, kind) for kind in kinds])
    matrix = _against_previous(matrix, period)
    stays = {kind: stay_rate(matrix.filter(pl.col("kind") == kind)) for kind in ("cluster", "rfm")}
    return lineage_output(
        context,
        matrix,
        {"segment_assignments": sum(f.height for f in months.values())},
        matrix.height,
        previous_period=shift(period, -1) if previous is not None else "none",
        # Computed from segment ids (a customer stayed when the aligned id is the same).
        stay_rate_cluster=round(stays["cluster"], 4) if stays["cluster"] is not None else "n/a",
        stay_rate_rfm=round(stays["rfm"], 4) if stays["rfm"] is not None else "n/a",
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
    period = context.partition_key
    features, assignments = frames(customer_features), frames(segment_assignments)
    featured = current(features, period, "customer_features")
    prev_key = shift(period, -1)
    if prev_key in features:
        drift = feature_drift(
            features[prev_key],
            featured,
            assignments.get(prev_key),
            current(assignments, period, "segment_assignments"),
            settings.report.psi_bins,
            aligned_ids(segmentation_model),
        )
    else:
        drift = pl.DataFrame(schema=DRIFT_SCHEMA)
    drift = _against_previous(drift, period)
    return lineage_output(
        context,
        drift,
        {"customer_features": sum(f.height for f in features.values())},
        drift.height,
        previous_period=prev_key if prev_key in features else "none",
        major_drift=", ".join(major_drift(drift)["name"].to_list()) or "none",
        max_feature_psi=round(float(drift.filter(pl.col("kind") == "feature")["psi"].max() or 0.0), 4),
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
    assigned = frames(segment_assignments).get(assigned_period)
    outcome_months = {
        k: v.select("customer_id", "net_revenue", "n_invoices").collect()
        for k, v in frames(customer_profiles).items()
        if k > assigned_period
    }
    if assigned is None:
        result = pl.DataFrame(schema=BACKTEST_SCHEMA)
    else:
        result = backtest(assigned, outcome_months, assigned_period, horizon)
    result = tagged(result, period)
    p_value = result["kruskal_p"][0] if result.height else None
    rows_in = {
        "segment_assignments": assigned.height if assigned is not None else 0,
        "customer_profiles": sum(f.height for f in outcome_months.values()),
    }
    return lineage_output(
        context,
        result,
        rows_in,
        result.height,
        assigned_period=assigned_period if assigned is not None else "none",
        horizon_months=horizon,
        kruskal_p=float(p_value) if p_value is not None else "n/a",
    )


def _table(name: str, kinds: set[str], code_version: str, **extra: Any) -> dict[str, Any]:
    """The decorator arguments of an audit table: its contract's schema and checks, and its kinds."""
    return {"kinds": kinds, "code_version": code_version, "metadata": contract_metadata(name),
            "check_specs": contract_specs(name, name), **extra}  # fmt: skip


@dg.definitions
def audit_defs() -> dg.Definitions:
    settings = settings_in_scope()
    horizon = settings.report.backtest_horizon_months
    audit = {**AUDIT, "partitions_def": monthly_partitions(settings)}
    last_two = months_in(-1, 0)
    tables = {
        kpi_audit: _table("kpi_audit", {"polars", "parquet"}, "3", ins={"segment_assignments": last_two},
                          freshness_policy=PUBLISHED_FRESHNESS),
        campaign_lift: _table("campaign_lift", {"polars", "parquet", "scipy"}, "1"),
        segment_migration: _table("segment_migration", {"polars", "parquet"}, "1",
                                  ins={"segment_assignments": last_two}),
        segment_drift: _table("segment_drift", {"polars", "parquet"}, "1",
                              ins={"customer_features": last_two, "segment_assignments": last_two}),
        segment_backtest: _table("segment_backtest", {"polars", "parquet", "scipy"}, "1", ins={
            "segment_assignments": months_in(-horizon, 0),
            "customer_profiles": months_in(-(horizon - 1), 0),
        }),
    }  # fmt: skip
    checked = [
        dg.asset(**audit, **args)(with_contract_checks(fn, fn.__name__)) for fn, args in tables.items()
    ]
    return dg.Definitions(assets=checked)
