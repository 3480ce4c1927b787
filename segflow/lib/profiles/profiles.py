"""Cleaned, typed, one-row-per-customer monthly profiles built from the five raw sources.

A profile row holds the customer's demographics as of the month's end (PII removed, invalid
values recoded to null and then imputed, with flags) and the month's activity: purchases net of
cancellations and returns, engagement, survey answers (a partly answered survey's other questions
imputed, with flags) and campaign exposures. The features stage
sums these monthly rows over its trailing window, so it never needs the line items again.

This module assembles a month: every source through its row rules (segflow.lib.profiles.cleaning),
the customers and their demographics (recoded in segflow.lib.profiles.recoding, imputed in
segflow.lib.profiles.imputation), and the month's activity joined on (segflow.lib.profiles.activity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from segflow.config import CleaningSettings, ImputationSettings
from segflow.lib.profiles import cleaning, rule_table
from segflow.lib.profiles.activity import (
    SNAPSHOT_DEMOGRAPHICS,
    month_activity,
    snapshot_activity,
    with_activity,
)
from segflow.lib.profiles.cleaning import Cleaned
from segflow.lib.profiles.imputation import (
    CATEGORICAL,
    NUMERIC,
    impute_demographics,
    impute_surveys,
    imputed_flag,
)
from segflow.lib.profiles.line_items import (
    CleanedLineItems,
    LineItemEngine,
    LineItemJob,
    LineItemSource,
    PolarsLineItems,
    no_line_items,
)
from segflow.lib.profiles.recoding import RECODED_SCHEMA, recode_invalid, with_unreadable
from segflow.lib.schema import CAMPAIGNS, CUSTOMERS, PII_COLUMNS


@dataclass(frozen=True)
class RawSources:
    customers: pl.DataFrame | None
    # None: no line items (a behaviour snapshot stands in); a LineItemFile for an engine that
    # reads the stored month itself (engine: spark).
    transactions: LineItemSource | None
    engagement: pl.DataFrame | None
    surveys: pl.DataFrame | None
    campaigns: pl.DataFrame | None
    snapshot: pl.DataFrame | None = None


@dataclass(frozen=True)
class ProfileBuild:
    profiles: pl.DataFrame
    quarantined: pl.DataFrame
    accounting: dict[str, dict[str, int]]  # per source: raw, accepted, quarantined, duplicates
    recoded: dict[str, int]  # invalid demographic values recoded to null before imputation
    # One row per (source, column, rule, invalid value): RECODED_SCHEMA, with the reason and the action.
    recoded_values: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RECODED_SCHEMA))
    # The month's accepted campaign exposures (CAMPAIGNS columns, file order), cleaned by the same rules
    # as the profiles' campaign activity: what the audit's KPIs and campaign lift count.
    exposures: pl.DataFrame = field(default_factory=lambda: _no_exposures())


def build_profiles(
    raw: RawSources,
    period: str,
    start: datetime,
    end: datetime,
    settings: CleaningSettings,
    seed: int,
    imputation: ImputationSettings | None = None,
    line_items: LineItemEngine | None = None,
) -> ProfileBuild:
    """Validate every source, quarantine bad rows, and build the month's customer profiles.

    Missing demographics and the unanswered questions of partly answered surveys are imputed by
    the model ``imputation`` names (default: ``ImputationSettings()``), seeded with ``seed``. The
    line items are cleaned and summed per customer by ``line_items`` (default: polars).
    """
    results = _clean_sources(raw, period, start, end, settings, line_items or PolarsLineItems())
    tx = results["transactions"] if "transactions" in results else no_line_items()
    # Without a CRM source the line items' customers are the customers (read off their sums).
    tx_activity = tx.activity
    snapshot = snapshot_activity(results["snapshot"].accepted) if "snapshot" in results else None
    context = _Context(results, period, start.year, settings)
    if "customers" in results:
        customers, recoded, recoded_values = _demographics(context, _crm_customers(results), snapshot)
        customers = impute_demographics(customers.sort("customer_id"), seed, imputation)
    else:
        ids = tx_activity["customer_id"] if "transactions" in results else snapshot["customer_id"]
        customers, recoded, recoded_values = _customers_without_crm(context, ids, snapshot)
    profiles = with_activity(customers, month_activity(results, tx_activity, tx.categories, snapshot), period)
    profiles = impute_surveys(profiles, seed, imputation)
    quarantined = pl.concat([r.quarantined for r in results.values()], how="vertical")
    accounting = {source: r.accounting() for source, r in results.items()}
    exposures = (
        results["campaigns"].accepted.select(*CAMPAIGNS) if "campaigns" in results else _no_exposures()
    )
    return ProfileBuild(profiles, quarantined, accounting, recoded, recoded_values, exposures)


@dataclass(frozen=True)
class _Context:
    """What recoding a month's demographics needs to know besides the customers themselves."""

    results: dict[str, Cleaned | CleanedLineItems]
    period: str
    year: int
    settings: CleaningSettings


def _crm_customers(results: dict[str, Cleaned]) -> pl.DataFrame:
    """The CRM's accepted customers without PII or ingest's columns, and the kept orphans
    (``cleaning.orphans: keep``) as customers with every demographic unknown."""
    customers = results["customers"].accepted.drop(
        *PII_COLUMNS, "_source_file", "_source_row", "_parse_error", "_recoded", strict=False
    )
    orphans = _customers_from_ids(_orphan_ids(results)).select(customers.columns)
    return pl.concat([customers, orphans.cast(customers.schema)], how="vertical")


