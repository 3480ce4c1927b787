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

# modelling_job in three parts, for backfills with several workers. The heavy fits of many months
# run at once; the features before them run in month order, because their volume check compares
# each month with the one before, and so does the light chain after them, which aligns each month's
# segment ids to the month before's.
features_job = dg.define_asset_job(
    name="features_job",
    selection=dg.AssetSelection.assets("customer_features"),
    executor_def=dg.in_process_executor,
    description="The month's features over the trailing window, once last month's are built.",
)

fit_job = dg.define_asset_job(
    name="fit_job",
    selection=dg.AssetSelection.assets("segmentation_fit"),
    executor_def=dg.in_process_executor,
    description="The model sweep for one month: independent of every other month.",
)

publish_job = dg.define_asset_job(
    name="publish_job",
    selection=dg.AssetSelection.groups("models", "segments", "audit")
    - dg.AssetSelection.assets("segmentation_fit"),
    executor_def=dg.in_process_executor,
    description="Churn model, aligned segmentation, assignments and audits for one month, once its fit "
    "and last month's model exist: the chain of a parallel backfill.",
)
