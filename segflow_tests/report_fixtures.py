"""Report inputs built from lib functions on synthetic aggregates (fast; no pipeline run)."""

from __future__ import annotations

import numpy as np
import polars as pl

from segflow.lib.audit.backtest import backtest
from segflow.lib.audit.drift import feature_drift
from segflow.lib.audit.kpis import segment_kpis
from segflow.lib.audit.lift import campaign_lift
from segflow.lib.audit.migration import migration_matrix
from segflow.lib.models.model_types import SegmentationModel
from segflow.lib.profiles.imputation import imputation_rates
from segflow.lib.report import ReportInputs, segment_profile_z
from segflow.lib.report.inputs import PROFILE_FEATURES

TINY = "Tiny hidden segment"
NAMES = ("Big spenders", "Bargain hunters", "Browsers", "Lapsing", TINY)


def _month(seed: int, n: int, shift: float = 0.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    segment = np.minimum(rng.choice(4, n, p=[0.2, 0.3, 0.3, 0.2]), 3)
    segment[:5] = 4  # a segment of 5 customers, below k = 10
    ids = [f"C{i:06d}" for i in range(n)]
    revenue = rng.lognormal(4 + segment % 3, 0.6, n) * (1 + shift)
    features = pl.DataFrame(
        {
            "customer_id": ids,
            **{f: rng.gamma(2 + segment, 1.0 + shift, n) for f in PROFILE_FEATURES},
            # rates are shares: the report shows them as percentages
            "email_open_rate": rng.beta(2 + segment, 6, n),
            "return_rate": rng.beta(1, 12, n),
            "email_click_rate": rng.beta(2, 6, n),
            "gross_revenue_window": revenue * 1.05,
            "returns_value_window": revenue * 0.05,
        }
    )
    assignments = pl.DataFrame(
        {
            "customer_id": ids,
            "segment_id": segment.astype(np.int64),
            "segment_name": [NAMES[s] for s in segment],
            "net_revenue_window": revenue,
            "invoices_window": rng.integers(1, 20, n),
            "recency_days": rng.integers(1, 365, n),
            "rfm_segment": [("Champions", "Loyal", "At Risk", "Lost", "Recent")[s] for s in segment],
        }
    )
    return features, assignments


def report_inputs(period: str = "2024-03", n: int = 3000, min_cell: int = 10) -> ReportInputs:
    history = {}
    months = ("2024-01", "2024-02", period)
    frames = {m: _month(i, n, shift=0.6 * (m == period)) for i, m in enumerate(months)}
    for i, m in enumerate(months[:-1]):
        history[m] = segment_kpis(frames[m][1], frames[m][0], frames[months[i - 1]][1] if i else None)
    features, assignments = frames[period]
    prev_features, prev_assignments = frames[months[-2]]
    rng = np.random.default_rng(9)
    exposed = assignments.sample(1500, seed=3)
    arm = rng.random(exposed.height) < 0.5
    p = np.where(arm & (exposed["segment_id"].to_numpy() == 1), 0.25, 0.05)
    campaigns = pl.DataFrame(
        {
            "campaign_id": "CMP-1",
            "customer_id": exposed["customer_id"],
            "arm": np.where(arm, "treatment", "control"),
            "responded": rng.random(exposed.height) < p,
        }
    )
    # A second campaign sent to everyone it reached: no control arm, so nothing to compare with.
    everyone = assignments.sample(600, seed=4)
    campaigns = pl.concat([campaigns, pl.DataFrame({
        "campaign_id": "CMP-2", "customer_id": everyone["customer_id"], "arm": "treatment",
        "responded": rng.random(everyone.height) < 0.1,
    })])  # fmt: skip
    profiles = {
        m: pl.DataFrame(
            {
                "customer_id": assignments["customer_id"],
                "n_invoices": rng.poisson(1 + assignments["segment_id"].to_numpy()),
                "net_revenue": rng.gamma(2, 10 + 20 * assignments["segment_id"].to_numpy()),
            }
        )
        for m in ("2024-02", period)
    }
    # Imputation flags of the month: 150 incomes (5%), 4 birth years (under k), no survey answer.
    flagged = pl.int_range(n, eager=True)
    imputed = pl.DataFrame(
        {
            "birth_year_imputed": flagged < 4,
            "income_imputed": flagged % 20 == 7,
            "survey_brand_loyalty_imputed": flagged < 0,
        }
    )
    # A typed model needs every field: those the report never reads are placeholders.
    placeholders = {"params": {}, "period": period, "centroids": [], "segment_names": {}, "segment_shares": [],
                    "min_segment_share": 0.05, "n_customers": n, "settings": {}, "features": [],
                    "feature_families": [], "missing_feature_columns": [], "dropped_constant_features": [],
                    "fill_values": {}, "winsorize_quantile": 0.01, "clip_lower": [], "clip_upper": [],
                    "scaling": "standard", "scaler_mean": [], "scaler_scale": []}  # fmt: skip
    model = SegmentationModel.from_dict({
        **placeholders,
        "family": "kmeans",
        "version": "abc123",
        "k": 5,
        "min_segment_share_threshold": 0.02,
        "seed": 42,
        "sweep": [
            {
                "k": k,
                "silhouette": 0.2 + 0.03 * k,
                "calinski_harabasz": 900.0 + k,
                "davies_bouldin": 1.1,
                "min_segment_share": 0.05,
            }
            for k in range(2, 6)
        ],
        "personas": {
            "0": "High-value loyal customers who buy often.",
            "1": {"description": "Price-driven shoppers."},
        },
        "stability": 0.86,
        "segment_jaccard": [0.93, 0.88, 0.71, 0.45, 0.9],
        "ari_refits": 0.91,
        "min_stability_threshold": 0.75,
        "alignment": {
            "previous_period": "2024-02",
            "matched": {str(i): {"previous_id": i, "distance": 0.1 * (i + 1)} for i in range(4)},
            "new": [4],
            "vanished": [],
        },
        "segment_renames": [{"segment_id": 2, "previous_id": 2, "previous_name": "Window shoppers",
                             "name": "Browsers", "reason": "sessions_per_month no longer clearly lower"}],
        "segment_named_since": {"0": "2024-01", "1": "2024-01", "3": "2024-02"},
    })  # fmt: skip
    return ReportInputs(
        period=period,
        kpis=segment_kpis(assignments, features, prev_assignments, campaigns),
        profile_z=segment_profile_z(features, assignments),
        sweep=model.sweep,
        rfm_counts=assignments.group_by("rfm_segment").len("customers").sort("rfm_segment"),
        model=model,
        methods={"Window": "12 months", "Seed": "42"},
        quality={
            "accounting": {},
            "quarantine_by_rule": [{"source": "transactions", "rule_id": "negative_price", "rows": 3}],
            "checks": [
                {
                    "asset": "customer_profiles",
                    "passed": 2,
                    "warned": 1,
                    "failed": 0,
                    "missing": 0,
                    "failing": "x",
                }
            ],
            "imputation": imputation_rates(imputed).to_dicts(),
            "trend": {
                "2024-01": {"transactions": 1.0},
                "2024-02": {"transactions": 1.2},
                period: {"transactions": 0.9},
            },
        },
        min_cell=min_cell,
        kpi_history=history,
        lift=campaign_lift(campaigns, assignments, min_arm_size=50),
        migration=pl.concat([migration_matrix(prev_assignments, assignments, k) for k in ("cluster", "rfm")]),
        drift=feature_drift(prev_features, features, prev_assignments, assignments),
        backtest=backtest(prev_assignments, profiles, "2024-01", 2),
        previous_period="2024-02",
    )
