"""The CRM snapshot of one block's customers, and the planted truth about them.

The CRM rows carry the nulled demographic cells drawn with the customers and, from their own
stream, nulled ids and exact duplicate rows. The ground truth (segment, churn month) goes to
``_ground_truth/``, which the pipeline never reads.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segflow.lib.schema import CHANNELS, CUSTOMERS, EDUCATION_LEVELS, GENDERS
from segflow.synth.config import SynthConfig
from segflow.synth.customers import (
    CITIES,
    DEMOGRAPHIC_COLUMNS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    NEVER_CHURNS,
    Block,
)
from segflow.synth.dirt import crm_dirt
from segflow.synth.segments import SEGMENTS
from segflow.synth.streams import US_PER_DAY, Month, Stream, stream

GROUND_TRUTH = {"customer_id": pl.String(), "segment": pl.String(), "churn_month": pl.String()}


def _null_where(values: pl.Series, mask: np.ndarray) -> pl.Series:
    return pl.select(pl.when(pl.Series(mask)).then(None).otherwise(values)).to_series().alias(values.name)


def _crm_frame(blk: Block) -> pl.DataFrame:
    """The block's CRM rows in the canonical column order; attributes the generator does not
    draw (marital status, banded demographics) are empty columns, as in a CRM that lacks them."""
    frame = _crm_values(blk)
    return frame.select(
        pl.col(c) if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in CUSTOMERS.items()
    )


def _crm_values(blk: Block) -> pl.DataFrame:
    d = blk.demographics
    first = pl.Series(FIRST_NAMES).gather(d["first_name"])
    last = pl.Series(LAST_NAMES).gather(d["last_name"])
    local = (first + "." + last.str.replace_all(" ", "")).str.to_lowercase()
    email = (
        local + pl.Series(blk.index + 1).cast(pl.String) + "@" + pl.Series(EMAIL_DOMAINS).gather(d["domain"])
    )
    city = d["city"]
    miss = dict(zip(DEMOGRAPHIC_COLUMNS, blk.missing.T, strict=True))
    birth_year = pl.Series("birth_year", d["birth_year"]).cast(pl.Int32)
    education = pl.Series("education", EDUCATION_LEVELS).gather(d["education"])
    return pl.DataFrame({
        "customer_id": blk.ids,
        "name": first + " " + last,
        "email": email,
        "signup_date": pl.Series(blk.signup_us // US_PER_DAY).cast(pl.Int32).cast(pl.Date),
        "birth_year": _null_where(birth_year, miss["birth_year"]),
        "gender": _null_where(pl.Series("gender", GENDERS).gather(d["gender"]), miss["gender"]),
        "income": _null_where(pl.Series("income", d["income"], dtype=pl.Float64), miss["income"]),
        "education": _null_where(education, miss["education"]),
        "household_size": _null_where(pl.Series("household_size", d["household_size"]).cast(pl.Int32),
                                      miss["household_size"]),
        "city": pl.Series([c[0] for c in CITIES]).gather(city),
        "region": pl.Series([c[1] for c in CITIES]).gather(city),
        "country": pl.Series([c[2] for c in CITIES]).gather(city),
        "preferred_channel": pl.Series(CHANNELS).gather(d["preferred_channel"]),
        "marketing_opt_in": pl.Series(blk.opt_in, dtype=pl.Boolean),
    })  # fmt: skip


def crm_frames(
    config: SynthConfig, blk: Block, month: Month, block: int
) -> tuple[list[pl.DataFrame], dict[str, int]]:
    """The block's CRM rows with nulled ids, then exact duplicates of a few other rows."""
    frame = _crm_frame(blk)
    null_id, duplicate = crm_dirt(
        stream(config, Stream.CRM_DIRT, month.index, block), frame.height, config.dirt
    )
    frame = frame.with_columns(_null_where(frame["customer_id"], null_id))
    counts = {"missing_demographics": int(blk.missing.sum()), "missing_customer_rows": int(null_id.sum()),
              "duplicate_customers": int(duplicate.sum())}  # fmt: skip
    return [frame, frame[np.flatnonzero(duplicate)]], counts


def ground_truth_frame(blk: Block, config: SynthConfig) -> pl.DataFrame:
    """Planted labels; churn_month is the last month a lapsing customer buys in (it may lie after
    the generated history for late signups), null for every other segment."""
    churns = blk.churn_month != NEVER_CHURNS
    absolute = int(config.start[:4]) * 12 + int(config.start[5:]) - 1 + np.where(churns, blk.churn_month, 0)
    month = (
        pl.DataFrame({"y": absolute // 12, "m": absolute % 12 + 1, "churns": churns})
        .select(
            pl.when("churns").then(pl.format("{}-{}", pl.col("y"), pl.col("m").cast(pl.String).str.zfill(2)))
        )
        .to_series()
    )
    return pl.DataFrame({
        "customer_id": blk.ids,
        "segment": pl.Series(SEGMENTS).gather(blk.segment),
        "churn_month": month,
    })  # fmt: skip
