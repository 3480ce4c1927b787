"""Synthetic multi-source landing zone with planted customer segments, dirt and a campaign effect.

``generate`` writes one file per source and month (CRM snapshot as CSV; transactions, engagement,
surveys and campaign exposures as Parquet), the planted truth under ``_ground_truth/`` and a
manifest. Five segments (``SEGMENTS``) behave differently enough that k-means on trailing-12-month
features recovers them, with per-customer lognormal heterogeneity so it is not trivial.

Scale: customers are processed in fixed blocks of ``BLOCK_SIZE``, month by month, fully vectorised
with numpy, and appended to streaming writers, so memory is bounded by one block's rows whatever
the number of customers (and, above intensity 20, by one chunk of a block's line items: see
``TX_INTENSITY_PER_CHUNK``). 100M line items in a month is 1.5M customers at intensity 20. Every random stream is ``SeedSequence([seed, stream, month, block])``;
customer attributes come from their block's own static stream and are regenerated each month
instead of being kept. The output depends on the config only: same config, same bytes.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from segflow import __version__
from segflow.lib.schema import (
    CAMPAIGN_ARMS,
    CAMPAIGNS,
    CHANNELS,
    CUSTOMERS,
    ENGAGEMENT,
    ENGAGEMENT_EVENT_TYPES,
    SURVEY_QUESTIONS,
    SURVEYS,
    TRANSACTIONS,
)

SYNTH_VERSION = "1"
BLOCK_SIZE = 50_000  # customers per block; part of the random-stream layout, so changing it changes the data
ROW_GROUP_ROWS = 1_000_000
# Line items grow with intensity, not only with customers: above this intensity a block's
# transactions are made in ceil(intensity / TX_INTENSITY_PER_CHUNK) chunks of its customers, each
# from its own random stream, so a block's lines in memory stay about those of intensity 20 (3.4M
# lines, 1.4 GB peak). At or below it there is one chunk and the data is what it always was.
TX_INTENSITY_PER_CHUNK = 20.0
GROUND_TRUTH = {"customer_id": pl.String(), "segment": pl.String(), "churn_month": pl.String()}

# Demographic codes; the same values segflow.lib.profiles.profiles accepts as valid.
GENDERS = ("F", "M", "X")
EDUCATION_LEVELS = ("basic", "secondary", "bachelor", "master", "phd")

CATEGORIES = ("grocery", "household", "beauty", "toys", "books_media", "fashion", "home_garden",
              "electronics")  # fmt: skip
CATEGORY_MEDIAN_PRICE = (4.0, 8.0, 14.0, 18.0, 12.0, 35.0, 70.0, 160.0)
PRODUCTS_PER_CATEGORY = 25
MAX_QUANTITY = 99  # keeps normal lines far below the x1000 outliers, so outliers stay identifiable

# Purchase seasonality by calendar month (Jan..Dec): a December peak, a quiet February.
SEASONALITY = (0.92, 0.88, 0.95, 0.97, 1.0, 0.98, 0.96, 0.98, 1.0, 1.04, 1.12, 1.25)
NEWSLETTER_DAYS = (1, 8, 15, 22)  # weekly newsletter, 09:00, to opted-in customers
SURVEY_SHARE = 0.15
SURVEY_ANSWER_PROB = 0.93  # respondents skip a question now and then
CAMPAIGN_REACH = 0.30
LAPSED_SESSION_FACTOR = 0.1
LAPSED_OPEN_FACTOR = 0.3
SIGNUP_HISTORY_DAYS = 3 * 365
HETEROGENEITY_SIGMA = 0.25  # per-customer lognormal spread around the segment mean
LOGIT_SIGMA = 0.3  # per-customer spread of email open/click propensities

# Random stream ids: the second element of every SeedSequence([seed, stream, month, block]),
# where month counts from config.start (0 for streams that do not change by month).
_STATIC, _CATALOG, _TX, _TX_DIRT, _ENGAGEMENT = range(1, 6)
_ENG_DIRT, _SURVEY, _CAMPAIGN_PLAN, _CAMPAIGN, _CRM_DIRT = range(6, 11)

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Luca",
    "Maria", "Noah", "Olga", "Pablo", "Queenie", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wim", "Xenia",
    "Yusuf", "Zoe", "Amelie", "Bruno", "Chloé", "Dmitri",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Müller", "Dubois", "Rossi", "García", "de Vries", "Nowak", "Jones", "Schmidt", "Martin",
    "Bianchi", "López", "Jansen", "Kowalski", "Brown", "Fischer", "Bernard", "Romano", "Martínez", "Bakker",
    "Taylor", "Weber", "Petit", "Ricci", "Sánchez", "Visser", "Wilson", "Meyer", "Moreau", "Conti",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
# (city, region, country, weight)
CITIES = (
    ("London", "England", "United Kingdom", 9), ("Manchester", "England", "United Kingdom", 3),
    ("Edinburgh", "Scotland", "United Kingdom", 2), ("Cardiff", "Wales", "United Kingdom", 1),
    ("Berlin", "Berlin", "Germany", 5), ("Munich", "Bavaria", "Germany", 3),
    ("Hamburg", "Hamburg", "Germany", 3), ("Cologne", "North Rhine-Westphalia", "Germany", 2),
    ("Paris", "Île-de-France", "France", 6),
    ("Lyon", "Auvergne-Rhône-Alpes", "France", 2), ("Marseille", "Provence-Alpes-Côte d'Azur", "France", 2),
    ("Amsterdam", "North Holland", "Netherlands", 3), ("Rotterdam", "South Holland", "Netherlands", 2),
    ("Madrid", "Community of Madrid", "Spain", 4), ("Barcelona", "Catalonia", "Spain", 3),
    ("Milan", "Lombardy", "Italy", 3), ("Rome", "Lazio", "Italy", 3),
)  # fmt: skip


@dataclass(frozen=True)
class SegmentProfile:
    """Behaviour of one planted segment; rates are segment means before customer heterogeneity."""

    share: float
    invoices_per_month: float
    extra_lines: float  # lines per invoice = 1 + Poisson(extra_lines * basket)
    extra_quantity: float  # quantity per line = 1 + Poisson(extra_quantity * basket)
    category_weights: tuple[float, ...]  # over CATEGORIES
    price_skew: float  # >1 picks the cheaper products of a category, <1 the dearer ones
    cancel_prob: float  # per invoice
    cancel_line_prob: float  # per line of a cancelled invoice
    channel_mix: tuple[float, float, float]  # over CHANNELS
    sessions_per_month: float
    pages_per_session: float
    open_rate: float
    click_rate: float  # clicks per open
    opt_in: float
    campaign_response: float
    survey_means: tuple[float, ...]  # over SURVEY_QUESTIONS
    age: float
    income: float  # median
    household: float
    education: tuple[float, ...]  # over EDUCATION_LEVELS
    churns: bool = False


SEGMENT_PROFILES: dict[str, SegmentProfile] = {
    "champions": SegmentProfile(
        share=0.15, invoices_per_month=2.5, extra_lines=0.8, extra_quantity=0.3,
        category_weights=(0.05, 0.05, 0.15, 0.05, 0.10, 0.30, 0.20, 0.10), price_skew=0.7,
        cancel_prob=0.03, cancel_line_prob=0.6, channel_mix=(0.30, 0.45, 0.25),
        sessions_per_month=5.0, pages_per_session=3.0, open_rate=0.55, click_rate=0.2, opt_in=0.85,
        campaign_response=0.07, survey_means=(2.2, 4.3, 3.3, 3.5, 3.8),
        age=45, income=78_000, household=2.6, education=(0.05, 0.25, 0.40, 0.25, 0.05),
    ),
    "bargain_hunters": SegmentProfile(
        share=0.25, invoices_per_month=4.5, extra_lines=0.8, extra_quantity=0.5,
        category_weights=(0.35, 0.30, 0.10, 0.10, 0.10, 0.05, 0.0, 0.0), price_skew=2.0,
        cancel_prob=0.04, cancel_line_prob=0.6, channel_mix=(0.75, 0.10, 0.15),
        sessions_per_month=6.0, pages_per_session=3.0, open_rate=0.3, click_rate=0.2, opt_in=0.75,
        campaign_response=0.05, survey_means=(4.5, 2.0, 2.5, 3.2, 3.0),
        age=36, income=34_000, household=3.2, education=(0.15, 0.45, 0.30, 0.08, 0.02),
    ),
    "big_occasional": SegmentProfile(
        share=0.15, invoices_per_month=0.3, extra_lines=2.0, extra_quantity=0.05,
        category_weights=(0.0, 0.0, 0.0, 0.0, 0.0, 0.10, 0.60, 0.30), price_skew=0.8,
        cancel_prob=0.4, cancel_line_prob=0.0, channel_mix=(0.12, 0.80, 0.08),
        sessions_per_month=1.0, pages_per_session=2.0, open_rate=0.12, click_rate=0.06, opt_in=0.6,
        campaign_response=0.03, survey_means=(2.5, 3.2, 3.0, 2.2, 2.6),
        age=55, income=92_000, household=2.4, education=(0.08, 0.30, 0.35, 0.22, 0.05),
    ),
    "digital_browsers": SegmentProfile(
        share=0.25, invoices_per_month=0.7, extra_lines=0.8, extra_quantity=0.1,
        category_weights=(0.02, 0.03, 0.15, 0.20, 0.35, 0.25, 0.0, 0.0), price_skew=1.0,
        cancel_prob=0.03, cancel_line_prob=0.5, channel_mix=(0.45, 0.05, 0.50),
        sessions_per_month=25.0, pages_per_session=4.0, open_rate=0.3, click_rate=0.45, opt_in=0.8,
        campaign_response=0.06, survey_means=(3.0, 2.8, 3.5, 4.5, 4.0),
        age=29, income=46_000, household=1.8, education=(0.03, 0.22, 0.45, 0.25, 0.05),
    ),
    "lapsing": SegmentProfile(
        share=0.20, invoices_per_month=1.0, extra_lines=1.0, extra_quantity=0.4,
        category_weights=(0.20, 0.20, 0.15, 0.15, 0.10, 0.20, 0.0, 0.0), price_skew=1.0,
        cancel_prob=0.03, cancel_line_prob=0.5, channel_mix=(0.60, 0.10, 0.30),
        sessions_per_month=6.0, pages_per_session=2.5, open_rate=0.4, click_rate=0.15, opt_in=0.65,
        campaign_response=0.04, survey_means=(3.2, 1.8, 3.0, 2.8, 3.0),
        age=41, income=41_000, household=2.5, education=(0.12, 0.43, 0.30, 0.12, 0.03), churns=True,
    ),
}  # fmt: skip
SEGMENTS: tuple[str, ...] = tuple(SEGMENT_PROFILES)


def _segment_array(attr: str) -> np.ndarray:
    return np.array([getattr(p, attr) for p in SEGMENT_PROFILES.values()], dtype=np.float64)


# Per-segment parameters as arrays, so that `param[segment_codes]` is one vectorised gather.
_SEG = {name: _segment_array(name) for name in (
    "share", "invoices_per_month", "extra_lines", "extra_quantity", "category_weights", "price_skew",
    "cancel_prob", "cancel_line_prob", "channel_mix", "sessions_per_month", "pages_per_session", "open_rate",
    "click_rate", "opt_in", "campaign_response", "survey_means", "age", "income", "household", "education",
    "churns")}  # fmt: skip


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


@dataclass(frozen=True)
class SynthConfig:
    customers: int = 5000
    months: int = 15
    start: str = "2024-01"  # first month, YYYY-MM
    seed: int = 42
    intensity: float = 1.0  # multiplies purchase rates
    dirt: DirtRates = field(default_factory=DirtRates)
    new_customer_rate: float = 0.01  # fraction of the initial base newly signing up each month
    campaign_lift_segment: str | None = "bargain_hunters"
    campaign_lift: float = 0.08  # absolute response-rate lift for treatment in that segment

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", self.start):
            raise ValueError(f"start {self.start!r} is not a month YYYY-MM")
        if self.customers < 1 or self.months < 1:
            raise ValueError("customers and months must be at least 1")
        if self.seed < 0:
            raise ValueError("seed must be non-negative")
        if not self.intensity > 0:
            raise ValueError("intensity must be positive")
        if self.campaign_lift_segment is not None and self.campaign_lift_segment not in SEGMENTS:
            raise ValueError(f"campaign_lift_segment must be one of {SEGMENTS} or None")
        rates = {"new_customer_rate": self.new_customer_rate, "campaign_lift": self.campaign_lift,
                 **{f"dirt.{k}": v for k, v in asdict(self.dirt).items()}}  # fmt: skip
        bad = [name for name, value in rates.items() if not 0.0 <= value <= 1.0]
        if bad:
            raise ValueError(f"rates must be within 0..1: {bad}")
        if self.campaign_lift + _SEG["campaign_response"].max() > 1:
            raise ValueError("campaign_lift too large: a response probability would exceed 1")


# ---------------------------------------------------------------------------------------------
# Calendar and random streams


US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


@dataclass(frozen=True)
class _Month:
    index: int  # 0-based from config.start
    period: str  # YYYY-MM
    start_us: int
    end_us: int  # exclusive

    @property
    def length_us(self) -> int:
        return self.end_us - self.start_us

    @property
    def yyyymm(self) -> int:
        return int(self.period.replace("-", ""))


def _months(config: SynthConfig) -> list[_Month]:
    year, month = int(config.start[:4]), int(config.start[5:])
    out = []
    for i in range(config.months):
        y, m = divmod(year * 12 + month - 1 + i, 12)
        start = np.datetime64(f"{y:04d}-{m + 1:02d}", "M")
        out.append(_Month(i, f"{y:04d}-{m + 1:02d}", int(start.astype("datetime64[us]").astype(np.int64)),
                          int((start + 1).astype("datetime64[us]").astype(np.int64))))  # fmt: skip
    return out


def _rng(
    config: SynthConfig, stream: int, month: int = 0, block: int = 0, chunk: int | None = None
) -> np.random.Generator:
    entropy = [config.seed, stream, month, block] + ([] if chunk is None else [chunk])
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _lognormal_multiplier(rng: np.random.Generator, size: int) -> np.ndarray:
    # Mean one, so the segment parameters stay the population means.
    return rng.lognormal(-(HETEROGENEITY_SIGMA**2) / 2, HETEROGENEITY_SIGMA, size)


def _pick(rng_u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Categorical draw per row from per-row weights (rows x k), via one uniform per row."""
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    return np.minimum((rng_u[:, None] > cum).sum(axis=1), weights.shape[1] - 1)


