"""The planted population: five customer segments and the parameters each behaves by.

Every table below has one column per segment, in ``SEGMENTS`` order, so a parameter is named once
and the segments can be compared side by side. Rates are segment means, before the per-customer
heterogeneity that ``customers`` draws around them. ``SEG`` holds each parameter as a numpy array
indexed by segment code (vectors as segments x values), so that ``SEG[name][codes]`` is one
vectorised gather.
"""

from __future__ import annotations

import numpy as np

from segflow.lib.schema import CHANNELS, EDUCATION_LEVELS, SURVEY_QUESTIONS

SEGMENTS = ("champions", "bargain_hunters", "big_occasional", "digital_browsers", "lapsing")

CATEGORIES = ("grocery", "household", "beauty", "toys", "books_media", "fashion", "home_garden",
              "electronics")  # fmt: skip

# fmt: off
# One value per segment, in SEGMENTS order (champions, bargain_hunters, big_occasional,
# digital_browsers, lapsing):
#                           champ    bargain  big_occ  digital  lapsing
_SCALARS = {
    "share":               (0.15,    0.25,    0.15,    0.25,    0.20),
    "invoices_per_month":  (2.5,     4.5,     0.3,     0.7,     1.0),
    "extra_lines":         (0.8,     0.8,     2.0,     0.8,     1.0),   # lines per invoice = 1 + Poisson(extra_lines * basket)
    "extra_quantity":      (0.3,     0.5,     0.05,    0.1,     0.4),   # quantity per line = 1 + Poisson(extra_quantity * basket)
    "price_skew":          (0.7,     2.0,     0.8,     1.0,     1.0),   # >1 picks the cheaper products of a category, <1 the dearer ones
    "cancel_prob":         (0.03,    0.04,    0.4,     0.03,    0.03),  # per invoice
    "cancel_line_prob":    (0.6,     0.6,     0.0,     0.5,     0.5),   # per line of a cancelled invoice
    "sessions_per_month":  (5.0,     6.0,     1.0,     25.0,    6.0),
    "pages_per_session":   (3.0,     3.0,     2.0,     4.0,     2.5),
    "open_rate":           (0.55,    0.3,     0.12,    0.3,     0.4),
    "click_rate":          (0.2,     0.2,     0.06,    0.45,    0.15),  # clicks per open
    "opt_in":              (0.85,    0.75,    0.6,     0.8,     0.65),
    "campaign_response":   (0.07,    0.05,    0.03,    0.06,    0.04),
    "age":                 (45,      36,      55,      29,      41),
    "income":              (78_000,  34_000,  92_000,  46_000,  41_000),  # median
    "household":           (2.6,     3.2,     2.4,     1.8,     2.5),
    "churns":              (False,   False,   False,   False,   True),  # lapsing customers stop buying
}

_VECTOR_KEYS = {
    "category_weights": CATEGORIES,
    "channel_mix": CHANNELS,
    "survey_means": SURVEY_QUESTIONS,
    "education": EDUCATION_LEVELS,
}  # the codes each vector parameter ranges over
# One weight or mean per segment, one row per (vector parameter, value it ranges over; the values
# are those of _VECTOR_KEYS, in order). Survey means are on the answers' 1..5 scale.
#                                          champ    bargain  big_occ  digital  lapsing
_VECTORS = {
    ("category_weights", "grocery"):       (0.05,    0.35,    0.0,     0.02,    0.20),
    ("category_weights", "household"):     (0.05,    0.30,    0.0,     0.03,    0.20),
    ("category_weights", "beauty"):        (0.15,    0.10,    0.0,     0.15,    0.15),
    ("category_weights", "toys"):          (0.05,    0.10,    0.0,     0.20,    0.15),
    ("category_weights", "books_media"):   (0.10,    0.10,    0.0,     0.35,    0.10),
    ("category_weights", "fashion"):       (0.30,    0.05,    0.10,    0.25,    0.20),
    ("category_weights", "home_garden"):   (0.20,    0.0,     0.60,    0.0,     0.0),
    ("category_weights", "electronics"):   (0.10,    0.0,     0.30,    0.0,     0.0),
    ("channel_mix", "web"):                (0.30,    0.75,    0.12,    0.45,    0.60),
    ("channel_mix", "store"):              (0.45,    0.10,    0.80,    0.05,    0.10),
    ("channel_mix", "app"):                (0.25,    0.15,    0.08,    0.50,    0.30),
    ("survey_means", "price_sensitivity"): (2.2,     4.5,     2.5,     3.0,     3.2),
    ("survey_means", "brand_loyalty"):     (4.3,     2.0,     3.2,     2.8,     1.8),
    ("survey_means", "eco_conscious"):     (3.3,     2.5,     3.0,     3.5,     3.0),
    ("survey_means", "tech_savvy"):        (3.5,     3.2,     2.2,     4.5,     2.8),
    ("survey_means", "convenience"):       (3.8,     3.0,     2.6,     4.0,     3.0),
    ("education", "basic"):                (0.05,    0.15,    0.08,    0.03,    0.12),
    ("education", "secondary"):            (0.25,    0.45,    0.30,    0.22,    0.43),
    ("education", "bachelor"):             (0.40,    0.30,    0.35,    0.45,    0.30),
    ("education", "master"):               (0.25,    0.08,    0.22,    0.25,    0.12),
    ("education", "phd"):                  (0.05,    0.02,    0.05,    0.05,    0.03),
}
# fmt: on


def _vector(name: str) -> np.ndarray:
    """Segments x values, in the order of the codes the vector ranges over."""
    rows = {value: row for (parameter, value), row in _VECTORS.items() if parameter == name}
    if tuple(rows) != _VECTOR_KEYS[name]:
        raise ValueError(f"{name} rows must be {_VECTOR_KEYS[name]}")
    return np.ascontiguousarray(np.array(list(rows.values()), dtype=np.float64).T)


SEG: dict[str, np.ndarray] = {
    **{name: np.array(values, dtype=np.float64) for name, values in _SCALARS.items()},
    **{name: _vector(name) for name in _VECTOR_KEYS},
}
