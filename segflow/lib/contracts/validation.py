"""Validate a polars frame against a data contract with Great Expectations (GX Core 1.x).

Column rules run in GX on a pandas copy of only the columns they name (GX has no polars engine).
Dataset rules (row count, volume change, schema) are O(1) on the polars frame and are evaluated
here directly. The result is a :class:`ValidationReport`: one :class:`RuleResult` per rule, with
unexpected examples of PII columns masked. GX is imported on the first validation only, and a
contract's suite is built once per process. No Dagster import here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from segflow.lib.contracts.spec import (
    EXTRA_COLUMNS_RULE,
    Contract,
    Rule,
    build_suite,
    column_type_matches,
)
from segflow.lib.display import rounded

MASK = "***"
MAX_EXAMPLES = 5
_GX_LOCK = threading.Lock()  # one shared ephemeral context; GX is not documented thread-safe


@dataclass(frozen=True)
class RuleResult:
    """Outcome of one rule. ``success`` is None when the rule was skipped (see ``note``)."""

    rule_id: str
    column: str | None
    expectation: str
    severity: str
    success: bool | None
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    examples: tuple[Any, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ValidationReport:
    """All rule outcomes of one severity for one frame."""

    contract: str
    contract_version: str
    severity: str
    row_count: int
    results: tuple[RuleResult, ...]
    elapsed_s: float = 0.0
    gx_elapsed_s: float = 0.0

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.success is False]

    @property
    def failed_rule_ids(self) -> list[str]:
        return [r.rule_id for r in self.failed]

    @property
    def skipped(self) -> list[RuleResult]:
        return [r for r in self.results if r.success is None]

    @property
    def success(self) -> bool:
        """True when no rule failed (skipped rules do not fail a report)."""
        return not self.failed

    def result(self, rule_id: str) -> RuleResult:
        for r in self.results:
            if r.rule_id == rule_id:
                return r
        raise KeyError(rule_id)

    def to_records(self) -> list[dict[str, Any]]:
        """Rows of plain strings/numbers, one per rule, for tables and JSON."""
        rows = []
        for r in self.results:
            row = asdict(r)
            row["status"] = {True: "passed", False: "failed", None: "skipped"}[r.success]
            row["examples"] = ", ".join(_short(v) for v in r.examples)
            row["observed_value"] = _short(rounded(r.observed_value)) if r.observed_value is not None else ""
            rows.append(row)
        return rows


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
            results[rule.id] = _dataset_result(rule, df, contract, previous_row_count)

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
                expectation=_expectation_name(rule),
                severity=rule.severity,
                success=None,
                note=f"no column matches {family.name_pattern!r}; skipped",
            )
    return out, skipped


# --------------------------------------------------------------------------------------------
# Dataset rules (polars)


def _dataset_result(
    rule: Rule, df: pl.DataFrame, contract: Contract, previous_row_count: int | None
) -> RuleResult:
    base = {"rule_id": rule.id, "column": None, "severity": rule.severity}
    rows = df.height
    if rule.kind == "row_count_between":
        ok = (rule.min_value is None or rows >= rule.min_value) and (
            rule.max_value is None or rows <= rule.max_value
        )
        return RuleResult(**base, expectation="row_count_between", success=ok, observed_value=rows)
    if rule.kind == "volume_change":
        if previous_row_count is None:
            return RuleResult(
                **base,
                expectation="volume_change",
                success=None,
                note="no previous partition row count; skipped",
            )
        if previous_row_count == 0:
            return RuleResult(
                **base,
                expectation="volume_change",
                success=None,
                note="previous partition had 0 rows; change undefined; skipped",
            )
        change = (rows - previous_row_count) / previous_row_count
        ok = (rule.max_drop is None or change >= -rule.max_drop) and (
            rule.max_growth is None or change <= rule.max_growth
        )
        return RuleResult(
            **base,
            expectation="volume_change",
            success=ok,
            observed_value=round(change, 6),
            note=f"{previous_row_count} -> {rows} rows",
        )
    if rule.kind == "schema":
        missing = [
            c.name
            for c in contract.columns
            if c.name not in df.schema and not c.optional and c.name_pattern is None
        ]
        declared = {name: contract.declaring(name) for name in df.columns}
        mistyped = [
            f"{name}: {df.schema[name]}"
            for name, col in declared.items()
            if col is not None and not column_type_matches(col, df.schema[name])
        ]
        bad = [f"missing {c}" for c in missing] + [f"type {m}" for m in mistyped]
        return RuleResult(
            **base,
            expectation="schema",
            success=not bad,
            observed_value="; ".join(bad) or "ok",
            unexpected_count=len(bad),
            examples=tuple(bad[:MAX_EXAMPLES]),
        )
    if rule.kind == EXTRA_COLUMNS_RULE:
        # Leading-underscore columns are lineage (source file, row, parse error), not data.
        extra = [c for c in df.columns if contract.declaring(c) is None and not c.startswith("_")]
        return RuleResult(
            **base,
            expectation="extra_columns",
            success=not extra,
            observed_value=", ".join(extra) or "none",
            unexpected_count=len(extra),
            examples=tuple(extra[:MAX_EXAMPLES]),
        )
    raise ValueError(f"rule {rule.id}: unknown dataset rule {rule.kind}")


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
        "expectation": _expectation_name(rule),
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


_EXPECTATIONS = {
    "not_null": "expect_column_values_to_not_be_null",
    "unique": "expect_column_values_to_be_unique",
    "between": "expect_column_values_to_be_between",
    "min_between": "expect_column_min_to_be_between",
    "max_between": "expect_column_max_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
    "regex": "expect_column_values_to_match_regex",
}


def _expectation_name(rule: Rule) -> str:
    return _EXPECTATIONS[rule.kind]


# --------------------------------------------------------------------------------------------
# Column rules (GX)


@functools.cache
def _gx_batch_definition() -> Any:
    """One ephemeral GX context per process, progress bars off, with a whole-dataframe batch."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("segflow").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


