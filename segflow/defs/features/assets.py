"""Customer features: RFM and behaviour over the trailing window ending at the partition's month."""


import dagster as dg
import polars as pl

from segflow.defs.contract_checks import contract_metadata, publish_gate
from segflow.defs.lineage import OWNERS, column_lineage, data_version, lineage, table_metadata
from segflow.defs.partitions import WINDOW_MONTHS, monthly_partitions, trailing_window
from segflow.defs.policies import AUTOMATION
from segflow.defs.resources import SegflowSettings
from segflow.lib import periods, rfm
from segflow.lib.behaviour import FEATURE_SOURCES, build_features


@dg.asset(
    partitions_def=monthly_partitions,
    ins={"customer_profiles": dg.AssetIn(partition_mapping=trailing_window)},
    group_name="features",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    code_version="1",
    metadata=contract_metadata("customer_features"),
    automation_condition=AUTOMATION,
)
def customer_features(
    context: dg.AssetExecutionContext, settings: SegflowSettings, customer_profiles: dict[str, pl.LazyFrame]
) -> dg.Output[pl.DataFrame]:
    """RFM (recency days, frequency, net monetary) with quintile scores and the 11 named RFM segments,
    plus behaviour (purchase rate, order value, returns, channel mix) and engagement (sessions, email
    open and click rates) over the trailing window, as of the first day after the partition's month.
    One row per customer with at least one purchase invoice in the window.
    """
    config = settings.load()
    period = context.partition_key
    history = len(customer_profiles)
    if history < config.features.min_history_months:
        raise dg.Failure(
            f"customer_features {period}: the window holds {history} month(s) of history; "
            f"features.min_history_months is {config.features.min_history_months}. Months before "
            f"{periods.shift(config.partitions_start, config.features.min_history_months - 1)} are not segmented."
        )
    window = pl.concat([customer_profiles[key] for key in sorted(customer_profiles)], how="diagonal_relaxed")
    features = build_features(
        window,
        customer_profiles[period],
        period,
        periods.as_of(period),
        frequency=config.features.frequency,
        monetary=config.features.monetary,
    )
    publish_gate(features, "customer_features", period)
    return dg.Output(
        features,
        data_version=data_version(features),
        metadata=lineage(
            context,
            rows_in={"customer_profiles": int(window.select(pl.len()).collect().item())},
            rows_out=features.height,
            window_months=WINDOW_MONTHS,
            window_partitions_read=len(customer_profiles),
            as_of=str(periods.as_of(period)),
            rfm_definitions=dg.MetadataValue.json(
                {"frequency": config.features.frequency, "monetary": config.features.monetary}
            ),
            **{"dagster/column_lineage": column_lineage("customer_profiles", FEATURE_SOURCES)},
            rfm_thresholds=table_metadata(rfm.thresholds(features)) if features.height else "no customers",
        ),
    )