def _uniform_times(
    rng: np.random.Generator, start_us: np.ndarray, end_us: int, resolution_us: int = US_PER_SECOND
) -> np.ndarray:
    """Timestamps uniform in [start, end), in whole multiples of ``resolution_us``."""
    steps = (end_us - start_us) // resolution_us
    return start_us + (rng.random(len(start_us)) * steps).astype(np.int64) * resolution_us


# ---------------------------------------------------------------------------------------------
# Product catalogue and customers


@dataclass(frozen=True)
class _Catalog:
    product_ids: pl.Series
    categories: pl.Series  # per product
    prices: np.ndarray  # per product, ascending within each category


def _catalog(config: SynthConfig) -> _Catalog:
    rng = _rng(config, _CATALOG)
    prices = []
    for median in CATEGORY_MEDIAN_PRICE:
        raw = np.sort(median * rng.lognormal(0.0, 0.35, PRODUCTS_PER_CATEGORY))
        prices.append(np.maximum(np.round(raw) - 0.01, 0.49))  # shop prices end in .99
    n = len(CATEGORIES) * PRODUCTS_PER_CATEGORY
    return _Catalog(
        product_ids=pl.Series([f"P{i + 1:04d}" for i in range(n)], dtype=pl.String),
        categories=pl.Series(np.repeat(CATEGORIES, PRODUCTS_PER_CATEGORY).tolist(), dtype=pl.String),
        prices=np.concatenate(prices),
    )


