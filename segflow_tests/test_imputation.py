"""Imputation of demographics and survey answers: the configured model, the flags, the Likert
scale, determinism, the rate per column, and which answer the features take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from segflow.config import ConfigError, ImputationSettings, load_settings
from segflow.lib.features.behaviour import behaviour_features
from segflow.lib.profiles.imputation import (
    NUMERIC,
    SURVEYS,
    imputation_rates,
    imputation_record,
    impute_demographics,
    impute_surveys,
    imputed_flag,
)

ITERATIVE = ImputationSettings()
KNN = ImputationSettings(method="knn", n_neighbors=5)


# ---------------------------------------------------------------------------------- config


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_imputation_method_is_read_from_config(tmp_path: Path) -> None:
    assert load_settings().imputation == ITERATIVE
    settings = load_settings(_config(tmp_path, "imputation: {method: knn, n_neighbors: 7, surveys: none}\n"))
    assert settings.imputation == ImputationSettings(method="knn", n_neighbors=7, surveys="none")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{method: mice}", r"imputation: method: 'mice' is not one of \['iterative', 'knn'\]"),
        ("{method: knn, n_neighbors: 0}", r"imputation: n_neighbors: 0 must be a whole number"),
        ("{n_neighbors: 2.5}", r"imputation: n_neighbors: 2.5 must be a whole number"),
        ("{surveys: all}", r"imputation: surveys: 'all' is not one of \['partial', 'none'\]"),
        ("{k: 3}", r"c.yaml: imputation: unknown key\(s\) \['k'\]"),
    ],
)
def test_bad_imputation_settings_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_config(tmp_path, f"imputation: {text}\n"))


def test_imputation_record_names_method_parameters_and_seed() -> None:
    assert imputation_record(ITERATIVE, 7)["params"] == {
        "estimator": "BayesianRidge",
        "max_iter": 10,
        "sample_posterior": False,
    }
    assert imputation_record(ITERATIVE, 7)["fit_sample"] == 50_000
    assert imputation_record(ITERATIVE, 7)["categorical"] == {
        "model": "HistGradientBoostingClassifier",
        "max_iter": 10,
        "fit_sample": 50_000,
    }
    record = imputation_record(KNN, 7)
    assert record["method"] == "knn" and record["seed"] == 7 and record["params"]["n_neighbors"] == 5
    assert record["fit_sample"] == 5_000  # KNN compares each row with every fitted row: fewer of them


# ---------------------------------------------------------------------------------- demographics


def _customers(
    n: int = 600, seed: int = 0, holed: tuple[str, ...] = (*NUMERIC, "gender", "education")
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Complete demographics where household size follows birth year and income is noise on a
    large scale, and the same frame with a fifth of each ``holed`` column missing."""
    rng = np.random.default_rng(seed)
    birth = rng.integers(1940, 2005, n)
    truth = pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "birth_year": pl.Series(birth, dtype=pl.Int32),
            "income": rng.uniform(20_000, 200_000, n),
            "household_size": pl.Series(1 + (birth - 1940) // 13, dtype=pl.Int32),
            "gender": rng.choice(["F", "M", "X"], n),
            "education": np.where(birth < 1970, "basic", "master"),
            "region": rng.choice(["north", "south"], n),
        }
    )
    holes = {c: rng.random(n) < 0.2 for c in holed}
    missing = truth.with_columns(
        [pl.when(pl.Series(h)).then(None).otherwise(pl.col(c)).alias(c) for c, h in holes.items()]
    )
    return truth, missing


@pytest.mark.parametrize("settings", [ITERATIVE, KNN], ids=["iterative", "knn"])
def test_flags_are_true_exactly_where_cells_were_filled(settings: ImputationSettings) -> None:
    _, missing = _customers()
    filled = impute_demographics(missing, seed=3, settings=settings)
    for column in (*NUMERIC, "gender", "education"):
        was_null = missing[column].is_null()
        assert filled[column].null_count() == 0
        assert filled[imputed_flag(column)].equals(was_null.alias(imputed_flag(column)))
        kept = ~was_null
        assert filled.filter(kept)[column].equals(missing.filter(kept)[column])  # observed cells untouched
        assert filled.schema[column] == missing.schema[column]


def test_knn_differs_from_iterative_and_both_are_deterministic() -> None:
    _, missing = _customers()
    iterative = impute_demographics(missing, seed=3, settings=ITERATIVE)
    knn = impute_demographics(missing, seed=3, settings=KNN)
    assert impute_demographics(missing, seed=3, settings=ITERATIVE).equals(iterative)
    assert impute_demographics(missing, seed=3, settings=KNN).equals(knn)
    assert impute_demographics(missing, seed=3).equals(iterative)  # the default is iterative
    holes = missing["income"].is_null()
    assert (iterative.filter(holes)["income"] != knn.filter(holes)["income"]).mean() > 0.9


def test_knn_scales_inputs_so_income_does_not_choose_the_neighbours() -> None:
    """Household size follows birth year; income is noise thousands of times larger. On unscaled inputs the
    nearest neighbours would be the nearest incomes, and the estimate no better than the mean."""
    truth, missing = _customers(holed=("household_size",))
    filled = impute_demographics(missing, seed=3, settings=KNN)
    holes = missing["household_size"].is_null().to_numpy()
    actual = truth["household_size"].to_numpy()[holes].astype(float)
    knn_error = np.abs(filled["household_size"].to_numpy()[holes] - actual).mean()
    mean_error = np.abs(missing["household_size"].mean() - actual).mean()
    assert knn_error < 0.5 * mean_error, (knn_error, mean_error)


# ---------------------------------------------------------------------------------- surveys


