"""Cleaned, typed, one-row-per-customer monthly profiles built from the five raw sources.

A profile row holds the customer's demographics as of the month's end (PII removed, invalid
values recoded to null and then imputed, with flags) and the month's activity: purchases net of
cancellations and returns, engagement, survey answers (a partly answered survey's other questions
imputed, with flags) and campaign exposures. The features stage
sums these monthly rows over its trailing window, so it never needs the line items again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from segflow.config import CleaningSettings, ImputationSettings
from segflow.lib.exact import exact_sum
from segflow.lib.profiles import bands, cleaning
from segflow.lib.profiles.cleaning import Cleaned
from segflow.lib.profiles.imputation import (
    CATEGORICAL,
    NUMERIC,
    impute_demographics,
    impute_surveys,
    imputed_flag,
)
from segflow.lib.schema import CHANNELS, CUSTOMERS, MARITAL_STATUSES, PII_COLUMNS, SOURCES, SURVEY_QUESTIONS

GENDERS = ("F", "M", "X")
EDUCATION_LEVELS = ("basic", "secondary", "bachelor", "master", "phd")
ACTIVITY_COUNTS = (
    "n_invoices", "purchase_days", "n_cancellations", "n_lines", "units",
    *(f"{c}_invoices" for c in CHANNELS),
    "sessions", "page_views", "email_sends", "email_opens", "email_clicks",
    "campaign_exposures", "campaign_responses",
)  # fmt: skip
ACTIVITY_AMOUNTS = ("gross_revenue", "returns_value", "net_revenue")
# The month's net revenue per product category, as a list of {category, net_revenue} per customer.
# A list column rather than one column per category or a separate long table: the set of categories
# is the data's, so wide columns would change the table's schema (and its contract) from month to
# month, while a long table would be a second asset the features stage must join on every read of
# its trailing window. The list keeps one row per (customer, period), the key every check and
# reader of profiles relies on, and a fixed schema the contract can type (`logicalType: array`).
CATEGORY_REVENUE = "category_revenue"
CATEGORY_REVENUE_TYPE = pl.List(pl.Struct({"category": pl.String(), "net_revenue": pl.Float64()}))


# Snapshot behaviour carried into profiles, prefixed so that it never mixes with the monthly
# activity columns (a snapshot's campaign responses cover its whole window, not the month).
SNAPSHOT_BEHAVIOUR = (
    "recency_days", "spend", "purchases", "web_purchases", "store_purchases", "catalog_purchases",
    "deal_purchases", "web_visits_per_month", "campaign_exposures", "campaign_responses", "complaints",
)  # fmt: skip
SNAPSHOT_DEMOGRAPHICS = ("marital_status", "children")
RECODED_SCHEMA = {
    "period": pl.String(),
    "source": pl.String(),
    "column": pl.String(),
    "rule_id": pl.String(),
    "reason": pl.String(),
    "value": pl.String(),
    "rows": pl.Int64(),
    "action": pl.String(),
}


def snapshot_column(name: str) -> str:
    return f"snapshot_{name}"


@dataclass(frozen=True)
class RawSources:
    customers: pl.DataFrame | None
    transactions: pl.DataFrame | None  # None: no line items (a behaviour snapshot stands in)
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


@dataclass(frozen=True)
class _Validity:
    column: str
    rule_id: str
    reason: str
    valid: pl.Expr


def _validity(year: int, settings: CleaningSettings, columns: list[str]) -> list[_Validity]:
    oldest = max(1900, year - settings.max_age_years) if settings.max_age_years is not None else 1900
    youngest = year - settings.min_age_years
    rules = [
        _Validity(
            "birth_year", "implausible_birth_year",
            f"birth year outside {oldest}..{youngest} (age {settings.min_age_years} to "
            f"{year - oldest} in {year})",
            pl.col("birth_year").is_between(oldest, youngest),
        ),
        _Validity(
            "income", "implausible_income", f"income outside 0..{settings.max_income:,.0f} or not finite",
            pl.col("income").is_between(0, settings.max_income) & pl.col("income").is_finite(),
        ),
        _Validity(
            "household_size", "implausible_household_size", "household size outside 1..15",
            pl.col("household_size").is_between(1, 15),
        ),
        _Validity(
            "gender", "unknown_gender", f"gender not in {list(GENDERS)}", pl.col("gender").is_in(GENDERS)
        ),
        _Validity(
            "education", "unknown_education", f"education not in {list(EDUCATION_LEVELS)}",
            pl.col("education").is_in(EDUCATION_LEVELS),
        ),
        _Validity(
            "marital_status", "unknown_marital_status", f"marital status not in {list(MARITAL_STATUSES)}",
            pl.col("marital_status").is_in(MARITAL_STATUSES),
        ),
        _Validity(
            "children", "implausible_children", "children outside 0..15", pl.col("children").is_between(0, 15)
        ),
    ]  # fmt: skip
    rules += [
        _Validity(column, "unparseable_band", f"{column}: {bands.BAND_REASON}", bands.is_band(pl.col(column)))
        for column in bands.BAND_COLUMNS
    ]
    return [r for r in rules if r.column in columns]


_IMPUTED_ACTION = "set to null, then imputed by a model (flagged *_imputed)"
_NULL_ACTION = "set to null (unknown)"


def _recode_invalid(
    customers: pl.DataFrame,
    year: int,
    settings: CleaningSettings,
    period: str = "",
    snapshot_columns: tuple[str, ...] = SNAPSHOT_DEMOGRAPHICS,
) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """Null out impossible demographic values so imputation treats them as missing; band labels
    are written one way first (segflow.lib.profiles.bands), and text that is no band is recoded.

    Returns the recoded frame, counts per column, and one RECODED_SCHEMA row per invalid value;
    ``snapshot_columns`` are the columns the snapshot source delivered (the rest are the CRM's).
    """
    customers = customers.with_columns(
        bands.canonical(pl.col(c)).alias(c) for c in bands.BAND_COLUMNS if c in customers.columns
    )
    rules = _validity(year, settings, customers.columns)
    bad = {r.column: pl.col(r.column).is_not_null() & ~r.valid.fill_null(False) for r in rules}
    counts = customers.select([expr.sum().alias(c) for c, expr in bad.items()]).row(0, named=True)
    logs = []
    for rule in rules:
        hits = customers.filter(bad[rule.column])
        if hits.height == 0:
            continue
        action = _IMPUTED_ACTION if rule.column in (*NUMERIC, *CATEGORICAL) else _NULL_ACTION
        logs.append(
            hits.group_by(pl.col(rule.column).cast(pl.String).alias("value"))
            .agg(pl.len().cast(pl.Int64).alias("rows"))
            .select(
                pl.lit(period).alias("period"),
                pl.lit("snapshot" if rule.column in snapshot_columns else "customers").alias("source"),
                pl.lit(rule.column).alias("column"),
                pl.lit(rule.rule_id).alias("rule_id"),
                pl.lit(rule.reason).alias("reason"),
                "value",
                "rows",
                pl.lit(action).alias("action"),
            )
        )
    recoded = customers.with_columns(
        [
            pl.when(r.valid.fill_null(False)).then(pl.col(r.column)).otherwise(None).alias(r.column)
            for r in rules
        ]
    )
    log = pl.concat(logs) if logs else pl.DataFrame(schema=RECODED_SCHEMA)
    return recoded, {k: int(v) for k, v in counts.items()}, log.cast(RECODED_SCHEMA).sort("column", "value")


_UNREADABLE_ACTION = "set to null and kept (the customer is not dropped)"


def _unreadable_values(
    accepted: pl.DataFrame, source: str, period: str, imputable: dict[str, bool]
) -> pl.DataFrame:
    """RECODED_SCHEMA rows for the optional attributes ingest could not read (its ``_recoded``):
    one per (column, value), with what became of the nulled cell. ``imputable`` says, per column,
    whether imputation fills it this month (a column with no readable value at all cannot be)."""
    if "_recoded" not in accepted.columns:
        return pl.DataFrame(schema=RECODED_SCHEMA)
    cells = accepted.select(pl.col("_recoded").explode().struct.unnest()).drop_nulls("column")
    if cells.height == 0:
        return pl.DataFrame(schema=RECODED_SCHEMA)
    types = {c: str(t) for c, t in SOURCES[source].items()}
    action = pl.col("column").replace_strict(
        {c: (_IMPUTED_ACTION if ok else _NULL_ACTION) for c, ok in imputable.items()},
        default=pl.lit(_NULL_ACTION),
    )
    return (
        cells.group_by("column", "value")
        .agg(pl.len().cast(pl.Int64).alias("rows"))
        .select(
            pl.lit(period).alias("period"),
            pl.lit(source).alias("source"),
            "column",
            pl.lit("unparseable_value").alias("rule_id"),
            pl.format(
                "value cannot be read as {}; {}",
                pl.col("column").replace_strict(types, default=None),
                pl.lit(_UNREADABLE_ACTION),
            ).alias("reason"),  # fmt: skip
            "value",
            "rows",
            action.alias("action"),
        )
        .cast(RECODED_SCHEMA)
    )


def _with_unreadable(recoded: dict, log: pl.DataFrame, results: dict[str, Cleaned], period: str,
                     customers: pl.DataFrame) -> tuple[dict, pl.DataFrame]:  # fmt: skip
    """``recoded``/``log`` with the unreadable attributes of customers and snapshot added."""
    imputable = {c: c in (*NUMERIC, *CATEGORICAL) and customers[c].is_not_null().any()
                 for c in customers.columns if c in CUSTOMERS}  # fmt: skip
    logs = [log]
    for source in ("customers", "snapshot"):
        if source in results:
            logs.append(_unreadable_values(results[source].accepted, source, period, imputable))
    merged = pl.concat(logs, how="vertical").sort("column", "value", "source")
    counts = dict(recoded)
    for row in merged.filter(pl.col("rule_id") == "unparseable_value").iter_rows(named=True):
        counts[row["column"]] = counts.get(row["column"], 0) + row["rows"]
    return counts, merged


def _customers_from_ids(ids: pl.Series) -> pl.DataFrame:
    """When there is no CRM source, the customers are the ids seen in another source."""
    frame = pl.DataFrame({"customer_id": ids}).unique().sort("customer_id")
    return frame.with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in CUSTOMERS.items() if c != "customer_id"]
    )


def _transaction_activity(tx: pl.DataFrame) -> pl.DataFrame:
    cancel = cleaning.cancellation_expr(tx.columns)
    amount = pl.col("quantity") * pl.col("unit_price")
    purchase_invoice = pl.col("invoice_id").filter(~cancel)
    return tx.group_by("customer_id").agg(
        purchase_invoice.n_unique().alias("n_invoices"),
        # Distinct days with a purchase: the BTYD models count repeat purchases in days, as
        # lifetimes and pymc-marketing do, so several invoices on one day are one purchase.
        pl.col("invoiced_at").filter(~cancel).dt.date().n_unique().alias("purchase_days"),
        pl.col("invoice_id").filter(cancel).n_unique().alias("n_cancellations"),
        pl.len().alias("n_lines"),
        pl.col("quantity").filter(~cancel).sum().alias("units"),
        *[
            pl.col("invoice_id").filter(~cancel & (pl.col("channel") == c)).n_unique().alias(f"{c}_invoices")
            for c in CHANNELS
        ],
        exact_sum(amount.filter(~cancel)).alias("gross_revenue"),
        exact_sum(-amount.filter(cancel)).alias("returns_value"),
        exact_sum(amount).alias("net_revenue"),
        pl.col("invoiced_at").filter(~cancel).min().alias("first_purchase_at"),
        pl.col("invoiced_at").filter(~cancel).max().alias("last_purchase_at"),
    )


def _category_revenue(tx: pl.DataFrame) -> pl.DataFrame:
    """Per customer, the month's net revenue by category (purchases minus cancellations and returns,
    as ``net_revenue``), sorted by category. Lines without a category (a source that maps none, or
    a blank cell) are left out rather than given a made-up one: ``net_revenue`` minus the list's sum
    is the month's uncategorised revenue, and a window without any category makes the features
    stage report the category mix unavailable instead of inventing shares."""
    category = pl.col("category").cast(pl.String).str.strip_chars()
    amount = (pl.col("quantity") * pl.col("unit_price")).alias("amount")
    lines = tx.select("customer_id", category.alias("category"), amount)
    per_category = (
        lines.filter(pl.col("category").is_not_null() & (pl.col("category") != ""))
        .group_by("customer_id", "category")
        .agg(exact_sum(pl.col("amount")).alias("net_revenue"))
        .sort("customer_id", "category")
    )
    return per_category.group_by("customer_id", maintain_order=True).agg(
        pl.struct("category", "net_revenue").alias(CATEGORY_REVENUE)
    )


def _engagement_activity(events: pl.DataFrame) -> pl.DataFrame:
    names = {"session": "sessions", "page_view": "page_views", "email_send": "email_sends",
             "email_open": "email_opens", "email_click": "email_clicks"}  # fmt: skip
    return events.group_by("customer_id").agg(
        [(pl.col("event_type") == t).sum().cast(pl.Int64).alias(n) for t, n in names.items()]
    )


def _survey_answers(answers: pl.DataFrame) -> pl.DataFrame:
    latest = (
        answers.sort("answered_at", "customer_id", "question_id")
        .group_by("customer_id", "question_id", maintain_order=True)
        .last()
    )
    wide = latest.pivot(on="question_id", index="customer_id", values="answer")
    return wide.select(
        "customer_id",
        *[
            (pl.col(q) if q in wide.columns else pl.lit(None)).cast(pl.Int32).alias(f"survey_{q}")
            for q in SURVEY_QUESTIONS
        ],
    )


def _campaign_activity(exposures: pl.DataFrame) -> pl.DataFrame:
    return exposures.group_by("customer_id").agg(
        pl.len().cast(pl.Int64).alias("campaign_exposures"),
        pl.col("responded").sum().cast(pl.Int64).alias("campaign_responses"),
    )


def _clean(
    frame: pl.DataFrame | None, source: str, rules: list, period: str, drop_duplicates: bool = True
) -> Cleaned | None:
    if frame is None:
        return None
    normalised = cleaning.normalise_codes(frame, source)
    return cleaning.apply_rules(normalised, rules, source, period, drop_duplicates)


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


def _snapshot_activity(snapshot: pl.DataFrame) -> pl.DataFrame:
    return snapshot.select(
        "customer_id",
        *[pl.col(c).alias(snapshot_column(c)) for c in SNAPSHOT_BEHAVIOUR],
        *SNAPSHOT_DEMOGRAPHICS,
    )


def _clean_sources(
    raw: RawSources, period: str, start: datetime, end: datetime, settings: CleaningSettings
) -> dict[str, Cleaned]:
    """Every enabled source through its row rules. The CRM's accepted ids decide orphans: with
    ``cleaning.orphans: quarantine`` the other sources' rows of unknown customers are quarantined,
    with ``keep`` they are accepted and counted (``Cleaned.orphan_rows``)."""
    results: dict[str, Cleaned] = {}
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
    tx_columns = raw.transactions.columns if raw.transactions is not None else None
    rules = {
        "transactions": cleaning.transaction_rules(start, end, settings, orphan_rule, tx_columns),
        "engagement": cleaning.engagement_rules(start, end, orphan_rule),
        "surveys": cleaning.survey_rules(start, end, orphan_rule),
        "campaigns": cleaning.campaign_rules(start, end, orphan_rule),
    }
    for source, source_rules in rules.items():
        frame = getattr(raw, source)
        drop = source != "transactions" or frame is None or _drops_exact_duplicates(frame, settings)
        cleaned = _clean(frame, source, source_rules, period, drop_duplicates=drop)
        if cleaned is not None:
            results[source] = cleaned
    if known is not None and orphan_rule is None:
        results = {s: r if s == "customers" else r.with_orphans(known) for s, r in results.items()}
        # On the CRM's own row: the customers profiled without a record, each counted once.
        results["customers"] = dataclasses.replace(
            results["customers"], orphan_customers=_orphan_ids(results).len()
        )
    return results


def _drops_exact_duplicates(transactions: pl.DataFrame, settings: CleaningSettings) -> bool:
    """``cleaning.exact_duplicates``: auto drops them unless the invoice ids are derived."""
    if settings.exact_duplicates != "auto":
        return settings.exact_duplicates == "drop"
    from segflow.lib.sources.ingest import invoices_are_derived

    return not invoices_are_derived(transactions)  # as read: derived ids are exactly that expression


def _orphan_ids(results: dict[str, Cleaned]) -> pl.Series:
    """Customer ids of the accepted rows of other sources that the CRM does not know."""
    known = results["customers"].accepted["customer_id"]
    ids = [r.accepted["customer_id"] for s, r in results.items() if s != "customers" and r.orphan_rows]
    if not ids:
        return pl.Series("customer_id", [], dtype=pl.String)
    every = pl.concat(ids).drop_nulls().unique()
    return every.filter(~every.is_in(known.implode())).sort()


def build_profiles(
    raw: RawSources,
    period: str,
    start: datetime,
    end: datetime,
    settings: CleaningSettings,
    seed: int,
    imputation: ImputationSettings | None = None,
) -> ProfileBuild:
    """Validate every source, quarantine bad rows, and build the month's customer profiles.

    Missing demographics and the unanswered questions of partly answered surveys are imputed by
    the model ``imputation`` names (default: ``ImputationSettings()``), seeded with ``seed``.
    """
    results = _clean_sources(raw, period, start, end, settings)
    recoded: dict[str, int] = {}
    recoded_values = pl.DataFrame(schema=RECODED_SCHEMA)

    has_transactions = "transactions" in results
    tx = results["transactions"].accepted if has_transactions else _no_transactions()
    # Aggregated once, before the customers: without a CRM source its keys are the customers (the
    # line items' unique ids, from the aggregate rather than a second pass over every line).
    tx_activity = _transaction_activity(tx)
    snapshot = _snapshot_activity(results["snapshot"].accepted) if "snapshot" in results else None
    if "customers" in results:
        customers = results["customers"].accepted.drop(
            *PII_COLUMNS, "_source_file", "_source_row", "_parse_error", "_recoded", strict=False
        )
        # Kept orphans (cleaning.orphans: keep) are customers with every demographic unknown.
        orphans = _customers_from_ids(_orphan_ids(results)).select(customers.columns)
        customers = pl.concat([customers, orphans.cast(customers.schema)], how="vertical")
        customers, from_snapshot = _with_snapshot_demographics(customers, snapshot)
        customers, recoded, recoded_values = _recode_invalid(
            customers, start.year, settings, period, from_snapshot
        )
        recoded, recoded_values = _with_unreadable(recoded, recoded_values, results, period, customers)
        customers = impute_demographics(customers.sort("customer_id"), seed, imputation)
    else:
        ids = tx_activity["customer_id"] if has_transactions else snapshot["customer_id"]
        customers = _customers_from_ids(ids).drop(*PII_COLUMNS)
        customers = customers.with_columns(
            [pl.lit(False).alias(imputed_flag(c)) for c in (*NUMERIC, *CATEGORICAL)]
        )
        if snapshot is not None:
            customers, from_snapshot = _with_snapshot_demographics(customers, snapshot)
            customers, recoded, recoded_values = _recode_invalid(
                customers, start.year, settings, period, from_snapshot
            )
            recoded, recoded_values = _with_unreadable(recoded, recoded_values, results, period, customers)

    activity = [tx_activity, _category_revenue(tx)]
    if "engagement" in results:
        activity.append(_engagement_activity(results["engagement"].accepted))
    if "surveys" in results:
        activity.append(_survey_answers(results["surveys"].accepted))
    if "campaigns" in results:
        activity.append(_campaign_activity(results["campaigns"].accepted))
    if snapshot is not None:
        activity.append(snapshot.drop(*SNAPSHOT_DEMOGRAPHICS))

    profiles = customers
    for part in activity:
        profiles = profiles.join(part, on="customer_id", how="left")
    fill = [pl.col(c).fill_null(0).cast(pl.Int64) for c in ACTIVITY_COUNTS if c in profiles.columns]
    fill += [pl.col(c).fill_null(0.0).cast(pl.Float64) for c in ACTIVITY_AMOUNTS]
    fill.append(pl.col(CATEGORY_REVENUE).cast(CATEGORY_REVENUE_TYPE).fill_null([]))
    missing = [pl.lit(0, dtype=pl.Int64).alias(c) for c in ACTIVITY_COUNTS if c not in profiles.columns]
    missing += [
        pl.lit(None, dtype=pl.Int32).alias(f"survey_{q}")
        for q in SURVEY_QUESTIONS
        if f"survey_{q}" not in profiles.columns
    ]
    profiles = (
        profiles.with_columns(*fill, *missing, pl.lit(period).alias("period"))
        .sort("customer_id")
        .select("customer_id", "period", pl.exclude("customer_id", "period"))
    )
    profiles = impute_surveys(profiles, seed, imputation)
    quarantined = pl.concat([r.quarantined for r in results.values()], how="vertical")
    accounting = {source: r.accounting() for source, r in results.items()}
    return ProfileBuild(profiles, quarantined, accounting, recoded, recoded_values)


def _no_transactions() -> pl.DataFrame:
    from segflow.lib.sources.ingest import empty_source

    return empty_source("transactions")
