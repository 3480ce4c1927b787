"""Contract checks on profiles and quarantine, generated from their contracts."""

from segflow.defs.contract_checks import build_contract_checks
from segflow.defs.partitions import monthly_partitions

profile_contract_checks = [
    *build_contract_checks("customer_profiles", "customer_profiles", monthly_partitions),
    *build_contract_checks("quarantined_rows", "quarantined_rows", monthly_partitions),
]
