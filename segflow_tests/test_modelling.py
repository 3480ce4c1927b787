"""Segmentation modelling on planted synthetic data, through lib functions only (no Dagster run):
candidate families, selection, gating, stable ids across months, and safe persistence.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from segflow.config import ModelSettings
from segflow.lib.models.clustering import assign, fit_model, gating_failures
from segflow.lib.models.design import fit_design
from segflow.lib.models.families import apply
from segflow.lib.models.model_types import DesignParams, SegmentationModel
from segflow.lib.models.selection import select, sweep
from segflow_tests.synthetic_history import synthetic_profiles

MONTHS = 5
PLANTED_K = 5


def _features(root: Path, customers: int, seed: int) -> dict:
    """Feature tables of the last two months of a planted synthetic history, built without Dagster,
    and (under "evidence") the last month's out-of-time evidence: the first month's customers and
    their revenue and purchases in the three months after it."""
    from segflow.lib import periods
    from segflow.lib.features.behaviour import build_features
    from segflow.lib.models.out_of_time import build_evidence
    from segflow.synth import SynthConfig

    profiles = synthetic_profiles(root, SynthConfig(customers=customers, months=MONTHS, seed=seed))
    months = sorted(profiles)
    out = {}
    for month in [months[0], *months[-2:]]:
        window = pl.concat([profiles[m].lazy() for m in months if m <= month], how="diagonal_relaxed")
        out[month] = build_features(
            window, profiles[month].lazy(), month, periods.as_of(month), "invoices", "sum"
        )
    evidence = build_evidence(months[-1], 3, out, profiles)
    del out[months[0]]
    out["evidence"] = evidence
    out["truth"] = pl.read_parquet(root / "_ground_truth" / "segments.parquet")
    return out


@pytest.fixture(
    scope="module", params=[(2500, 1), (2500, 2), (6000, 1), (6000, 2)], ids=lambda p: f"n{p[0]}-s{p[1]}"
)
def planted(request, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    customers, seed = request.param
    return _features(tmp_path_factory.mktemp(f"planted_{customers}_{seed}"), customers, seed)


def _last(data: dict) -> tuple[str, pl.DataFrame]:
    month = max(k for k in data if k not in ("truth", "evidence"))
    return month, data[month]


def test_selected_model_recovers_planted_segments(planted) -> None:
    """With the out-of-time criterion on, as the pipeline fits every month that has an earlier one."""
    month, features = _last(planted)
    model = fit_model(features, ModelSettings(), month, evidence=planted["evidence"])
    assert model.out_of_time["available"], model.out_of_time
    chosen = model.sweep[model.chosen_index]
    assert chosen["oot_separation"] > 0.15 and chosen["oot_shortfall"] is not None
    joined = assign(features, model).join(planted["truth"], on="customer_id", how="inner")
    ari = adjusted_rand_score(joined["segment"].to_list(), joined["segment_id"].to_list())
    print(
        f"n={features.height} family={model.family} k={model.k} "
        f"stability={model.stability:.3f} ARI={ari:.3f}"
    )
    assert ari >= 0.9  # issue 5: the selected model recovers the planted segments
    assert model.k == PLANTED_K  # and chooses the planted number of segments
    assert model.stability >= 0.75 and model.min_segment_share >= 0.02
    assert not gating_failures(model)["size"] and not gating_failures(model)["stability"]
    rows = model.sweep
    assert {r["family"] for r in rows} == {"kmeans", "ward", "hdbscan", "gmm"}
    for key in (
        "k",
        "silhouette",
        "calinski_harabasz",
        "davies_bouldin",
        "min_segment_share",
        "params",
        "gap",
    ):
        assert all(key in r for r in rows)
    assert model.sampling["index_sample_rows"] <= ModelSettings().silhouette_sample


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    return _features(tmp_path_factory.mktemp("small"), 2500, 7)


@pytest.mark.parametrize("family", ["kmeans", "ward", "hdbscan", "gmm"])
def test_every_family_fits_scores_and_round_trips(small, family: str) -> None:
    _, features = _last(small)
    matrix = fit_design(features).matrix
    settings = dataclasses.replace(ModelSettings(), families=(family,), stability_resamples=2)
    rows, rules, _ = sweep(matrix, settings)
    scored = [i for i, r in enumerate(rows) if r["silhouette"] is not None]
    assert scored and all(rows[i]["family"] == family for i in scored)
    chosen = select(rows)
    assert rows[chosen]["family"] == family and rows[chosen]["finalist"]
    for i in scored:
        # Stability is measured for the finalists; any other candidate could not have won.
        if rows[i]["finalist"]:
            assert 0 <= rows[i]["stability"] <= 1
        else:
            too_small = rows[i]["min_segment_share"] < settings.min_segment_share
            assert rows[i]["stability"] is None
            assert too_small or rows[i]["combined_bound"] < rows[chosen]["combined"]
        assert rows[i]["min_segment_share"] > 0
        stored = json.loads(json.dumps(rules[i]))
        assert np.array_equal(apply(stored, matrix), apply(rules[i], matrix))
    if family == "hdbscan":
        assert all(r["noise_share"] is not None for r in rows if r["silhouette"] is not None)


@pytest.mark.parametrize("seed", range(200))
def test_finalists_choose_what_measuring_every_candidate_would(seed: int) -> None:
    """Random sweeps (close bounds, some segments too small, some unstable, sometimes nothing viable):
    measuring the finalists only picks the candidate that measuring all of them picks."""
    from segflow.lib.models.selection import _finalists

    rng = np.random.default_rng(seed)
    settings = ModelSettings()
    n = int(rng.integers(1, 12))
    truth = [
        {"family": str(rng.choice(["kmeans", "ward", "hdbscan", "gmm"])), "k": int(rng.integers(2, 9)),
         "min_segment_share": float(rng.choice([0.01, 0.05])), "validity": round(float(rng.uniform(0, 1)), 2),
         "ari_refits": float(rng.uniform(-0.1, 1)), "stability": float(rng.choice([0.5, 0.9])),
         "se": float(rng.choice([0.0, 0.01, 0.05]))}
        for _ in range(n)
    ]  # fmt: skip

    def unmeasured() -> list[dict]:
        return [
            {**t, "combined_bound": t["validity"] / 3 + 0.5, "combined": None, "viable": False} for t in truth
        ]

    def measure(row: dict) -> None:
        # A bootstrap standard error, so that near ties (selection.tie_tolerance) are drawn too.
        row.update(combined=row["validity"] / 3 + 0.5 * row["ari_refits"], ari_refits_se=row["se"])
        row["viable"] = row["min_segment_share"] >= 0.02 and row["stability"] >= settings.min_stability

    everything = unmeasured()
    for row in everything:
        measure(row)
    lazy = unmeasured()
    for i in _finalists(lazy, settings):
        measure(lazy[i])
    assert select(lazy) == select(everything)


def test_gating_blocks_too_small_and_unstable_models(small) -> None:
    from segflow.defs.models.checks import segment_sizes_viable, segments_stable

    month, features = _last(small)
    forced = dataclasses.replace(
        ModelSettings(), families=("kmeans",), k_min=6, k_max=8, min_segment_share=0.3, min_stability=0.999
    )
    model = fit_model(features, forced, month)
    sizes = segment_sizes_viable(model)
    assert not sizes.passed
    assert "below the minimum 30%" in sizes.description and "segment " in sizes.description
    stable = segments_stable(model)
    assert not stable.passed
    assert "below the minimum 1.00" in stable.description and "Jaccard" in stable.description
    passing = fit_model(features, ModelSettings(), month)
    assert segment_sizes_viable(passing).passed and segments_stable(passing).passed


def test_segment_ids_stable_across_unchanged_months(small) -> None:
    months = sorted(k for k in small if k not in ("truth", "evidence"))
    settings = ModelSettings()
    first = fit_model(small[months[0]], settings, months[0])
    second = fit_model(small[months[1]], settings, months[1], previous=first)
    before = assign(small[months[0]], first)
    after = assign(small[months[1]], second)
    both = before.join(after, on="customer_id", how="inner", suffix="_after")
    kept = float((both["segment_id"] == both["segment_id_after"]).mean())
    print(f"same id across months: {kept:.3f}, alignment {second.alignment['matched']}")
    assert second.alignment["previous_period"] == months[0]
    assert kept >= 0.95  # issue 5: at least 95% of customers keep their id


def test_stored_model_reproduces_assignments_exactly(small) -> None:
    month, features = _last(small)
    model = fit_model(features, ModelSettings(), month)
    reloaded = SegmentationModel.from_json(model.to_json())
    assert reloaded.version == model.version
    assert assign(features, reloaded).equals(assign(features, model))
    assert fit_model(features, ModelSettings(), month) == model  # deterministic given the seed


def test_typed_models_round_trip_through_their_stored_json(small) -> None:
    """Issue 15: the fit and the model are typed values whose JSON is the stored record: the same
    keys the dicts had (optional ones only when recorded), and from_json(to_json(m)) == m."""
    from segflow.lib.models.clustering import fit_segments, publish_segments
    from segflow.lib.models.model_types import SegmentationFit

    month, features = _last(small)
    fit = fit_segments(features, ModelSettings(), month)
    model = publish_segments(fit, features, ModelSettings(), None)
    for value, kind in ((fit, SegmentationFit), (model, SegmentationModel)):
        stored = kind.from_json(value.to_json())
        assert stored == value and kind.from_json(stored.to_json()) == stored
        assert stored.to_json() == json.dumps(value.to_dict(), sort_keys=True, indent=1)
    assert sorted(json.loads(fit.to_json())) == [
        "chosen_index", "design", "feature_set", "k", "out_of_time", "period", "rule", "sampling",
        "segment_jaccard", "sweep",
    ]  # fmt: skip
    assert sorted(json.loads(model.to_json())) == [
        "alignment", "ari_refits", "centroids", "chosen_index", "clip_lower", "clip_upper",
        "dropped_constant_features", "family", "feature_families", "features", "fill_values", "k",
        "min_segment_share", "min_segment_share_threshold", "min_stability_threshold",
        "missing_feature_columns", "n_customers", "out_of_time", "params", "pca", "period", "personas",
        "rule", "sampling", "scaler_mean", "scaler_scale", "scaling", "seed", "segment_jaccard",
        "segment_name_basis", "segment_named_since", "segment_names", "segment_renames",
        "segment_shares", "selection_rule", "settings", "stability", "sweep", "version",
        "winsorize_quantile",
    ]  # fmt: skip
    # The version is the content hash of the record without it, as it always was.
    assert dataclasses.replace(model, version=None).versioned() == model


def test_feature_preparation_is_declared_and_recorded(small) -> None:
    from segflow.lib.models.design import FEATURE_FAMILIES, transform

    month, features = _last(small)
    default = fit_design(features)
    assert default.params.feature_families == list(ModelSettings().feature_families)
    assert {f["family"] for f in default.params.features} == set(ModelSettings().feature_families)
    transforms = {f["name"]: f["transform"] for f in default.params.features}
    assert transforms["avg_order_value"] == "log1p" and transforms["invoices_per_month"] == "log1p"
    assert transforms["web_share"] == "identity" and "digital_share" not in transforms
    assert default.params.scaling == "standard" and default.params.pca is None
    assert default.params.winsorize_quantile == 0.01
    assert np.allclose(default.matrix.mean(axis=0), 0.0, atol=1e-9)

    every = dataclasses.replace(
        ModelSettings(), feature_families=tuple(FEATURE_FAMILIES), scaling="robust", pca_components=0.9
    )
    design = fit_design(features, every)
    onehot = [f for f in design.params.features if f["transform"] == "onehot"]
    assert {f["name"] for f in onehot} == {"gender", "education", "region"}
    assert all(f["columns"] and all(c.startswith(f["name"] + "=") for c in f["columns"]) for f in onehot)
    assert {"survey_price_sensitivity", "income", "birth_year"} <= {
        f["name"] for f in design.params.features
    }
    assert design.params.scaling == "robust"
    pca = design.params.pca
    assert sum(pca["explained_variance_ratio"]) >= 0.9 and design.matrix.shape[1] == len(pca["components"])
    assert design.matrix.shape[1] < len(design.params.scaler_mean)
    stored = DesignParams.from_json(design.params.to_json())
    assert np.allclose(transform(features, stored), design.matrix)  # a stored design replays exactly

    model = fit_model(features, dataclasses.replace(every, families=("kmeans",), k_max=6), month)
    assert model.design.pca == pca and model.design.scaling == "robust"
    months = sorted(k for k in small if k not in ("truth", "evidence"))
    quick = dataclasses.replace(ModelSettings(), pca_components=0.9, families=("kmeans",), k_min=5, k_max=5)
    aligned = fit_model(features, quick, month, fit_model(small[months[0]], quick, months[0]))
    assert aligned.design.pca and len(aligned.alignment["matched"]) == 5  # PCA centroids map back to columns
    with pytest.raises(ValueError, match="unknown feature families"):
        fit_design(features, dataclasses.replace(ModelSettings(), feature_families=("rfm", "basket")))
    with pytest.raises(ValueError, match="scaling"):
        fit_design(features, dataclasses.replace(ModelSettings(), scaling="minmax"))


def test_personas_describe_segments_without_pii(small) -> None:
    month, features = _last(small)
    model = fit_model(features, ModelSettings(), month)
    personas = model.personas
    assert sorted(personas) == sorted(model.segment_names)
    for sid, card in personas.items():
        assert card["name"] == model.segment_names[sid] and card["description"]
        assert len(card["top_features"]) == 5
        ds = [abs(e["cohens_d"]) for e in card["top_features"]]
        assert ds == sorted(ds, reverse=True) and ds[0] > 0.5  # segments are distinguished, strongly
        assert {"median_age", "median_income", "gender", "education"} <= set(card["demographics"])
        assert card["geography"]["country"] and card["purchase_channel"] in ("web", "store", "app")
        assert card["preferred_channel"] in ("web", "store", "app")
        assert card["dominant_rfm_segment"] and 0 < card["dominant_rfm_share"] <= 1
        shares = card["category_shares"]
        assert card["preferred_category"] == max(shares, key=shares.get) and "other" not in shares
        assert f"spends most on {card['preferred_category']}" in card["description"]
        assert all(abs(t["cohens_d"]) >= 0.3 for t in card["psychographic_traits"])
    assert any(card["psychographic_traits"] for card in personas.values())
    text = json.dumps(personas)
    assert not any(cid in text for cid in features["customer_id"].to_list()[:500])  # no customer ids
    assert "@" not in text  # no e-mail addresses


WITH_CATEGORIES = ("rfm", "behaviour", "engagement", "channel_mix", "category_mix")


def _shares(features: pl.DataFrame) -> list[str]:
    return [c for c in features.columns if c.startswith("category_share_")]


def test_category_mix_family_recovers_planted_segments(planted) -> None:
    month, features = _last(planted)
    shares = _shares(features)
    assert shares[-1] == "category_share_other" and len(shares) <= 8 + 1  # features.category_top_n
    sums = features.select(shares).drop_nulls().select(pl.sum_horizontal(shares)).to_series()
    assert sums.len() > 0.99 * features.height and ((sums - 1).abs() < 1e-9).all()
    settings = dataclasses.replace(ModelSettings(), feature_families=WITH_CATEGORIES)
    model = fit_model(features, settings, month)
    joined = assign(features, model).join(planted["truth"], on="customer_id", how="inner")
    ari = adjusted_rand_score(joined["segment"].to_list(), joined["segment_id"].to_list())
    print(f"category_mix: n={features.height} family={model.family} k={model.k} ARI={ari:.3f}")
    assert ari >= 0.9 and model.k == PLANTED_K  # the planted segments differ in category weights too
    assert not gating_failures(model)["size"] and not gating_failures(model)["stability"]
    used = [f for f in model.features if f["family"] == "category_mix"]
    assert used and all(f["transform"] == "share" for f in used) and model.design.category_mix_weight == 1.0
    assert {f["name"] for f in used} | set(model.design.dropped_constant_features) == set(shares)
    from segflow.lib.models.design import transform

    columns = [c for f in model.features for c in f["columns"]]
    family = [columns.index(f["name"]) for f in used]
    assert len({model.design.scaler_scale[i] for i in family}) == 1  # one scale for the whole family
    # ... chosen so that the family weighs as one standardised feature, however many columns it has
    assert transform(features, model.design)[:, family].var(axis=0).sum() == pytest.approx(1.0)


def _fold_into_other(features: pl.DataFrame, keep: int) -> pl.DataFrame:
    """The shares a smaller features.category_top_n gives: the lower-ranked categories join ``other``."""
    named = _shares(features)[:-1]
    folded = named[keep:]
    return features.with_columns(
        pl.sum_horizontal(pl.col(folded + ["category_share_other"])).alias("category_share_other")
    ).drop(folded)


def test_category_mix_alignment_and_unavailable_family(small) -> None:
    months = sorted(k for k in small if k not in ("truth", "evidence"))
    settings = dataclasses.replace(ModelSettings(), feature_families=WITH_CATEGORIES)
    earlier = _fold_into_other(small[months[0]], keep=6)  # more categories than the top N: other varies
    later = _fold_into_other(small[months[1]], keep=5)  # and the next month's top N differs
    first = fit_model(earlier, settings, months[0])
    second = fit_model(later, settings, months[1], previous=first)
    alignment = second.alignment
    assert alignment["incomparable_features"] == ["category_share_other"]
    unchanged = fit_model(earlier, settings, months[1], previous=first).alignment
    assert "incomparable_features" not in unchanged and "category_share_other" in unchanged["common_features"]
    assert "category_share_other" not in alignment["common_features"]
    assert set(_shares(later)[:-1]) <= set(alignment["common_features"])
    both = assign(earlier, first).join(assign(later, second), on="customer_id", suffix="_after")
    kept = float((both["segment_id"] == both["segment_id_after"]).mean())
    print(f"category_mix, category set changed: same id across months {kept:.3f}")
    assert len(alignment["matched"]) == second.k == first.k and kept >= 0.95

    without = small[months[1]].drop(_shares(small[months[1]]))  # as when no category is mapped
    design = fit_design(without, settings)
    assert "customer_features has no category_share_*" in design.params.unavailable_families["category_mix"]
    default = fit_design(without)
    assert default.params.unavailable_families is None
    assert np.array_equal(design.matrix, default.matrix)  # the rest of the design is untouched
    with pytest.raises(ValueError, match="category_mix"):
        fit_design(without, dataclasses.replace(settings, feature_families=("category_mix",)))
