"""Calendar and random streams: the months generated, and the seeded stream every draw comes from.

Every random stream is ``SeedSequence([seed, stream, month, block])`` (plus a chunk for chunked
transactions), so any block of any month can be made alone and the output depends on the config
only. Also the small vectorised draws and gathers the source modules share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from segflow.synth.config import SynthConfig

BLOCK_SIZE = 50_000  # customers per block; part of the random-stream layout, so changing it changes the data
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


class Stream:
    """Random stream ids: the second element of every SeedSequence([seed, stream, month, block]),
    where month counts from config.start (0 for streams that do not change by month)."""

    STATIC, CATALOG, TX, TX_DIRT, ENGAGEMENT = range(1, 6)
    ENG_DIRT, SURVEY, CAMPAIGN_PLAN, CAMPAIGN, CRM_DIRT = range(6, 11)


@dataclass(frozen=True)
class Month:
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


def calendar(config: SynthConfig) -> list[Month]:
    """The generated months, from config.start."""
    year, month = int(config.start[:4]), int(config.start[5:])
    out = []
    for i in range(config.months):
        y, m = divmod(year * 12 + month - 1 + i, 12)
        start = np.datetime64(f"{y:04d}-{m + 1:02d}", "M")
        out.append(Month(i, f"{y:04d}-{m + 1:02d}", int(start.astype("datetime64[us]").astype(np.int64)),
                         int((start + 1).astype("datetime64[us]").astype(np.int64))))  # fmt: skip
    return out


def stream(
    config: SynthConfig, stream_id: int, month: int = 0, block: int = 0, chunk: int | None = None
) -> np.random.Generator:
    entropy = [config.seed, stream_id, month, block] + ([] if chunk is None else [chunk])
    return np.random.default_rng(np.random.SeedSequence(entropy))


def pick(rng_u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Categorical draw per row from per-row weights (rows x k), via one uniform per row."""
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    return np.minimum((rng_u[:, None] > cum).sum(axis=1), weights.shape[1] - 1)


def uniform_times(
    rng: np.random.Generator, start_us: np.ndarray, end_us: int, resolution_us: int = US_PER_SECOND
) -> np.ndarray:
    """Timestamps uniform in [start, end), in whole multiples of ``resolution_us``."""
    steps = (end_us - start_us) // resolution_us
    return start_us + (rng.random(len(start_us)) * steps).astype(np.int64) * resolution_us


def gather(values: pl.Series, idx: np.ndarray, name: str) -> pl.Series:
    return values.gather(idx).alias(name)
