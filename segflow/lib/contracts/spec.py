"""Data contracts read from YAML: the contracts folder, and strict parsing into the typed model.

A contract is ODCS-flavoured YAML (see ``data_contracts/README.md``). Parsing is strict: an
unknown key, a bad severity or a rule parameter that does not fit its rule raises
:class:`~segflow.lib.contracts.model.ContractError` naming the file and the key, so a typo never
silently disables a rule. The model is in :mod:`segflow.lib.contracts.model`, the GX suite in
:mod:`segflow.lib.contracts.suite`. No Great Expectations or Dagster import here.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from segflow.lib.contracts.dtypes import parse_physical_type
from segflow.lib.contracts.model import (
    COLUMN_RULES,
    DATASET_RULES,
    EXTRA_COLUMNS_RULE,
    ITEM_TYPES,
    LOGICAL_TYPES,
    PARTITION_REF,
    SEVERITIES,
    Column,
    Contract,
    ContractError,
    Rule,
)

CONTRACTS_ENV = "SEGFLOW_CONTRACTS_DIR"

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


# --------------------------------------------------------------------------------------------
# Loading


def contracts_dir() -> Path:
    """``$SEGFLOW_CONTRACTS_DIR``, else the contracts shipped in the package, ``segflow/data_contracts``.

    In a checkout that folder is a symlink to the repository's ``data_contracts/`` (the source), so
    the path is resolved to it; an installed wheel holds a copy of the YAML files.
    """
    env = os.environ.get(CONTRACTS_ENV)
    if env:
        return Path(env)
    # segflow is a regular package on the file system (never zipped), so its files are paths.
    return Path(str(importlib.resources.files("segflow").joinpath("data_contracts"))).resolve()


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
    """One ``quality`` entry: a rule, or two for ``schema`` (see :func:`_schema_rules`)."""
    m = _mapping(raw, where)
    kind = _rule_kind(m, where, col)
    where = f"{where} ({m['id']})"
    temporal = col is not None and col.is_temporal
    _check_rule_values(m, kind, temporal, where)
    bounds = {k: _bound(m.get(k), temporal, f"{where}: {k}") for k in ("min", "max")}
    if kind in ("between", "min_between", "max_between", "row_count_between") and bounds == {
        "min": None,
        "max": None,
    }:
        raise ContractError(f"{where}: rule {kind} needs 'min' or 'max'")
    mostly = m.get("mostly")
    rule = Rule(
        id=str(m["id"]),
        kind=kind,
        severity=m["severity"],
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
    return _schema_rules(rule, m, where) if kind == "schema" else [rule]


def _rule_kind(m: Mapping[str, Any], where: str, col: Column | None) -> str:
    """The rule's kind, once its keys fit the kind and its id, severity and description are given."""
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
    if m["severity"] not in SEVERITIES:
        raise ContractError(f"{where}: severity: {m['severity']!r} is not one of {SEVERITIES}")
    return kind


def _check_rule_values(m: Mapping[str, Any], kind: str, temporal: bool, where: str) -> None:
    """Refuse rule parameters whose values cannot work: GX would fail or mislead on them later."""
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


def _schema_rules(rule: Rule, m: Mapping[str, Any], where: str) -> list[Rule]:
    """``schema`` and, unless ``extraColumns: ignore``, its ``extra_columns`` twin of that severity."""
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
