"""Contract checks on the raw sources, generated from data_contracts/raw_<source>.yaml.

One exception to the generated checks: a source may declare ``starts: YYYY-MM``, the first month it
has data, or be disabled (the transactions source, when a behaviour snapshot stands in for it).
Before that month, or while disabled, its raw partition is empty by design, so the blocking check evaluates
the contract without its ``row_count_between`` rules there (and says so in its metadata). From
``starts`` on, and for every source without it, the contract applies in full.
"""

import dataclasses
import warnings

import dagster as dg
import polars as pl

from segflow.defs import contract_checks
from segflow.defs.partitions import monthly_partitions
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib.contracts import load_contract
from segflow.lib.ingest import expects_data
from segflow.lib.quality import validate_frame
from segflow.lib.schema import SOURCES


def _starts_aware_error_check(
    source: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    asset = f"raw_{source}"
    contract = load_contract(asset)
    rules = contract.rules_for("error")

    with warnings.catch_warnings():  # partitions_def on checks is "preview" in 1.13 (GUIDE §3)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")
        return _define(asset, contract, rules, source, partitions_def)


def _define(
    asset: str, contract, rules: list, source: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=f"{asset}_contract_errors",
        description=f"Data contract {contract.name} v{contract.version}: {len(rules)} error rule(s) "
        "(blocking: a "
        "failure stops downstream steps). Months before the source's `starts` are expected empty: "
        "row-count rules are not applied to them.",
        blocking=True,
        partitions_def=partitions_def,
        metadata={"contract": contract.name, "contract_version": contract.version},
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SegflowSettings, frame: pl.DataFrame
    ) -> dg.AssetCheckResult:
        current = load_contract(asset)
        source_settings = settings.sources[source]
        note = ""
        if not source_settings.enabled or not expects_data(source_settings, context.partition_key):
            current = dataclasses.replace(
                current, rules=tuple(r for r in current.rules if r.kind != "row_count_between")
            )
            note = (
                f"sources.{source} is disabled: expected empty, row-count rules not applied"
                if not source_settings.enabled
                else f"{context.partition_key} is before sources.{source}.starts ({source_settings.starts}): "
                "expected empty, row-count rules not applied"
            )
        start, end = contract_checks._partition_window(context)
        previous, previous_note = contract_checks._previous_row_count(
            context, dg.AssetKey(asset), partitions_def, current, "error"
        )
        note = "; ".join(n for n in (note, previous_note) if n)
        report = validate_frame(frame, current, "error", previous, start, end)
        return dg.AssetCheckResult(
            passed=report.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=contract_checks._metadata(report, note),
        )

    return _check


def _checks_for(source: str, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    generated = contract_checks.build_contract_checks(f"raw_{source}", f"raw_{source}", partitions_def)
    has_row_count = any(
        r.kind == "row_count_between" for r in load_contract(f"raw_{source}").rules_for("error")
    )
    if not has_row_count:
        return generated
    return [
        _starts_aware_error_check(source, partitions_def)
        if c.check_specs and next(iter(c.check_specs)).name.endswith("_contract_errors")
        else c
        for c in generated
    ]


@dg.definitions
def raw_source_checks() -> dg.Definitions:
    partitions_def = monthly_partitions(settings_in_scope())
    return dg.Definitions(asset_checks=[c for source in SOURCES for c in _checks_for(source, partitions_def)])