def _customers_without_crm(
    context: _Context, ids: pl.Series, snapshot: pl.DataFrame | None
) -> tuple[pl.DataFrame, dict[str, int], pl.DataFrame]:
    """Without a CRM source, the customers are ``ids`` with unknown demographics, none imputed;
    a snapshot still delivers (and has recoded) its own demographics."""
    customers = _customers_from_ids(ids).drop(*PII_COLUMNS)
    customers = customers.with_columns(
        [pl.lit(False).alias(imputed_flag(c)) for c in (*NUMERIC, *CATEGORICAL)]
    )
    if snapshot is None:
        return customers, {}, pl.DataFrame(schema=RECODED_SCHEMA)
    return _demographics(context, customers, snapshot)


def _demographics(
    context: _Context, customers: pl.DataFrame, snapshot: pl.DataFrame | None
) -> tuple[pl.DataFrame, dict[str, int], pl.DataFrame]:
    """``customers`` with the snapshot's demographics joined on and invalid values recoded to null;
    with the recodes counted per column and logged (RECODED_SCHEMA), the unreadable values included."""
    customers, from_snapshot = _with_snapshot_demographics(customers, snapshot)
    customers, recoded, log = recode_invalid(
        customers, context.year, context.settings, context.period, from_snapshot
    )
    recoded, log = with_unreadable(recoded, log, context.results, context.period, customers)
    return customers, recoded, log


def _customers_from_ids(ids: pl.Series) -> pl.DataFrame:
    """Customers known only by their ids (seen in another source): every demographic unknown."""
    frame = pl.DataFrame({"customer_id": ids}).unique().sort("customer_id")
    return frame.with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in CUSTOMERS.items() if c != "customer_id"]
    )


def _with_snapshot_demographics(
    customers: pl.DataFrame, snapshot: pl.DataFrame | None
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """The customers with the snapshot's demographics (marital status, children) joined on, and
    which columns came from the snapshot. A value the CRM delivers wins; the snapshot fills the
    rest, so a CRM that maps marital_status and a snapshot that does not (or the reverse) agree."""
    if snapshot is None:
        return customers, ()
    demographics = snapshot.select("customer_id", *SNAPSHOT_DEMOGRAPHICS)
    joined = customers.join(demographics, on="customer_id", how="left", suffix="_snapshot")
    shared = [c for c in SNAPSHOT_DEMOGRAPHICS if f"{c}_snapshot" in joined.columns]
    crm_delivers = {c for c in shared if customers[c].is_not_null().any()}
    filled = [pl.coalesce(c, f"{c}_snapshot").alias(c) for c in shared]
    joined = joined.with_columns(filled).drop(f"{c}_snapshot" for c in shared)
    return joined, tuple(c for c in SNAPSHOT_DEMOGRAPHICS if c not in crm_delivers)


def _clean(frame: pl.DataFrame | None, source: str, rules: list, period: str) -> Cleaned | None:
    if frame is None:
        return None
    return cleaning.apply_rules(cleaning.normalise_codes(frame, source), rules, source, period)


def _clean_sources(
    raw: RawSources,
    period: str,
    start: datetime,
    end: datetime,
    settings: CleaningSettings,
    line_items: LineItemEngine,
) -> dict[str, Cleaned | CleanedLineItems]:
    """Every enabled source through its row rules. The CRM's accepted ids decide orphans: with
    ``cleaning.orphans: quarantine`` the other sources' rows of unknown customers are quarantined,
    with ``keep`` they are accepted and counted (``Cleaned.orphan_rows``)."""
    results: dict[str, Cleaned | CleanedLineItems] = {}
    known: pl.Series | None = None
    if raw.customers is not None:
        results["customers"] = _clean(raw.customers, "customers", cleaning.customer_rules(start, end), period)
        known = results["customers"].accepted["customer_id"]
    orphan_rule = known if settings.orphans == "quarantine" else None
    if raw.snapshot is not None:
        snapshot_rules = cleaning.snapshot_rules(start, end, orphan_rule)
        results["snapshot"] = _clean(raw.snapshot, "snapshot", snapshot_rules, period)
    if settings.near_duplicates == "quarantine":
        results = cleaning.quarantine_near_duplicates(results, ["customers", "snapshot"], period)
    if "customers" in results:
        known = results["customers"].accepted["customer_id"]
        orphan_rule = known if settings.orphans == "quarantine" else None
    if raw.transactions is not None:
        columns = list(raw.transactions.columns)
        table = rule_table.transaction_rule_table(start, end, settings, orphan_rule, columns)
        job = LineItemJob(table, period, settings.exact_duplicates)
        results["transactions"] = line_items.clean(raw.transactions, job)
    rules = {
        "engagement": cleaning.engagement_rules(start, end, orphan_rule),
        "surveys": cleaning.survey_rules(start, end, orphan_rule),
        "campaigns": cleaning.campaign_rules(start, end, orphan_rule),
    }
    for source, source_rules in rules.items():
        cleaned = _clean(getattr(raw, source), source, source_rules, period)
        if cleaned is not None:
            results[source] = cleaned
    if known is not None and orphan_rule is None:
        results = {s: r if s == "customers" else r.with_orphans(known) for s, r in results.items()}
        # On the CRM's own row: the customers profiled without a record, each counted once.
        results["customers"] = dataclasses.replace(
            results["customers"], orphan_customers=_orphan_ids(results).len()
        )
    return results


def _orphan_ids(results: dict[str, Cleaned]) -> pl.Series:
    """Customer ids of the accepted rows of other sources that the CRM does not know."""
    known = results["customers"].accepted["customer_id"]
    ids = [r.customer_ids for s, r in results.items() if s != "customers" and r.orphan_rows]
    if not ids:
        return pl.Series("customer_id", [], dtype=pl.String)
    every = pl.concat(ids).drop_nulls().unique()
    return every.filter(~every.is_in(known.implode())).sort()


def _no_exposures() -> pl.DataFrame:
    return pl.DataFrame(schema=CAMPAIGNS)
