"""Engagement events of one block-month: web sessions and page views, newsletter sends, opens
and clicks, then exact duplicates of a few of them.

Lapsed customers (past their churn month) still visit and open newsletters, at reduced rates: a
churned customer fades from engagement rather than vanishing from it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segflow.lib.schema import ENGAGEMENT_EVENT_TYPES
from segflow.synth.config import SynthConfig
from segflow.synth.customers import Block
from segflow.synth.dirt import duplicate_rows
from segflow.synth.segments import SEG
from segflow.synth.streams import US_PER_DAY, US_PER_SECOND, Month, Stream, gather, stream, uniform_times

NEWSLETTER_DAYS = (1, 8, 15, 22)  # weekly newsletter, 09:00, to opted-in customers
LAPSED_SESSION_FACTOR = 0.1
LAPSED_OPEN_FACTOR = 0.3


def _lapsed(blk: Block, month: Month) -> np.ndarray:
    return month.index > blk.churn_month


def _web_events(rng: np.random.Generator, blk: Block, month: Month) -> tuple[np.ndarray, ...]:
    """Sessions, and page views a few seconds to minutes into their session."""
    active_start = np.maximum(blk.signup_us, month.start_us)
    exposure = (month.end_us - active_start) / month.length_us
    lam = SEG["sessions_per_month"][blk.segment] * blk.sessions * exposure
    lam = np.where(_lapsed(blk, month), lam * LAPSED_SESSION_FACTOR, lam)
    sess_cust = np.repeat(np.arange(len(lam)), rng.poisson(lam))
    # Tracker timestamps have microseconds, so two events of a customer practically never coincide.
    sess_time = uniform_times(rng, active_start[sess_cust], month.end_us, resolution_us=1)
    pages = 1 + rng.poisson(SEG["pages_per_session"][blk.segment[sess_cust]] - 1.0)
    pv_sess = np.repeat(np.arange(len(sess_cust)), pages)
    position = np.arange(len(pv_sess)) - np.repeat(np.cumsum(pages) - pages, pages)
    gap_us = ((15 + rng.random(len(sess_cust)) * 75) * US_PER_SECOND).astype(np.int64)
    # Shrink the gaps of sessions near the month end so their page views stay inside the month.
    gap_us = np.minimum(gap_us, (month.end_us - 1 - sess_time) // (pages + 1))
    pv_time = sess_time[pv_sess] + (position + 1) * gap_us[pv_sess]
    return sess_cust, sess_time, sess_cust[pv_sess], pv_time


def _email_events(rng: np.random.Generator, blk: Block, month: Month) -> tuple[np.ndarray, ...]:
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


def engagement_frames(
    config: SynthConfig, blk: Block, month: Month, block: int
) -> tuple[list[pl.DataFrame], dict[str, int]]:
    rng = stream(config, Stream.ENGAGEMENT, month.index, block)
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
    dirt_rng = stream(config, Stream.ENG_DIRT, month.index, block)
    duplicate = duplicate_rows(dirt_rng, len(cust), config.dirt)
    frames = [_events_frame(blk, cust, time_us, etype),
              _events_frame(blk, cust[duplicate], time_us[duplicate], etype[duplicate])]  # fmt: skip
    return frames, {"duplicate_rows": len(duplicate)}


def _events_frame(blk: Block, cust: np.ndarray, time_us: np.ndarray, etype: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": gather(blk.ids, cust, "customer_id"),
        "event_at": pl.Series(time_us).cast(pl.Datetime("us")),
        "event_type": gather(pl.Series(ENGAGEMENT_EVENT_TYPES), etype, "event_type"),
    })  # fmt: skip
