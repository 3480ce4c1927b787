"""What a contract validation returns: one :class:`RuleResult` per rule, gathered in a
:class:`ValidationReport`, and its rows of plain strings and numbers for tables and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from segflow.lib.display import rounded

# Unexpected values a result keeps as examples (GX's partial list is cut to the same length).
MAX_EXAMPLES = 5


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


def _short(value: Any, limit: int = 60) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
