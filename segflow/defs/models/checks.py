"""Gating checks on the model: a model with a too-small or unstable segment must not segment anyone."""

import dagster as dg

from segflow.defs.lineage import for_people
from segflow.defs.partitions import monthly_partitions
from segflow.defs.scope import settings_in_scope
from segflow.lib.clustering import gating_failures


def segment_sizes_viable(segmentation_model: dict) -> dg.AssetCheckResult:
    """Every segment holds at least the minimum share of customers."""
    failing = gating_failures(segmentation_model)["size"]
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description="all segments viable" if not failing else "; ".join(failing),
        metadata={
            "segment_shares": for_people(dg.MetadataValue.json(segmentation_model["segment_shares"])),
            "threshold": segmentation_model["min_segment_share_threshold"],
        },
    )


def segments_stable(segmentation_model: dict) -> dg.AssetCheckResult:
    """Mean bootstrap Jaccard (Hennig 2007) of the chosen model reaches the stability threshold."""
    failing = gating_failures(segmentation_model)["stability"]
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description="segments stable" if not failing else "; ".join(failing),
        metadata={
            "stability": for_people(segmentation_model.get("stability")),
            "segment_jaccard": dg.MetadataValue.json(segmentation_model.get("segment_jaccard", [])),
            "threshold": segmentation_model.get("min_stability_threshold"),
        },
    )


@dg.definitions
def model_checks() -> dg.Definitions:
    gate = dg.asset_check(
        asset="segmentation_model", blocking=True, partitions_def=monthly_partitions(settings_in_scope())
    )
    return dg.Definitions(asset_checks=[gate(segment_sizes_viable), gate(segments_stable)])
