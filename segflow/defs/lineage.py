"""Lineage metadata recorded on every materialisation."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from segflow import __version__
from segflow.lib.display import rounded

OWNERS = ["team:segmentation"]


def for_people(value: Any) -> Any:
    """``value`` rounded for display (:func:`segflow.lib.display.rounded`), also inside Dagster's
    float, JSON and table metadata values."""
    if isinstance(value, dg.FloatMetadataValue):
        return dg.MetadataValue.float(rounded(value.value)) if value.value is not None else value
    if isinstance(value, dg.JsonMetadataValue):
        return dg.MetadataValue.json(rounded(value.data))
    if isinstance(value, dg.TableMetadataValue):
        records = [dg.TableRecord(rounded(dict(r.data))) for r in value.records]
        return dg.MetadataValue.table(records=records, schema=value.schema)
    return rounded(value)


def lineage(
    context: dg.AssetExecutionContext, rows_in: Mapping[str, int], rows_out: int, **extra: Any
) -> dict[str, Any]:
    """Standard lineage metadata: upstream partitions read, rows in and out, code version; the
    ``extra`` values are rounded for display (:func:`for_people`)."""
    upstream = {}
    for input_name in context.op_execution_context.op_def.ins:
        if context.assets_def.keys_by_input_name.get(input_name) is None:
            continue
        try:
            upstream[input_name] = sorted(context.asset_partition_keys_for_input(input_name))
        except Exception:  # noqa: BLE001 - unpartitioned inputs have no partition keys
            upstream[input_name] = []
    return {
        "upstream_partitions": dg.MetadataValue.json(upstream),
        "rows_in": dg.MetadataValue.json(dict(rows_in)),
        "dagster/row_count": rows_out,
        "segflow_version": __version__,
        **{key: for_people(value) for key, value in extra.items()},
    }


def lineage_output(
    context: dg.AssetExecutionContext, value: Any, rows_in: Mapping[str, int], rows_out: int, **extra: Any
) -> dg.Output:
    """``value`` as the asset's output, with the standard :func:`lineage` metadata and ``extra``."""
    return dg.Output(value, metadata=lineage(context, rows_in=rows_in, rows_out=rows_out, **extra))


def table_metadata(frame: pl.DataFrame) -> dg.MetadataValue:
    """A small polars frame as a Dagster table, for display in the UI."""
    records = [dg.TableRecord({k: (for_people(v) if isinstance(v, int | float | str | bool) or v is None else str(rounded(v)))
                               for k, v in row.items()}) for row in frame.iter_rows(named=True)]  # fmt: skip
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )
    return dg.MetadataValue.table(records=records, schema=schema)


def data_version(frame: pl.DataFrame) -> dg.DataVersion:
    """A content hash of a table, so the UI marks downstream assets stale only when data changed."""
    # Sum of row hashes modulo 2**64: order-independent and cheap (one pass, no serialisation).
    digest = int(frame.hash_rows(seed=0).to_numpy().sum(dtype="uint64")) if frame.height else 0
    return dg.DataVersion(f"{frame.height}-{digest:016x}")


def column_lineage(upstream: str, derived: dict[str, tuple[str, ...]]) -> dg.TableColumnLineage:
    """``dagster/column_lineage``: each output column and the upstream columns it is computed from."""
    key = dg.AssetKey(upstream)
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=key, column_name=source) for source in sources]
            for column, sources in derived.items()
        }
    )
