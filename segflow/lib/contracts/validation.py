"""Validate a polars frame against a data contract with Great Expectations (GX Core 1.x).

Column rules run in GX on a pandas copy of only the columns they name (GX has no polars engine,
see :mod:`segflow.lib.contracts.gx_runtime`). Dataset rules (row count, volume change, schema) are
evaluated on the polars frame directly (:mod:`segflow.lib.contracts.dataset_rules`). The result is a
:class:`~segflow.lib.contracts.results.ValidationReport`: one result per rule, with unexpected
examples of PII columns masked. GX is imported on the first validation only, and a contract's
suite is built once per process. No Dagster import here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Mapping
from typing import Any

import polars as pl

from segflow.lib.contracts import gx_runtime
from segflow.lib.contracts.dataset_rules import dataset_result
from segflow.lib.contracts.model import Contract, Rule
from segflow.lib.contracts.results import MAX_EXAMPLES, RuleResult, ValidationReport
from segflow.lib.contracts.suite import EXPECTATION_NAMES

MASK = "***"


def mask_value(value: Any) -> Any:
    """Mask a PII value; nulls stay null because nullness itself is not sensitive and is the
    very thing a not_null rule reports."""
    return None if value is None else MASK


def mask_record(record: Mapping[str, Any], pii_columns: frozenset[str] | set[str]) -> dict[str, Any]:
    """A copy of one row with PII columns masked (e.g. for quarantined-row JSON)."""
    return {k: mask_value(v) if k in pii_columns else v for k, v in record.items()}


def validate_frame(
    df: pl.DataFrame,
    contract: Contract,
    severity: str,
    previous_row_count: int | None = None,
    partition_start: dt.datetime | None = None,
    partition_end: dt.datetime | None = None,
) -> ValidationReport:
    """Run the contract's rules of ``severity`` against ``df``.

    ``previous_row_count`` (the previous partition's rows) feeds ``volume_change`` rules, which
    are skipped with a note without it. ``partition_start``/``partition_end`` resolve
    ``${partition_*}`` bounds; rules that need them are skipped with a note when absent.

    """
    rules, skipped = _expand_families(contract.rules_for(severity), df, contract)
    return _validate(
        df, contract, severity, rules, skipped, previous_row_count, partition_start, partition_end
    )


def _validate(
    df: pl.DataFrame,
    contract: Contract,
    severity: str,
    rules: list[Rule],
    skipped: dict[str, RuleResult],
    previous_row_count: int | None,
    partition_start: dt.datetime | None,
    partition_end: dt.datetime | None,
) -> ValidationReport:
    started = time.perf_counter()
    results = dict(skipped)
    for rule in rules:
        if rule.column is None:
            results[rule.id] = dataset_result(rule, df, contract, previous_row_count)

    runnable: list[Rule] = []
    for rule in (r for r in rules if r.column is not None and r.id not in results):
        skipped = _precheck(rule, df, partition_start, partition_end, contract)
        if skipped is not None:
            results[rule.id] = skipped
        else:
            runnable.append(rule)

    gx_started = time.perf_counter()
    if runnable:
        results.update(_run_gx(df, contract, severity, runnable, partition_start, partition_end))
    gx_elapsed = time.perf_counter() - gx_started if runnable else 0.0

    return ValidationReport(
        contract=contract.name,
        contract_version=contract.version,
        severity=severity,
        row_count=df.height,
        results=tuple(results[r.id] for r in rules),  # contract order, stable for reports
        elapsed_s=time.perf_counter() - started,
        gx_elapsed_s=gx_elapsed,
    )


def _expand_families(
    rules: list[Rule], df: pl.DataFrame, contract: Contract
) -> tuple[list[Rule], dict[str, RuleResult]]:
    """A rule on a ``namePattern`` column family becomes one rule per matching column (id
    ``<id>[<column>]``, so each column's outcome is reported); with no matching column it is
    skipped with a note, since a family may be empty (e.g. no category mapped)."""
    families = {c.name: c for c in contract.columns if c.name_pattern is not None}
    out: list[Rule] = []
    skipped: dict[str, RuleResult] = {}
    for rule in rules:
        family = families.get(rule.column) if rule.column is not None else None
        if family is None:
            out.append(rule)
            continue
        matching = [c for c in df.columns if family.matches(c) and contract.declaring(c) is family]
        out += [dataclasses.replace(rule, id=f"{rule.id}[{c}]", column=c) for c in matching]
        if not matching:
            out.append(rule)
            skipped[rule.id] = RuleResult(
                rule_id=rule.id,
                column=rule.column,
                expectation=EXPECTATION_NAMES[rule.kind],
                severity=rule.severity,
                success=None,
                note=f"no column matches {family.name_pattern!r}; skipped",
            )
    return out, skipped


# --------------------------------------------------------------------------------------------
# Column rules


def _precheck(
    rule: Rule,
    df: pl.DataFrame,
    start: dt.datetime | None,
    end: dt.datetime | None,
    contract: Contract | None = None,
) -> RuleResult | None:
    """A result for column rules GX cannot or need not run; None when GX should run it."""
    base = {
        "rule_id": rule.id,
        "column": rule.column,
        "severity": rule.severity,
        "expectation": EXPECTATION_NAMES[rule.kind],
    }
    if rule.column not in df.schema:
        if contract is not None and any(c.name == rule.column and c.optional for c in contract.columns):
            note = f"optional column {rule.column!r} is absent; skipped"
            return RuleResult(**base, success=None, note=note)
        return RuleResult(**base, success=False, note=f"column {rule.column!r} is missing")
    if _unresolved(rule, start, end):
        return RuleResult(**base, success=None, note="bound refers to the partition, none given; skipped")
    if rule.kind in ("min_between", "max_between") and df[rule.column].null_count() == df.height:
        # GX fails min/max on an all-null column; nothing out of range exists, so pass.
        return RuleResult(**base, success=True, note="no non-null values")
    return None


def _unresolved(rule: Rule, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    refs = [v for v in (rule.min_value, rule.max_value) if isinstance(v, str)]
    return any(
        ("partition_start" in v and start is None) or ("partition_end" in v and end is None) for v in refs
    )


def _run_gx(
    df: pl.DataFrame,
    contract: Contract,
    severity: str,
    rules: list[Rule],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> dict[str, RuleResult]:
    by_id = {r.id: r for r in rules}
    pdf, gx_rules = gx_runtime.gx_frame(df, rules)
    suite = gx_runtime.suite(contract, severity, tuple(gx_rules), start, end)
    with (
        gx_runtime.GX_LOCK,
        gx_runtime.cheap_batch_fingerprint(),
        gx_runtime.memoised_expectation_configurations(),
    ):
        batch = gx_runtime.batch_definition().get_batch(batch_parameters={"dataframe": pdf})
        outcome = batch.validate(suite, result_format=gx_runtime.RESULT_FORMAT)
    pii = contract.pii_columns
    out: dict[str, RuleResult] = {}
    for res in outcome.results:
        rule = by_id[res.expectation_config.meta["rule_id"]]
        result = _rule_result(rule, res, rule.column in pii)
        if rule.kind == "unique" and result.success is False and not df.schema[rule.column].is_numeric():
            result = _exact_unique(df, rule, result, rule.column in pii)
        out[rule.id] = result
    return out


def _exact_unique(df: pl.DataFrame, rule: Rule, hashed: RuleResult, is_pii: bool) -> RuleResult:
    """Recount a failed hashed ``unique`` on the real values, with real examples."""
    values = df.get_column(rule.column).drop_nulls()
    dup = values.filter(values.is_duplicated())
    examples = tuple(mask_value(v) if is_pii else v for v in dup.head(MAX_EXAMPLES).to_list())
    return dataclasses.replace(
        hashed,
        expectation="expect_column_values_to_be_unique",
        success=dup.len() == 0,
        unexpected_count=dup.len(),
        unexpected_percent=round(100.0 * dup.len() / values.len(), 6) if values.len() else 0.0,
        examples=examples,
    )


def _rule_result(rule: Rule, res: Any, is_pii: bool) -> RuleResult:
    info = res.result or {}
    exc = res.exception_info or {}
    note = ""
    if exc.get("raised_exception"):
        note = f"GX error: {exc.get('exception_message')}"
    examples: tuple[Any, ...] = ()
    if rule.kind != "not_null":  # the unexpected values of not_null are all null: no information
        examples = tuple(_plain(v) for v in (info.get("partial_unexpected_list") or [])[:MAX_EXAMPLES])
    observed = _plain(info.get("observed_value"))
    if is_pii:
        examples = tuple(mask_value(v) for v in examples)
        observed = mask_value(observed)
    count = info.get("unexpected_count")
    percent = info.get("unexpected_percent")
    return RuleResult(
        rule_id=rule.id,
        column=rule.column,
        expectation=res.expectation_config.type,
        severity=rule.severity,
        success=bool(res.success) and not exc.get("raised_exception"),
        observed_value=observed,
        unexpected_count=int(count) if count is not None else None,
        unexpected_percent=round(float(percent), 6) if percent is not None else None,
        examples=examples,
        note=note,
    )


def _plain(value: Any) -> Any:
    """numpy/pandas scalars to plain Python; NaN/NaT to None; timestamps to ISO strings."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        try:
            return None if value != value else value.isoformat()  # NaT != NaT
        except (TypeError, ValueError):
            return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
