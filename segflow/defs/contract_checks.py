"""Dagster glue for data contracts: table schemas and generated asset checks.

Thin by design: parsing lives in :mod:`segflow.lib.contracts`, validation in
:mod:`segflow.lib.quality`. This module sits in ``defs/``, which ``load_from_defs_folder``
scans, so it defines functions only and no module-level Dagster definitions.

Usage beside an asset::

    @dg.asset(partitions_def=monthly, metadata={"dagster/column_schema": column_schema("raw_transactions")})
    def raw_transactions(...) -> pl.DataFrame: ...

    raw_transactions_checks = build_contract_checks(raw_transactions.key, "raw_transactions", monthly)
"""

import datetime as dt
import typing
import warnings

import dagster as dg
import polars as pl

from segflow.lib import periods
from segflow.lib.contracts import Contract, Rule, load_contract
from segflow.lib.quality import ValidationReport, validate_frame

ROW_COUNT_KEY = "dagster/row_count"
_SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}
_TABLE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("rule_id", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("column", "string"),
        dg.TableColumn("expectation", "string"),
        dg.TableColumn("observed_value", "string"),
        dg.TableColumn("unexpected_count", "int"),
        dg.TableColumn("unexpected_percent", "float"),
        dg.TableColumn("examples", "string"),
        dg.TableColumn("note", "string"),
    ]
)


def contract_version(contract_name: str) -> str:
    """The ``version`` of a contract, e.g. for asset ``code_version`` or report footers."""
    return load_contract(contract_name).version


def column_schema(contract_name: str) -> dg.TableSchema:
    """The contract's columns as a Dagster ``TableSchema`` (for ``dagster/column_schema``)."""
    contract = load_contract(contract_name)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=col.name,
                type=col.physical_type or col.logical_type,
                description=(col.description + (" [PII]" if col.pii else "")).strip() or None,
                constraints=dg.TableColumnConstraints(
                    nullable=not col.required,
                    unique=col.unique,
                    other=[
                        _rule_text(r)
                        for r in contract.rules_for_column(col.name)
                        if r.kind not in ("not_null", "unique") or r.mostly is not None
                    ],
                ),
            )
            for col in contract.columns
        ]
    )


def build_contract_checks(
    asset_key: dg.AssetKey | str,
    contract_name: str,
    partitions_def: dg.PartitionsDefinition | None = None,
    contract_for: typing.Callable[[], str] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """One blocking ``<asset>_contract_errors`` check (error rules) and one non-blocking
    ``<asset>_contract_warnings`` check (warn rules); a check is omitted when the contract has
    no rule of its severity. Each takes the asset's value (a polars DataFrame) as input.

    ``partitions_def`` must be the asset's own: without it a check on a partitioned asset
    would load every partition. ``contract_for``, when given, names the contract to validate
    against at run time (an asset whose shape depends on the settings, e.g. the feature set);
    ``contract_name`` then only shapes the definitions (both contracts need the same severities).
    """
    key = dg.AssetKey.from_coercible(asset_key)
    contract = load_contract(contract_name)
    checks = []
    for severity, suffix in (("error", "errors"), ("warn", "warnings")):
        rules = contract.rules_for(severity)
        if rules:
            checks.append(
                _build_check(
                    key,
                    contract,
                    severity,
                    f"{key.path[-1]}_contract_{suffix}",
                    partitions_def,
                    rules,
                    contract_for,
                )
            )
    return checks


def _build_check(
    key: dg.AssetKey,
    contract: Contract,
    severity: str,
    name: str,
    partitions_def: dg.PartitionsDefinition | None,
    rules: list[Rule],
    contract_for: typing.Callable[[], str] | None = None,
) -> dg.AssetChecksDefinition:
    blocking = severity == "error"
    description = f"Data contract {contract.name} v{contract.version}: {len(rules)} {severity} rule(s)" + (
        " (blocking: a failure stops downstream steps)." if blocking else " (advisory)."
    )
    contract_name = contract.name

    def _check(context: dg.AssetCheckExecutionContext, frame: pl.DataFrame) -> dg.AssetCheckResult:
        current = load_contract(contract_for() if contract_for is not None else contract_name)
        start, end = _partition_window(context)
        previous, note = _previous_row_count(context, key, partitions_def, current, severity)
        report = validate_frame(frame, current, severity, previous, start, end)
        return dg.AssetCheckResult(
            passed=report.success,
            severity=_SEVERITY[severity],
            metadata=_metadata(report, note),
        )

    with warnings.catch_warnings():
        # partitions_def on checks is "preview" in 1.13 but required for partitioned assets
        # (GUIDE §3); without this filter every definitions load prints one warning per check.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")
        return dg.asset_check(
            asset=key,
            name=name,
            description=description,
            blocking=blocking,
            partitions_def=partitions_def,
            metadata={"contract": contract_name, "contract_version": contract.version},
        )(_check)


def _partition_window(
    context: dg.AssetCheckExecutionContext,
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Start/end of a time-window partition; (None, None) otherwise (rules needing them skip)."""
    if not context.has_partition_key:
        return None, None
    try:
        window = context.partition_time_window
    except Exception:  # not a time-window partitions definition
        return None, None
    return window.start, window.end


def _previous_row_count(
    context: dg.AssetCheckExecutionContext,
    key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    contract: Contract,
    severity: str,
) -> tuple[int | None, str]:
    """``dagster/row_count`` of the previous partition's latest materialization, with a note."""
    if not any(r.kind == "volume_change" for r in contract.rules_for(severity)):
        return None, ""
    if partitions_def is None or not context.has_partition_key:
        return None, "volume_change skipped: asset is not partitioned"
    keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=context.instance))
    position = keys.index(context.partition_key) if context.partition_key in keys else -1
    if position <= 0:
        return None, "volume_change skipped: no previous partition"
    previous = keys[position - 1]
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[previous]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None, f"volume_change skipped: partition {previous} never materialized"
    value = records[0].asset_materialization.metadata.get(ROW_COUNT_KEY)
    if value is None:
        return None, f"volume_change skipped: partition {previous} has no {ROW_COUNT_KEY}"
    return int(value.value), f"previous partition {previous}: {int(value.value)} rows"


