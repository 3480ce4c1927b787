"""Row-level validation of raw sources: every raw row is accepted, quarantined or an exact duplicate.

Rules are polars expressions evaluated in order; a row is quarantined under the first rule it
breaks, with that rule's id and a readable reason. Exact duplicate rows (every canonical column
equal) are dropped and counted, keeping the first occurrence in file order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from segflow.config import CleaningSettings
from segflow.lib.profiles import rule_table
from segflow.lib.schema import (
    CAMPAIGN_ARMS,
    ENGAGEMENT_EVENT_TYPES,
    PII_COLUMNS,
    SOURCES,
    SURVEY_QUESTIONS,
)

if TYPE_CHECKING:
    from segflow.lib.profiles.line_items import CleanedLineItems

QUARANTINE_SCHEMA = {
    "source": pl.String(),
    "period": pl.String(),
    "rule_id": pl.String(),
    "reason": pl.String(),
    "source_file": pl.String(),
    "row_number": pl.Int64(),
    "record": pl.String(),
}


@dataclass(frozen=True)
class Rule:
    """A row rule: rows where ``violated`` is true are quarantined as ``rule_id``."""

    rule_id: str
    reason: str
    violated: pl.Expr


@dataclass(frozen=True)
class Cleaned:
    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    duplicates_dropped: int
    raw_rows: int
    # Accepted rows (and their distinct customers) whose customer is missing from the CRM, kept
    # under `cleaning.orphans: keep`; a part of accepted_rows, not a fourth term of the balance.
    orphan_rows: int = 0
    orphan_customers: int = 0

    @property
    def accepted_rows(self) -> int:
        return self.accepted.height

    def accounting(self) -> dict[str, int]:
        return row_accounting(self)

    @property
    def customer_ids(self) -> pl.Series:
        """The customer id of every accepted row."""
        return self.accepted["customer_id"]

    def with_orphans(self, known_customers: pl.Series) -> Cleaned:
        """These counts with the accepted rows of customers not in ``known_customers`` counted."""
        ids = self.accepted["customer_id"]
        orphans = ids.filter(~ids.is_in(known_customers.implode()))
        return dataclasses.replace(self, orphan_rows=orphans.len(), orphan_customers=orphans.n_unique())


def row_accounting(cleaned: Cleaned | CleanedLineItems) -> dict[str, int]:
    """A cleaned source's row accounting: raw = accepted + quarantined + duplicates dropped, and
    the orphans among the accepted."""
    return {
        "raw_rows": cleaned.raw_rows,
        "accepted_rows": cleaned.accepted_rows,
        "quarantined_rows": cleaned.quarantined.height,
        "duplicates_dropped": cleaned.duplicates_dropped,
        "orphan_rows": cleaned.orphan_rows,
        "orphan_customers": cleaned.orphan_customers,
    }


def _in_period(column: str, start: datetime, end: datetime) -> pl.Expr:
    return (pl.col(column) >= start) & (pl.col(column) < end)


def compiled(table: list[rule_table.TableRule], firsts_joined: bool = False) -> list[Rule]:
    """Rules of the engine-neutral table, compiled to polars (``rule_table.to_polars``)."""
    return [Rule(r.rule_id, r.reason, rule_table.to_polars(r.predicate, firsts_joined)) for r in table]


def _parse_rule() -> Rule:
    return compiled([rule_table.parse_rule()])[0]


def _customer_id_rules(known_customers: pl.Series | None) -> list[Rule]:
    return compiled(rule_table.customer_id_rules(known_customers))


def _row_rules(known_customers: pl.Series | None) -> list[Rule]:
    """The rules every source of per-customer rows starts with: readable, with a known customer."""
    return [_parse_rule(), *_customer_id_rules(known_customers)]


def cancellation_expr(columns: list[str] | None = None) -> pl.Expr:
    """True on cancellation lines: the ``_is_cancellation`` flag that ingest derives from the source's
    ``cancellation`` setting, or, for frames without it, an invoice id starting with "C"."""
    return rule_table.to_polars(rule_table.cancellation_predicate(columns))


def transaction_rules(
    start: datetime,
    end: datetime,
    settings: CleaningSettings,
    known_customers: pl.Series | None,
    columns: list[str] | None = None,
) -> list[Rule]:
    """The transaction rules of ``rule_table.transaction_rule_table``, compiled to polars."""
    return compiled(rule_table.transaction_rule_table(start, end, settings, known_customers, columns))


def _snapshot_row_rules(end: datetime) -> list[Rule]:
    """A CRM-style snapshot holds one row per customer, signed up by the partition's end."""
    return [
        Rule(
            "duplicate_customer_id",
            "customer id appears more than once in the snapshot; the first record is kept",
            pl.int_range(pl.len()).over("customer_id") > 0,
        ),
        Rule(
            "signup_after_partition",
            "signup date is after the partition's month end",
            pl.col("signup_date") >= end.date(),
        ),
    ]


