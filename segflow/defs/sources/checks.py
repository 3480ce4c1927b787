"""Contract checks on the raw sources, generated from data_contracts/raw_<source>.yaml."""

from segflow.defs.contract_checks import build_contract_checks
from segflow.defs.partitions import monthly_partitions
from segflow.lib.schema import SOURCES

raw_contract_checks = [
    check
    for source in SOURCES
    for check in build_contract_checks(f"raw_{source}", f"raw_{source}", monthly_partitions)
]
