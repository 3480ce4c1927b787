"""Jobs. Each runs its steps in one process: each step of a multiprocess run pays ~4 s to import
dagster, polars, scikit-learn and GX, more than most steps compute. Parallelism comes from running
several partitions (runs) at once through the run queue or ``segflow backfill --workers``.
"""

import dagster as dg

segmentation_job = dg.define_asset_job(
    name="segmentation_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="The whole monthly flow for one partition: sources, profiles, features, model, segments, audit.",
)

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups("raw", "profiles"),
    executor_def=dg.in_process_executor,
    description="Sources and profiles only: what later months' trailing windows need.",
)

modelling_job = dg.define_asset_job(
    name="modelling_job",
    selection=dg.AssetSelection.groups("features", "models", "segments", "audit"),
    executor_def=dg.in_process_executor,
    description="Features to report for one month, reading profiles already built (the backfill's second phase).",
)

# modelling_job in two halves, for backfills with several workers: the fits of many months run at
# once, and only the light chain that aligns each month to the one before runs in month order.
fit_job = dg.define_asset_job(
    name="fit_job",
    selection=dg.AssetSelection.assets("customer_features", "segmentation_fit"),
    executor_def=dg.in_process_executor,
    description="Features and the model sweep for one month: independent of every other month.",
)

publish_job = dg.define_asset_job(
    name="publish_job",
    selection=dg.AssetSelection.groups("features", "models", "segments", "audit")
    - dg.AssetSelection.assets("customer_features", "segmentation_fit"),
    executor_def=dg.in_process_executor,
    description="Churn model, aligned segmentation, assignments and audits for one month, once its fit "
    "and last month's model exist: the chain of a parallel backfill.",
)
