"""Survey answers of one block-month: the customers whose survey month it is answer the five
questions around their segment's means, skipping one now and then."""

from __future__ import annotations

import numpy as np
import polars as pl

from segflow.lib.schema import SURVEY_QUESTIONS
from segflow.synth.config import SynthConfig
from segflow.synth.customers import Block
from segflow.synth.segments import SEG
from segflow.synth.streams import US_PER_SECOND, Month, Stream, gather, stream, uniform_times

SURVEY_ANSWER_PROB = 0.93  # respondents skip a question now and then


def survey_frame(config: SynthConfig, blk: Block, month: Month, block: int) -> pl.DataFrame:
    rng = stream(config, Stream.SURVEY, month.index, block)
    resp = np.flatnonzero(blk.survey_month == month.index)
    answered_at = uniform_times(rng, np.maximum(blk.signup_us[resp], month.start_us), month.end_us)
    means = SEG["survey_means"][blk.segment[resp]]
    answers = np.clip(np.round(means + 0.9 * rng.standard_normal(means.shape)), 1, 5).astype(np.int32)
    answered = rng.random(means.shape) < SURVEY_ANSWER_PROB
    r, q = np.nonzero(answered)
    # One submission: questions a few seconds apart, never past the month end.
    times = np.minimum(answered_at[r] + 20 * q * US_PER_SECOND, month.end_us - US_PER_SECOND)
    return pl.DataFrame({
        "customer_id": gather(blk.ids, resp[r], "customer_id"),
        "answered_at": pl.Series(times).cast(pl.Datetime("us")),
        "question_id": gather(pl.Series(SURVEY_QUESTIONS), q, "question_id"),
        "answer": pl.Series(answers[r, q], dtype=pl.Int32),
    })  # fmt: skip
