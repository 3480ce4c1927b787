"""The stored models as typed values: the segmentation fit, the published segmentation model and the
churn model (the CLV model is ``segflow.lib.models.clv.ClvModel``).

Each is a frozen dataclass with a JSON round trip: ``to_dict`` gives exactly the JSON object the
model IO manager stores (the same keys and values as the dicts these replaced, so stored bytes and
content-hash versions are unchanged), ``from_dict`` reads it back, and ``to_json``/``from_json``
wrap both with the IO manager's formatting. A field that older code recorded only in some cases
(``unavailable_families`` when a family is missing, the churn record's ``reason`` when there is
no model) is left out of the JSON while it holds its "not recorded" value, as the key was then.
Nested records that are tables or free-form evidence (sweep rows, personas, alignment) stay plain
JSON values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


def _version(record: dict) -> str:
    """Content hash of a stored model: everything but its version."""
    payload = json.dumps({k: v for k, v in record.items() if k != "version"}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


class _Stored:
    """The JSON round trip shared by the stored models (mixed into frozen dataclasses)."""

    # field -> the value meaning "not recorded": such a field is left out of the JSON.
    _UNRECORDED: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._UNRECORDED and value == self._UNRECORDED[f.name]:
                continue
            out[f.name] = value.to_dict() if isinstance(value, _Stored) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping):
        return cls(**data)

    def to_json(self) -> str:
        """The stored text: sorted keys, one-space indent (the model IO manager's format)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def versioned(self):
        """The same model with ``version``, a content hash of everything else."""
        return dataclasses.replace(self, version=_version(self.to_dict()))  # type: ignore[type-var]


@dataclass(frozen=True, kw_only=True)
class DesignParams(_Stored):
    """The fitted feature preparation of a segmentation (``segflow.lib.models.design.fit_design``):
    per feature its transform (and one-hot levels and design columns), fill values, winsorising
    bounds, scaler and optional PCA, enough to transform any month's features without refitting."""

    features: list[dict]  # name, transform, family, columns (and levels for one-hot)
    feature_families: list[str]
    missing_feature_columns: list[str]
    dropped_constant_features: list[str]
    fill_values: dict[str, float | str]
    winsorize_quantile: float
    category_mix_weight: float | None = None  # recorded only when share columns are used
    clip_lower: list[float]
    clip_upper: list[float]
    scaling: str
    scaler_mean: list[float]
    scaler_scale: list[float]
    pca: dict | None = None  # components, mean, explained_variance_ratio, requested
    unavailable_families: dict[str, str] | None = None  # recorded only when a family is missing

    _UNRECORDED: ClassVar[dict[str, Any]] = {"category_mix_weight": None, "unavailable_families": None}

    @classmethod
    def from_dict(cls, data: Mapping) -> DesignParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_DESIGN_KEYS = frozenset(f.name for f in fields(DesignParams))


@dataclass(frozen=True, kw_only=True)
class SegmentationFit(_Stored):
    """The heavy half of a month's segmentation (``fit_segments``): the design, the winning rule
    with segments numbered by value, and the sweep it was chosen from."""

    period: str
    feature_set: str
    k: int
    design: DesignParams
    rule: dict  # the selection rule's parameters (segflow.lib.models.selection)
    segment_jaccard: list[float]
    chosen_index: int
    sampling: dict
    out_of_time: dict = field(
        default_factory=lambda: {"available": False, "reason": "fitted before the criterion"}
    )
    sweep: list[dict]

    @property
    def winner(self) -> dict:
        """The sweep row of the chosen candidate."""
        return self.sweep[self.chosen_index]

    @classmethod
    def from_dict(cls, data: Mapping) -> SegmentationFit:
        return cls(**{**data, "design": DesignParams.from_dict(data["design"])})


@dataclass(frozen=True, kw_only=True)
class SegmentationModel(_Stored):
    """A month's published segmentation: the design and rule that assign customers, the aligned
    segment ids with their names and personas, the gating figures and the selection evidence.
    Stored flat (the design's parameters beside the rest), as the model always was."""

    family: str
    params: dict
    period: str
    seed: int
    k: int
    design: DesignParams
    rule: dict | None = None  # without its centroids; None in models stored before rules existed
    centroids: list[list[float]]
    segment_names: dict[str, str]
    segment_name_basis: dict[str, list[dict]] = field(default_factory=dict)
    segment_named_since: dict[str, str] = field(default_factory=dict)
    segment_renames: list[dict] = field(default_factory=list)
    personas: dict[str, dict]
    segment_shares: list[float]
    min_segment_share: float
    min_segment_share_threshold: float
    stability: float | None = None
    segment_jaccard: list[float] = field(default_factory=list)
    ari_refits: float | None = None
    min_stability_threshold: float | None = None
    selection_rule: str | None = None
    chosen_index: int | None = None
    out_of_time: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)
    alignment: dict | None = None
    n_customers: int
    sweep: list[dict]
    settings: dict  # k_min, k_max, n_init, silhouette_sample, max_fit_rows
    feature_set: str = "transactions"  # recorded only off the default, so default versions stay put
    version: str | None = None

    _UNRECORDED: ClassVar[dict[str, Any]] = {"feature_set": "transactions"}

    @property
    def features(self) -> list[dict]:
        return self.design.features

    def to_dict(self) -> dict:
        record = super().to_dict()
        return {**{k: v for k, v in record.items() if k != "design"}, **record["design"]}

    @classmethod
    def from_dict(cls, data: Mapping) -> SegmentationModel:
        rest = {k: v for k, v in data.items() if k not in _DESIGN_KEYS}
        return cls(**rest, design=DesignParams.from_dict(data))


