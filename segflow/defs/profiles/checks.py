"""Checks on profiles, quarantine and row accounting: contract checks generated from their
contracts, plus the balance that proves every raw row is accounted for."""

import dagster as dg
import polars as pl

from segflow.defs.contract_checks import build_contract_checks
from segflow.defs.lineage import table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.lib.cleaning import accounting_imbalances

profile_contract_checks = [
    *build_contract_checks("customer_profiles", "customer_profiles", monthly_partitions),
    *build_contract_checks("quarantined_rows", "quarantined_rows", monthly_partitions),
    *build_contract_checks("row_accounting", "row_accounting", monthly_partitions),
    *build_contract_checks("recoded_values", "recoded_values", monthly_partitions),
]


@dg.asset_check(asset="row_accounting", blocking=True, partitions_def=monthly_partitions)
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
