"""Synthetic multi-source landing zone with planted customer segments, dirt and a campaign effect.

``generate`` writes one file per source and month (CRM snapshot as CSV; transactions, engagement,
surveys and campaign exposures as Parquet), the planted truth under ``_ground_truth/`` and a
manifest. Five segments (``SEGMENTS``) behave differently enough that k-means on trailing-12-month
features recovers them, with per-customer lognormal heterogeneity so it is not trivial.

Scale: customers are processed in fixed blocks of ``streams.BLOCK_SIZE``, month by month, fully
vectorised with numpy, and appended to streaming writers, so memory is bounded by one block's rows
whatever the number of customers (and, above intensity 20, by one chunk of a block's line items:
see ``transactions.TX_INTENSITY_PER_CHUNK``). 100M line items in a month is 1.5M customers at
intensity 20. Every random stream is ``SeedSequence([seed, stream, month, block])``; customer
attributes come from their block's own static stream and are regenerated each month instead of
being kept. The output depends on the config only: same config, same bytes.

The modules, in the order the data is made:

- ``segments``: the five planted segments and their parameters;
- ``config``: ``SynthConfig``; ``dirt``: ``DirtRates`` and the draws that plant dirt;
- ``streams``: months, seeded random streams and shared vectorised draws;
- ``customers``: the population and one block's static attributes; ``crm``: their CRM rows and truth;
- ``transactions``, ``engagement``, ``surveys``, ``campaigns``: one block-month of each source;
- ``writers``: the atomic streaming sinks and the file layout; ``landing``: ``generate`` itself;
- ``grocery``: a separate, small multi-table grocery export (``python -m segflow.synth.grocery``).
"""

from segflow.lib.schema import EDUCATION_LEVELS, GENDERS
from segflow.synth.config import SynthConfig
from segflow.synth.crm import GROUND_TRUTH
from segflow.synth.dirt import DirtRates
from segflow.synth.landing import generate
from segflow.synth.segments import SEGMENTS

__all__ = ["EDUCATION_LEVELS", "GENDERS", "GROUND_TRUTH", "SEGMENTS", "DirtRates", "SynthConfig", "generate"]
