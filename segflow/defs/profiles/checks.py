"""The balance that proves every raw row is accounted for (the contract checks of the profile
tables are evaluated in the ``customer_profiles`` step itself)."""

import dagster as dg
import polars as pl

from segflow.defs.lineage import table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.scope import settings_in_scope
from segflow.lib.cleaning import accounting_imbalances


def row_accounting_balances(row_accounting: pl.DataFrame) -> dg.AssetCheckResult:
    """Per source: raw rows = accepted + quarantined + exact duplicates dropped. Nothing vanishes."""
    broken = accounting_imbalances(row_accounting)
    return dg.AssetCheckResult(
        passed=broken.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description="every raw row accounted for"
        if broken.height == 0
        else "; ".join(
            f"{r['source']}: {r['unaccounted']} rows unaccounted" for r in broken.iter_rows(named=True)
        ),
        metadata={"accounting": table_metadata(row_accounting.drop("period"))},
    )


@dg.definitions
def profile_checks() -> dg.Definitions:
    partitions_def = monthly_partitions(settings_in_scope())
    balance = dg.asset_check(asset="row_accounting", blocking=True, partitions_def=partitions_def)(
        row_accounting_balances
    )
    return dg.Definitions(asset_checks=[balance])