@dataclass(frozen=True, kw_only=True)
class LogisticParams(_Stored):
    """A fitted logistic scorer (``segflow.lib.models.churn.predict``): the design (per column its
    source, transform, fill, clip bounds, mean and scale), one coefficient per column, the
    intercept and the solver's iterations; ``features`` names the inputs where it is recorded."""

    design: list[dict]
    coefficients: list[float]
    intercept: float
    iterations: int
    features: list[str] | None = None

    _UNRECORDED: ClassVar[dict[str, Any]] = {"features": None}


@dataclass(frozen=True, kw_only=True)
class ChurnModel(_Stored):
    """A month's churn model (``fit_churn_model``), or the record of why there is none.

    With a model it holds the scoring parameters (the fitted model's, or the recency-only
    baseline's when the guard fell back to it) flat beside the fitted model, the baseline, the
    train/validation sizes, the guard and the out-of-time metrics. Without one (``available``
    False) it holds ``reason``, and whichever of the history facts were known; unrecorded
    fields are left out of the JSON."""

    available: bool
    period: str
    horizon_months: int
    reason: str | None = None
    version: str | None = None
    required_periods: dict[str, str] | None = None
    missing_periods: list[str] | None = None
    labelled_customers: dict[str, int] | None = None
    seed: int | None = None
    estimator: dict | None = None
    label_definition: str | None = None
    train: dict | None = None  # features and labels periods, customers, churners, churn rate
    validation: dict | None = None
    design: list[dict] | None = None
    coefficients: list[float] | None = None
    intercept: float | None = None
    iterations: int | None = None
    fitted_model: LogisticParams | None = None
    baseline: LogisticParams | None = None
    guard: dict | None = None  # scorer ("model", "baseline" or "withheld"), reason, min_churners
    metrics: dict | None = None
    auc_ci_method: str | None = None
    calibration: dict | None = None
    baseline_calibration: dict | None = None
    reliability: list[dict] | None = None
    baseline_reliability: list[dict] | None = None

    _UNRECORDED: ClassVar[dict[str, Any]] = {
        f: None
        for f in ("reason", "required_periods", "missing_periods", "labelled_customers", "seed", "estimator",
                  "label_definition", "train", "validation", "design", "coefficients", "intercept",
                  "iterations", "fitted_model", "baseline", "guard", "metrics", "auc_ci_method",
                  "calibration", "baseline_calibration", "reliability", "baseline_reliability")
    }  # fmt: skip

    @property
    def scorer(self) -> LogisticParams:
        """The parameters that score (``predict``)."""
        return LogisticParams(design=self.design, coefficients=self.coefficients, intercept=self.intercept,
                              iterations=self.iterations)  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping) -> ChurnModel:
        values = dict(data)
        for name in ("fitted_model", "baseline"):
            if values.get(name) is not None:
                values[name] = LogisticParams.from_dict(values[name])
        return cls(**values)
