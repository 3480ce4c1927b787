"""Contract checks on the feature table: `customer_features`, or `customer_features_snapshot` when
the snapshot feature set is configured (no transactions): the contract the asset itself used."""

import dagster as dg

from segflow.defs.contract_checks import build_contract_checks
from segflow.defs.features.assets import FEATURES_CONTRACT
from segflow.defs.partitions import monthly_partitions
from segflow.defs.scope import settings_in_scope


@dg.definitions
def feature_checks() -> dg.Definitions:
    settings = settings_in_scope()
    contract = FEATURES_CONTRACT[settings.feature_set]
    return dg.Definitions(
        asset_checks=build_contract_checks(
            "customer_features",
            "customer_features",
            monthly_partitions(settings),
            contract_for=lambda: contract,
        )
    )
