"""Contract checks on the raw sources, from data_contracts/raw_<source>.yaml, evaluated in each raw
asset's own step.

One exception to the contracts as written: a source may declare ``starts: YYYY-MM``, the first month it
has data, or be disabled (the transactions source, when a behaviour snapshot stands in for it).
Before that month, or while disabled, its raw partition is empty by design, so the blocking check evaluates
the contract without its ``row_count_between`` rules there (and says so in its metadata). From
``starts`` on, and for every source without it, the contract applies in full. Which rules are set
aside is one value, ``EMPTY_BY_DESIGN``, given to the check generator and to the evaluation alike.
"""

import dagster as dg

from segflow.config_sources import SourceSettings
from segflow.defs.contract_checks import contract_specs
from segflow.lib.contracts.model import Contract, SetAside
from segflow.lib.contracts.spec import load_contract
from segflow.lib.sources.ingest import expects_data

EMPTY_BY_DESIGN = SetAside(
    kinds=frozenset({"row_count_between"}),
    description=" Months before the source's `starts` are expected empty: row-count rules are not applied to them.",
    consequence="expected empty, row-count rules not applied",
)


def raw_check_specs(source: str) -> list[dg.AssetCheckSpec]:
    asset = f"raw_{source}"
    return contract_specs(asset, asset, set_aside=EMPTY_BY_DESIGN)


def raw_contract(source: str, settings: SourceSettings, period: str) -> tuple[Contract, str]:
    """The contract the month's raw table is held to, with a note when rules were set aside."""
    contract = load_contract(f"raw_{source}")
    if settings.enabled and expects_data(settings, period):
        return contract, ""
    reason = (
        f"sources.{source} is disabled"
        if not settings.enabled
        else f"{period} is before sources.{source}.starts ({settings.starts})"
    )
    return EMPTY_BY_DESIGN.apply(contract), EMPTY_BY_DESIGN.note(reason)
