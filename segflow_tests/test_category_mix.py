"""Category mix: per-category net revenue in profiles, window shares in features, and the contracts
that type them (lib functions only; the modelling tests fit the family on planted data)."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from segflow.config import CleaningSettings
from segflow.lib.contracts.spec import load_contract
from segflow.lib.contracts.validation import validate_frame
from segflow.lib.features.category_mix import NO_CATEGORY, category_mix, lineage, slug
from segflow.lib.profiles.activity import CATEGORY_REVENUE, CATEGORY_REVENUE_TYPE
from segflow.lib.profiles.profiles import RawSources, build_profiles
from segflow_tests.test_cleaning import END, START, _tx


def _profiles(rows: list[dict]) -> pl.DataFrame:
    build = build_profiles(RawSources(None, _tx(rows), None, None, None), "2024-03", START, END,
                           CleaningSettings(), 42)  # fmt: skip
    return build.profiles


def _revenue(profiles: pl.DataFrame, customer: str) -> list[dict]:
    return profiles.filter(pl.col("customer_id") == customer)[CATEGORY_REVENUE].to_list()[0]


def test_profiles_net_category_revenue_of_returns_per_category() -> None:
    profiles = _profiles(
        [
            {"invoice_id": "I1", "category": "toys", "quantity": "2", "unit_price": "3.5"},
            {"invoice_id": "I1", "category": "books", "quantity": "1", "unit_price": "10"},
            {"invoice_id": "C9", "category": "toys", "quantity": "-1", "unit_price": "3.5"},  # a return
            {"invoice_id": "I2", "category": None, "quantity": "1", "unit_price": "4"},  # uncategorised
            {"invoice_id": "I3", "customer_id": "C2", "category": " ", "quantity": "1", "unit_price": "5"},
        ]
    )
    assert profiles.schema[CATEGORY_REVENUE] == CATEGORY_REVENUE_TYPE
    assert _revenue(profiles, "C1") == [
        {"category": "books", "net_revenue": 10.0},
        {"category": "toys", "net_revenue": 3.5},  # 7 bought, 3.5 returned
    ]
    c1 = profiles.filter(pl.col("customer_id") == "C1").row(0, named=True)
    assert c1["net_revenue"] == 17.5  # the uncategorised 4 is in net revenue, not in the list
    assert _revenue(profiles, "C2") == []  # a blank category is no category: empty, not null
    report = validate_frame(profiles, load_contract("customer_profiles"), "error", partition_start=START,
                            partition_end=END)  # fmt: skip
    assert report.success, report.failed


def test_profiles_contract_types_the_category_list() -> None:
    contract = load_contract("customer_profiles")
    rules = tuple(r for r in contract.rules if r.column == CATEGORY_REVENUE or r.kind == "schema")
    only = dataclasses.replace(
        contract, columns=tuple(c for c in contract.columns if c.name == CATEGORY_REVENUE), rules=rules
    )
    good = pl.DataFrame({CATEGORY_REVENUE: [[{"category": "toys", "net_revenue": 1.5}], []]},
                        schema={CATEGORY_REVENUE: CATEGORY_REVENUE_TYPE})  # fmt: skip
    assert validate_frame(good, only, "error").success
    nulls = pl.DataFrame({CATEGORY_REVENUE: [None]}, schema={CATEGORY_REVENUE: CATEGORY_REVENUE_TYPE})
    assert validate_frame(nulls, only, "error").failed_rule_ids == [
        "customer_profiles.category_revenue.not_null"
    ]
    wrong_field = pl.DataFrame({CATEGORY_REVENUE: [[{"category": 3, "net_revenue": 1.5}]]})
    flat = pl.DataFrame({CATEGORY_REVENUE: ["toys"]})
    for bad in (wrong_field, flat):
        report = validate_frame(bad, only, "error")
        assert report.failed_rule_ids == ["customer_profiles.schema"]
        assert "type category_revenue" in report.result("customer_profiles.schema").observed_value


def _window(months: dict[str, dict[str, dict[str, float]]]) -> pl.LazyFrame:
    """Monthly profiles with only what the category mix reads: month -> customer -> category -> net."""
    rows = [
        {"customer_id": c, "period": m,
         CATEGORY_REVENUE: [{"category": k, "net_revenue": v} for k, v in sorted(cats.items())]}
        for m, customers in months.items() for c, cats in customers.items()
    ]  # fmt: skip
    return pl.DataFrame(rows, schema={"customer_id": pl.String, "period": pl.String,
                                      CATEGORY_REVENUE: CATEGORY_REVENUE_TYPE}).lazy()  # fmt: skip


MONTHS = {
    "2024-01": {"a": {"toys": 30.0, "books": 10.0}, "c": {"toys": 5.0, "books": 6.0}, "e": {"books": 2.0}},
    "2024-02": {
        "b": {"toys": 5.0, "garden": 10.0, "Food & Drink": 2.0},
        "c": {"books": -10.0},  # returns more books than bought in the window
        "d": {},  # only uncategorised lines
        "e": {"books": -5.0},  # nets to a loss in every category
    },
}


def test_window_shares_top_n_other_and_undefined_mixes() -> None:
    mix = category_mix(_window(MONTHS), top_n=2)
    # Window revenue: toys 40, garden 10, books 3, Food & Drink 2: the top 2 and the rest as other.
    assert mix.columns == ["category_share_toys", "category_share_garden", "category_share_other"]
    assert [(c["category"], c["window_net_revenue"]) for c in mix.record["categories"]] == [
        ("toys", 40.0), ("garden", 10.0)
    ]  # fmt: skip
    assert mix.record["other"] == {
        "column": "category_share_other",
        "categories": 2,
        "window_net_revenue": 5.0,
    }
    shares = {r["customer_id"]: r for r in mix.shares.iter_rows(named=True)}
    assert set(shares) == {"a", "b", "c", "e"}  # d has no categorised line
    assert shares["a"]["category_share_toys"] == pytest.approx(0.75)
    assert shares["a"]["category_share_garden"] == 0.0 and shares["a"][
        "category_share_other"
    ] == pytest.approx(0.25)
    assert shares["b"]["category_share_garden"] == pytest.approx(10 / 17)
    assert shares["b"]["category_share_other"] == pytest.approx(2 / 17)
    assert shares["c"]["category_share_toys"] == 1.0  # books net -4: counts as no spend, not negative
    assert all(shares["e"][c] is None for c in mix.columns)  # no positive net spend: undefined
    assert mix.record["customers_without_shares"] == 1
    sums = mix.shares.drop_nulls().select(pl.sum_horizontal(mix.columns)).to_series()
    assert sums.to_list() == pytest.approx([1.0] * 3)
    assert lineage([*mix.columns, "monetary"]) == {c: (CATEGORY_REVENUE,) for c in mix.columns}


def test_ties_slugs_and_determinism() -> None:
    tied = {"2024-01": {"a": {"beta": 5.0, "alpha": 5.0}, "b": {"Home & Garden": 1.0, "home garden": 1.0,
                                                            "Other": 1.0}}}  # fmt: skip
    mix = category_mix(_window(tied), top_n=1)
    assert mix.columns == ["category_share_alpha", "category_share_other"]  # tie broken by name
    every = category_mix(_window(tied), top_n=5)
    assert every.columns == [
        "category_share_alpha", "category_share_beta", "category_share_home_garden",
        "category_share_other_2", "category_share_home_garden_2", "category_share_other",
    ]  # fmt: skip
    assert slug("Bücher & Medien") == "bucher_medien" and slug("!!!") == "category"
    forward = category_mix(_window(MONTHS), top_n=2)
    backward = category_mix(_window(dict(reversed(MONTHS.items()))).collect().reverse().lazy(), top_n=2)
    assert forward.shares.equals(backward.shares) and forward.record == backward.record
    with pytest.raises(ValueError, match="category_top_n"):
        category_mix(_window(MONTHS), top_n=0)


def test_unavailable_without_any_category() -> None:
    profiles = _profiles([{"category": None}, {"invoice_id": "I2", "category": None, "customer_id": "C2"}])
    mix = category_mix(profiles.lazy(), top_n=8)
    assert not mix.record["available"] and mix.record["reason"] == NO_CATEGORY and mix.columns == []
    no_column = category_mix(profiles.drop(CATEGORY_REVENUE).lazy(), top_n=8)
    assert not no_column.record["available"] and CATEGORY_REVENUE in no_column.record["reason"]


def test_features_contract_checks_every_share_column() -> None:
    contract = load_contract("customer_features")
    rules = tuple(
        r
        for r in contract.rules
        if r.kind in ("schema", "extra_columns") or (r.column or "").startswith("category")
    )
    only = dataclasses.replace(
        contract, columns=tuple(c for c in contract.columns if c.name_pattern), rules=rules
    )
    mix = category_mix(_window(MONTHS), top_n=2)
    passed = validate_frame(mix.shares.drop("customer_id"), only, "error")
    assert passed.success
    assert [r.rule_id for r in passed.results][1:] == [
        f"customer_features.category_share.range[{c}]" for c in mix.columns
    ]
    broken = mix.shares.drop("customer_id").with_columns(pl.col("category_share_toys") * 2)
    failed = validate_frame(broken, only, "error")
    assert failed.failed_rule_ids == ["customer_features.category_share.range[category_share_toys]"]
    assert validate_frame(pl.DataFrame({"category_share_Bad": [0.5]}), only, "warn").failed_rule_ids == [
        "customer_features.schema.extra"
    ]  # a column outside the family's pattern is not declared by it
    empty = validate_frame(pl.DataFrame({"x": [1]}).drop("x"), only, "error")
    assert empty.result("customer_features.category_share.range").success is None  # no category: skipped


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"logicalType": "string", "items": {"logicalType": "object", "properties": []}}, "only an array"),
        ({"logicalType": "array", "items": {"logicalType": "string"}}, "logicalType: object"),
        ({"logicalType": "array", "items": {"logicalType": "object", "properties": [{"name": "x"}]}},
         "needs a name and a logicalType"),
        ({"logicalType": "number", "namePattern": "^share_(["}, "namePattern: not a valid regex"),
        ({"logicalType": "number", "namePattern": "^share_.*$", "required": True}, "no fixed column"),
    ],
)  # fmt: skip
def test_bad_array_and_family_columns_are_refused(extra: dict, message: str) -> None:
    from segflow.lib.contracts.model import ContractError
    from segflow.lib.contracts.spec import parse_contract

    raw = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "urn:t", "name": "t", "version": "1.0.0",
           "status": "active", "schema": [{"name": "t", "properties": [{"name": "c", **extra}]}]}  # fmt: skip
    with pytest.raises(ContractError, match=message):
        parse_contract(raw)


def test_report_family_table_says_whether_category_mix_was_available_and_used() -> None:
    from segflow.lib.features.snapshot import feature_families

    enabled = {"transactions": True, "customers": True}
    used = ["recency_days", "category_share_books", "category_share_other"]
    row = {r["family"]: r for r in feature_families("transactions", enabled, used)}["category_mix"]
    assert row["available"] and row["used_in_model"]
    row = {r["family"]: r for r in feature_families("transactions", enabled, ["recency_days"])}[
        "category_mix"
    ]
    assert row["available"] and not row["used_in_model"]
    reason = "the features hold no category share columns"
    rows = feature_families("transactions", enabled, ["recency_days"], {"category_mix": reason})
    row = {r["family"]: r for r in rows}["category_mix"]
    assert not row["available"] and not row["used_in_model"] and row["note"] == reason
    row = {r["family"]: r for r in feature_families("snapshot", enabled, [])}["category_mix"]
    assert not row["available"]