@dataclass(frozen=True)
class _Population:
    """How many customers exist and when the newcomers sign up (index order = signup order)."""

    initial: int
    new_per_month: int
    months: int

    @property
    def total(self) -> int:
        return self.initial + self.new_per_month * self.months

    def present(self, month_index: int) -> int:
        """Customers signed up by the end of the month: always a prefix of the index range."""
        return self.initial + self.new_per_month * (month_index + 1)

    def blocks(self, count: int) -> range:
        return range(math.ceil(count / BLOCK_SIZE))


def _population(config: SynthConfig) -> _Population:
    return _Population(
        config.customers, int(round(config.new_customer_rate * config.customers)), config.months
    )


@dataclass(frozen=True)
class _Block:
    """Static attributes of the customers of one block (arrays aligned by position)."""

    index: np.ndarray  # global customer index
    ids: pl.Series
    segment: np.ndarray
    signup_us: np.ndarray
    signup_month: np.ndarray  # relative to config.start; negative for the initial base
    churn_month: np.ndarray  # last buying month (relative); a huge value for non-lapsing customers
    rate: np.ndarray
    basket: np.ndarray
    returns: np.ndarray
    sessions: np.ndarray
    open_p: np.ndarray
    click_p: np.ndarray
    channel_weights: np.ndarray  # rows x len(CHANNELS)
    opt_in: np.ndarray
    survey_month: np.ndarray  # relative; -1 for non-respondents
    demographics: dict[str, np.ndarray]
    missing: np.ndarray  # rows x 5 demographic cells nulled in the CRM

    def head(self, n: int) -> _Block:
        return self.rows(0, n)

    def rows(self, lo: int, hi: int) -> _Block:
        def cut(value):
            if isinstance(value, dict):
                return {k: v[lo:hi] for k, v in value.items()}
            return value[lo:hi] if isinstance(value, (np.ndarray, pl.Series)) else value

        return _Block(**{name: cut(getattr(self, name)) for name in self.__dataclass_fields__})


