"""Dagster glue for data contracts: table schemas and generated asset checks.

Thin by design: parsing lives in :mod:`segflow.lib.contracts.spec`, validation in
:mod:`segflow.lib.contracts.validation`. This module sits in ``defs/``, which ``load_from_defs_folder``
scans, so it defines functions only and no module-level Dagster definitions.

segflow's own assets declare their contract checks as ``check_specs`` and evaluate them in their
own step (``contract_specs`` and ``check_contract``, or ``publish_checked`` for write-audit-publish):
each table is validated once, and a month has a step per asset rather than per check. For a table
that another tool materialises, ``build_contract_checks`` makes the same checks as separate steps.
"""

import datetime as dt
import functools
import typing
import warnings

import dagster as dg
import polars as pl

from segflow.defs.lineage import for_people
from segflow.defs.partitions import monthly_partitions
from segflow.defs.scope import settings_in_scope
from segflow.lib import periods
from segflow.lib.contracts.model import PARTITION_REF, Contract, Rule, SetAside
from segflow.lib.contracts.spec import load_contract
from segflow.lib.contracts.validation import ValidationReport, validate_frame

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


def _severities(asset: str, contract: Contract) -> list[tuple[str, str, list[Rule]]]:
    """(severity, check name, rules) for each severity the contract has rules of."""
    out = []
    for severity, suffix in (("error", "errors"), ("warn", "warnings")):
        rules = contract.rules_for(severity)
        if rules:
            out.append((severity, f"{asset}_contract_{suffix}", rules))
    return out


def _description(contract: Contract, severity: str, rules: list[Rule]) -> str:
    blocking = severity == "error"
    return f"Data contract {contract.name} v{contract.version}: {len(rules)} {severity} rule(s)" + (
        " (blocking: a failure stops downstream steps)." if blocking else " (advisory)."
    )


def contract_specs(
    asset: str, contract_name: str, set_aside: SetAside | None = None
) -> list[dg.AssetCheckSpec]:
    """The blocking ``<asset>_contract_errors`` and advisory ``<asset>_contract_warnings`` checks of
    an asset that validates its own value (a severity without rules has no check). ``set_aside``
    names the rules some months set aside (``check_contract`` is then given the contract without
    them); the blocking check's description says so when it has such a rule."""
    contract = load_contract(contract_name)
    error_extra = set_aside.description if set_aside is not None and set_aside.applies_to(contract) else ""
    return [
        monthly_check_spec(
            name,
            asset=asset,
            blocking=severity == "error",
            description=_description(contract, severity, rules)
            + (error_extra if severity == "error" else ""),
            metadata={"contract": contract.name, "contract_version": contract.version},
        )
        for severity, name, rules in _severities(asset, contract)
    ]


def monthly_check_spec(name: str, asset: str, **kwargs: typing.Any) -> dg.AssetCheckSpec:
    """A check spec of a segflow asset, partitioned like it (the months of the settings being built).

    Partitioned, the instance records each month's evaluation under its month, which the UI shows
    per partition and ``segflow.records.built_months`` reads; unpartitioned, every month's
    evaluation would overwrite one status for the whole asset.
    """
    with warnings.catch_warnings():  # partitions_def on checks is "preview" in 1.13 (GUIDE §3)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")
        return dg.AssetCheckSpec(
            name, asset=asset, partitions_def=monthly_partitions(settings_in_scope()), **kwargs
        )


def check_contract(
    context: dg.AssetExecutionContext,
    asset: str,
    frame: pl.DataFrame,
    contract: Contract,
    error_note: str = "",
    errors: ValidationReport | None = None,
) -> list[dg.AssetCheckResult]:
    """Every check of ``contract_specs`` evaluated on ``frame`` in the asset's own step. ``errors`` is
    the error rules' report when the caller validated them already (the publish gate), and
    ``error_note`` says why error rules were set aside."""
    partitions_def = context.assets_def.partitions_def
    return [
        _result(context, dg.AssetKey(asset), name, contract, severity, frame, partitions_def,
                *((error_note, errors) if severity == "error" else ("", None)))
        for severity, name, _ in _severities(asset, contract)
    ]  # fmt: skip


def publish_checked(
    context: dg.AssetExecutionContext, asset: str, frame: pl.DataFrame, contract_name: str
) -> list[dg.AssetCheckResult]:
    """Write-audit-publish in one validation: the error rules gate the value (``publish_gate``), and
    the same report, with the warn rules', becomes the asset's check results."""
    contract = load_contract(contract_name)
    errors = publish_gate(frame, contract_name, context.partition_key)
    return check_contract(context, asset, frame, contract, errors=errors)


