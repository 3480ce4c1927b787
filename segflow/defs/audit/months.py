"""The audit assets' shared wiring: inputs of several months, and the decorator arguments they share.

Inputs of other months (the previous month, a trend window, the backtest's assignment month) are
read through time-window partition mappings with ``allow_missing_partitions``: a month that does
not exist (before the first partition) or was never built is simply absent from the dict, and the
asset reports "no previous month" instead of failing.
"""

from typing import Any

import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS
from segflow.defs.partitions import months
from segflow.defs.policies import AUTOMATION

AUDIT = {
    "group_name": "audit",
    "owners": OWNERS,
    "automation_condition": AUTOMATION,
}


def months_in(start: int, end: int) -> dg.AssetIn:
    """An input of several months (relative offsets), missing months skipped. Every window ends at the
    current month, so it always maps to at least one partition and the IO manager gives a dict."""
    return dg.AssetIn(partition_mapping=months(start, end), metadata={"allow_missing_partitions": True})


def frames(value: Any) -> dict[str, Any]:
    """The dict a multi-month input gives, without the months that were not there."""
    if not value:
        return {}
    return {key: frame for key, frame in sorted(value.items()) if frame is not None}


def current(frames: dict[str, Any], period: str, name: str) -> Any:
    """The month's own value of a multi-month input; its absence fails the asset."""
    if period not in frames:
        raise dg.Failure(f"{name} {period} is not materialized; build the month before its audit.")
    return frames[period]


def tagged(frame: pl.DataFrame, period: str) -> pl.DataFrame:
    """The table with its month as a leading ``period`` column."""
    return frame.select(pl.lit(period).alias("period"), pl.all())
