"""Campaign exposures of one block-month: the month's campaigns (one or two, the same for every
block), who of the opted-in customers each reached, their arm and whether they responded.

Treatment raises the response of ``config.campaign_lift_segment`` only, by ``config.campaign_lift``,
so the audit's lift estimate has a planted answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from segflow.lib.schema import CAMPAIGN_ARMS, CAMPAIGNS
from segflow.synth.config import SynthConfig
from segflow.synth.customers import Block
from segflow.synth.segments import SEG, SEGMENTS
from segflow.synth.streams import BLOCK_SIZE, US_PER_DAY, US_PER_SECOND, Month, Stream, gather, stream

CAMPAIGN_REACH = 0.30


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    time_us: int


def campaign_plan(config: SynthConfig, month: Month) -> list[Campaign]:
    """One or two campaigns in the month, on random days between the 2nd and the 26th, 10:00."""
    rng = stream(config, Stream.CAMPAIGN_PLAN, month.index)
    count = 1 + int(rng.random() < 0.5)
    days = np.sort(rng.integers(1, 26, count))
    at_ten = month.start_us + 10 * 3600 * US_PER_SECOND
    return [Campaign(f"CMP-{month.yyyymm}-{k + 1}", at_ten + int(d) * US_PER_DAY) for k, d in enumerate(days)]


def campaign_frame(
    config: SynthConfig, blk: Block, month: Month, block: int, plan: list[Campaign]
) -> pl.DataFrame:
    rng = stream(config, Stream.CAMPAIGN, month.index, block)
    lift_code = SEGMENTS.index(config.campaign_lift_segment) if config.campaign_lift_segment else -1
    parts = []
    for campaign in plan:
        # Full-length draws per campaign, so a customer's draws do not depend on who else is eligible.
        picked, treat_u, respond_u, offset_u = rng.random((4, BLOCK_SIZE))[:, : len(blk.index)]
        exposed = np.flatnonzero(blk.opt_in & (blk.signup_us <= campaign.time_us) & (picked < CAMPAIGN_REACH))
        treated = treat_u[exposed] < 0.5
        seg = blk.segment[exposed]
        p = SEG["campaign_response"][seg] + config.campaign_lift * (treated & (seg == lift_code))
        parts.append(pl.DataFrame({
            "campaign_id": pl.Series([campaign.campaign_id]).gather(np.zeros(len(exposed), dtype=np.int64)),
            "customer_id": gather(blk.ids, exposed, "customer_id"),
            "arm": gather(pl.Series(CAMPAIGN_ARMS), np.where(treated, 0, 1), "arm"),
            "exposed_at": pl.Series(campaign.time_us + (offset_u[exposed] * 4 * 3600).astype(np.int64)
                                    * US_PER_SECOND).cast(pl.Datetime("us")),
            "responded": pl.Series(respond_u[exposed] < p, dtype=pl.Boolean),
        }))  # fmt: skip
    return pl.concat(parts) if parts else pl.DataFrame(schema=CAMPAIGNS)
