"""Raw source assets: one per source, read for the partition's month and mapped to canonical columns."""


import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS, lineage
from segflow.defs.partitions import monthly_partitions
from segflow.defs.resources import SegflowSettings
from segflow.lib import periods
from segflow.lib.ingest import empty_source, period_filter_for, read_source
from segflow.lib.schema import SOURCES

_DESCRIPTIONS = {
    "customers": "CRM customers as of the month's end: demographics, geography, channel and consent (holds PII).",
    "transactions": "Transaction line items invoiced in the month, cancellations and returns included.",
    "engagement": "Web and email engagement events in the month: sessions, page views, sends, opens, clicks.",
    "surveys": "Psychographic survey answers (Likert 1-5) given in the month.",
    "campaigns": "Campaign exposures in the month, with the A/B arm and whether the customer responded.",
}


def raw_source_asset(source: str) -> dg.AssetsDefinition:
    """Build the ``raw_<source>`` asset; the five sources differ only in their settings."""

    @dg.asset(
        name=f"raw_{source}",
        partitions_def=monthly_partitions,
        group_name="raw",
        kinds={"polars", "parquet"},
        owners=OWNERS,
        code_version="1",
        description=_DESCRIPTIONS[source]
        + " Columns are mapped to canonical names from settings; values that fail to cast are kept "
        "as null with a `_parse_error`, so cleaning can quarantine them with a reason.",
    )
    def _raw(context: dg.AssetExecutionContext, settings: SegflowSettings) -> dg.Output[pl.DataFrame]:
        config = settings.load()
        period = context.partition_key
        source_settings = config.sources[source]
        if not source_settings.enabled:
            frame, files = empty_source(source), ()
        else:
            start, end = periods.bounds(period)
            first = period == config.partitions_start
            split = period_filter_for(source, source_settings.location, start, end, is_first_partition=first)
            read = read_source(source, source_settings, config.source_location(source, period), split)
            # Files under the landing zone are recorded relative to it, so outputs do not depend on
            # where the landing zone sits (the same data gives the same bytes on every machine).
            prefix = str(config.landing_dir).rstrip("/") + "/"
            frame = read.frame.with_columns(pl.col("_source_file").str.strip_prefix(prefix))
            files = tuple(f.removeprefix(prefix) for f in read.files)
        parse_errors = frame["_parse_error"].is_not_null().sum()
        return dg.Output(
            frame,
            metadata=lineage(
                context,
                rows_in={"files": frame.height},
                rows_out=frame.height,
                source_files=dg.MetadataValue.json(list(files)),
                source_enabled=source_settings.enabled,
                rows_with_parse_errors=int(parse_errors),
            ),
        )

    return _raw


raw_assets = [raw_source_asset(source) for source in SOURCES]
