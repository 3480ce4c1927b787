"""Data contracts: parse a contract YAML into typed dataclasses, and build a GX suite from it.

A contract is ODCS-flavoured YAML (see ``data_contracts/README.md``). Parsing is strict: an
unknown key, a bad severity or a rule parameter that does not fit its rule raises
:class:`ContractError` naming the file and the key, so a typo never silently disables a rule.

Great Expectations is imported only inside :func:`build_suite` (it costs seconds to import), so
reading a contract for a table schema stays cheap. No Dagster import here.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx

CONTRACTS_ENV = "SEGFLOW_CONTRACTS_DIR"
SEVERITIES = ("error", "warn")
COLUMN_RULES = ("not_null", "unique", "between", "min_between", "max_between", "in_set", "regex")
DATASET_RULES = ("row_count_between", "volume_change", "schema")
# ``schema`` is expanded into two rules: ``schema`` (missing or mistyped columns) and
# ``extra_columns`` (id ``<id>.extra``), so each outcome keeps its own severity.
EXTRA_COLUMNS_RULE = "extra_columns"
LOGICAL_TYPES = ("string", "integer", "number", "boolean", "date", "timestamp", "array")
# The element of an ``array`` column: ODCS ``items`` of ``logicalType: object`` with scalar properties.
ITEM_TYPES = tuple(t for t in LOGICAL_TYPES if t != "array")
PARTITION_REFS = ("partition_start", "partition_end")

# Parameters each rule kind accepts (YAML camelCase -> required?).
_RULE_PARAMS: dict[str, dict[str, bool]] = {
    "not_null": {"mostly": False},
    "unique": {},
    "between": {"min": False, "max": False, "strictMin": False, "strictMax": False, "mostly": False},
    "min_between": {"min": False, "max": False, "strictMin": False, "strictMax": False},
    "max_between": {"min": False, "max": False, "strictMin": False, "strictMax": False},
    "in_set": {"values": True, "mostly": False},
    "regex": {"pattern": True, "mostly": False},
    "row_count_between": {"min": False, "max": False},
    "volume_change": {"maxDrop": False, "maxGrowth": False},
    "schema": {"extraColumns": False},
}
_RULE_COMMON = {"id", "rule", "severity", "description", "name", "dimension", "type", "tags"}
_TOP_KEYS = {
    "apiVersion",
    "kind",
    "id",
    "name",
    "version",
    "status",
    "domain",
    "dataProduct",
    "tenant",
    "description",
    "team",
    "tags",
    "freshness",
    "schema",
    "customProperties",
    "contractCreatedTs",
}
_SCHEMA_KEYS = {
    "name",
    "physicalName",
    "physicalType",
    "logicalType",
    "description",
    "properties",
    "quality",
    "tags",
    "businessName",
    "dataGranularityDescription",
}
_PROPERTY_KEYS = {
    "name",
    "logicalType",
    "physicalType",
    "required",
    "unique",
    "primaryKey",
    "primaryKeyPosition",
    "description",
    "classification",
    "pii",
    "optional",
    "examples",
    "tags",
    "businessName",
    "criticalDataElement",
    "quality",
    "items",
    "namePattern",
}
_FRESHNESS_KEYS = {"column", "maxAge", "relativeTo", "severity", "description"}
PARTITION_REF = re.compile(r"^\$\{(partition_start|partition_end)\}\s*(?:([+-])\s*(\d+)\s*d(?:ays?)?)?$")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


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
class Freshness:
    """Declarative: the newest ``column`` value must be at most ``max_age`` before the partition
    end. Evaluated by the pipeline's freshness logic, not by :func:`build_suite`."""

    column: str
    max_age: dt.timedelta
    relative_to: str = "partition_end"
    severity: str = "warn"
    description: str = ""


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
    freshness: Freshness | None = None
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


# --------------------------------------------------------------------------------------------
# Loading