def customer_rules(start: datetime, end: datetime) -> list[Rule]:
    return [
        _parse_rule(),
        Rule("missing_customer_id", "customer id is missing", pl.col("customer_id").is_null()),
        *_snapshot_row_rules(end),
    ]


def snapshot_rules(start: datetime, end: datetime, known_customers: pl.Series | None) -> list[Rule]:
    """Rows of a behaviour snapshot: one per customer, no negative count or amount."""
    counts = [c for c, t in SOURCES["snapshot"].items() if t.is_numeric()]
    return [
        *_row_rules(known_customers),
        *_snapshot_row_rules(end),
        Rule(
            "negative_behaviour_value",
            f"a count or amount is negative (one of {counts})",
            pl.any_horizontal([pl.col(c) < 0 for c in counts]),
        ),
    ]


def _in_month_rule(column: str, what: str, start: datetime, end: datetime) -> Rule:
    """``column`` (the timestamp of ``what``) must fall in the partition's month; null breaks it."""
    return Rule(
        "outside_partition",
        f"{what} timestamp is outside the partition's month",
        ~_in_period(column, start, end).fill_null(False),
    )


def _one_of_rule(rule_id: str, column: str, what: str, allowed: tuple[str, ...]) -> Rule:
    """``column`` must hold one of the ``allowed`` codes; null breaks it."""
    return Rule(rule_id, f"{what} not in {list(allowed)}", ~pl.col(column).is_in(allowed).fill_null(False))


def engagement_rules(start: datetime, end: datetime, known_customers: pl.Series | None) -> list[Rule]:
    return [
        *_row_rules(known_customers),
        _in_month_rule("event_at", "event", start, end),
        _one_of_rule("unknown_event_type", "event_type", "event type", ENGAGEMENT_EVENT_TYPES),
    ]


def survey_rules(start: datetime, end: datetime, known_customers: pl.Series | None) -> list[Rule]:
    return [
        *_row_rules(known_customers),
        _in_month_rule("answered_at", "answer", start, end),
        _one_of_rule("unknown_question", "question_id", "question", SURVEY_QUESTIONS),
        Rule(
            "answer_out_of_range",
            "Likert answer outside 1..5",
            ~pl.col("answer").is_between(1, 5).fill_null(False),
        ),
    ]


def campaign_rules(start: datetime, end: datetime, known_customers: pl.Series | None) -> list[Rule]:
    return [
        *_row_rules(known_customers),
        Rule("missing_campaign_id", "campaign id is missing", pl.col("campaign_id").is_null()),
        _in_month_rule("exposed_at", "exposure", start, end),
        _one_of_rule("unknown_arm", "arm", "arm", CAMPAIGN_ARMS),
        Rule("missing_response", "response flag is missing", pl.col("responded").is_null()),
    ]


# The code columns every engine folds (segflow.lib.spark.line_items reads these too): trimmed and
# lower-cased, trimmed and upper-cased, or trimmed ids.
LOWERED_CODES = ("channel", "event_type", "question_id", "arm", "preferred_channel", "marital_status")
UPPERED_CODES = ("gender",)
TRIMMED_IDS = ("customer_id", "invoice_id", "product_id", "campaign_id")