def _answers(n: int = 400, seed: int = 1) -> tuple[pl.DataFrame, np.ndarray]:
    """Each respondent gives one trait level (1..5) to every question. Rows 0..99 answered in full,
    100..299 partly (two questions skipped), 300.. not at all. Returns the frame and the levels."""
    rng = np.random.default_rng(seed)
    level = rng.integers(1, 6, n)
    answers = np.repeat(level[:, None], len(SURVEYS), axis=1).astype(float)
    for row in range(100, 300):
        answers[row, rng.choice(len(SURVEYS), 2, replace=False)] = np.nan
    answers[300:] = np.nan
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "birth_year": pl.Series(rng.integers(1950, 2000, n), dtype=pl.Int32),
            "income": rng.uniform(20_000, 90_000, n),
            "household_size": pl.Series(rng.integers(1, 5, n), dtype=pl.Int32),
            **{c: pl.Series(answers[:, i]).fill_nan(None).cast(pl.Int32) for i, c in enumerate(SURVEYS)},
        }
    )
    return frame, level


@pytest.mark.parametrize("settings", [ITERATIVE, KNN], ids=["iterative", "knn"])
def test_partly_answered_surveys_are_filled_on_the_likert_scale(settings: ImputationSettings) -> None:
    frame, level = _answers()
    filled = impute_surveys(frame, seed=3, settings=settings)
    partial = np.zeros(frame.height, dtype=bool)
    partial[100:300] = True
    for column in SURVEYS:
        flag = filled[imputed_flag(column)].to_numpy()
        assert np.array_equal(flag, frame[column].is_null().to_numpy() & partial)
        assert filled.schema[column] == pl.Int32
        assert filled.filter(pl.col(imputed_flag(column)))[column].is_between(1, 5).all()
        assert filled[column][:100].equals(frame[column][:100])  # full questionnaires untouched
        assert filled[column][300:].null_count() == 100  # nobody imputes a customer who answered nothing
    # The customer's own answers carry the trait: the model recovers it for most skipped questions.
    hits = [
        filled[column].to_numpy()[flag] == level[flag]
        for column in SURVEYS
        for flag in [filled[imputed_flag(column)].to_numpy()]
    ]
    assert np.concatenate(hits).mean() > 0.8


def test_survey_imputation_can_be_turned_off_and_is_deterministic() -> None:
    frame, _ = _answers()
    off = impute_surveys(frame, seed=3, settings=ImputationSettings(surveys="none"))
    assert off.select(SURVEYS).equals(frame.select(SURVEYS))
    assert not any(off[imputed_flag(c)].any() for c in SURVEYS)
    assert impute_surveys(frame, seed=3).equals(impute_surveys(frame, seed=3))


def test_no_survey_answers_means_false_flags() -> None:
    frame, _ = _answers()
    empty = frame.with_columns([pl.lit(None, dtype=pl.Int32).alias(c) for c in SURVEYS])
    filled = impute_surveys(empty, seed=3)
    assert filled.select(SURVEYS).equals(empty.select(SURVEYS))
    assert not any(filled[imputed_flag(c)].any() for c in SURVEYS)


def test_features_prefer_an_answer_given_over_a_later_imputed_one() -> None:
    """January: the customer answered price sensitivity 2. March: a partly answered survey left it
    out, and it was imputed as 5. The window's feature is the customer's own 2."""
    months = ["2024-01", "2024-03"]
    window = pl.DataFrame(
        {
            "customer_id": ["C1", "C1"],
            "period": months,
            **{c: [0, 0] for c in ("n_invoices", "n_cancellations", "sessions", "page_views")},
            **{c: [0, 0] for c in ("email_sends", "email_opens", "email_clicks")},
            **{c: [0, 0] for c in ("campaign_exposures", "campaign_responses")},
            **{f"{c}_invoices": [0, 0] for c in ("web", "store", "app")},
            **{c: [0.0, 0.0] for c in ("gross_revenue", "returns_value", "net_revenue")},
            **{c: pl.Series([None, 3], dtype=pl.Int32) for c in SURVEYS},
            **{imputed_flag(c): [False, False] for c in SURVEYS},
        }
    ).with_columns(
        pl.Series("survey_price_sensitivity", [2, 5], dtype=pl.Int32),
        pl.Series(imputed_flag("survey_price_sensitivity"), [False, True]),
    )
    features = behaviour_features(window.lazy(), "2024-03").collect()
    assert features["survey_price_sensitivity"].to_list() == [2]
    assert features["survey_brand_loyalty"].to_list() == [3]
    # Months written before the flags existed: the latest answer, as before.
    old = behaviour_features(window.drop([imputed_flag(c) for c in SURVEYS]).lazy(), "2024-03").collect()
    assert old["survey_price_sensitivity"].to_list() == [5]


# ---------------------------------------------------------------------------------- rates


def test_imputation_rates_per_column() -> None:
    flags = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "income": [1.0, 2.0, 3.0, 4.0],
            "income_imputed": [True, False, False, False],
            "survey_convenience_imputed": [True, True, False, False],
            "gender_imputed": [False, False, False, False],
        }
    )
    for frame in (flags, flags.lazy()):
        rates = imputation_rates(frame)
        assert rates.to_dicts() == [
            {"column": "income", "imputed": 1, "customers": 4, "rate": 0.25},
            {"column": "survey_convenience", "imputed": 2, "customers": 4, "rate": 0.5},
            {"column": "gender", "imputed": 0, "customers": 4, "rate": 0.0},
        ]
    empty = imputation_rates(flags.head(0))
    assert empty["customers"].to_list() == [0, 0, 0] and empty["rate"].null_count() == 3