def contracts_dir() -> Path:
    """``$SEGFLOW_CONTRACTS_DIR``, else ``data_contracts/`` at the repository root."""
    env = os.environ.get(CONTRACTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "data_contracts"


def contract_path(name: str) -> Path:
    path = contracts_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ContractError(f"{path}: no contract named {name!r}")
    return path


def load_contract(name: str) -> Contract:
    """Load ``<contracts_dir>/<name>.yaml``; parsed once per file version (path and mtime)."""
    path = contract_path(name)
    return _load_cached(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, _mtime_ns: int) -> Contract:
    return parse_contract_file(path)


def parse_contract_file(path: str | Path) -> Contract:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError on dates like 2020-13-01
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    return parse_contract(raw, source=path)


def parse_contract(raw: Any, source: str | Path = "<contract>") -> Contract:
    """Validate a loaded YAML mapping and return a :class:`Contract`."""
    where = str(source)
    m = _mapping(raw, where)
    _keys(m, _TOP_KEYS, where)
    for key in ("apiVersion", "kind", "id", "name", "version", "schema"):
        if key not in m:
            raise ContractError(f"{where}: missing required key {key!r}")
    if m["kind"] != "DataContract":
        raise ContractError(f"{where}: kind: expected 'DataContract', got {m['kind']!r}")
    name = str(m["name"])
    schema = m["schema"]
    if not isinstance(schema, list) or len(schema) != 1:
        raise ContractError(f"{where}: schema: expected a list with exactly one table object")
    table = _mapping(schema[0], f"{where}: schema[0]")
    _keys(table, _SCHEMA_KEYS, f"{where}: schema[0]")
    if table.get("name") != name:
        raise ContractError(f"{where}: schema[0].name: must equal the contract name {name!r}")

    columns: list[Column] = []
    rules: list[Rule] = []  # dataset rules first: reports then open with schema and row count
    for i, q in enumerate(table.get("quality") or []):
        rules.extend(_parse_rule(q, f"{where}: schema[0].quality[{i}]", None))
    for i, prop in enumerate(table.get("properties") or []):
        col, col_rules = _parse_property(prop, f"{where}: schema[0].properties[{i}]")
        columns.append(col)
        rules.extend(col_rules)

    contract = Contract(
        id=str(m["id"]),
        name=name,
        version=str(m["version"]),
        status=str(m.get("status", "active")),
        description=_description_text(m.get("description")),
        owner=_owner(m.get("team"), where),
        columns=tuple(columns),
        rules=tuple(rules),
        freshness=_parse_freshness(m.get("freshness"), f"{where}: freshness"),
        api_version=str(m["apiVersion"]),
        source=Path(source) if not str(source).startswith("<") else None,
    )
    _check_consistency(contract, where)
    return contract


def _parse_property(raw: Any, where: str) -> tuple[Column, list[Rule]]:
    m = _mapping(raw, where)
    _keys(m, _PROPERTY_KEYS, where)
    if "name" not in m or "logicalType" not in m:
        raise ContractError(f"{where}: 'name' and 'logicalType' are required")
    where = f"{where} ({m['name']})"
    if m["logicalType"] not in LOGICAL_TYPES:
        raise ContractError(f"{where}: logicalType: {m['logicalType']!r} is not one of {LOGICAL_TYPES}")
    if m.get("physicalType") is not None:
        parse_physical_type(m["physicalType"], f"{where}: physicalType")
    pattern = m.get("namePattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ContractError(f"{where}: namePattern: not a valid regex: {exc}") from exc
        if _bool(m, "required", where) or _bool(m, "unique", where):
            raise ContractError(f"{where}: a namePattern family has no fixed column to be required or unique")
    col = Column(
        name=str(m["name"]),
        logical_type=m["logicalType"],
        physical_type=m.get("physicalType"),
        required=_bool(m, "required", where),
        unique=_bool(m, "unique", where),
        primary_key=_bool(m, "primaryKey", where),
        pii=_bool(m, "pii", where),
        optional=_bool(m, "optional", where),
        classification=m.get("classification"),
        description=str(m.get("description", "")).strip(),
        items=_parse_items(m.get("items"), m["logicalType"], where),
        name_pattern=pattern,
    )
    if col.optional and col.required:
        raise ContractError(f"{where}: a column cannot be both optional and required")
    rules: list[Rule] = []
    for i, q in enumerate(m.get("quality") or []):
        rules.extend(_parse_rule(q, f"{where}: quality[{i}]", col))
    return col, rules


def _parse_items(raw: Any, logical: str, where: str) -> tuple[Column, ...]:
    """The element fields of an ``array`` column. Nested values have no GX expectations here, so
    fields carry types only (the schema rule checks them); rules on them are refused, not ignored."""
    if raw is None:
        return ()
    if logical != "array":
        raise ContractError(f"{where}: items: only an array column has items")
    m = _mapping(raw, f"{where}: items")
    _keys(m, {"logicalType", "properties", "description"}, f"{where}: items")
    if m.get("logicalType") != "object" or not m.get("properties"):
        raise ContractError(f"{where}: items: expected logicalType: object with properties")
    fields = []
    for i, field_raw in enumerate(m["properties"]):
        at = f"{where}: items.properties[{i}]"
        fm = _mapping(field_raw, at)
        _keys(fm, {"name", "logicalType", "physicalType", "description"}, at)
        if fm.get("logicalType") not in ITEM_TYPES or "name" not in fm:
            raise ContractError(f"{at}: needs a name and a logicalType in {ITEM_TYPES}")
        if fm.get("physicalType") is not None:
            parse_physical_type(fm["physicalType"], f"{at}: physicalType")
        fields.append(
            Column(
                str(fm["name"]),
                fm["logicalType"],
                fm.get("physicalType"),
                description=str(fm.get("description", "")),
            )
        )
    return tuple(fields)


def _parse_rule(raw: Any, where: str, col: Column | None) -> list[Rule]:
    m = _mapping(raw, where)
    kind = m.get("rule")
    allowed_kinds = COLUMN_RULES if col is not None else DATASET_RULES
    if kind not in allowed_kinds:
        level = "column" if col is not None else "dataset"
        raise ContractError(f"{where}: rule: {kind!r} is not a {level} rule; expected one of {allowed_kinds}")
    params = _RULE_PARAMS[kind]
    _keys(m, _RULE_COMMON | params.keys(), f"{where} (rule {kind})")
    for key, required in params.items():
        if required and key not in m:
            raise ContractError(f"{where}: rule {kind} needs key {key!r}")
    for key in ("id", "severity", "description"):
        if not m.get(key):
            raise ContractError(f"{where}: missing required key {key!r}")
    severity = m["severity"]
    if severity not in SEVERITIES:
        raise ContractError(f"{where}: severity: {severity!r} is not one of {SEVERITIES}")
    where = f"{where} ({m['id']})"
    temporal = col is not None and col.is_temporal
    mostly = m.get("mostly")
    if mostly is not None and not (isinstance(mostly, int | float) and 0 < mostly <= 1):
        raise ContractError(f"{where}: mostly: must be a number in (0, 1], got {mostly!r}")
    if kind == "between" and temporal:
        # Row-level between on datetimes is ~15x slower in GX than min/max on the column.
        raise ContractError(f"{where}: rule between is for numbers; use min_between/max_between on dates")
    if "values" in m and (not isinstance(m["values"], list) or not m["values"]):
        raise ContractError(f"{where}: values: expected a non-empty list")
    if "pattern" in m:
        try:
            groups = re.compile(m["pattern"]).groups
        except (re.error, TypeError) as exc:
            raise ContractError(f"{where}: pattern: not a valid regex: {exc}") from exc
        if groups:  # pandas' str.contains warns on every call about capturing groups
            raise ContractError(f"{where}: pattern: use non-capturing groups (?:...)")
    for key in ("maxDrop", "maxGrowth"):
        if key in m and not (isinstance(m[key], int | float) and m[key] >= 0):
            raise ContractError(f"{where}: {key}: expected a fraction >= 0, got {m[key]!r}")
    bounds = {k: _bound(m.get(k), temporal, f"{where}: {k}") for k in ("min", "max")}
    if kind in ("between", "min_between", "max_between", "row_count_between") and bounds == {
        "min": None,
        "max": None,
    }:
        raise ContractError(f"{where}: rule {kind} needs 'min' or 'max'")
    rule = Rule(
        id=str(m["id"]),
        kind=kind,
        severity=severity,
        description=" ".join(str(m["description"]).split()),
        column=col.name if col else None,
        min_value=bounds["min"],
        max_value=bounds["max"],
        strict_min=_bool(m, "strictMin", where),
        strict_max=_bool(m, "strictMax", where),
        mostly=float(mostly) if mostly is not None else None,
        values=tuple(m.get("values") or ()),
        pattern=m.get("pattern"),
        max_drop=m.get("maxDrop"),
        max_growth=m.get("maxGrowth"),
    )
    if kind != "schema":
        return [rule]
    extra = m.get("extraColumns", "warn")
    if extra not in (*SEVERITIES, "ignore"):
        raise ContractError(f"{where}: extraColumns: {extra!r} is not one of {(*SEVERITIES, 'ignore')}")
    if extra == "ignore":
        return [rule]
    extra_rule = Rule(
        id=f"{rule.id}.extra",
        kind=EXTRA_COLUMNS_RULE,
        severity=extra,
        description="No columns beyond those the contract declares (extra columns are dropped downstream).",
    )
    return [rule, extra_rule]


def _bound(value: Any, temporal: bool, where: str) -> Any:
    """Numbers stay numbers; on date/timestamp columns, ISO strings and dates become ``datetime``
    (GX silently mis-compares string bounds) and partition references stay strings."""
    if value is None:
        return None
    if isinstance(value, str) and PARTITION_REF.match(value):
        if not temporal:
            raise ContractError(f"{where}: partition references are only valid on date/timestamp columns")
        return value
    if temporal:
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError as exc:
                raise ContractError(
                    f"{where}: {value!r} is neither ISO date/time nor ${{partition_*}}"
                ) from exc
        raise ContractError(f"{where}: expected an ISO date/time, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"{where}: expected a number, got {value!r}")
    return value


def _parse_freshness(raw: Any, where: str) -> Freshness | None:
    if raw is None:
        return None
    m = _mapping(raw, where)
    _keys(m, _FRESHNESS_KEYS, where)
    if "column" not in m or "maxAge" not in m:
        raise ContractError(f"{where}: 'column' and 'maxAge' are required")
    match = _DURATION.match(str(m["maxAge"]))
    if not match or not any(match.groups()):
        raise ContractError(f"{where}: maxAge: expected an ISO 8601 duration like P3D or PT12H")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    severity = m.get("severity", "warn")
    if severity not in SEVERITIES:
        raise ContractError(f"{where}: severity: {severity!r} is not one of {SEVERITIES}")
    if m.get("relativeTo", "partition_end") not in PARTITION_REFS:
        raise ContractError(f"{where}: relativeTo: expected one of {PARTITION_REFS}")
    return Freshness(
        column=str(m["column"]),
        max_age=dt.timedelta(days=days, hours=hours, minutes=minutes),
        relative_to=m.get("relativeTo", "partition_end"),
        severity=severity,
        description=" ".join(str(m.get("description", "")).split()),
    )


def _check_consistency(c: Contract, where: str) -> None:
    """Cross-field checks: ids unique, rules name real columns, flags backed by rules."""
    seen: set[str] = set()
    for r in c.rules:
        if r.id in seen:
            raise ContractError(f"{where}: rule id {r.id!r} is used twice")
        seen.add(r.id)
    names = c.column_names
    if len(set(names)) != len(names):
        raise ContractError(f"{where}: a column name appears twice in schema[0].properties")
    for col in c.columns:
        kinds = {(r.kind, r.mostly) for r in c.rules_for_column(col.name)}
        # required/unique drive the published TableSchema, so they must be enforced by a rule.
        if col.required and ("not_null", None) not in kinds:
            raise ContractError(f"{where}: column {col.name}: required: true needs a not_null rule")
        if col.unique and ("unique", None) not in kinds:
            raise ContractError(f"{where}: column {col.name}: unique: true needs a unique rule")
    if c.freshness and c.freshness.column not in names:
        raise ContractError(f"{where}: freshness.column: {c.freshness.column!r} is not a column")


# --------------------------------------------------------------------------------------------
# Types


def parse_physical_type(text: str, where: str = "physicalType") -> pl.DataType:
    """Polars dtype from its name: ``String``, ``Int32``, ``Float64``, ``Date``, ``Datetime(us)``..."""
    match = re.fullmatch(r"(\w+)(?:\((\w+)(?:,\s*([\w/+-]+))?\))?", str(text).strip())
    dtype = getattr(pl, match.group(1), None) if match else None
    if not (isinstance(dtype, type) and issubclass(dtype, pl.DataType)):
        raise ContractError(f"{where}: {text!r} is not a polars dtype name")
    if dtype is pl.Datetime:
        return pl.Datetime(match.group(2) or "us", match.group(3))
    return dtype()


def logical_type_matches(logical: str, dtype: pl.DataType) -> bool:
    """Whether a polars dtype is acceptable for an ODCS logical type (any int width, etc.)."""
    if logical == "string":
        return isinstance(dtype, pl.String | pl.Categorical | pl.Enum)
    if logical == "integer":
        return dtype.is_integer()
    if logical == "number":
        return dtype.is_numeric()
    if logical == "boolean":
        return isinstance(dtype, pl.Boolean)
    if logical == "date":
        return isinstance(dtype, pl.Date)
    if logical == "timestamp":
        return isinstance(dtype, pl.Datetime)
    if logical == "array":
        return isinstance(dtype, pl.List | pl.Array)
    return False


def column_type_matches(col: Column, dtype: pl.DataType) -> bool:
    """Whether a polars dtype fits a contract column, element fields of an array included."""
    if col.physical_type is not None:
        if dtype != parse_physical_type(col.physical_type):
            return False
    elif not logical_type_matches(col.logical_type, dtype):
        return False
    if not col.items:
        return True
    inner = dtype.inner
    if not isinstance(inner, pl.Struct):
        return False
    fields = {f.name: f.dtype for f in inner.fields}
    return set(fields) == {f.name for f in col.items} and all(
        column_type_matches(f, fields[f.name]) for f in col.items
    )


# --------------------------------------------------------------------------------------------
# Partition references and the GX suite


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


# --------------------------------------------------------------------------------------------
# Small helpers


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ContractError(f"{where}: expected a mapping, got {type(raw).__name__}")
    return raw


def _keys(m: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(m) - known)
    if unknown:
        raise ContractError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")


def _bool(m: Mapping[str, Any], key: str, where: str) -> bool:
    value = m.get(key, False)
    if not isinstance(value, bool):
        raise ContractError(f"{where}: {key}: expected true or false, got {value!r}")
    return value


def _description_text(raw: Any) -> str:
    """ODCS v3 ``description`` is an object (purpose/usage/limitations); a string is accepted."""
    if isinstance(raw, Mapping):
        return " ".join(" ".join(str(v).split()) for v in raw.values())
    return " ".join(str(raw or "").split())


def _owner(team: Any, where: str) -> str | None:
    if team is None:
        return None
    if not isinstance(team, list):
        raise ContractError(f"{where}: team: expected a list of members")
    for member in team:
        if isinstance(member, Mapping) and member.get("role") == "owner":
            return str(member.get("username") or member.get("name"))
    return None