_CITY_WEIGHTS = np.array([c[3] for c in CITIES], dtype=np.float64) / sum(c[3] for c in CITIES)
DEMOGRAPHIC_COLUMNS = ("birth_year", "income", "gender", "education", "household_size")
NEVER_CHURNS = np.iinfo(np.int32).max


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _ids(index: np.ndarray, total: int) -> pl.Series:
    width = max(7, len(str(total)))
    digits = pl.Series("customer_id", index + 1, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return ("C" + digits).alias("customer_id")


def _signups(
    config: SynthConfig, pop: _Population, index: np.ndarray, u: np.ndarray, months: list[_Month]
) -> tuple[np.ndarray, np.ndarray]:
    """Signup timestamp (midnight) and signup month relative to start, from one uniform each."""
    start_day = months[0].start_us // US_PER_DAY
    initial = index < pop.initial
    days = start_day - SIGNUP_HISTORY_DAYS + (u * SIGNUP_HISTORY_DAYS).astype(np.int64)
    signup_month = np.full(len(index), -1, dtype=np.int64)
    if pop.new_per_month:
        month = np.clip((index - pop.initial) // pop.new_per_month, 0, len(months) - 1)
        starts = np.array([m.start_us for m in months]) // US_PER_DAY
        lengths = np.array([m.length_us for m in months]) // US_PER_DAY
        new_days = starts[month] + (u * lengths[month]).astype(np.int64)
        days = np.where(initial, days, new_days)
        signup_month = np.where(initial, signup_month, month)
    if initial.any():
        # Initial customers signed up before start: month index counted back from start.
        y, m = int(config.start[:4]), int(config.start[5:])
        day_months = (days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
                      - ((y - 1970) * 12 + m - 1))  # fmt: skip
        signup_month = np.where(initial, day_months, signup_month)
    return days * US_PER_DAY, signup_month


def _draw_traits(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Segment and behavioural heterogeneity around the segment's means."""
    segment = rng.choice(len(SEGMENTS), size=n, p=_SEG["share"] / _SEG["share"].sum()).astype(np.int64)
    rate, basket, returns, sessions = (_lognormal_multiplier(rng, n) for _ in range(4))
    open_noise, click_noise = LOGIT_SIGMA * rng.standard_normal((2, n))
    return {
        "segment": segment, "rate": rate, "basket": basket, "returns": returns, "sessions": sessions,
        "open_p": _logistic(_logit(_SEG["open_rate"][segment]) + open_noise),
        "click_p": _logistic(_logit(_SEG["click_rate"][segment]) + click_noise),
        "channel_weights": rng.gamma(12.0 * _SEG["channel_mix"][segment]),  # a Dirichlet around the mix
        "opt_in": rng.random(n) < _SEG["opt_in"][segment],
    }  # fmt: skip


def _draw_demographics(rng: np.random.Generator, traits: dict[str, np.ndarray], start_year: int
                       ) -> dict[str, np.ndarray]:  # fmt: skip
    segment, n = traits["segment"], len(traits["segment"])
    birth_year = np.round(rng.normal(start_year - _SEG["age"][segment], 11.0))
    return {
        "birth_year": np.clip(birth_year, start_year - 90, start_year - 18),
        "income": np.round(_SEG["income"][segment] * rng.lognormal(0.0, 0.35, n), -2),
        "gender": rng.choice(len(GENDERS), size=n, p=(0.49, 0.49, 0.02)),
        "education": _pick(rng.random(n), _SEG["education"][segment]),
        "household_size": np.minimum(1 + rng.poisson(_SEG["household"][segment] - 1.0), 8),
        "city": rng.choice(len(CITIES), size=n, p=_CITY_WEIGHTS),
        "first_name": rng.integers(0, len(FIRST_NAMES), n),
        "last_name": rng.integers(0, len(LAST_NAMES), n),
        "domain": rng.integers(0, len(EMAIL_DOMAINS), n),
        "preferred_channel": _pick(rng.random(n), traits["channel_weights"]),
    }  # fmt: skip


def _timeline(config: SynthConfig, pop: _Population, months: list[_Month], index: np.ndarray,
              segment: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Signup, churn and survey months from four uniforms per customer (rows of ``u``)."""
    signup_us, signup_month = _signups(config, pop, index, u[0], months)
    first_month = np.maximum(signup_month, 0)
    # Lapsing customers churn within half the history after they first appear.
    churn_at = first_month + (u[1] * max(1, config.months // 2)).astype(np.int64)
    survey_at = first_month + (u[2] * np.maximum(config.months - first_month, 1)).astype(np.int64)
    return {
        "signup_us": signup_us,
        "signup_month": signup_month,
        "churn_month": np.where(_SEG["churns"][segment] > 0, churn_at, NEVER_CHURNS),
        "survey_month": np.where(u[3] < SURVEY_SHARE, survey_at, -1),
    }


def _customer_block(config: SynthConfig, pop: _Population, block: int, months: list[_Month]) -> _Block:
    """Static attributes of one block. Every draw covers the whole block, so a customer's attributes
    do not depend on how many customers or months the config asks for."""
    rng = _rng(config, _STATIC, 0, block)
    traits = _draw_traits(rng, BLOCK_SIZE)
    timeline_u = rng.random((4, BLOCK_SIZE))
    demographics = _draw_demographics(rng, traits, int(config.start[:4]))
    missing = rng.random((BLOCK_SIZE, len(DEMOGRAPHIC_COLUMNS))) < config.dirt.missing_demographics
    size = max(0, min(BLOCK_SIZE, pop.total - block * BLOCK_SIZE))
    index = block * BLOCK_SIZE + np.arange(size, dtype=np.int64)
    timeline = _timeline(config, pop, months, index, traits["segment"][:size], timeline_u[:, :size])
    return _Block(
        index=index,
        ids=_ids(index, pop.total),
        **{k: v[:size] for k, v in traits.items()},
        **timeline,
        demographics={k: v[:size] for k, v in demographics.items()},
        missing=missing[:size],
    )


# ---------------------------------------------------------------------------------------------
# Transactions


@dataclass
class _Lines:
    invoice: np.ndarray  # invoice number (int64)
    cancel: np.ndarray  # bool: a "C" invoice
    customer: np.ndarray  # position in the block
    time_us: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    price: np.ndarray
    channel: np.ndarray
    customer_null: np.ndarray  # bool

    def take(self, idx: np.ndarray) -> _Lines:
        return _Lines(**{k: v[idx] for k, v in vars(self).items()})

    @staticmethod
    def concat(parts: list[_Lines]) -> _Lines:
        return _Lines(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])})


def _purchase_rates(config: SynthConfig, blk: _Block, month: _Month) -> np.ndarray:
    exposure = (month.end_us - np.maximum(blk.signup_us, month.start_us)) / month.length_us
    season = SEASONALITY[int(month.period[5:]) - 1]
    buying = month.index <= blk.churn_month
    return _SEG["invoices_per_month"][blk.segment] * blk.rate * config.intensity * season * exposure * buying


def _invoice_lines(
    rng: np.random.Generator,
    blk: _Block,
    month: _Month,
    catalog: _Catalog,
    n_inv: np.ndarray,
    block: int,
    numbered: int = 0,
) -> tuple[_Lines, np.ndarray]:
    """Purchase lines of the block's invoices (numbered after the ``numbered`` invoices of the
    block's earlier chunks); also returns each line's invoice position."""
    inv_cust = np.repeat(np.arange(len(n_inv)), n_inv)
    n_invoices = len(inv_cust)
    if numbered + n_invoices >= 10**7 or block >= 10**4:
        # Invoice numbers are YYYYMM, 4 block digits and 7 sequence digits.
        raise ValueError(
            "more than 10 million invoices in a block-month, or 10,000 blocks: out of invoice numbers"
        )
    seg = blk.segment[inv_cust]
    inv_time = _uniform_times(rng, np.maximum(blk.signup_us[inv_cust], month.start_us), month.end_us)
    inv_channel = _pick(rng.random(n_invoices), blk.channel_weights[inv_cust])
    inv_lines = 1 + rng.poisson(_SEG["extra_lines"][seg] * blk.basket[inv_cust])
    line_inv = np.repeat(np.arange(n_invoices), inv_lines)
    line_seg, line_cust = seg[line_inv], inv_cust[line_inv]
    category = np.empty(len(line_inv), dtype=np.int64)
    u = rng.random(len(line_inv))
    for s in range(len(SEGMENTS)):  # loop over five segments, not rows
        rows = line_seg == s
        cum = np.cumsum(_SEG["category_weights"][s])
        category[rows] = np.minimum(
            np.searchsorted(cum / cum[-1], u[rows], side="right"), len(CATEGORIES) - 1
        )
    within = (PRODUCTS_PER_CATEGORY * rng.random(len(line_inv)) ** _SEG["price_skew"][line_seg]).astype(
        np.int64
    )
    product = category * PRODUCTS_PER_CATEGORY + np.minimum(within, PRODUCTS_PER_CATEGORY - 1)
    # One line per product and invoice: a repeated product would make two identical rows, which
    # cleaning could not tell from an injected duplicate.
    _, first = np.unique(line_inv * len(catalog.prices) + product, return_index=True)
    keep = np.sort(first)
    line_inv, line_seg, line_cust, product = line_inv[keep], line_seg[keep], line_cust[keep], product[keep]
    quantity = np.minimum(
        1 + rng.poisson(_SEG["extra_quantity"][line_seg] * blk.basket[line_cust]), MAX_QUANTITY
    )
    number = month.yyyymm * 10**11 + block * 10**7 + 1 + numbered + np.arange(n_invoices, dtype=np.int64)
    lines = _Lines(
        invoice=number[line_inv], cancel=np.zeros(len(line_inv), dtype=bool), customer=line_cust,
        time_us=inv_time[line_inv], product=product, quantity=quantity.astype(np.int64),
        price=catalog.prices[product], channel=inv_channel[line_inv],
        customer_null=np.zeros(len(line_inv), dtype=bool),
    )  # fmt: skip
    return lines, line_inv


def _cancellations(
    rng: np.random.Generator, blk: _Block, month: _Month, lines: _Lines, line_inv: np.ndarray
) -> _Lines:
    """Cancellation lines ("C" invoices) for a segment-dependent share of invoices: a subset of the
    original lines (at least one), each with 1..bought units, 1-10 days later within the month."""
    n_invoices = int(line_inv[-1]) + 1 if len(line_inv) else 0
    first_line = np.searchsorted(line_inv, np.arange(n_invoices))
    n_lines = np.diff(np.append(first_line, len(line_inv)))
    inv_cust = lines.customer[first_line]
    seg = blk.segment[inv_cust]
    cancelled = rng.random(n_invoices) < np.minimum(_SEG["cancel_prob"][seg] * blk.returns[inv_cust], 0.9)
    include = (rng.random(len(line_inv)) < _SEG["cancel_line_prob"][blk.segment[lines.customer]]) & cancelled[
        line_inv
    ]
    forced = first_line + (rng.random(n_invoices) * n_lines).astype(np.int64)
    include[forced[cancelled]] = True
    delay_us = (
        (US_PER_DAY + (rng.random(n_invoices) * 9 * US_PER_DAY)).astype(np.int64)
        // US_PER_SECOND
        * US_PER_SECOND
    )
    returned = 1 + (rng.random(len(line_inv)) * lines.quantity).astype(np.int64)
    out = lines.take(np.flatnonzero(include))
    rows_inv = line_inv[include]
    out.cancel[:] = True
    out.quantity = -returned[include]
    out.time_us = np.minimum(out.time_us + delay_us[rows_inv], month.end_us - US_PER_SECOND)
    return out


def _transaction_dirt(
    rng: np.random.Generator, lines: _Lines, dirt: DirtRates
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


def _gather(values: pl.Series, idx: np.ndarray, name: str) -> pl.Series:
    return values.gather(idx).alias(name)


def _transactions_frame(lines: _Lines, blk: _Block, catalog: _Catalog) -> pl.DataFrame:
    number = pl.Series(lines.invoice).cast(pl.String)
    invoice = pl.select(pl.when(pl.Series(lines.cancel)).then("C" + number).otherwise(number)).to_series()
    # Gathering at a null position gives a null id, without a second pass over the strings.
    customer = pl.Series(np.ma.masked_array(lines.customer, lines.customer_null))
    return pl.DataFrame({
        "invoice_id": invoice,
        "customer_id": _gather(blk.ids, customer, "customer_id"),
        "invoiced_at": pl.Series(lines.time_us).cast(pl.Datetime("us")),
        "product_id": _gather(catalog.product_ids, lines.product, "product_id"),
        "category": _gather(catalog.categories, lines.product, "category"),
        "quantity": pl.Series(lines.quantity, dtype=pl.Int64),
        "unit_price": pl.Series(lines.price, dtype=pl.Float64),
        "channel": _gather(pl.Series(CHANNELS), lines.channel, "channel"),
    })  # fmt: skip


def _transaction_chunks(config: SynthConfig) -> int:
    return max(1, math.ceil(config.intensity / TX_INTENSITY_PER_CHUNK))


def _transactions(
    config: SynthConfig, blk: _Block, month: _Month, block: int, catalog: _Catalog
) -> Iterator[tuple[list[pl.DataFrame], dict[str, int]]]:
    """Per chunk of the block's customers: its purchase and cancellation lines, then the injected
    duplicates (two frames, so the lines are never copied just to append a few rows), and the
    dirt counts. One chunk, on the block's own streams, unless the intensity is high."""
    chunks = _transaction_chunks(config)
    size = math.ceil(len(blk.index) / chunks)
    numbered = 0
    for chunk in range(chunks):
        part = blk if chunks == 1 else blk.rows(chunk * size, (chunk + 1) * size)
        stream = None if chunks == 1 else chunk
        rng = _rng(config, _TX, month.index, block, stream)
        n_inv = rng.poisson(_purchase_rates(config, part, month))
        purchases, line_inv = _invoice_lines(rng, part, month, catalog, n_inv, block, numbered)
        numbered += int(n_inv.sum())
        lines = _Lines.concat([purchases, _cancellations(rng, part, month, purchases, line_inv)])
        del purchases, line_inv
        dirt_rng = _rng(config, _TX_DIRT, month.index, block, stream)
        duplicates, counts = _transaction_dirt(dirt_rng, lines, config.dirt)
        frames = [
            _transactions_frame(lines, part, catalog),
            _transactions_frame(lines.take(duplicates), part, catalog),
        ]
        del lines
        yield frames, counts
        del frames  # written by now: free it before the next chunk is made


# ---------------------------------------------------------------------------------------------
# Engagement, surveys, campaigns


def _lapsed(blk: _Block, month: _Month) -> np.ndarray:
    return month.index > blk.churn_month


def _web_events(rng: np.random.Generator, blk: _Block, month: _Month) -> tuple[np.ndarray, ...]:
    """Sessions, and page views a few seconds to minutes into their session."""
    active_start = np.maximum(blk.signup_us, month.start_us)
    exposure = (month.end_us - active_start) / month.length_us
    lam = _SEG["sessions_per_month"][blk.segment] * blk.sessions * exposure
    lam = np.where(_lapsed(blk, month), lam * LAPSED_SESSION_FACTOR, lam)
    sess_cust = np.repeat(np.arange(len(lam)), rng.poisson(lam))
    # Tracker timestamps have microseconds, so two events of a customer practically never coincide.
    sess_time = _uniform_times(rng, active_start[sess_cust], month.end_us, resolution_us=1)
    pages = 1 + rng.poisson(_SEG["pages_per_session"][blk.segment[sess_cust]] - 1.0)
    pv_sess = np.repeat(np.arange(len(sess_cust)), pages)
    position = np.arange(len(pv_sess)) - np.repeat(np.cumsum(pages) - pages, pages)
    gap_us = ((15 + rng.random(len(sess_cust)) * 75) * US_PER_SECOND).astype(np.int64)
    # Shrink the gaps of sessions near the month end so their page views stay inside the month.
    gap_us = np.minimum(gap_us, (month.end_us - 1 - sess_time) // (pages + 1))
    pv_time = sess_time[pv_sess] + (position + 1) * gap_us[pv_sess]
    return sess_cust, sess_time, sess_cust[pv_sess], pv_time


def _email_events(rng: np.random.Generator, blk: _Block, month: _Month) -> tuple[np.ndarray, ...]:
    """Newsletter sends to opted-in customers, opens within 5 days, clicks within a day of the open,
    so that no email event leaves its month."""
    send_times = month.start_us + np.array(
        [(d - 1) * US_PER_DAY + 9 * 3600 * US_PER_SECOND for d in NEWSLETTER_DAYS]
    )
    eligible = blk.opt_in[:, None] & (blk.signup_us[:, None] <= send_times[None, :])
    send_cust, send_slot = np.nonzero(eligible)
    send_time = send_times[send_slot]
    open_p = np.where(_lapsed(blk, month), blk.open_p * LAPSED_OPEN_FACTOR, blk.open_p)[send_cust]
    opened = rng.random(len(send_cust)) < open_p
    open_delay = np.minimum(rng.exponential(6 * 3600, len(send_cust)), 5 * 86_400).astype(np.int64)
    open_cust, open_time = send_cust[opened], (send_time + open_delay * US_PER_SECOND)[opened]
    clicked = rng.random(len(open_cust)) < blk.click_p[open_cust]
    click_delay = np.minimum(rng.exponential(300, len(open_cust)), 86_400).astype(np.int64)
    return (
        send_cust,
        send_time,
        open_cust,
        open_time,
        open_cust[clicked],
        (open_time + click_delay * US_PER_SECOND)[clicked],
    )


def _engagement(
    config: SynthConfig, blk: _Block, month: _Month, block: int
) -> tuple[list[pl.DataFrame], dict[str, int]]:
    rng = _rng(config, _ENGAGEMENT, month.index, block)
    web = _web_events(rng, blk, month)
    email = _email_events(rng, blk, month)
    pairs = [
        (web[0], web[1]),
        (web[2], web[3]),
        (email[0], email[1]),
        (email[2], email[3]),
        (email[4], email[5]),
    ]
    cust = np.concatenate([c for c, _ in pairs])
    time_us = np.concatenate([t for _, t in pairs])
    etype = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, (c, _) in enumerate(pairs)])
    dirt_rng = _rng(config, _ENG_DIRT, month.index, block)
    duplicate = np.flatnonzero(dirt_rng.random(len(cust)) < config.dirt.duplicate_rows)
    frames = [_events_frame(blk, cust, time_us, etype),
              _events_frame(blk, cust[duplicate], time_us[duplicate], etype[duplicate])]  # fmt: skip
    return frames, {"duplicate_rows": len(duplicate)}


def _events_frame(blk: _Block, cust: np.ndarray, time_us: np.ndarray, etype: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": _gather(blk.ids, cust, "customer_id"),
        "event_at": pl.Series(time_us).cast(pl.Datetime("us")),
        "event_type": _gather(pl.Series(ENGAGEMENT_EVENT_TYPES), etype, "event_type"),
    })  # fmt: skip


def _surveys(config: SynthConfig, blk: _Block, month: _Month, block: int) -> pl.DataFrame:
    rng = _rng(config, _SURVEY, month.index, block)
    resp = np.flatnonzero(blk.survey_month == month.index)
    answered_at = _uniform_times(rng, np.maximum(blk.signup_us[resp], month.start_us), month.end_us)
    means = _SEG["survey_means"][blk.segment[resp]]
    answers = np.clip(np.round(means + 0.9 * rng.standard_normal(means.shape)), 1, 5).astype(np.int32)
    answered = rng.random(means.shape) < SURVEY_ANSWER_PROB
    r, q = np.nonzero(answered)
    # One submission: questions a few seconds apart, never past the month end.
    times = np.minimum(answered_at[r] + 20 * q * US_PER_SECOND, month.end_us - US_PER_SECOND)
    return pl.DataFrame({
        "customer_id": _gather(blk.ids, resp[r], "customer_id"),
        "answered_at": pl.Series(times).cast(pl.Datetime("us")),
        "question_id": _gather(pl.Series(SURVEY_QUESTIONS), q, "question_id"),
        "answer": pl.Series(answers[r, q], dtype=pl.Int32),
    })  # fmt: skip


@dataclass(frozen=True)
class _Campaign:
    campaign_id: str
    time_us: int


def _campaign_plan(config: SynthConfig, month: _Month) -> list[_Campaign]:
    """One or two campaigns in the month, on random days between the 2nd and the 26th, 10:00."""
    rng = _rng(config, _CAMPAIGN_PLAN, month.index)
    count = 1 + int(rng.random() < 0.5)
    days = np.sort(rng.integers(1, 26, count))
    at_ten = month.start_us + 10 * 3600 * US_PER_SECOND
    return [
        _Campaign(f"CMP-{month.yyyymm}-{k + 1}", at_ten + int(d) * US_PER_DAY) for k, d in enumerate(days)
    ]


def _campaigns(
    config: SynthConfig, blk: _Block, month: _Month, block: int, plan: list[_Campaign]
) -> pl.DataFrame:
    rng = _rng(config, _CAMPAIGN, month.index, block)
    lift_code = SEGMENTS.index(config.campaign_lift_segment) if config.campaign_lift_segment else -1
    parts = []
    for campaign in plan:
        # Full-length draws per campaign, so a customer's draws do not depend on who else is eligible.
        picked, treat_u, respond_u, offset_u = rng.random((4, BLOCK_SIZE))[:, : len(blk.index)]
        exposed = np.flatnonzero(blk.opt_in & (blk.signup_us <= campaign.time_us) & (picked < CAMPAIGN_REACH))
        treated = treat_u[exposed] < 0.5
        seg = blk.segment[exposed]
        p = _SEG["campaign_response"][seg] + config.campaign_lift * (treated & (seg == lift_code))
        parts.append(pl.DataFrame({
            "campaign_id": pl.Series([campaign.campaign_id]).gather(np.zeros(len(exposed), dtype=np.int64)),
            "customer_id": _gather(blk.ids, exposed, "customer_id"),
            "arm": _gather(pl.Series(CAMPAIGN_ARMS), np.where(treated, 0, 1), "arm"),
            "exposed_at": pl.Series(campaign.time_us + (offset_u[exposed] * 4 * 3600).astype(np.int64)
                                    * US_PER_SECOND).cast(pl.Datetime("us")),
            "responded": pl.Series(respond_u[exposed] < p, dtype=pl.Boolean),
        }))  # fmt: skip
    return pl.concat(parts) if parts else pl.DataFrame(schema=CAMPAIGNS)


# ---------------------------------------------------------------------------------------------
# CRM snapshot and ground truth


def _null_where(values: pl.Series, mask: np.ndarray) -> pl.Series:
    return pl.select(pl.when(pl.Series(mask)).then(None).otherwise(values)).to_series().alias(values.name)


def _crm_frame(blk: _Block) -> pl.DataFrame:
    """The block's CRM rows in the canonical column order; attributes the generator does not
    draw (marital status, banded demographics) are empty columns, as in a CRM that lacks them."""
    frame = _crm_values(blk)
    return frame.select(
        pl.col(c) if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in CUSTOMERS.items()
    )


def _crm_values(blk: _Block) -> pl.DataFrame:
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


def _crm(
    config: SynthConfig, blk: _Block, month: _Month, block: int
) -> tuple[list[pl.DataFrame], dict[str, int]]:
    """The block's CRM rows with nulled ids, then exact duplicates of a few other rows."""
    frame = _crm_frame(blk)
    rng = _rng(config, _CRM_DIRT, month.index, block)
    null_id = rng.random(frame.height) < config.dirt.missing_customer_rows
    duplicate = (rng.random(frame.height) < config.dirt.duplicate_customers) & ~null_id
    frame = frame.with_columns(_null_where(frame["customer_id"], null_id))
    counts = {"missing_demographics": int(blk.missing.sum()), "missing_customer_rows": int(null_id.sum()),
              "duplicate_customers": int(duplicate.sum())}  # fmt: skip
    return [frame, frame[np.flatnonzero(duplicate)]], counts


def _ground_truth(blk: _Block, config: SynthConfig) -> pl.DataFrame:
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


# ---------------------------------------------------------------------------------------------
# Writers


def _arrow_schema(schema: dict[str, pl.DataType]) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


class _ParquetSink:
    """Streams blocks into one Parquet file in row groups of ROW_GROUP_ROWS, replaced atomically."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.schema = _arrow_schema(schema)
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", write_statistics=True)
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.buffer.append(frame.to_arrow().cast(self.schema))
        self.buffered += frame.height
        self.rows += frame.height
        if self.buffered >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.concat_tables(self.buffer)
        full = table.num_rows if final else table.num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS
        if full:
            self.writer.write_table(table.slice(0, full), row_group_size=ROW_GROUP_ROWS)
        rest = table.num_rows - full
        # Take copies the remainder, so that a slice does not keep the whole block's buffers alive.
        self.buffer = [table.take(np.arange(full, table.num_rows))] if rest else []
        self.buffered = rest

    def close(self) -> None:
        if self.buffer:
            self._flush(final=True)
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


class _CsvSink:
    """CSV with a header, appended block by block, replaced atomically."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in close/abort
        pl.DataFrame(schema=schema).write_csv(self.handle)
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        frame.write_csv(self.handle, include_header=False)
        self.rows += frame.height

    def close(self) -> None:
        self.handle.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


class _Sinks:
    """The five files of one month, under temporary names until the whole month is written."""

    def __init__(self, out: Path, period: str) -> None:
        self.sinks: dict[str, _ParquetSink | _CsvSink] = {}
        try:
            self.sinks["customers"] = _CsvSink(out / "crm_customers" / f"{period}.csv", CUSTOMERS)
            for source, schema in (("transactions", TRANSACTIONS), ("engagement", ENGAGEMENT),
                                   ("surveys", SURVEYS), ("campaigns", CAMPAIGNS)):  # fmt: skip
                self.sinks[source] = _ParquetSink(out / source / f"{period}.parquet", schema)
        except BaseException:
            self.abort()
            raise

    def __getitem__(self, source: str) -> _ParquetSink | _CsvSink:
        return self.sinks[source]

    def close(self) -> dict[str, int]:
        for sink in self.sinks.values():
            sink.close()
        return {source: sink.rows for source, sink in self.sinks.items()}

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Orchestration


SOURCE_DIRS = {"customers": "crm_customers", "transactions": "transactions", "engagement": "engagement",
               "surveys": "surveys", "campaigns": "campaigns"}  # fmt: skip


FILE_LAYOUT = {
    "customers": "crm_customers/{period}.csv",
    "transactions": "transactions/{period}.parquet",
    "engagement": "engagement/{period}.parquet",
    "surveys": "surveys/{period}.parquet",
    "campaigns": "campaigns/{period}.parquet",
    "ground_truth": "_ground_truth/segments.parquet",
}


def _block_outputs(
    config: SynthConfig, blk: _Block, month: _Month, block: int, catalog: _Catalog, plan: list[_Campaign]
) -> Iterator[tuple[str, list[pl.DataFrame], dict[str, int]]]:
    """One block's frames per source with their dirt counts, one source at a time to bound memory."""
    yield "customers", *_crm(config, blk, month, block)
    for frames, counts in _transactions(config, blk, month, block, catalog):
        yield "transactions", frames, counts
        del frames  # the next chunk is made on resumption; hold no copy of this one meanwhile
    yield "engagement", *_engagement(config, blk, month, block)
    yield "surveys", [_surveys(config, blk, month, block)], {}
    yield "campaigns", [_campaigns(config, blk, month, block, plan)], {}


def _generate_month(
    config: SynthConfig, out: Path, pop: _Population, months: list[_Month], month: _Month, catalog: _Catalog
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    present = pop.present(month.index)
    plan = _campaign_plan(config, month)
    dirt = {"customers": {}, "transactions": {}, "engagement": {}}
    sinks = _Sinks(out, month.period)
    try:
        for block in pop.blocks(present):
            blk = _customer_block(config, pop, block, months).head(present - block * BLOCK_SIZE)
            for source, frames, counts in _block_outputs(config, blk, month, block, catalog, plan):
                for frame in frames:
                    sinks[source].write(frame)
                for kind, count in counts.items():
                    dirt[source][kind] = dirt[source].get(kind, 0) + count
                del frames  # written: free it before the next source is generated
    except BaseException:
        sinks.abort()
        raise
    return sinks.close(), dirt


def _write_ground_truth(
    config: SynthConfig, out: Path, pop: _Population, months: list[_Month]
) -> dict[str, int]:
    sink = _ParquetSink(out / "_ground_truth" / "segments.parquet", GROUND_TRUTH)
    counts: dict[str, int] = dict.fromkeys(SEGMENTS, 0)
    try:
        for block in pop.blocks(pop.total):
            frame = _ground_truth(_customer_block(config, pop, block, months), config)
            sink.write(frame)
            for name, n in frame["segment"].value_counts().iter_rows():
                counts[name] += n
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return counts


def generate(
    out_dir: str | Path, config: SynthConfig = SynthConfig(), progress: Callable[[str], None] | None = None
) -> dict:
    """Write the landing zone; return the manifest dict (also written to out_dir/_manifest.json)."""
    out = Path(out_dir)
    for name in (*SOURCE_DIRS.values(), "_ground_truth"):
        (out / name).mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    pop = _population(config)
    months = _months(config)
    catalog = _catalog(config)
    row_counts: dict[str, dict[str, int]] = {source: {} for source in SOURCE_DIRS}
    injected: dict[str, dict[str, dict[str, int]]] = {}
    for month in months:
        rows, dirt = _generate_month(config, out, pop, months, month, catalog)
        for source, n in rows.items():
            row_counts[source][month.period] = n
        for source, kinds in dirt.items():
            for kind, n in kinds.items():
                injected.setdefault(source, {}).setdefault(kind, {})[month.period] = n
        say(
            f"{month.period}: {rows['customers']:,} CRM rows, {rows['transactions']:,} transaction lines, "
            f"{rows['engagement']:,} events, {rows['surveys']:,} survey answers, "
            f"{rows['campaigns']:,} exposures"
        )
    segment_counts = _write_ground_truth(config, out, pop, months)
    manifest = {
        "generator": "segflow.synth",
        "code_version": f"segflow {__version__} / synth {SYNTH_VERSION}",
        "config": asdict(config),
        "block_size": BLOCK_SIZE,
        "periods": [m.period for m in months],
        "customers_total": pop.total,
        "new_customers_per_month": pop.new_per_month,
        "segments": list(SEGMENTS),
        "segment_counts": segment_counts,
        "row_counts": row_counts,
        "injected_dirt": injected,
        "files": FILE_LAYOUT,
    }
    _write_json(out / "_manifest.json", manifest)
    say(f"wrote {len(months)} months for {pop.total:,} customers to {out}")
    return manifest
