"""The typed model of a data contract: its columns, its quality rules, and the error a bad one raises.

These are plain frozen dataclasses, built by :mod:`segflow.lib.contracts.spec` from a contract's
YAML and read by the validation, the GX suite and the Dagster checks. No YAML, GX or Dagster here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("error", "warn")
COLUMN_RULES = ("not_null", "unique", "between", "min_between", "max_between", "in_set", "regex")
DATASET_RULES = ("row_count_between", "volume_change", "schema")
# ``schema`` is expanded into two rules: ``schema`` (missing or mistyped columns) and
# ``extra_columns`` (id ``<id>.extra``), so each outcome keeps its own severity.
EXTRA_COLUMNS_RULE = "extra_columns"
LOGICAL_TYPES = ("string", "integer", "number", "boolean", "date", "timestamp", "array")
# The element of an ``array`` column: ODCS ``items`` of ``logicalType: object`` with scalar properties.
ITEM_TYPES = tuple(t for t in LOGICAL_TYPES if t != "array")
# A bound resolved per partition: ``${partition_start}`` or ``${partition_end}``, then ``+/- N days``.
PARTITION_REF = re.compile(r"^\$\{(partition_start|partition_end)\}\s*(?:([+-])\s*(\d+)\s*d(?:ays?)?)?$")


class ContractError(ValueError):
    """A contract that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Column:
    """One column (ODCS ``property``)."""

    name: str
    logical_type: str
    physical_type: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    pii: bool = False
    # segflow: the column is present only when an optional source delivers it (e.g. sources.snapshot).
    # Absent, the schema rule does not miss it and its column rules are skipped; present, all apply.
    optional: bool = False
    classification: str | None = None
    description: str = ""
    # ``array`` columns: the fields of each element (ODCS ``items: {logicalType: object, properties}``).
    items: tuple[Column, ...] = ()
    # segflow: a family of columns whose names the data decides (e.g. one share per top category).
    # Every column matching the regex is typed and checked by this property's rules; none is fine.
    name_pattern: str | None = None

    @property
    def is_temporal(self) -> bool:
        return self.logical_type in ("date", "timestamp")

    def matches(self, name: str) -> bool:
        if self.name_pattern is None:
            return name == self.name
        return re.fullmatch(self.name_pattern, name) is not None


@dataclass(frozen=True)
class Rule:
    """One quality rule. ``column`` is None for dataset-level rules.

    Bounds (``min_value``/``max_value``) are numbers, ``datetime`` objects, or partition
    references such as ``"${partition_end} + 5d"`` resolved at validation time.
    """

    id: str
    kind: str
    severity: str
    description: str
    column: str | None = None
    min_value: Any = None
    max_value: Any = None
    strict_min: bool = False
    strict_max: bool = False
    mostly: float | None = None
    values: tuple[Any, ...] = ()
    pattern: str | None = None
    max_drop: float | None = None
    max_growth: float | None = None


@dataclass(frozen=True)
class Contract:
    """A parsed, validated data contract for one table."""

    id: str
    name: str
    version: str
    status: str
    description: str
    owner: str | None
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...]
    api_version: str = "v3.0.2"
    source: Path | None = field(default=None, compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def pii_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.pii)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def declaring(self, name: str) -> Column | None:
        """The contract column a frame column falls under: by name, else by a family's pattern."""
        exact = [c for c in self.columns if c.name_pattern is None and c.name == name]
        return (
            exact[0] if exact else next((c for c in self.columns if c.name_pattern and c.matches(name)), None)
        )

    def rules_for(self, severity: str | None = None) -> list[Rule]:
        """Rules of one severity (all when None), in contract order."""
        return [r for r in self.rules if severity is None or r.severity == severity]

    def rules_for_column(self, name: str) -> list[Rule]:
        return [r for r in self.rules if r.column == name]


@dataclass(frozen=True)
class SetAside:
    """Rule kinds a table's checks set aside in the months it is empty by design (e.g. a source
    before its ``starts``), given to the check generator rather than patched into its checks.

    ``description`` is added to the blocking check's description when the contract has an error
    rule of these kinds; ``consequence`` follows the reason in the note of a month that sets them aside.
    """

    kinds: frozenset[str]
    description: str
    consequence: str

    def applies_to(self, contract: Contract) -> bool:
        """Whether the blocking check has a rule to set aside (only then does it say so)."""
        return any(r.kind in self.kinds for r in contract.rules_for("error"))

    def apply(self, contract: Contract) -> Contract:
        """The contract without the rules of these kinds, of either severity."""
        return dataclasses.replace(
            contract, rules=tuple(r for r in contract.rules if r.kind not in self.kinds)
        )

    def note(self, reason: str) -> str:
        """The check note of a month whose rules are set aside for ``reason``."""
        return f"{reason}: {self.consequence}"
