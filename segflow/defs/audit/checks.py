"""The advisory drift check (the audit tables' contract checks run in each table's own step)."""

import warnings

import dagster as dg
import polars as pl

from segflow.defs.lineage import for_people
from segflow.defs.partitions import monthly_partitions
from segflow.defs.scope import settings_in_scope
from segflow.lib.audit.drift import MAJOR, major_drift


def drift_check_result(drift: pl.DataFrame) -> dg.AssetCheckResult:
    """Fails (WARN severity, never blocking) when any feature or segment share has PSI > 0.25."""
    major = major_drift(drift)
    top = drift.filter(pl.col("psi").is_not_null()).sort(["psi", "name"], descending=[True, False]).head(5)
    return dg.AssetCheckResult(
        passed=major.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Major drift (PSI > {MAJOR}) in {', '.join(major['name'].to_list())}: review the segments "
            "before reusing last month's audiences (the model is refit every month)."
            if major.height
            else "No major drift."
        ),
        metadata={
            "major_drift": dg.MetadataValue.json(major["name"].to_list()),
            "major_count": major.height,
            "max_psi": for_people(float(top["psi"][0])) if top.height else 0.0,
            "top_psi": dg.MetadataValue.json(
                {r["name"]: round(r["psi"], 4) for r in top.iter_rows(named=True)}
            ),
            "refit_recommended": major.height > 0,
        },
    )


def _segment_drift_major(segment_drift: pl.DataFrame) -> dg.AssetCheckResult:
    return drift_check_result(segment_drift)


@dg.definitions
def audit_checks() -> dg.Definitions:
    partitions_def = monthly_partitions(settings_in_scope())
    with warnings.catch_warnings():  # partitions_def on checks is "preview" in 1.13 but required (GUIDE §3)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")
        drift_major = dg.asset_check(
            asset="segment_drift",
            name="segment_drift_major",
            description="Advisory: warns when a feature or a segment share drifts by PSI > 0.25 against the "
            "previous month (the report then asks for a review of the segments). Never blocks.",
            blocking=False,
            partitions_def=partitions_def,
        )(_segment_drift_major)
    return dg.Definitions(asset_checks=[drift_major])
