"""Gating checks on the model: a model with a too-small or unstable segment must not segment anyone.

They are the blocking checks of ``segmentation_model``, evaluated in its own step before the model is
stored (write-audit-publish): a separate check step would run after the failing model had already
replaced the published one.
"""

import dagster as dg

from segflow.defs.contract_checks import monthly_check_spec
from segflow.defs.lineage import for_people
from segflow.lib.models.clustering import gating_failures

GATES = {
    "segment_sizes_viable": "Every segment holds at least model.min_segment_share of customers.",
    "segments_stable": "Mean bootstrap Jaccard (Hennig 2007) reaches model.min_stability.",
}


def model_gate_specs() -> list[dg.AssetCheckSpec]:
    """The blocking checks of ``segmentation_model``, partitioned like it."""
    return [
        monthly_check_spec(name, asset="segmentation_model", blocking=True, description=description)
        for name, description in GATES.items()
    ]


def segment_sizes_viable(segmentation_model: dict) -> dg.AssetCheckResult:
    """Every segment holds at least the minimum share of customers."""
    failing = gating_failures(segmentation_model)["size"]
    return dg.AssetCheckResult(
        asset_key="segmentation_model",
        check_name="segment_sizes_viable",
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
        asset_key="segmentation_model",
        check_name="segments_stable",
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description="segments stable" if not failing else "; ".join(failing),
        metadata={
            "stability": for_people(segmentation_model.get("stability")),
            "segment_jaccard": dg.MetadataValue.json(segmentation_model.get("segment_jaccard", [])),
            "threshold": segmentation_model.get("min_stability_threshold"),
        },
    )
