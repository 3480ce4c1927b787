"""The monthly partitions and the partition mappings between stages, built from the settings."""

import dagster as dg

from segflow.config import Settings
from segflow.lib.periods import shift


def monthly_partitions(settings: Settings) -> dg.MonthlyPartitionsDefinition:
    """Partition keys "YYYY-MM" from ``partitions.start`` (and to ``partitions.end`` when set), so real
    data with an older history gets partitions back to its first month."""
    return dg.MonthlyPartitionsDefinition(
        start_date=settings.partitions_start,
        end_date=shift(settings.partitions_end, 1) if settings.partitions_end else None,
        fmt="%Y-%m",
    )


def months(start_offset: int, end_offset: int = 0) -> dg.TimeWindowPartitionMapping:
    """The months ``start_offset..end_offset`` relative to the partition (0 is the partition itself).

    Months before the first partition do not exist, and are skipped rather than failing: that is how
    the first months of a history, which have a shorter window, are handled.
    """
    return dg.TimeWindowPartitionMapping(
        start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True
    )


def trailing_window(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The features of month M read the profiles of months M-(window-1)..M."""
    return months(-(settings.features.window_months - 1))


def churn_history(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The churn model of month T fits on the features of T-2h labelled by T-h and validates on T-h
    labelled by T, so it reads the features of T-2h..T; months never built are skipped, and the model
    then records why it could not be fitted."""
    return months(-2 * settings.model.churn_horizon_months)


def clv_history(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The CLV model reads every month's profiles up to its own, within ``model.clv_history_months``:
    a customer's age and first purchase need the whole history, not a trailing window."""
    return months(-(settings.model.clv_history_months - 1))


def out_of_time_anchor(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """The fit of month T fits on the features of T and scores its candidates on the customers of
    T-h-1 (h the backtest horizon, ``report.backtest_horizon_months``): it reads the features of
    T-h-1..T, since a mapping is contiguous, ..."""
    return months(-settings.report.backtest_horizon_months - 1)


def out_of_time_outcomes(settings: Settings) -> dg.TimeWindowPartitionMapping:
    """... and on what they did in T-h..T-1: months strictly before T only (segflow.lib.models.out_of_time).
    The mapping ends at T all the same, so that the first month's input is not empty (Dagster hands
    an input with no partitions over as None); T's profiles are never read."""
    return months(-settings.report.backtest_horizon_months)


# Last month's partition of the same asset: the first partition has none, and a month that was never
# built is skipped (its successor then numbers segments afresh).
PREVIOUS_MONTH = months(-1, -1)
