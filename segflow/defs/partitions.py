"""The monthly partitions and the partition mappings between stages."""

import dagster as dg

from segflow.config import get_settings
from segflow.lib.periods import shift

_settings = get_settings()

# Partition keys are "YYYY-MM"; the start comes from settings, so real data with an older history
# gets partitions back to its first month.
monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=_settings.partitions_start,
    end_date=shift(_settings.partitions_end, 1) if _settings.partitions_end else None,
    fmt="%Y-%m",
)

WINDOW_MONTHS = _settings.features.window_months

# The features of month M read the profiles of months M-11..M. Months before the first partition
# simply do not exist, which is how the first year is handled.
trailing_window = dg.TimeWindowPartitionMapping(
    start_offset=-(WINDOW_MONTHS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
)

CHURN_HORIZON = _settings.model.churn_horizon_months

# The churn model of month T fits on the features of T-2h labelled by T-h and validates on T-h
# labelled by T, so it reads the features of T-2h..T. Months before the first partition do not
# exist, and months never built are skipped: the model then records why it could not be fitted.
churn_history = dg.TimeWindowPartitionMapping(
    start_offset=-2 * CHURN_HORIZON, end_offset=0, allow_nonexistent_upstream_partitions=True
)
