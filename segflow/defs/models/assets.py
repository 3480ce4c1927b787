"""The fitted segmentation model, stored as plain parameters (JSON), never as a pickle."""


import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS, lineage, table_metadata
from segflow.defs.partitions import monthly_partitions
from segflow.defs.policies import AUTOMATION
from segflow.defs.resources import SegflowSettings
from segflow.lib.clustering import fit_model


@dg.asset(
    partitions_def=monthly_partitions,
    io_manager_key="model_io_manager",
    group_name="models",
    kinds={"scikitlearn", "json"},
    owners=OWNERS,
    code_version="1",
    automation_condition=AUTOMATION,
)
def segmentation_model(
    context: dg.AssetExecutionContext, settings: SegflowSettings, customer_features: pl.DataFrame
) -> dg.Output[dict]:
    """k-means on log-transformed, standardised behaviour features. k is swept over a range and chosen by
    the best sampled silhouette among candidates whose smallest segment holds at least the minimum share.
    Seeded; the sweep table, seed and version are recorded.
    """
    config = settings.load()
    if customer_features.height < config.model.k_max * 2:
        raise dg.Failure(
            f"segmentation_model {context.partition_key}: only {customer_features.height} customers with a purchase "
            f"in the window; at least {config.model.k_max * 2} are needed to sweep k up to {config.model.k_max}."
        )
    model = fit_model(customer_features, config.model, context.partition_key)
    return dg.Output(
        model,
        metadata=lineage(
            context,
            rows_in={"customer_features": customer_features.height},
            rows_out=model["n_customers"],
            model_version=model["version"],
            chosen_k=model["k"],
            seed=model["seed"],
            min_segment_share=model["min_segment_share"],
            sweep=table_metadata(pl.DataFrame(model["sweep"])),
            segment_names=dg.MetadataValue.json(model["segment_names"]),
        ),
    )
