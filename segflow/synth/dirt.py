"""Injected dirt: how much of each kind (``DirtRates``) and the draws that plant it.

Each source draws its dirt from its own stream, after its clean rows are made, so the clean data
does not depend on the dirt rates (missing demographics excepted: those cells are drawn with the
customers' static attributes). Every kind is counted, and the counts go into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from segflow.synth.streams import US_PER_DAY

if TYPE_CHECKING:
    from segflow.synth.transactions import Lines


@dataclass(frozen=True)
class DirtRates:
    """Fractions of rows (cells for demographics) that get each kind of dirt."""

    missing_customer_id: float = 0.004  # transactions: customer_id set null
    duplicate_rows: float = 0.004  # transactions + engagement: exact duplicate rows appended
    negative_price: float = 0.002  # transactions: unit_price negated
    future_date: float = 0.001  # transactions: invoiced_at moved 400..800 days into the future
    outlier_quantity: float = 0.0005  # transactions: quantity multiplied by 1000
    missing_demographics: float = 0.05  # customers: each demographic cell independently null
    duplicate_customers: float = 0.002  # customers: exact duplicate CRM rows appended
    missing_customer_rows: float = 0.001  # customers: customer_id null

    @classmethod
    def none(cls) -> DirtRates:
        return cls(**{name: 0.0 for name in cls.__dataclass_fields__})


def transaction_dirt(
    rng: np.random.Generator, lines: Lines, dirt: DirtRates
) -> tuple[np.ndarray, dict[str, int]]:
    """Dirty ``lines`` in place; return the rows to append again as exact duplicates, and counts."""
    n = len(lines.invoice)
    null_id = rng.random(n) < dirt.missing_customer_id
    negative = rng.random(n) < dirt.negative_price
    future = rng.random(n) < dirt.future_date
    outlier = rng.random(n) < dirt.outlier_quantity
    shift_days = rng.integers(400, 801, n)
    duplicate = rng.random(n) < dirt.duplicate_rows
    lines.customer_null = null_id
    lines.price[negative] *= -1
    lines.time_us[future] += shift_days[future] * US_PER_DAY
    lines.quantity[outlier] *= 1000
    # Duplicates copy only otherwise-clean rows, so each kind of dirt stays countable in the file.
    duplicate &= ~(null_id | negative | future | outlier)
    counts = {"missing_customer_id": int(null_id.sum()), "negative_price": int(negative.sum()),
              "future_date": int(future.sum()), "outlier_quantity": int(outlier.sum()),
              "duplicate_rows": int(duplicate.sum())}  # fmt: skip
    return np.flatnonzero(duplicate), counts


def crm_dirt(rng: np.random.Generator, rows: int, dirt: DirtRates) -> tuple[np.ndarray, np.ndarray]:
    """Per CRM row: whether its customer_id is nulled, and whether it is appended again; a row with
    a nulled id is never duplicated."""
    null_id = rng.random(rows) < dirt.missing_customer_rows
    duplicate = (rng.random(rows) < dirt.duplicate_customers) & ~null_id
    return null_id, duplicate


def duplicate_rows(rng: np.random.Generator, rows: int, dirt: DirtRates) -> np.ndarray:
    """Positions of the rows to append again as exact duplicates."""
    return np.flatnonzero(rng.random(rows) < dirt.duplicate_rows)
