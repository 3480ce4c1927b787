"""Jobs. Both run their steps in one process: each step of a multiprocess run pays ~4 s to import
dagster, polars, scikit-learn and GX, more than most steps compute. Parallelism comes from running
several partitions (runs) at once through the run launcher or ``segflow backfill --workers``.
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
