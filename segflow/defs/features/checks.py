"""Contract checks on the feature table."""

from segflow.defs.contract_checks import build_contract_checks
from segflow.defs.partitions import monthly_partitions

feature_contract_checks = build_contract_checks("customer_features", "customer_features", monthly_partitions)