def _metadata(report: ValidationReport, note: str) -> dict[str, object]:
    records = [
        dg.TableRecord(
            {
                "rule_id": r["rule_id"],
                "status": r["status"],
                "column": r["column"] or "",
                "expectation": r["expectation"],
                "observed_value": r["observed_value"],
                "unexpected_count": r["unexpected_count"],
                "unexpected_percent": r["unexpected_percent"],
                "examples": r["examples"],
                "note": r["note"],
            }
        )
        for r in report.to_records()
    ]
    metadata: dict[str, object] = {
        "contract": report.contract,
        "contract_version": report.contract_version,
        "severity": report.severity,
        "row_count": dg.MetadataValue.int(report.row_count),
        "failing_rule_count": dg.MetadataValue.int(len(report.failed)),
        "failing_rules": ", ".join(report.failed_rule_ids) or "none",
        "skipped_rule_count": dg.MetadataValue.int(len(report.skipped)),
        "rules": dg.MetadataValue.table(records, schema=_TABLE_SCHEMA),
        "gx_seconds": dg.MetadataValue.float(round(report.gx_elapsed_s, 4)),
    }
    if note:
        metadata["note"] = note
    return metadata


def _rule_text(rule: Rule) -> str:
    """A one-line rule summary for ``TableColumnConstraints.other``."""
    if rule.kind in ("between", "min_between", "max_between"):
        lo = "(" if rule.strict_min else "["
        hi = ")" if rule.strict_max else "]"
        what = {"between": "values", "min_between": "min", "max_between": "max"}[rule.kind]
        text = f"{what} in {lo}{_fmt(rule.min_value)}, {_fmt(rule.max_value)}{hi}"
    elif rule.kind == "in_set":
        text = "in {" + ", ".join(map(str, rule.values)) + "}"
    elif rule.kind == "regex":
        text = f"matches {rule.pattern}"
    elif rule.kind == "not_null":
        text = f"non-null for at least {rule.mostly:.0%} of rows"
    else:
        text = rule.kind
    if rule.mostly is not None and rule.kind != "not_null":
        text += f" (for {rule.mostly:.0%} of rows)"
    return f"{text} [{rule.severity}: {rule.id}]"


def _fmt(value: object) -> str:
    if value is None:  # open bound
        return "…"
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def contract_metadata(contract_name: str) -> dict[str, object]:
    """Asset definition metadata from a contract: the column schema the UI shows, and its version."""
    return {
        "dagster/column_schema": column_schema(contract_name),
        "contract": contract_name,
        "contract_version": contract_version(contract_name),
    }


def publish_gate(frame: pl.DataFrame, contract_name: str, period: str) -> None:
    """Write-audit-publish for the tables segflow computes itself.

    A blocking check stops downstream steps, but Dagster still writes the checked asset, and a
    later run (a modelling phase, a trailing window) would read it. So the error rules are also
    validated here, before the value reaches the IO manager: a violating table is never written,
    and the previous good version of the partition stays in place.
    """
    start, end = periods.bounds(period)
    report = validate_frame(frame, load_contract(contract_name), "error", None, start, end)
    if not report.success:
        failed = [r for r in report.results if r.success is False]
        raise dg.Failure(
            description=f"{contract_name} {period} not published: contract rules failed: "
            + "; ".join(
                f"{r.rule_id} (observed {r.observed_value}, unexpected {r.unexpected_count})" for r in failed
            ),
            metadata={"failing_rules": ", ".join(r.rule_id for r in failed)},
        )
