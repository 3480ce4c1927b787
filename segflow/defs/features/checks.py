"""Contract checks on the feature table: `customer_features`, or `customer_features_snapshot` when
the snapshot feature set is configured (no transactions), chosen from the settings at run time."""

from segflow.config import get_settings
from segflow.defs.contract_checks import build_contract_checks
from segflow.defs.features.assets import FEATURES_CONTRACT
from segflow.defs.partitions import monthly_partitions


def _contract() -> str:
    return FEATURES_CONTRACT[get_settings().feature_set]


feature_contract_checks = build_contract_checks(
    "customer_features", "customer_features", monthly_partitions, contract_for=_contract
)
