"""Cleaned customer profiles, the quarantine of rejected raw rows, and the cleaned campaign exposures."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
from upath import UPath

from segflow.config import Settings
from segflow.defs.contract_checks import contract_metadata, contract_specs, publish_checked
from segflow.defs.lineage import OWNERS, data_version, lineage, table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import AUTOMATION
from segflow.defs.profiles.checks import BALANCE, balance_spec, row_accounting_balances
from segflow.defs.resources import LineItems, SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib import periods, storage
from segflow.lib.profiles.cleaning import quarantined_share
from segflow.lib.profiles.imputation import imputation_record
from segflow.lib.profiles.line_items import LineItemFile
from segflow.lib.profiles.profiles import ProfileBuild, RawSources, build_profiles


def _table_out(name: str, description: str, kinds: set[str]) -> dg.AssetOut:
    """The outputs differ only in name and description; each has its own contract."""
    return dg.AssetOut(
        description=description,
        group_name="profiles",
        kinds=kinds,
        owners=OWNERS,
        metadata=contract_metadata(name),
        code_version="3",
        automation_condition=AUTOMATION,
    )


PROFILE_DESCRIPTIONS = {
    "customer_profiles": (
        "One row per customer known at the month's end: typed, deduplicated, PII removed, invalid "
        "demographics recoded and imputed by a model (flagged `*_imputed`), and the month's purchases net of "
        "cancellations and returns, engagement, survey answers (the unanswered questions of a partly "
        "answered survey imputed, flagged `survey_*_imputed`) and campaign exposures."
    ),
    "quarantined_rows": (
        "Every raw row rejected by a row rule this month, with its source, file, row number, rule id "
        "and reason; PII in the kept record is masked."
    ),
    "row_accounting": (
        "Per source: raw rows = accepted + quarantined + exact duplicates dropped, for the month, "
        "how many accepted rows (and customers) are missing from the CRM (`cleaning.orphans: keep`), "
        "and the quarantined share (a source more than nine tenths quarantined fails the month)."
    ),
    "recoded_values": (
        "Every impossible demographic value recoded this month (birth year, income, household size, "
        "gender, education, marital status, children), and every optional customer attribute that could "
        "not be read at all (`unparseable_value`; the customer is kept): column, rule id, reason, the value, "
        "how many rows held it, and what was done (set to null, then imputed and flagged, or left unknown)."
    ),
    "campaign_exposures": (
        "Every campaign exposure of the month that passed the campaign row rules (a known customer, a "
        "campaign id, an exposure in the month, a treatment or control arm, a response flag), in file "
        "order: the exposures the profiles count, and those the audit's KPIs and campaign lift test."
    ),
}


def profile_outs(engine: str) -> dict[str, dg.AssetOut]:
    """The stage's outputs; their kinds name Spark too where it cleans the line items."""
    kinds = {"polars", "parquet"} | ({"spark"} if engine == "spark" else set())
    return {name: _table_out(name, text, set(kinds)) for name, text in PROFILE_DESCRIPTIONS.items()}


def _raw_sources(
    settings: Settings,
    raw: dict[str, pl.DataFrame],
    transactions: pl.LazyFrame,
    period: str,
) -> RawSources:
    """The raw frames of the enabled sources; a disabled source's asset is read but not used. The
    line items stay where they are stored: each engine reads the month itself, polars in one frame
    or in buckets of customers by its size, Spark on its executors."""
    raw = dict(raw)
    path = storage.StorageLayout(UPath(str(settings.storage_dir))).table("raw_transactions", period)
    raw["transactions"] = LineItemFile(str(path), tuple(transactions.collect_schema().names()))
    return RawSources(
        **{source: frame if settings.sources[source].enabled else None for source, frame in raw.items()}
    )


def _accounting_table(period: str, accounting: dict[str, dict[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"period": period, "source": source, **counts} for source, counts in sorted(accounting.items())],
        schema={
            "period": pl.String,
            "source": pl.String,
            "raw_rows": pl.Int64,
            "accepted_rows": pl.Int64,
            "quarantined_rows": pl.Int64,
            "duplicates_dropped": pl.Int64,
            "orphan_rows": pl.Int64,
            "orphan_customers": pl.Int64,
        },  # fmt: skip
    ).with_columns(quarantined_share().cast(pl.Float64))


