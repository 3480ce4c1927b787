"""Row rules: each bad row is quarantined under the right rule, and every raw row is accounted for."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from segflow.config import CleaningSettings
from segflow.lib.profiles import cleaning
from segflow.lib.profiles.profiles import RawSources, build_profiles
from segflow.lib.sources.ingest import cast_to_schema

START, END = datetime(2024, 3, 1), datetime(2024, 4, 1)


def _tx(rows: list[dict]) -> pl.DataFrame:
    base = {"invoice_id": "I1", "customer_id": "C1", "invoiced_at": "2024-03-05 10:00:00", "product_id": "P1",
            "category": "toys", "quantity": "2", "unit_price": "3.5", "channel": "web"}  # fmt: skip
    frame = pl.DataFrame([{**base, **r} for r in rows], schema={k: pl.String for k in base})
    typed = cast_to_schema(frame.lazy(), "transactions").collect()
    return typed.with_columns(
        pl.lit("tx.csv").alias("_source_file"), pl.int_range(pl.len()).cast(pl.Int64).alias("_source_row")
    )


def _rule_of(row: dict, known: list[str] | None = None) -> str | None:
    frame = _tx([row])
    series = pl.Series(known) if known is not None else None
    rules = cleaning.transaction_rules(START, END, CleaningSettings(), series)
    result = cleaning.apply_rules(
        cleaning.normalise_codes(frame, "transactions"), rules, "transactions", "2024-03"
    )
    return result.quarantined["rule_id"][0] if result.quarantined.height else None


def test_each_rule_fires_on_its_own_bad_input() -> None:
    assert _rule_of({}) is None
    assert _rule_of({"customer_id": None}) == "missing_customer_id"
    assert _rule_of({"customer_id": "C9"}, known=["C1"]) == "orphan_customer_id"
    assert _rule_of({"invoiced_at": "2099-01-01 00:00:00"}) == "outside_partition"
    assert _rule_of({"invoiced_at": "2024-02-29 23:59:59"}) == "outside_partition"
    assert _rule_of({"invoiced_at": "not a date"}) == "unparseable_value"
    assert _rule_of({"quantity": "abc"}) == "unparseable_value"
    assert _rule_of({"quantity": "0"}) == "zero_quantity"
    assert _rule_of({"unit_price": "0"}) == "zero_price"
    assert _rule_of({"unit_price": "0", "customer_id": None}) == "zero_price"  # the specific reason wins
    assert _rule_of({"unit_price": "-2"}) == "negative_price"
    assert (
        _rule_of({"invoice_id": "A563185", "unit_price": "-11062.06", "customer_id": None})
        == "adjustment_invoice"
    )
    assert _rule_of({"quantity": "-5", "customer_id": None}) == "negative_quantity_not_cancellation"
    assert _rule_of({"unit_price": "NaN"}) == "missing_price"
    assert _rule_of({"unit_price": "inf"}) == "missing_price"
    assert _rule_of({"quantity": "-2"}) == "negative_quantity_not_cancellation"
    assert _rule_of({"invoice_id": "C1", "quantity": "-2"}) is None
    assert _rule_of({"invoice_id": "C1", "quantity": "2"}) == "positive_quantity_cancellation"
    assert _rule_of({"quantity": "2000"}) == "quantity_outlier"
    assert _rule_of({"unit_price": "99999"}) == "price_outlier"


def test_parse_error_reason_names_column_and_masks_value() -> None:
    frame = _tx([{"quantity": "abc"}])
    rules = cleaning.transaction_rules(START, END, CleaningSettings(), None)
    result = cleaning.apply_rules(frame, rules, "transactions", "2024-03")
    reason = result.quarantined["reason"][0]
    # The value is masked in the reason (issue 19.7); the file and row say where to look.
    assert "'quantity'" in reason and "abc" not in reason and "value masked" in reason
    assert result.quarantined["row_number"][0] == 0 and result.quarantined["source_file"][0] == "tx.csv"


def test_accounting_and_duplicates() -> None:
    frame = _tx([{}, {}, {"customer_id": None}, {"invoice_id": "I2", "quantity": "1"}])
    result = cleaning.apply_rules(frame, cleaning.transaction_rules(START, END, CleaningSettings(), None),
                                  "transactions", "2024-03")  # fmt: skip
    counts = result.accounting()
    assert counts == {"raw_rows": 4, "accepted_rows": 2, "quarantined_rows": 1, "duplicates_dropped": 1,
                      "orphan_rows": 0, "orphan_customers": 0}  # fmt: skip
    assert (
        counts["raw_rows"]
        == counts["accepted_rows"] + counts["quarantined_rows"] + counts["duplicates_dropped"]
    )


def test_codes_are_normalised_before_rules() -> None:
    frame = _tx([{"channel": " WEB ", "customer_id": " C1 "}])
    result = cleaning.apply_rules(cleaning.normalise_codes(frame, "transactions"),
                                  cleaning.transaction_rules(START, END, CleaningSettings(), pl.Series(["C1"])),
                                  "transactions", "2024-03")  # fmt: skip
    assert result.accepted["channel"].to_list() == ["web"]
    assert result.accepted["customer_id"].to_list() == ["C1"]


def test_profiles_net_cancellations_and_mask_pii() -> None:
    tx = _tx([
        {"invoice_id": "I1", "quantity": "4", "unit_price": "10"},
        {"invoice_id": "C1", "quantity": "-1", "unit_price": "10", "invoiced_at": "2024-03-07 09:00:00"},
        {"invoice_id": "I3", "customer_id": "C2", "quantity": "1", "unit_price": "5", "channel": "store"},
    ])  # fmt: skip
    customers = pl.DataFrame({
        "customer_id": ["C1", "C2", "C2"], "name": ["Ann Lee", "Bo Chan", "Bo Chan 2"],
        "email": ["ann@example.com", "bo@example.com", "bo2@example.com"],
        "signup_date": ["2023-01-01", "2023-02-01", "2023-02-01"], "birth_year": ["1980", "1850", "1990"],
        "gender": ["f", None, "M"], "income": ["50000", "60000", "1"], "education": ["master", "phd", "phd"],
        "household_size": ["2", "3", "3"], "city": ["A", "B", "B"], "region": ["N", "S", "S"],
        "country": ["X", "X", "X"], "preferred_channel": ["web", "store", "store"],
        "marketing_opt_in": ["true", "false", "false"],
        **{c: [None, None, None] for c in ("marital_status", "age_band", "income_band", "household_size_band")},
    }, schema_overrides={c: pl.String for c in ("marital_status", "age_band", "income_band",
                                                "household_size_band")})  # fmt: skip
    raw_customers = (
        cast_to_schema(customers.lazy(), "customers")
        .collect()
        .with_columns(
            pl.lit("crm.csv").alias("_source_file"),
            pl.int_range(pl.len()).cast(pl.Int64).alias("_source_row"),
        )
    )
    build = build_profiles(RawSources(raw_customers, tx, None, None, None), "2024-03", START, END,
                           CleaningSettings(), seed=1)  # fmt: skip
    profiles = build.profiles
    assert "name" not in profiles.columns and "email" not in profiles.columns
    c1 = profiles.filter(pl.col("customer_id") == "C1").row(0, named=True)
    assert (c1["gross_revenue"], c1["returns_value"], c1["net_revenue"]) == (40.0, 10.0, 30.0)
    assert (c1["n_invoices"], c1["n_cancellations"], c1["web_invoices"]) == (1, 1, 1)
    assert c1["gender"] == "F" and not c1["gender_imputed"]
    c2 = profiles.filter(pl.col("customer_id") == "C2").row(0, named=True)
    assert c2["birth_year_imputed"] and c2["gender_imputed"] and c2["birth_year"] is not None
    assert build.recoded["birth_year"] == 1
    dup = build.quarantined.filter(pl.col("rule_id") == "duplicate_customer_id")
    assert dup.height == 1 and "Bo Chan" not in dup["record"][0] and "***" in dup["record"][0]
    assert build.accounting["customers"] == {"raw_rows": 3, "accepted_rows": 2, "quarantined_rows": 1,
                                             "duplicates_dropped": 0, "orphan_rows": 0,
                                             "orphan_customers": 0}  # fmt: skip


def test_first_occurrences_match_unique_in_file_order() -> None:
    """The hashed duplicate finder keeps exactly the rows ``unique(keep="first")`` keeps, in order,
    with nulls, NaN and signed zeros equal as ``unique`` has them."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 20_000
    frame = pl.DataFrame(
        {
            "a": rng.integers(0, 30, n),
            "b": pl.Series(rng.choice(["x", "y", None], n).tolist(), dtype=pl.String),
            "c": rng.choice([0.0, -0.0, np.nan, 1.5], n),
            "d": rng.integers(0, 4, n),  # not compared: rows differing only here are duplicates
        }
    ).with_row_index("position")
    columns = ["a", "b", "c"]
    keep = cleaning.first_occurrences(frame, columns)
    assert keep is not None and int((~keep).sum()) > n // 2
    expected = frame.unique(subset=columns, keep="first", maintain_order=True)
    assert frame.filter(keep).equals(expected)
    assert cleaning.first_occurrences(expected, columns) is None
