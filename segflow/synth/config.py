"""What to generate: ``SynthConfig``, validated when it is made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from segflow.lib.periods import is_period
from segflow.synth.dirt import DirtRates
from segflow.synth.segments import SEG, SEGMENTS


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
        if not is_period(self.start):
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
        if self.campaign_lift + SEG["campaign_response"].max() > 1:
            raise ValueError("campaign_lift too large: a response probability would exceed 1")
