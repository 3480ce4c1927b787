"""The fitted segmentation model, stored as plain parameters (JSON), never as a pickle."""

from typing import Optional

import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS, lineage, table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import AUTOMATION
from segflow.defs.resources import SegflowSettings
from segflow.lib.clustering import fit_model

# Last month's partition of the same asset: the first partition has none, and a month that was never
# built is skipped (its successor then numbers segments afresh).
PREVIOUS_MONTH = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
)


def previous_partition(loaded: object) -> object:
    """The single previous-month object, whether the IO manager hands it bare or keyed by partition."""
    if loaded is None:
        return None
    if isinstance(loaded, dict) and "centroids" not in loaded:
        values = [v for _, v in sorted(loaded.items()) if v is not None]
        return values[-1] if values else None
    return loaded


@dg.asset(
    partitions_def=monthly_partitions,
    io_manager_key="model_io_manager",
    group_name="models",
    kinds={"scikitlearn", "json"},
    owners=OWNERS,
    code_version="2",
    automation_condition=AUTOMATION,
    ins={
        "previous_model": dg.AssetIn(
            key="segmentation_model",
            partition_mapping=PREVIOUS_MONTH,
            metadata={"allow_missing_partitions": True},
        )
    },
)
def segmentation_model(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    customer_features: pl.DataFrame,
    previous_model: Optional[dict],  # noqa: UP045 - Dagster resolves typing.Optional
) -> dg.Output[dict]:
    """Four candidate families (k-means, Ward, HDBSCAN, Gaussian mixture), each swept; every candidate
    scored by sampled validity indices, the gap statistic and bootstrap stability; the winner chosen by
    the documented rule in ``segflow.lib.selection``. Segment ids are aligned to last month's model by
    Hungarian matching. Seeded; the sweep table, sampling, seed and version are recorded.
    """
    config = settings.load()
    if customer_features.height < config.model.k_max * 2:
        raise dg.Failure(
            f"segmentation_model {context.partition_key}: only {customer_features.height} customers with a "
            f"purchase in the window; at least {config.model.k_max * 2} are needed to sweep k up to "
            f"{config.model.k_max}."
        )
    previous = previous_partition(previous_model)
    model = fit_model(
        customer_features, config.model, context.partition_key, previous, feature_set=config.feature_set
    )
    sweep = pl.DataFrame(
        [
            {**{k: v for k, v in r.items() if k != "segment_jaccard"}, "params": str(r["params"])}
            for r in model["sweep"]
        ]
    )
    return dg.Output(
        model,
        metadata=lineage(
            context,
            rows_in={"customer_features": customer_features.height},
            rows_out=model["n_customers"],
            model_version=model["version"],
            family=model["family"],
            chosen_k=model["k"],
            seed=model["seed"],
            min_segment_share=model["min_segment_share"],
            stability=model["stability"],
            sweep=table_metadata(sweep),
            sampling=dg.MetadataValue.json(model["sampling"]),
            alignment=dg.MetadataValue.json(model["alignment"]),
            segment_names=dg.MetadataValue.json(model["segment_names"]),
            feature_set=config.feature_set,
            model_features=dg.MetadataValue.json([f["name"] for f in model["features"]]),
        ),
    )
