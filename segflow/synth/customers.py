"""The customers: how many exist each month, and the static attributes of one block of them.

A customer's segment, behavioural multipliers, demographics, signup, churn and survey month come
from its block's own static stream, drawn for the whole block at once, so they do not depend on
how many customers or months the config asks for. Blocks are regenerated each month rather than
kept, which bounds memory by one block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from segflow.lib.schema import GENDERS
from segflow.synth.config import SynthConfig
from segflow.synth.segments import SEG, SEGMENTS
from segflow.synth.streams import BLOCK_SIZE, US_PER_DAY, Month, Stream, pick, stream

SURVEY_SHARE = 0.15
SIGNUP_HISTORY_DAYS = 3 * 365
HETEROGENEITY_SIGMA = 0.25  # per-customer lognormal spread around the segment mean
LOGIT_SIGMA = 0.3  # per-customer spread of email open/click propensities
NEVER_CHURNS = np.iinfo(np.int32).max
DEMOGRAPHIC_COLUMNS = ("birth_year", "income", "gender", "education", "household_size")

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
_CITY_WEIGHTS = np.array([c[3] for c in CITIES], dtype=np.float64) / sum(c[3] for c in CITIES)


@dataclass(frozen=True)
class Population:
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


def population(config: SynthConfig) -> Population:
    return Population(
        config.customers, int(round(config.new_customer_rate * config.customers)), config.months
    )


@dataclass(frozen=True)
class Block:
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

    def head(self, n: int) -> Block:
        return self.rows(0, n)

    def rows(self, lo: int, hi: int) -> Block:
        def cut(value):
            if isinstance(value, dict):
                return {k: v[lo:hi] for k, v in value.items()}
            return value[lo:hi] if isinstance(value, (np.ndarray, pl.Series)) else value

        return Block(**{name: cut(getattr(self, name)) for name in self.__dataclass_fields__})


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _lognormal_multiplier(rng: np.random.Generator, size: int) -> np.ndarray:
    # Mean one, so the segment parameters stay the population means.
    return rng.lognormal(-(HETEROGENEITY_SIGMA**2) / 2, HETEROGENEITY_SIGMA, size)


def _ids(index: np.ndarray, total: int) -> pl.Series:
    width = max(7, len(str(total)))
    digits = pl.Series("customer_id", index + 1, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return ("C" + digits).alias("customer_id")


def _signups(
    config: SynthConfig, pop: Population, index: np.ndarray, u: np.ndarray, months: list[Month]
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
    segment = rng.choice(len(SEGMENTS), size=n, p=SEG["share"] / SEG["share"].sum()).astype(np.int64)
    rate, basket, returns, sessions = (_lognormal_multiplier(rng, n) for _ in range(4))
    open_noise, click_noise = LOGIT_SIGMA * rng.standard_normal((2, n))
    return {
        "segment": segment, "rate": rate, "basket": basket, "returns": returns, "sessions": sessions,
        "open_p": _logistic(_logit(SEG["open_rate"][segment]) + open_noise),
        "click_p": _logistic(_logit(SEG["click_rate"][segment]) + click_noise),
        "channel_weights": rng.gamma(12.0 * SEG["channel_mix"][segment]),  # a Dirichlet around the mix
        "opt_in": rng.random(n) < SEG["opt_in"][segment],
    }  # fmt: skip


def _draw_demographics(rng: np.random.Generator, traits: dict[str, np.ndarray], start_year: int
                       ) -> dict[str, np.ndarray]:  # fmt: skip
    segment, n = traits["segment"], len(traits["segment"])
    birth_year = np.round(rng.normal(start_year - SEG["age"][segment], 11.0))
    return {
        "birth_year": np.clip(birth_year, start_year - 90, start_year - 18),
        "income": np.round(SEG["income"][segment] * rng.lognormal(0.0, 0.35, n), -2),
        "gender": rng.choice(len(GENDERS), size=n, p=(0.49, 0.49, 0.02)),
        "education": pick(rng.random(n), SEG["education"][segment]),
        "household_size": np.minimum(1 + rng.poisson(SEG["household"][segment] - 1.0), 8),
        "city": rng.choice(len(CITIES), size=n, p=_CITY_WEIGHTS),
        "first_name": rng.integers(0, len(FIRST_NAMES), n),
        "last_name": rng.integers(0, len(LAST_NAMES), n),
        "domain": rng.integers(0, len(EMAIL_DOMAINS), n),
        "preferred_channel": pick(rng.random(n), traits["channel_weights"]),
    }  # fmt: skip


def _timeline(config: SynthConfig, pop: Population, months: list[Month], index: np.ndarray,
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
        "churn_month": np.where(SEG["churns"][segment] > 0, churn_at, NEVER_CHURNS),
        "survey_month": np.where(u[3] < SURVEY_SHARE, survey_at, -1),
    }


def customer_block(config: SynthConfig, pop: Population, block: int, months: list[Month]) -> Block:
    """Static attributes of one block. Every draw covers the whole block, so a customer's attributes
    do not depend on how many customers or months the config asks for."""
    rng = stream(config, Stream.STATIC, 0, block)
    traits = _draw_traits(rng, BLOCK_SIZE)
    timeline_u = rng.random((4, BLOCK_SIZE))
    demographics = _draw_demographics(rng, traits, int(config.start[:4]))
    missing = rng.random((BLOCK_SIZE, len(DEMOGRAPHIC_COLUMNS))) < config.dirt.missing_demographics
    size = max(0, min(BLOCK_SIZE, pop.total - block * BLOCK_SIZE))
    index = block * BLOCK_SIZE + np.arange(size, dtype=np.int64)
    timeline = _timeline(config, pop, months, index, traits["segment"][:size], timeline_u[:, :size])
    return Block(
        index=index,
        ids=_ids(index, pop.total),
        **{k: v[:size] for k, v in traits.items()},
        **timeline,
        demographics={k: v[:size] for k, v in demographics.items()},
        missing=missing[:size],
    )
