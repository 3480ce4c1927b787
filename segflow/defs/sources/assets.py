"""Raw source assets: one per source, read for the partition's month and mapped to canonical columns."""

from collections.abc import Iterator

import dagster as dg

from segflow.config_sources import SourceSettings
from segflow.defs.contract_checks import check_contract
from segflow.defs.lineage import OWNERS, lineage_output
from segflow.defs.partitions import monthly_partitions
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.defs.sources.checks import raw_check_specs, raw_contract
from segflow.lib.schema import SOURCES
from segflow.lib.sources.casting import recoded_counts
from segflow.lib.sources.ingest import SourceRead, empty_source, expects_data, read_month

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


_MAPPED = (
    " Columns are mapped to canonical names from settings (after any configured joins of other "
    "files); values that fail to cast are kept as null with a `_parse_error`, so cleaning can "
    "quarantine them with a reason."
)


def _settings_metadata(spec: SourceSettings) -> dict[str, object]:
    """What the source's settings changed about its values: history start, currency, zone, joins."""
    extra: dict[str, object] = {}
    if spec.starts:
        extra["source_starts"] = spec.starts
    if spec.currency or spec.currency_rate != 1.0:
        extra["currency"] = spec.currency or "unspecified"
        extra["currency_rate"] = float(spec.currency_rate)
    if spec.timezone:
        extra["source_timezone"] = spec.timezone
    if spec.joins:
        extra["joined_files"] = dg.MetadataValue.json(
            [{"location": j.location, "on": j.keys(), "how": j.how} for j in spec.joins]
        )
    return extra


def _read_metadata(
    read: SourceRead, spec: SourceSettings, expected: bool, unreadable: dict[str, int]
) -> dict[str, object]:
    """The materialisation's metadata beyond lineage: files read, parse errors, ignored columns."""
    frame = read.frame
    return {
        "source_files": dg.MetadataValue.json(list(read.files)),
        "source_enabled": spec.enabled,
        "rows_with_parse_errors": int(frame["_parse_error"].is_not_null().sum()),
        "unreadable_optional_values": dg.MetadataValue.json(unreadable),
        "expected_empty": spec.enabled and not expected,
        "derived_columns": dg.MetadataValue.json(list(read.derived)),
        # Not read by any mapping, so ignored; constant ones carry no information at all.
        "unmapped_columns": dg.MetadataValue.json(sorted(read.unmapped)),
        # Names only: the value of an ignored column is never recorded (it may be personal data).
        "constant_columns": dg.MetadataValue.json(
            sorted(c for c, v in read.unmapped.items() if v["constant"])
        ),
        **_settings_metadata(spec),
    }


def _warn_unreadable(
    context: dg.AssetExecutionContext, source: str, rows: int, counts: dict[str, int]
) -> None:
    """Optional attributes that could not be read are nulled and the customers kept (profiles lists
    the values in recoded_values). A column where none could be read is most likely a mapping to
    the wrong column (an age band mapped to birth_year), so it is said in the log too."""
    for column, count in counts.items():
        context.log.warning(
            f"raw_{source}: {count} of {rows} values of optional column {column!r} cannot be read "
            f"as {SOURCES[source][column]}; set to null and kept (see recoded_values)"
        )


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
        description=_DESCRIPTIONS[source] + _MAPPED,
    )
    def _raw(context: dg.AssetExecutionContext, settings: SegflowSettings) -> Iterator:
        period = context.partition_key
        spec = settings.sources[source]
        expected = expects_data(spec, period)
        if spec.enabled and expected:
            read = read_month(source, settings, period)
        else:  # disabled, or a month before the source's history starts: empty by design
            read = SourceRead(empty_source(source), ())
        frame = read.frame
        unreadable = recoded_counts(frame)
        _warn_unreadable(context, source, frame.height, unreadable)
        metadata = _read_metadata(read, spec, expected, unreadable)
        yield lineage_output(
            context, frame, rows_in={"files": frame.height}, rows_out=frame.height, **metadata
        )

        # Checked after the output is written: a raw table is the staging copy a data engineer
        # inspects when its blocking check stops the run.
        contract, note = raw_contract(source, spec, period)
        yield from check_contract(context, f"raw_{source}", frame, contract, error_note=note)

    return _raw


@dg.definitions
def raw_source_defs() -> dg.Definitions:
    partitions_def = monthly_partitions(settings_in_scope())
    return dg.Definitions(assets=[raw_source_asset(source, partitions_def) for source in SOURCES])