def _profiles_metadata(context: dg.AssetExecutionContext, settings: Settings, build: ProfileBuild) -> dict:
    imputed = {
        c.removesuffix("_imputed"): int(build.profiles[c].sum())
        for c in build.profiles.columns
        if c.endswith("_imputed")
    }
    return lineage(
        context,
        rows_in={source: counts["raw_rows"] for source, counts in build.accounting.items()},
        rows_out=build.profiles.height,
        row_accounting=dg.MetadataValue.json(build.accounting),
        imputed_cells=dg.MetadataValue.json(imputed),
        recoded_invalid_values=dg.MetadataValue.json(build.recoded),
        imputation_seed=settings.model.seed,
        imputation=dg.MetadataValue.json(imputation_record(settings.imputation, settings.model.seed)),
        line_item_engine=dg.MetadataValue.json(_engine_record(settings)),
    )


def _engine_record(settings: Settings) -> dict[str, str]:
    """Which engine cleaned and summed the line items, and its version (lineage)."""
    if settings.engine != "spark":
        return {"engine": "polars", "version": pl.__version__}
    import pyspark

    return {"engine": "spark", "version": pyspark.__version__, "master": settings.spark.master}


def _outputs(
    context: dg.AssetExecutionContext, settings: Settings, build: ProfileBuild, accounting: pl.DataFrame
) -> Iterator[dg.Output]:
    by_rule = build.quarantined.group_by("source", "rule_id").len().sort("source", "rule_id")
    metadata = {
        "customer_profiles": _profiles_metadata(context, settings, build),
        "quarantined_rows": {
            "dagster/row_count": build.quarantined.height,
            "quarantine_by_rule": table_metadata(by_rule),
            "row_accounting": dg.MetadataValue.json(build.accounting),
        },
        "row_accounting": {"dagster/row_count": accounting.height},
        "recoded_values": {
            "dagster/row_count": build.recoded_values.height,
            "recoded_values": dg.MetadataValue.json(build.recoded),
        },
        "campaign_exposures": {"dagster/row_count": build.exposures.height},
    }
    for name, table in _tables(build, accounting).items():
        yield dg.Output(table, output_name=name, metadata=metadata[name], data_version=data_version(table))


def _tables(build: ProfileBuild, accounting: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The stage's outputs by name (PROFILE_DESCRIPTIONS), each validated against its own contract."""
    return {"customer_profiles": build.profiles, "quarantined_rows": build.quarantined,
            "row_accounting": accounting, "recoded_values": build.recoded_values,
            "campaign_exposures": build.exposures}  # fmt: skip


def customer_profiles(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    line_items: LineItems,
    raw_customers: pl.DataFrame,
    raw_transactions: pl.LazyFrame,
    raw_engagement: pl.DataFrame,
    raw_surveys: pl.DataFrame,
    raw_campaigns: pl.DataFrame,
    raw_snapshot: pl.DataFrame,
) -> Iterator:
    """Validate every enabled source row by row and build the month's customer profiles."""
    period = context.partition_key
    start, end = periods.bounds(period)
    raw = {"customers": raw_customers, "engagement": raw_engagement, "surveys": raw_surveys,
           "campaigns": raw_campaigns, "snapshot": raw_snapshot}  # fmt: skip
    build = build_profiles(
        _raw_sources(settings, raw, raw_transactions, period),
        period,
        start,
        end,
        settings.cleaning,
        settings.model.seed,
        settings.imputation,
        line_items,
    )
    accounting = _accounting_table(period, build.accounting)
    # Every table passes its error rules, and the accounting balances, before any is written
    # (write-audit-publish).
    tables = _tables(build, accounting)
    checks = [
        result for name, table in tables.items() for result in publish_checked(context, name, table, name)
    ]
    balance = row_accounting_balances(accounting)
    if not balance.passed:
        yield balance
        raise dg.Failure(
            description=f"profiles {period} not published: row_accounting_balances: {balance.description}",
            metadata={"failing_rules": BALANCE},
        )
    checks.append(balance)
    yield from _outputs(context, settings, build, accounting)
    yield from checks


@dg.definitions
def profile_defs() -> dg.Definitions:
    settings = settings_in_scope()
    partitions_def = monthly_partitions(settings)
    return dg.Definitions(
        assets=[
            dg.multi_asset(
                outs=profile_outs(settings.engine),
                partitions_def=partitions_def,
                check_specs=[
                    *(spec for name in PROFILE_DESCRIPTIONS for spec in contract_specs(name, name)),
                    balance_spec(),
                ],
            )(customer_profiles)
        ]
    )
