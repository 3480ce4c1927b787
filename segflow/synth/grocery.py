"""A generated grocery multi-table export, shaped like the ones real retailers hand over.

Six CSV files, the layout of a well-known public grocery panel (households with banded
demographics, baskets, products, campaigns and coupon redemptions), with made-up values:

* ``hh_demographic.csv``: one row per household that the CRM covers (about 70% of them, as in
  real extracts), with bands only: ``AGE_DESC`` "25-34", ``INCOME_DESC`` "50-74K",
  ``HOUSEHOLD_SIZE_DESC`` "5+", and ``MARITAL_STATUS_CODE`` A (married), B (single), U (unknown);
* ``transaction_data.csv``: line items (``BASKET_ID``, ``DAY``, ``PRODUCT_ID``, ``QUANTITY``,
  ``SALES_VALUE``: the line's amount, not a unit price), with no category;
* ``product.csv``: the category (``DEPARTMENT``) of each product; two products sold are missing
  from it, as in real catalogues;
* ``campaign_table.csv`` (exposures: household, campaign), ``campaign_desc.csv`` (each campaign's
  ``START_DAY``) and ``coupon_redempt.csv`` (redemptions: household, campaign, coupon; a household
  may redeem several coupons of one campaign).

Dates are ISO dates here; the public panel numbers its days instead. Households follow three
planted shopping habits (weekly stock-up, frequent top-up, occasional), so that segments exist
to be found. ``examples/grocery_multi_table.yaml`` maps the files, joins included. Deterministic:
the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

AGE_BANDS = ("19-24", "25-34", "35-44", "45-54", "55-64", "65+")
INCOME_BANDS = ("Under 15K", "15-24K", "25-34K", "35-49K", "50-74K", "75-99K", "100-124K", "125-149K",
                "150-174K", "175-199K", "200-249K", "250K+")  # fmt: skip
SIZE_BANDS = ("1", "2", "3", "4", "5+")
DEPARTMENTS = ("GROCERY", "PRODUCE", "MEAT", "DRUG GM", "DELI", "PASTRY", "KIOSK-GAS")
# Habit -> (baskets per month, lines per basket, department weights, age band weights, coupon uptake)
HABITS = {
    "stock_up": (4.0, 14.0, (5, 3, 3, 1, 1, 1, 0.2), (0, 2, 4, 3, 1, 0.5), 0.30),
    "top_up": (10.0, 3.0, (2, 3, 0.5, 1, 3, 2, 0.5), (3, 4, 2, 1, 0.5, 0.5), 0.10),
    "occasional": (1.2, 5.0, (2, 1, 1, 2, 0.5, 0.5, 3), (0.5, 1, 1, 2, 3, 4), 0.05),
}
CRM_SHARE = 0.7
PRODUCTS_PER_DEPARTMENT = 12


def _months(start: str, months: int) -> list[date]:
    year, month = int(start[:4]), int(start[5:])
    out = []
    for i in range(months):
        y, m = divmod(month - 1 + i, 12)
        out.append(date(year + y, m + 1, 1))
    return out


def _month_days(first: date) -> int:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (following - first).days


def _weights(values) -> np.ndarray:
    w = np.asarray(values, dtype=float)
    return w / w.sum()


def _households(rng: np.random.Generator, n: int) -> pl.DataFrame:
    habit = rng.choice(list(HABITS), size=n, p=[0.35, 0.35, 0.30])
    age = [rng.choice(AGE_BANDS, p=_weights(HABITS[h][3])) for h in habit]
    income_index = np.clip(rng.normal(np.where(habit == "stock_up", 6, 3.5), 2.0), 0, len(INCOME_BANDS) - 1)
    size_index = np.clip(rng.poisson(np.where(habit == "stock_up", 2.5, 0.8)), 0, len(SIZE_BANDS) - 1)
    return pl.DataFrame({
        "household_key": np.arange(1, n + 1),
        "habit": habit,
        "AGE_DESC": age,
        "MARITAL_STATUS_CODE": rng.choice(["A", "B", "U"], size=n, p=[0.45, 0.35, 0.20]),
        "INCOME_DESC": [INCOME_BANDS[int(i)] for i in income_index],
        "HOMEOWNER_DESC": rng.choice(["Homeowner", "Renter", "Unknown"], size=n, p=[0.6, 0.2, 0.2]),
        "HOUSEHOLD_SIZE_DESC": [SIZE_BANDS[int(i)] for i in size_index],
        "in_crm": rng.random(n) < CRM_SHARE,
    })  # fmt: skip


def _products(rng: np.random.Generator) -> pl.DataFrame:
    n = len(DEPARTMENTS) * PRODUCTS_PER_DEPARTMENT
    return pl.DataFrame({
        "PRODUCT_ID": np.arange(100_001, 100_001 + n),
        "MANUFACTURER": rng.integers(1, 40, n),
        "DEPARTMENT": np.repeat(DEPARTMENTS, PRODUCTS_PER_DEPARTMENT),
        "BRAND": rng.choice(["National", "Private"], size=n),
        "price": np.round(rng.lognormal(1.0, 0.6, n), 2),
    })  # fmt: skip


def _baskets(rng: np.random.Generator, households: pl.DataFrame, products: pl.DataFrame,
             first: date, basket_offset: int) -> pl.DataFrame:  # fmt: skip
    """One month of line items: each household's baskets, each basket's lines (no loop over lines)."""
    habit = households["habit"].to_numpy()
    rates = np.array([HABITS[h][0] for h in habit])
    baskets = rng.poisson(rates)
    owner = np.repeat(np.arange(len(habit)), baskets)
    lines = 1 + rng.poisson(np.array([HABITS[habit[o]][1] for o in owner]) - 1)
    line_owner = np.repeat(owner, lines)
    basket_id = np.repeat(np.arange(len(owner)) + basket_offset, lines)
    day = np.repeat(rng.integers(0, _month_days(first), len(owner)), lines)
    by_department = {d: np.flatnonzero(products["DEPARTMENT"].to_numpy() == d) for d in DEPARTMENTS}
    department = np.array([rng.choice(len(DEPARTMENTS), p=_weights(HABITS[habit[o]][2])) for o in line_owner])
    product = np.array([rng.choice(by_department[DEPARTMENTS[d]]) for d in department], dtype=int)
    quantity = 1 + rng.poisson(0.6, len(product))
    ids = products["PRODUCT_ID"].to_numpy()[product]
    ids = np.where(rng.random(len(ids)) < 0.01, 999_001 + rng.integers(0, 2, len(ids)), ids)  # not catalogued
    value = np.round(quantity * products["price"].to_numpy()[product], 2)
    lines = pl.DataFrame({
        "household_key": households["household_key"].to_numpy()[line_owner],
        "BASKET_ID": basket_id + 26_984_000_000,
        "DAY": [(first + timedelta(days=int(d))).isoformat() for d in day],
        "PRODUCT_ID": ids,
        "QUANTITY": quantity,
        "SALES_VALUE": value,
        "STORE_ID": rng.integers(300, 320, len(product)),
        "TRANS_TIME": rng.integers(7, 22, len(product)) * 100 + rng.integers(0, 60, len(product)),
    })  # fmt: skip
    # A till export has one line per product in a basket: a product drawn twice is one line.
    first = ["household_key", "DAY", "STORE_ID", "TRANS_TIME"]
    return (
        lines.group_by("BASKET_ID", "PRODUCT_ID", maintain_order=True)
        .agg(
            *[pl.col(c).first() for c in first],
            pl.col("QUANTITY").sum(),
            pl.col("SALES_VALUE").sum().round(2),
        )
        .select(lines.columns)
    )


def _campaigns(rng: np.random.Generator, households: pl.DataFrame, months: list[date]):
    """Two campaigns a month: who was sent each (``campaign_table``), when it ran, who redeemed."""
    desc, table, redeemed = [], [], []
    uptake = np.array([HABITS[h][4] for h in households["habit"]])
    keys = households["household_key"].to_numpy()
    for m, first in enumerate(months):
        for j, kind in enumerate(("TypeA", "TypeB")):
            campaign = 2 * m + j + 1
            start = first + timedelta(days=3 + 10 * j)
            desc.append({"DESCRIPTION": kind, "CAMPAIGN": campaign, "START_DAY": start.isoformat(),
                         "END_DAY": (start + timedelta(days=30)).isoformat()})  # fmt: skip
            sent = rng.random(len(keys)) < 0.4
            table += [
                {"DESCRIPTION": kind, "household_key": int(k), "CAMPAIGN": campaign} for k in keys[sent]
            ]
            took = sent & (rng.random(len(keys)) < uptake)
            for k in keys[took]:
                for coupon in range(1 + int(rng.random() < 0.3)):  # some redeem two coupons
                    day = (start + timedelta(days=int(rng.integers(0, 20)))).isoformat()
                    redeemed.append({"household_key": int(k), "DAY": day,
                                     "COUPON_UPC": 10_000_000 + 100 * campaign + coupon, "CAMPAIGN": campaign})  # fmt: skip
    schema = {"household_key": pl.Int64, "DAY": pl.String, "COUPON_UPC": pl.Int64, "CAMPAIGN": pl.Int64}
    return pl.DataFrame(desc), pl.DataFrame(table), pl.DataFrame(redeemed, schema=schema)


def generate_grocery(
    out: Path, households: int = 300, months: int = 2, start: str = "2024-01", seed: int = 7
) -> dict[str, int]:
    """Write the six files under ``out``; returns the rows written per file."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    homes = _households(rng, households)
    products = _products(rng)
    firsts = _months(start, months)
    items, offset = [], 0
    for first in firsts:
        month = _baskets(rng, homes, products, first, offset)
        offset += month["BASKET_ID"].n_unique()
        items.append(month)
    desc, table, redeemed = _campaigns(rng, homes, firsts)
    files = {
        "hh_demographic.csv": homes.filter("in_crm").drop("habit", "in_crm"),
        "transaction_data.csv": pl.concat(items),
        "product.csv": products.drop("price"),
        "campaign_desc.csv": desc,
        "campaign_table.csv": table,
        "coupon_redempt.csv": redeemed,
    }
    for name, frame in files.items():
        frame.write_csv(out / name)
    return {name: frame.height for name, frame in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/grocery_multi_table"))
    parser.add_argument("--households", type=int, default=300)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--start", default="2024-01")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rows = generate_grocery(args.out, args.households, args.months, args.start, args.seed)
    for name, n in rows.items():
        print(f"{args.out / name}: {n:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
