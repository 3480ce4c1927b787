"""Customer features: RFM and behaviour over the trailing window ending at the partition's month."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from segflow.defs.contract_checks import contract_metadata, contract_specs, publish_checked
from segflow.defs.lineage import OWNERS, column_lineage, data_version, lineage, table_metadata
from segflow.defs.partitions import monthly_partitions, trailing_window
from segflow.defs.policies import AUTOMATION
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib import periods
from segflow.lib.features import rfm
from segflow.lib.features.behaviour import FEATURE_SOURCES, build_features
from segflow.lib.features.category_mix import category_mix
from segflow.lib.features.category_mix import lineage as category_lineage
from segflow.lib.features.snapshot import FEATURE_SOURCES as SNAPSHOT_FEATURE_SOURCES
from segflow.lib.features.snapshot import build_snapshot_features

# The contract each feature set is checked against (in the asset, and by its generated checks).
FEATURES_CONTRACT = {"transactions": "customer_features", "snapshot": "customer_features_snapshot"}


def customer_features(
    context: dg.AssetExecutionContext, settings: SegflowSettings, customer_profiles: dict[str, pl.LazyFrame]
) -> Iterator:
    """RFM (recency days, frequency, net monetary) with quintile scores and the 11 named RFM segments,
    plus behaviour (purchase rate, order value, returns, channel mix), category mix (net revenue shares
    of the top `features.category_top_n` categories and `other`; absent, with the reason in the
    `category_mix` metadata, when no line carries a category) and engagement (sessions, email
    open and click rates) over the trailing window, as of the first day after the partition's month.
    One row per customer with at least one purchase invoice in the window.

    Without transactions (a behaviour snapshot instead), the snapshot feature set: behaviour from the
    month's snapshot and demographics, no RFM; checked against `customer_features_snapshot`.
    """
    period = context.partition_key
    history = len(customer_profiles)
    if history < settings.features.min_history_months:
        raise dg.Failure(
            f"customer_features {period}: the window holds {history} month(s) of history; "
            f"features.min_history_months is {settings.features.min_history_months}. Months before "
            f"{periods.shift(settings.partitions_start, settings.features.min_history_months - 1)} are not segmented."
        )
    if settings.feature_set == "snapshot":
        yield from _snapshot_features(context, settings, customer_profiles)
        return
    window = pl.concat([customer_profiles[key] for key in sorted(customer_profiles)], how="diagonal_relaxed")
    categories = category_mix(window, settings.features.category_top_n)
    features = build_features(
        window,
        customer_profiles[period],
        period,
        periods.as_of(period),
        frequency=settings.features.frequency,
        monetary=settings.features.monetary,
        categories=categories,
    )
    checks = publish_checked(context, "customer_features", features, "customer_features")
    yield dg.Output(
        features,
        data_version=data_version(features),
        metadata=lineage(
            context,
            rows_in={"customer_profiles": int(window.select(pl.len()).collect().item())},
            rows_out=features.height,
            window_months=settings.features.window_months,
            window_partitions_read=len(customer_profiles),
            as_of=str(periods.as_of(period)),
            rfm_definitions=dg.MetadataValue.json(
                {"frequency": settings.features.frequency, "monetary": settings.features.monetary}
            ),
            category_mix=dg.MetadataValue.json(categories.record),
            **{
                "dagster/column_lineage": column_lineage(
                    "customer_profiles", {**FEATURE_SOURCES, **category_lineage(categories.columns)}
                )
            },
            rfm_thresholds=table_metadata(rfm.thresholds(features)) if features.height else "no customers",
        ),
    )
    yield from checks


def _snapshot_features(
    context: dg.AssetExecutionContext, config, customer_profiles: dict[str, pl.LazyFrame]
) -> Iterator:
    """A snapshot is cumulative, so only the month's own profiles are read (no trailing window)."""
    period = context.partition_key
    if period not in customer_profiles:
        raise dg.Failure(f"customer_features {period}: the month's customer_profiles are not built.")
    features = build_snapshot_features(customer_profiles[period], period, config.features.snapshot_months)
    checks = publish_checked(context, "customer_features", features, FEATURES_CONTRACT["snapshot"])
    yield dg.Output(
        features,
        data_version=data_version(features),
        metadata=lineage(
            context,
            rows_in={"customer_profiles": int(customer_profiles[period].select(pl.len()).collect().item())},
            rows_out=features.height,
            feature_set="snapshot",
            contract_checked=FEATURES_CONTRACT["snapshot"],
            snapshot_months=config.features.snapshot_months,
            window_partitions_read=1,
            as_of=str(periods.as_of(period)),
            rfm="not available: no transaction line items",
            **{"dagster/column_lineage": column_lineage("customer_profiles", SNAPSHOT_FEATURE_SOURCES)},
        ),
    )
    yield from checks


@dg.definitions
def feature_defs() -> dg.Definitions:
    settings = settings_in_scope()
    asset = dg.asset(
        partitions_def=monthly_partitions(settings),
        ins={"customer_profiles": dg.AssetIn(partition_mapping=trailing_window(settings))},
        group_name="features",
        kinds={"polars", "parquet"},
        owners=OWNERS,
        code_version="1",
        metadata=contract_metadata("customer_features"),
        automation_condition=AUTOMATION,
        check_specs=contract_specs("customer_features", FEATURES_CONTRACT[settings.feature_set]),
    )(customer_features)
    return dg.Definitions(assets=[asset])
