"""Gating checks on the model: a model with a too-small segment must not segment anyone."""


import dagster as dg

from segflow.defs.models.assets import segmentation_model
from segflow.defs.partitions import monthly_partitions


@dg.asset_check(asset=segmentation_model, blocking=True, partitions_def=monthly_partitions)
def segment_sizes_viable(segmentation_model: dict) -> dg.AssetCheckResult:
    """Every segment holds at least the minimum share of customers."""
    threshold = segmentation_model["min_segment_share_threshold"]
    shares = segmentation_model["segment_shares"]
    names = segmentation_model["segment_names"]
    failing = {f"{i}: {names[str(i)]}": share for i, share in enumerate(shares) if share < threshold}
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "all segments viable"
            if not failing
            else "; ".join(f"segment {s} holds {v:.2%}, {threshold - v:.2%} below the minimum {threshold:.0%}"
                       for s, v in failing.items())
        ),
        metadata={"segment_shares": dg.MetadataValue.json(shares), "threshold": threshold},
    )
