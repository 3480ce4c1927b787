"""Gating checks on the model: a model with a too-small or unstable segment must not segment anyone.

They are the blocking checks of ``segmentation_model``, evaluated in its own step before the model is
stored (write-audit-publish): a separate check step would run after the failing model had already
replaced the published one.
"""

import dagster as dg

from segflow.defs.contract_checks import monthly_check_spec
from segflow.defs.lineage import for_people
from segflow.lib.models.clustering import gating_failures
from segflow.lib.models.model_types import SegmentationModel

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


def _gate(check_name: str, failing: list[str], passed: str, metadata: dict) -> dg.AssetCheckResult:
    """One blocking gate's evaluation: ERROR severity, failing reasons joined as its description."""
    return dg.AssetCheckResult(
        asset_key="segmentation_model",
        check_name=check_name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=passed if not failing else "; ".join(failing),
        metadata=metadata,
    )


def segment_sizes_viable(segmentation_model: SegmentationModel) -> dg.AssetCheckResult:
    """Every segment holds at least the minimum share of customers."""
    return _gate(
        "segment_sizes_viable", gating_failures(segmentation_model)["size"],
        "all segments viable",
        {"segment_shares": for_people(dg.MetadataValue.json(segmentation_model.segment_shares)),
         "threshold": segmentation_model.min_segment_share_threshold},
    )  # fmt: skip


def segments_stable(segmentation_model: SegmentationModel) -> dg.AssetCheckResult:
    """Mean bootstrap Jaccard (Hennig 2007) of the chosen model reaches the stability threshold."""
    return _gate(
        "segments_stable", gating_failures(segmentation_model)["stability"],
        "segments stable",
        {"stability": for_people(segmentation_model.stability),
         "segment_jaccard": dg.MetadataValue.json(segmentation_model.segment_jaccard),
         "threshold": segmentation_model.min_stability_threshold},
    )  # fmt: skip