def with_contract_checks(
    body: typing.Callable[..., dg.Output], asset: str
) -> typing.Callable[..., typing.Iterator]:
    """``body``, an asset function returning its ``dg.Output``, made to evaluate the asset's contract
    checks (``contract_specs(asset, asset)``) on that value in the same step, before it is written
    (write-audit-publish, ``publish_checked``): a value breaking an error rule is never stored.
    Dagster reads the inputs from ``body``'s signature, which ``functools.wraps`` carries over."""

    @functools.wraps(body)
    def checked(
        context: dg.AssetExecutionContext, *args: typing.Any, **kwargs: typing.Any
    ) -> typing.Iterator:
        output = body(context, *args, **kwargs)
        checks = publish_checked(context, asset, output.value, asset)
        yield output
        yield from checks

    return checked


def build_contract_checks(
    asset_key: dg.AssetKey | str,
    contract_name: str,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> list[dg.AssetChecksDefinition]:
    """One blocking ``<asset>_contract_errors`` check (error rules) and one non-blocking
    ``<asset>_contract_warnings`` check (warn rules); a check is omitted when the contract has
    no rule of its severity. Each takes the asset's value (a polars DataFrame) as input.

    ``partitions_def`` must be the asset's own: without it a check on a partitioned asset
    would load every partition.
    """
    key = dg.AssetKey.from_coercible(asset_key)
    contract = load_contract(contract_name)
    return [
        _build_check(key, contract, severity, name, partitions_def, rules)
        for severity, name, rules in _severities(key.path[-1], contract)
    ]


def _build_check(
    key: dg.AssetKey,
    contract: Contract,
    severity: str,
    name: str,
    partitions_def: dg.PartitionsDefinition | None,
    rules: list[Rule],
) -> dg.AssetChecksDefinition:
    contract_name = contract.name

    def _check(context: dg.AssetCheckExecutionContext, frame: pl.DataFrame) -> dg.AssetCheckResult:
        current = load_contract(contract_name)
        return _result(context, key, name, current, severity, frame, partitions_def)

    with warnings.catch_warnings():
        # partitions_def on checks is "preview" in 1.13 but required for partitioned assets
        # (GUIDE §3); without this filter every definitions load prints one warning per check.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")
        return dg.asset_check(
            asset=key,
            name=name,
            description=_description(contract, severity, rules),
            blocking=severity == "error",
            partitions_def=partitions_def,
            metadata={"contract": contract_name, "contract_version": contract.version},
        )(_check)


def _result(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    key: dg.AssetKey,
    name: str,
    contract: Contract,
    severity: str,
    frame: pl.DataFrame,
    partitions_def: dg.PartitionsDefinition | None,
    note: str = "",
    report: ValidationReport | None = None,
) -> dg.AssetCheckResult:
    """One severity of a contract on ``frame``: the check result with its rule table."""
    previous, previous_note = _previous_row_count(context, key, partitions_def, contract, severity)
    if report is None:
        start, end = _partition_window(context)
        report = validate_frame(frame, contract, severity, previous, start, end)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=report.success,
        severity=_SEVERITY[severity],
        metadata=_metadata(report, "; ".join(n for n in (note, previous_note) if n)),
    )


def _partition_window(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
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
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
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
                "unexpected_percent": for_people(r["unexpected_percent"]),
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


_BOUND_WORDS = {"partition_start": "the month's start", "partition_end": "the month's end"}


def _fmt(value: object) -> str:
    if value is None:  # open bound
        return "…"
    if isinstance(value, str) and (ref := PARTITION_REF.match(value.strip())):
        # "${partition_end} + 5d" is resolved per partition; the UI shows what it means.
        base, sign, days = ref.groups()
        return _BOUND_WORDS[base] + (f" {sign} {days} days" if days else "")
    if isinstance(value, float):
        return f"{value:g}"
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def contract_metadata(contract_name: str) -> dict[str, object]:
    """Asset definition metadata from a contract: the column schema the UI shows, and its version."""
    return {
        "dagster/column_schema": column_schema(contract_name),
        "contract": contract_name,
        "contract_version": contract_version(contract_name),
    }


def publish_gate(frame: pl.DataFrame, contract_name: str, period: str) -> ValidationReport:
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
    return report