def normalise_codes(frame: pl.DataFrame | pl.LazyFrame, source: str) -> pl.DataFrame | pl.LazyFrame:
    """Trim whitespace and fold case of code columns, so ' Web' and 'WEB' mean 'web'."""
    present = set(frame.collect_schema().names())
    return frame.with_columns(
        *[pl.col(c).str.strip_chars().str.to_lowercase() for c in LOWERED_CODES if c in present],
        *[pl.col(c).str.strip_chars().str.to_uppercase() for c in UPPERED_CODES if c in present],
        *[pl.col(c).str.strip_chars() for c in TRIMMED_IDS if c in present],
    )


def _record_json(frame: pl.DataFrame, source: str) -> pl.Expr:
    columns = [
        (pl.lit("***") if name in PII_COLUMNS else pl.col(name).cast(pl.String)).alias(name)
        for name in SOURCES[source]
    ]
    return pl.struct(columns).struct.json_encode()


def first_occurrences(frame: pl.DataFrame, columns: list[str]) -> pl.Series | None:
    """A mask keeping the first of every set of rows equal in ``columns`` (file order), or None
    when no row repeats an earlier one.

    Same result as ``unique(subset=columns, keep="first", maintain_order=True)``, at about 40% of
    its cost on 10M line items: one 64-bit hash per row finds the rows that may repeat, and only
    those are compared in full (a hash can collide, so equal hashes alone never drop a row).
    """
    hashes = frame.select(pl.struct(columns).hash()).to_series()
    suspects = hashes.is_duplicated()
    if not suspects.any():
        return None
    positions = suspects.arg_true()
    first = frame[positions].select(pl.struct(columns).is_first_distinct()).to_series()
    # Rows whose hash is unique are kept; the rest keep only their exact first occurrence.
    return (~suspects).scatter(positions, first)


def apply_rules(
    frame: pl.DataFrame, rules: list[Rule], source: str, period: str, drop_duplicates: bool = True
) -> Cleaned:
    """Split ``frame`` into accepted rows and quarantined rows (first broken rule wins).

    Exact duplicates are dropped first (the first in file order kept) unless ``drop_duplicates``
    is false, when each is judged as a row of its own (``cleaning.exact_duplicates: keep``).
    """
    raw_rows = frame.height
    keep = first_occurrences(frame, list(SOURCES[source])) if drop_duplicates else None
    deduped = frame if keep is None else frame.filter(keep)
    duplicates = raw_rows - deduped.height
    # Each rule is evaluated once: the first broken rule is the smallest index among those hit.
    # (A when/then chain per output column evaluated every rule twice, and nested 20 deep.)
    first_broken = pl.min_horizontal(
        [pl.when(rule.violated.fill_null(False)).then(pl.lit(i, pl.UInt16)) for i, rule in enumerate(rules)]
        or [pl.lit(None, pl.UInt16)]
    )
    judged = deduped.with_columns(first_broken.alias("_rule"))
    bad = judged.filter(pl.col("_rule").is_not_null())
    quarantined = quarantine_table(bad, [(r.rule_id, r.reason) for r in rules], source, period)
    accepted = judged.filter(pl.col("_rule").is_null()).drop("_rule")
    return Cleaned(accepted, quarantined, duplicates, raw_rows)


def quarantine_table(
    bad: pl.DataFrame, rules: list[tuple[str, str]], source: str, period: str
) -> pl.DataFrame:
    """The quarantine rows (QUARANTINE_SCHEMA) of ``bad``: the source's rows, each with ``_rule``,
    the index in ``rules`` (rule id, reason) of the first rule it breaks. Every engine's quarantine
    is written by this one function, so that the reasons and the masked records cannot differ.
    A ``rule_table.POSITION`` column of ``bad`` is kept, for an engine that merges its parts."""
    index = list(range(len(rules)))
    position = [pl.col(rule_table.POSITION)] if rule_table.POSITION in bad.columns else []
    reason = pl.col("_rule").replace_strict(index, [r[1] for r in rules], return_dtype=pl.String)
    quarantined = bad.select(
        pl.lit(source).alias("source"),
        pl.lit(period).alias("period"),
        pl.col("_rule").replace_strict(index, [r[0] for r in rules], return_dtype=pl.String).alias("rule_id"),
        pl.when(pl.col("_parse_error").is_not_null())
        .then(pl.format("{}: {}", reason, pl.col("_parse_error")))
        .otherwise(reason)
        .alias("reason"),
        pl.col("_source_file").alias("source_file"),
        pl.col("_source_row").alias("row_number"),
        _record_json(bad, source).alias("record"),
        *position,
    )
    return quarantined.cast(QUARANTINE_SCHEMA)


