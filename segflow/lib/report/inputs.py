"""What a month's report is built from: the aggregate tables and model facts (``ReportInputs``),
and the per-segment profile z-scores the heatmap draws.

Every table handed in is already aggregated per segment (or per feature, rule, campaign); customer-level
data never reaches the report. ``segment_profile_z`` is the one place that reads customer rows, to
aggregate them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from segflow.lib.models.model_types import SegmentationModel

if TYPE_CHECKING:
    from segflow.lib.models.clv import ClvModel

PROFILE_FEATURES = (
    "recency_days",
    "invoices_per_month",
    "avg_order_value",
    "monetary",
    "return_rate",
    "digital_share",
    "sessions_per_month",
    "email_open_rate",
)


@dataclass(frozen=True)
class ReportInputs:
    period: str
    kpis: pl.DataFrame  # segment_kpis output for the period
    profile_z: pl.DataFrame  # segment_id, segment_name, customers, one z column per profile feature
    sweep: list[dict]
    rfm_counts: pl.DataFrame  # rfm_segment, customers
    model: SegmentationModel
    methods: dict[str, str]
    quality: dict = field(default_factory=dict)  # accounting, quarantine_by_rule, checks, trend
    min_cell: int = 10
    kpi_history: dict[str, pl.DataFrame] = field(default_factory=dict)  # period -> kpis, earlier months
    lift: pl.DataFrame | None = None  # campaign_lift output
    migration: pl.DataFrame | None = None  # migration_matrix outputs (kinds cluster and rfm)
    drift: pl.DataFrame | None = None  # feature_drift output
    backtest: pl.DataFrame | None = None  # backtest output (assigned h months before the period)
    previous_period: str | None = None
    alpha: float = 0.05
    min_arm_size: int = 50
    profile_features: tuple[str, ...] = PROFILE_FEATURES  # the columns of profile_z
    # Feature families (rfm, behaviour, ...): available or not, from which source, used by the model.
    families: list[dict] = field(default_factory=list)
    clv: ClvModel | None = None  # the month's CLV model
    currency: str = "EUR"  # of every money figure (report.currency)
    # The trailing window's length, and how many of its months hold data (the earliest month seen
    # in it); fewer means the first months' growth is partly the window filling up.
    window_months: int = 12
    window_months_with_data: int | None = None


def segment_profile_z(
    features: pl.DataFrame, assignments: pl.DataFrame, columns: tuple[str, ...] = PROFILE_FEATURES
) -> pl.DataFrame:
    """z-score of each segment's feature means against the whole population."""
    joined = features.join(assignments.select("customer_id", "segment_id", "segment_name"), on="customer_id")
    stats = {
        f: (joined[f].cast(pl.Float64).fill_nan(None).mean(), joined[f].cast(pl.Float64).fill_nan(None).std())
        for f in columns
    }
    z = [
        ((pl.col(f).cast(pl.Float64).fill_nan(None).mean() - (mean or 0.0)) / (std if std else 1.0))
        .fill_null(0.0)
        .alias(f)
        for f, (mean, std) in stats.items()
    ]
    return (
        joined.group_by("segment_id", "segment_name").agg(pl.len().alias("customers"), *z).sort("segment_id")
    )
