"""The dataset-level rules of a contract (row count, volume change, schema, extra columns), evaluated
directly on the polars frame: each is O(1) or one pass over the schema, so GX is not needed for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from segflow.lib.contracts.dtypes import column_type_matches
from segflow.lib.contracts.model import EXTRA_COLUMNS_RULE, Contract, Rule
from segflow.lib.contracts.results import MAX_EXAMPLES, RuleResult


def dataset_result(
    rule: Rule, df: pl.DataFrame, contract: Contract, previous_row_count: int | None
) -> RuleResult:
    """The outcome of one dataset rule on ``df``; ``previous_row_count`` feeds ``volume_change``."""
    evaluate = _EVALUATORS.get(rule.kind)
    if evaluate is None:
        raise ValueError(f"rule {rule.id}: unknown dataset rule {rule.kind}")
    base = {"rule_id": rule.id, "column": None, "severity": rule.severity, "expectation": rule.kind}
    return evaluate(rule, df, contract, previous_row_count, base)


def _row_count(
    rule: Rule, df: pl.DataFrame, _contract: Contract, _previous: int | None, base: dict[str, Any]
) -> RuleResult:
    rows = df.height
    ok = (rule.min_value is None or rows >= rule.min_value) and (
        rule.max_value is None or rows <= rule.max_value
    )
    return RuleResult(**base, success=ok, observed_value=rows)


def _volume_change(
    rule: Rule, df: pl.DataFrame, _contract: Contract, previous: int | None, base: dict[str, Any]
) -> RuleResult:
    if previous is None:
        return RuleResult(**base, success=None, note="no previous partition row count; skipped")
    if previous == 0:
        return RuleResult(
            **base, success=None, note="previous partition had 0 rows; change undefined; skipped"
        )
    rows = df.height
    change = (rows - previous) / previous
    ok = (rule.max_drop is None or change >= -rule.max_drop) and (
        rule.max_growth is None or change <= rule.max_growth
    )
    return RuleResult(**base, success=ok, observed_value=round(change, 6), note=f"{previous} -> {rows} rows")


def _schema(
    _rule: Rule, df: pl.DataFrame, contract: Contract, _previous: int | None, base: dict[str, Any]
) -> RuleResult:
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
    return _listing(base, bad, "; ".join(bad) or "ok")


def _extra_columns(
    _rule: Rule, df: pl.DataFrame, contract: Contract, _previous: int | None, base: dict[str, Any]
) -> RuleResult:
    # Leading-underscore columns are lineage (source file, row, parse error), not data.
    extra = [c for c in df.columns if contract.declaring(c) is None and not c.startswith("_")]
    return _listing(base, extra, ", ".join(extra) or "none")


def _listing(base: dict[str, Any], problems: list[str], observed: str) -> RuleResult:
    """A rule that passes when it finds no problem, listing the first ones it found as examples."""
    return RuleResult(
        **base,
        success=not problems,
        observed_value=observed,
        unexpected_count=len(problems),
        examples=tuple(problems[:MAX_EXAMPLES]),
    )


_EVALUATORS: dict[str, Callable[[Rule, pl.DataFrame, Contract, int | None, dict[str, Any]], RuleResult]] = {
    "row_count_between": _row_count,
    "volume_change": _volume_change,
    "schema": _schema,
    EXTRA_COLUMNS_RULE: _extra_columns,
}