NEAR_DUPLICATE_RULE = "near_duplicate_other_id"


def quarantine_near_duplicates(
    results: dict[str, Cleaned], sources: list[str], period: str
) -> dict[str, Cleaned]:
    """Quarantine records identical to an earlier one in every canonical column but the customer id.

    The accepted rows of ``sources`` (e.g. customers and snapshot, which describe the same people)
    are joined on customer id and compared on all their other canonical columns (PII left out).
    The first record in file order is kept; every later twin is moved, in each of ``sources``, from
    accepted to quarantined under ``near_duplicate_other_id``, with a reason naming the kept id, so
    row accounting still balances and the twin can be given the kept customer's segment.
    """
    present = [s for s in sources if s in results]
    if not present:
        return results
    keys = []
    joined = None
    for source in present:
        columns = [c for c in SOURCES[source] if c not in PII_COLUMNS and c != "customer_id"]
        frame = results[source].accepted.select(
            "customer_id", *[pl.col(c).alias(f"{source}.{c}") for c in columns],
            pl.col("_source_row").alias(f"{source}._row"),
        )  # fmt: skip
        keys += [f"{source}.{c}" for c in columns]
        joined = frame if joined is None else joined.join(frame, on="customer_id", how="inner")
    order = f"{present[0]}._row"
    twins = (
        joined.sort(order)
        .with_columns(pl.col("customer_id").first().over(keys).alias("_kept"))
        .filter(pl.col("customer_id") != pl.col("_kept"))
        .select("customer_id", "_kept")
    )
    if twins.height == 0:
        return results
    out = dict(results)
    for source in present:
        cleaned = results[source]
        moved = cleaned.accepted.join(twins, on="customer_id", how="inner")
        reason = pl.format(
            "repeats customer {} in every column but the id (a second registration); "
            "the first record is kept", pl.col("_kept")
        )  # fmt: skip
        quarantined = moved.select(
            pl.lit(source).alias("source"),
            pl.lit(period).alias("period"),
            pl.lit(NEAR_DUPLICATE_RULE).alias("rule_id"),
            reason.alias("reason"),
            pl.col("_source_file").alias("source_file"),
            pl.col("_source_row").alias("row_number"),
            _record_json(moved, source).alias("record"),
        ).cast(QUARANTINE_SCHEMA)
        accepted = cleaned.accepted.join(twins, on="customer_id", how="anti", maintain_order="left")
        both = pl.concat([cleaned.quarantined, quarantined], how="vertical")
        out[source] = dataclasses.replace(cleaned, accepted=accepted, quarantined=both)
    return out


def accounting_imbalances(accounting: pl.DataFrame) -> pl.DataFrame:
    """Sources whose raw rows differ from accepted + quarantined + duplicates (empty when balanced)."""
    unaccounted = (
        pl.col("raw_rows")
        - pl.col("accepted_rows")
        - pl.col("quarantined_rows")
        - pl.col("duplicates_dropped")
    )
    return accounting.with_columns(unaccounted.alias("unaccounted")).filter(pl.col("unaccounted") != 0)


# Below this many raw rows a source's quarantined share says nothing about the export.
SHARE_MIN_RAW_ROWS = 20


def quarantined_share() -> pl.Expr:
    """quarantined_rows / raw_rows of a row_accounting frame; null below ``SHARE_MIN_RAW_ROWS``."""
    raw = pl.col("raw_rows")
    return (
        pl.when(raw >= SHARE_MIN_RAW_ROWS).then(pl.col("quarantined_rows") / raw).alias("quarantined_share")
    )
