"""A contract's column rules as a Great Expectations suite, with partition bounds resolved.

Great Expectations is imported only inside the functions that build expectations (it costs seconds
to import), so reading a contract for a table schema stays cheap. No Dagster import here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from segflow.lib.contracts.model import PARTITION_REF, Contract, ContractError, Rule

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx

# The GX expectation type of each column rule, as GX reports it in a validation result.
EXPECTATION_NAMES = {
    "not_null": "expect_column_values_to_not_be_null",
    "unique": "expect_column_values_to_be_unique",
    "between": "expect_column_values_to_be_between",
    "min_between": "expect_column_min_to_be_between",
    "max_between": "expect_column_max_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
    "regex": "expect_column_values_to_match_regex",
}


def resolve_bound(value: Any, partition_start: dt.datetime | None, partition_end: dt.datetime | None) -> Any:
    """Substitute ``${partition_start}``/``${partition_end}`` (with an optional ``+/- N days``).

    Returns None when the reference cannot be resolved (no partition given). Aware datetimes are
    converted to naive UTC, the form in which segflow stores timestamps.
    """
    if not isinstance(value, str):
        return naive_utc(value) if isinstance(value, dt.datetime) else value
    match = PARTITION_REF.match(value)
    if match is None:
        raise ContractError(f"unresolvable bound {value!r}")
    base = partition_start if match.group(1) == "partition_start" else partition_end
    if base is None:
        return None
    days = int(match.group(3) or 0) * (-1 if match.group(2) == "-" else 1)
    return naive_utc(base) + dt.timedelta(days=days)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """The naive-UTC form of a datetime, in which segflow stores and compares timestamps."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def expectation_for(
    rule: Rule, partition_start: dt.datetime | None = None, partition_end: dt.datetime | None = None
) -> Any:
    """The GX expectation for a column rule, or None if a partition bound is unresolved.

    ``meta.rule_id`` carries the rule id so results map back to the contract.
    """
    import great_expectations.expectations as gxe

    meta = {"rule_id": rule.id, "severity": rule.severity}
    common: dict[str, Any] = {"column": rule.column, "meta": meta}
    if rule.mostly is not None:
        common["mostly"] = rule.mostly
    lo = resolve_bound(rule.min_value, partition_start, partition_end)
    hi = resolve_bound(rule.max_value, partition_start, partition_end)
    if (rule.min_value is not None and lo is None) or (rule.max_value is not None and hi is None):
        return None
    bounds = {"min_value": lo, "max_value": hi, "strict_min": rule.strict_min, "strict_max": rule.strict_max}
    match rule.kind:
        case "not_null":
            return gxe.ExpectColumnValuesToNotBeNull(**common)
        case "unique":
            return gxe.ExpectColumnValuesToBeUnique(**common)
        case "between":
            return gxe.ExpectColumnValuesToBeBetween(**common, **bounds)
        case "min_between":
            return gxe.ExpectColumnMinToBeBetween(**common, **bounds)
        case "max_between":
            return gxe.ExpectColumnMaxToBeBetween(**common, **bounds)
        case "in_set":
            return gxe.ExpectColumnValuesToBeInSet(**common, value_set=list(rule.values))
        case "regex":
            return gxe.ExpectColumnValuesToMatchRegex(**common, regex=rule.pattern)
    raise ContractError(f"rule {rule.id}: {rule.kind} is not a column rule")


def build_suite(
    contract: Contract,
    severity: str | None = None,
    partition_start: dt.datetime | None = None,
    partition_end: dt.datetime | None = None,
    rules: Sequence[Rule] | None = None,
) -> gx.ExpectationSuite:
    """A GX ``ExpectationSuite`` with the contract's column rules (of one severity, or all).

    Dataset-level rules (row count, volume change, schema) are not GX expectations here: they
    are O(1) on a polars frame and are evaluated by :mod:`segflow.lib.contracts.validation`. Rules whose
    partition bounds cannot be resolved are left out.
    """
    import great_expectations as gx

    chosen = rules if rules is not None else contract.rules_for(severity)
    expectations = [
        expectation_for(r, partition_start, partition_end) for r in chosen if r.column is not None
    ]
    # Passing expectations to the constructor (not add_expectation) needs no active GX context.
    return gx.ExpectationSuite(
        name=f"{contract.name}.{severity or 'all'}",
        expectations=[e for e in expectations if e is not None],
        meta={"contract_id": contract.id, "contract_version": contract.version},
    )
