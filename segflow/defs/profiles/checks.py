"""The balance that proves every raw row is accounted for. Like the contract checks of the profile
tables, it is evaluated in the ``customer_profiles`` step itself, before anything is stored
(write-audit-publish): a separate check step would run after the unbalanced tables were published."""

import dagster as dg
import polars as pl

from segflow.defs.contract_checks import monthly_check_spec
from segflow.defs.lineage import table_metadata
from segflow.lib.profiles.cleaning import accounting_imbalances

BALANCE = "row_accounting_balances"


def balance_spec() -> dg.AssetCheckSpec:
    """The blocking balance check of ``row_accounting``, partitioned like it."""
    return monthly_check_spec(
        BALANCE,
        asset="row_accounting",
        blocking=True,
        description="Per source: raw rows = accepted + quarantined + exact duplicates dropped.",
    )


def row_accounting_balances(row_accounting: pl.DataFrame) -> dg.AssetCheckResult:
    """Per source: raw rows = accepted + quarantined + exact duplicates dropped. Nothing vanishes."""
    broken = accounting_imbalances(row_accounting)
    return dg.AssetCheckResult(
        asset_key="row_accounting",
        check_name=BALANCE,
        passed=broken.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description="every raw row accounted for"
        if broken.height == 0
        else "; ".join(
            f"{r['source']}: {r['unaccounted']} rows unaccounted" for r in broken.iter_rows(named=True)
        ),
        metadata={"accounting": table_metadata(row_accounting.drop("period"))},
    )
