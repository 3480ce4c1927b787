"""Raw source assets: one per source, read for the partition's month and mapped to canonical columns."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from segflow.defs.contract_checks import check_contract
from segflow.defs.lineage import OWNERS, lineage
from segflow.defs.partitions import monthly_partitions
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.defs.sources.checks import raw_check_specs, raw_contract
from segflow.lib import periods
from segflow.lib.schema import SOURCES
from segflow.lib.sources.ingest import empty_source, expects_data, period_filter_for, read_source

_DESCRIPTIONS = {
    "customers": "CRM customers as of the month's end: demographics (values or bands such as age 25-34), "
    "marital status, geography, channel and consent (holds PII).",
    "transactions": "Transaction line items invoiced in the month, cancellations and returns included.",
    "engagement": "Web and email engagement events in the month: sessions, page views, sends, opens, clicks.",
    "surveys": "Psychographic survey answers (Likert 1-5) given in the month.",
    "campaigns": "Campaign exposures in the month, with the A/B arm and whether the customer responded.",
    "snapshot": "Per-customer behaviour summarised by another system as of the month's end (recency, spend, "
    "purchases per channel, web visits, campaign responses, complaints, marital status, children); "
    "stands in for line items when there are none. Off unless configured.",
}


def raw_source_asset(source: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Build the ``raw_<source>`` asset; the five sources differ only in their settings."""

    @dg.asset(
        name=f"raw_{source}",
        partitions_def=partitions_def,
        group_name="raw",
        kinds={"polars", "parquet"},
        owners=OWNERS,
        code_version="1",
        check_specs=raw_check_specs(source),
        description=_DESCRIPTIONS[source]
        + " Columns are mapped to canonical names from settings (after any configured joins of other "
        "files); values that fail to cast are kept as null with a `_parse_error`, so cleaning can "
        "quarantine them with a reason.",
    )
    def _raw(context: dg.AssetExecutionContext, settings: SegflowSettings) -> Iterator:
        period = context.partition_key
        source_settings = settings.sources[source]
        expected = expects_data(source_settings, period)
        derived: tuple[str, ...] = ()
        unmapped: dict[str, dict] = {}
        if not source_settings.enabled or not expected:
            # Disabled, or a month before the source's history starts: empty by design.
            frame, files = empty_source(source), ()
        else:
            start, end = periods.bounds(period)
            first = period == max(settings.partitions_start, source_settings.starts or "")
            split = period_filter_for(
                source,
                source_settings.location,
                start,
                end,
                is_first_partition=first,
                time_column=source_settings.time_column,
            )
            read = read_source(
                source, source_settings, settings.source_location(source, period), split, window=(start, end)
            )
            # Files under the landing zone are recorded relative to it, so outputs do not depend on
            # where the landing zone sits (the same data gives the same bytes on every machine).
            prefix = str(settings.landing_dir).rstrip("/") + "/"
            frame = read.frame.with_columns(pl.col("_source_file").str.strip_prefix(prefix))
            files = tuple(f.removeprefix(prefix) for f in read.files)
            derived = read.derived
            unmapped = read.unmapped
        parse_errors = frame["_parse_error"].is_not_null().sum()
        # Optional attributes that could not be read: nulled, the customers kept (profiles lists the
        # values in recoded_values). A column where none could be read is most likely a mapping to
        # the wrong column (an age band mapped to birth_year), so it is said in the log too.
        unreadable = (
            frame.select(pl.col("_recoded").explode().struct.field("column"))
            .to_series()
            .drop_nulls()
            .value_counts()
        )
        unreadable_counts = {
            row[0]: int(row[1]) for row in unreadable.sort(by=unreadable.columns[0]).iter_rows()
        }
        for column, count in unreadable_counts.items():
            context.log.warning(
                f"raw_{source}: {count} of {frame.height} values of optional column {column!r} cannot be read "
                f"as {SOURCES[source][column]}; set to null and kept (see recoded_values)"
            )
        extra: dict[str, object] = {}
        if source_settings.starts:
            extra["source_starts"] = source_settings.starts
        if source_settings.currency or source_settings.currency_rate != 1.0:
            extra["currency"] = source_settings.currency or "unspecified"
            extra["currency_rate"] = float(source_settings.currency_rate)
        if source_settings.timezone:
            extra["source_timezone"] = source_settings.timezone
        if source_settings.joins:
            extra["joined_files"] = dg.MetadataValue.json(
                [{"location": j.location, "on": j.keys(), "how": j.how} for j in source_settings.joins]
            )
        yield dg.Output(
            frame,
            metadata=lineage(
                context,
                rows_in={"files": frame.height},
                rows_out=frame.height,
                source_files=dg.MetadataValue.json(list(files)),
                source_enabled=source_settings.enabled,
                rows_with_parse_errors=int(parse_errors),
                unreadable_optional_values=dg.MetadataValue.json(unreadable_counts),
                expected_empty=source_settings.enabled and not expected,
                derived_columns=dg.MetadataValue.json(list(derived)),
                # Not read by any mapping, so ignored; constant ones carry no information at all.
                unmapped_columns=dg.MetadataValue.json(sorted(unmapped)),
                # Names only: the value of an ignored column is never recorded (it may be personal data).
                constant_columns=dg.MetadataValue.json(
                    sorted(c for c, v in unmapped.items() if v["constant"])
                ),
                **extra,
            ),
        )

        # Checked after the output is written: a raw table is the staging copy a data engineer
        # inspects when its blocking check stops the run.
        contract, note = raw_contract(source, source_settings, period)
        yield from check_contract(context, f"raw_{source}", frame, contract, error_note=note)

    return _raw


@dg.definitions
def raw_source_defs() -> dg.Definitions:
    partitions_def = monthly_partitions(settings_in_scope())
    return dg.Definitions(assets=[raw_source_asset(source, partitions_def) for source in SOURCES])