@contextlib.contextmanager
def _cheap_batch_fingerprint() -> Iterator[None]:
    """Replace GX's pandas batch fingerprint with a random id while we validate.

    GX hashes every cell of the frame for a batch marker (not used for validation), twice per
    ``validate`` call; on 1M string ids that costs ~1.8 s, several times the validation itself.
    If GX renames the function this becomes a no-op: slower, never wrong.
    """
    from great_expectations.execution_engine import pandas_execution_engine as pee

    original = getattr(pee, "hash_pandas_dataframe", None)
    if original is None:
        yield
        return
    pee.hash_pandas_dataframe = lambda _df: uuid.uuid4().hex
    try:
        yield
    finally:
        pee.hash_pandas_dataframe = original


HASH_SUFFIX = ".__hash"
# BASIC has everything a RuleResult reports (observed value, unexpected count and percent, the
# first unexpected values). SUMMARY adds value counts and unexpected row indices that nothing
# reads, two more metrics per row-level rule: ~2x the GX time of a 1k-row customer_profiles.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": MAX_EXAMPLES}


def _gx_frame(df: pl.DataFrame, rules: list[Rule]) -> tuple[Any, list[Rule]]:
    """The pandas frame GX validates, and the rules re-pointed at its columns.

    Only the columns the rules name are converted, in dtypes GX handles fast:

    * numbers are widened to int64/float64: GX's row-level ``between`` is vectorised only for
      those and calls Python per value otherwise (Int32 on 1M rows: ~1.5 s instead of ~20 ms);
    * aware datetimes become naive UTC, to compare with the naive-UTC bounds;
    * ``unique`` on a non-numeric column runs on a 64-bit hash of the values (~15x faster than
      factorising 1M strings). Nulls get distinct hashes of their row index, because GX's unique
      must not see them as duplicates. A failure is re-counted exactly in polars
      (:func:`_exact_unique`), so a hash collision can never fail a check.
    """
    exprs: dict[str, pl.Expr] = {}
    gx_rules: list[Rule] = []
    for rule in rules:
        name = rule.column
        assert name is not None
        dtype = df.schema[name]
        if rule.kind == "unique" and not dtype.is_numeric():
            alias = name + HASH_SUFFIX
            row_hash = pl.int_range(pl.len(), dtype=pl.Int64).hash(seed=1)
            exprs[alias] = (
                pl.when(pl.col(name).is_null())
                .then(row_hash)
                .otherwise(pl.col(name).hash(seed=0))
                .reinterpret(signed=True)
                .alias(alias)
            )
            gx_rules.append(dataclasses.replace(rule, column=alias))
            continue
        expr = pl.col(name)
        if dtype.is_integer():
            expr = expr.cast(pl.Int64)
        elif dtype.is_numeric():
            expr = expr.cast(pl.Float64)
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        exprs[name] = expr
        gx_rules.append(rule)
    return df.select(list(exprs.values())).to_pandas(), gx_rules


@functools.lru_cache(maxsize=64)
def _suite(
    contract: Contract,
    severity: str,
    rules: tuple[Rule, ...],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> Any:
    """The GX suite of the rules GX runs, built once per contract, severity, rule set and window:
    each month's checks of a table reuse it. GX only reads a suite while validating."""
    return build_suite(contract, severity, start, end, rules=rules)


def _run_gx(
    df: pl.DataFrame,
    contract: Contract,
    severity: str,
    rules: list[Rule],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> dict[str, RuleResult]:
    by_id = {r.id: r for r in rules}
    pdf, gx_rules = _gx_frame(df, rules)
    suite = _suite(contract, severity, tuple(gx_rules), start, end)
    with _GX_LOCK, _cheap_batch_fingerprint():
        batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": pdf})
        outcome = batch.validate(suite, result_format=_RESULT_FORMAT)
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


def _short(value: Any, limit: int = 60) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
