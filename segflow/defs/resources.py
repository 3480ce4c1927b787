"""Resources: the settings value, and the storage IO managers for tables and models.

segflow ships its own small Parquet IO manager instead of dagster-polars, because
dagster-polars 0.27 breaks on polars 2 and cannot write atomically. It is a ``UPathIOManager``,
so local paths and object-store URIs work alike.
"""

import json
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

from segflow.config import Settings
from segflow.lib import storage
from segflow.lib.profiles.line_items import LineItemEngine, PolarsLineItems

# Assets take the settings as ``settings: SegflowSettings``: the value ``build_defs`` was given,
# parsed once, so an asset and the checks on it always see the same settings.
SegflowSettings = dg.ResourceParam[Settings]
# The engine that cleans and sums the line items (segflow.lib.profiles.line_items).
LineItems = dg.ResourceParam[LineItemEngine]


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def _publish(path: UPath, write: typing.Callable[[Path], None]) -> None:
    """Write through a temporary file so that readers never see a partial object."""
    if _is_local(path):
        storage.atomic_write(Path(path.path), write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        write(local)
        path.fs.put_file(str(local), path.path)


def _element_type(context: dg.InputContext) -> Any:
    typing_type = context.dagster_type.typing_type
    if typing.get_origin(typing_type) is dict:
        return typing.get_args(typing_type)[1]
    return typing_type


class PolarsParquetIOManager(dg.UPathIOManager):
    """Stores ``pl.DataFrame`` outputs as one Parquet file per partition.

    Inputs annotated ``pl.LazyFrame`` are scanned lazily, and inputs annotated
    ``dict[str, ...]`` always receive a dict keyed by partition, even for a one-month window.
    """

    extension = storage.StorageLayout.TABLE_SUFFIX

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj)}"
            )
        _publish(path, lambda tmp: storage.write_parquet_in_place(obj, tmp))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame | pl.LazyFrame:
        if _element_type(context) is pl.LazyFrame:
            # A scan is lazy and would only fail at collect; raise now, so that a missing month of an
            # input with ``allow_missing_partitions`` is skipped like an eager read's.
            if not path.exists():
                raise FileNotFoundError(str(path))
            return pl.scan_parquet(str(path))
        return pl.read_parquet(str(path))

    def load_partitions(self, context: dg.InputContext) -> Any:
        loaded = super().load_partitions(context)
        wants_dict = typing.get_origin(context.dagster_type.typing_type) is dict
        if wants_dict and len(context.asset_partition_keys) == 1:
            return {context.asset_partition_keys[0]: loaded}
        return loaded


def _stored_type(context: dg.InputContext) -> Any:
    """The model class an input is annotated with (through ``Optional`` and ``dict[str, ...]``),
    or None for a plain dict."""
    typing_type = _element_type(context)
    if typing.get_origin(typing_type) in (typing.Union, types.UnionType):
        typing_type = next(t for t in typing.get_args(typing_type) if t is not type(None))
    return typing_type if hasattr(typing_type, "from_dict") else None


class JsonIOManager(dg.UPathIOManager):
    """Stores models (typed values with ``to_dict``/``from_dict``, or plain dicts) as JSON, never
    pickles; an input annotated with a model class is read back as that class."""

    extension = storage.StorageLayout.MODEL_SUFFIX

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        record = obj.to_dict() if hasattr(obj, "to_dict") else obj
        text = json.dumps(record, sort_keys=True, indent=1)
        _publish(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        record = json.loads(path.read_text(encoding="utf-8"))
        model_type = _stored_type(context)
        return model_type.from_dict(record) if model_type is not None else record


SETTINGS_TAG = "segflow/settings"  # segflow.fanout tags a launched backfill (and so its runs) with it


def settings_resource(settings: Settings) -> dg.ResourceDefinition:
    """The settings value, refused to a run tagged with other settings' fingerprint.

    ``segflow backfill --launch`` plans in its own process, and the daemon's runs build the code
    location from their own environment (``$SEGFLOW_CONFIG``). Were the two to differ, the runs would
    build other months, or write to another storage, than the plan says; so they stop before any
    step, naming both settings.
    """

    def checked(context: dg.InitResourceContext) -> Settings:
        run = context.run
        planned = run.tags.get(SETTINGS_TAG) if run is not None else None
        if planned is not None and planned != settings.fingerprint:
            where = settings.config_file or "the built-in demo settings"
            raise dg.Failure(
                f"this run was planned with other settings (fingerprint {planned}) than its code "
                f"location serves ({settings.fingerprint}, from {where}): give dagster-daemon the same "
                "SEGFLOW_CONFIG and SEGFLOW_HOME as the `segflow backfill --launch` that launched it"
            )
        return settings

    return dg.ResourceDefinition(resource_fn=checked, description="segflow's settings, read once")


def build_resources(settings: Settings) -> dict[str, Any]:
    # Dagster's UPathIOManager stores a month at <base>/<asset>/<YYYY-MM><extension>: the layout's
    # ``table`` and ``model`` paths (segflow_tests/test_storage_layout.py holds them to it).
    layout = storage.StorageLayout(UPath(str(settings.storage_dir)))
    return {
        "settings": settings_resource(settings),
        "io_manager": PolarsParquetIOManager(base_path=layout.root),
        "model_io_manager": JsonIOManager(base_path=layout.root),
        **line_item_resources(settings),
    }


def line_item_resources(settings: Settings) -> dict[str, Any]:
    """``line_items``: polars in process, or (``engine: spark``) Spark through dagster-pyspark's
    lazy resource, so that a run whose steps never touch line items never starts a JVM."""
    if settings.engine != "spark":
        polars = settings.polars
        return {
            "line_items": dg.ResourceDefinition.hardcoded_resource(
                PolarsLineItems(polars),
                f"polars, in process; in buckets of {polars.bucket_lines} lines from {polars.in_memory_below}",
            )
        }
    from dagster_pyspark import LazyPySparkResource

    from segflow.lib.spark.line_items import SparkLineItems
    from segflow.lib.spark.session import require_java, spark_conf

    def spark_line_items(context: dg.InitResourceContext) -> SparkLineItems:
        require_java()
        return SparkLineItems(lambda: context.resources.pyspark.spark_session)

    return {
        "pyspark": LazyPySparkResource(spark_config=spark_conf(settings.spark)),
        "line_items": dg.ResourceDefinition(
            resource_fn=spark_line_items,
            required_resource_keys={"pyspark"},
            description=f"Spark at {settings.spark.master}, through dagster-pyspark",
        ),
    }
