"""The 'methods and definitions' section: every choice behind the numbers, in words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segflow.config import Settings
from segflow.lib.models.naming import NAME_HOLDS_Z

if TYPE_CHECKING:
    from segflow.lib.models.model_types import ChurnModel, SegmentationModel


def churn_text(settings: Settings, churn: ChurnModel | None) -> str:
    """How churn risk is defined and validated, with this month's figures, or why it is missing."""
    h = settings.model.churn_horizon_months
    definition = (
        f"probability of no purchase in the next {h} months (L2 logistic regression on recency, purchase "
        "rate, order value, returns, channel mix and engagement; labels from later months' feature tables "
        "only)"
    )
    if not churn or churn.metrics is None:
        reason = churn.reason if churn and churn.reason is not None else "no churn model for this month"
        return f"{definition}. Not available this month: {reason}."
    m, train, val = churn.metrics, churn.train, churn.validation
    validated = (
        f"{definition}. Fitted on the customers of {train['features_period']} labelled by "
        f"{train['labels_period']}{_counts(train)}; validated out of time on {val['features_period']} "
        f"labelled by {val['labels_period']} ({val['customers']:,} customers{_churners(val)}, churn rate "
        f"{val['churn_rate']:.1%}): AUC {m['auc']:.3f}{_ci(m, 'auc')} "
        f"against {m['baseline_auc']:.3f}{_ci(m, 'baseline_auc')} for a recency-only logistic baseline, "
        f"Brier score {m['brier']:.3f} (baseline {m['baseline_brier']:.3f}), top-decile lift "
        f"{_num(m['top_decile_lift'])} (baseline {_num(m['baseline_top_decile_lift'])})"
        f"{_calibration(churn.calibration)}."
    )
    guard = churn.guard or {"scorer": "model"}
    if not churn.available:
        return f"{validated} Not scored this month: {churn.reason if churn.reason is not None else guard.get('reason')}."
    if guard["scorer"] == "baseline":
        return f"{validated} Churn risk this month is the baseline's: {guard['reason']}. Version {churn.version}."
    return f"{validated} Model version {churn.version}."


def _churners(part: dict) -> str:
    return f", {part['churners']:,} churners" if "churners" in part else ""


def _counts(part: dict) -> str:
    return f" ({part['customers']:,} customers{_churners(part)})" if "customers" in part else ""


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ci(metrics: dict, name: str) -> str:
    if metrics.get(f"{name}_ci_low") is None:
        return ""
    return f" (95% CI {metrics[f'{name}_ci_low']:.3f}–{metrics[f'{name}_ci_high']:.3f})"


def _calibration(c: dict | None) -> str:
    if not c:
        return ""
    verdict = "consistent with the observed rates" if c["hosmer_lemeshow_p"] >= 0.05 else "miscalibrated"
    return (
        f"; calibration over risk deciles: mean |predicted − observed| {c['expected_calibration_error']:.3f}, "
        f"mean predicted minus observed {c['calibration_in_the_large']:+.3f}, Hosmer-Lemeshow p "
        f"{c['hosmer_lemeshow_p']:.3f} ({verdict})"
    )


def imputation_text(settings: Settings) -> str:
    """How missing demographics and survey answers are filled, as configured."""
    from segflow.lib.profiles.imputation import FIT_SAMPLE, fit_sample

    i = settings.imputation
    model = (
        f"KNNImputer (the mean of the {i.n_neighbors} nearest customers on standardised columns)"
        if i.method == "knn"
        else "IterativeImputer (each column regressed on the others)"
    )
    surveys = (
        "the unanswered questions of a partly answered survey by the same model, rounded and clipped to "
        "1..5 (customers who answered no question stay unanswered)"
        if i.surveys == "partial"
        else "survey answers are not imputed"
    )
    return (
        f"numeric demographics (birth year, income, household size) by {model}; gender and education by "
        f"a gradient-boosting classifier; {surveys}. The numeric model is fitted on a seeded sample of up to "
        f"{fit_sample(i):,} rows, the classifier on up to {FIT_SAMPLE:,}; "
        "every filled cell is flagged in a *_imputed column, and the rate per column is under Data quality."
    )


def methods_text(settings: Settings, model: SegmentationModel, churn: ChurnModel | None = None) -> dict[str, str]:
    f = settings.features
    r = settings.report
    design = model.design
    features = ", ".join(f"{x['name']} ({x['transform']})" for x in design.features)
    if design.feature_families:
        pca = design.pca
        features = (
            f"families {', '.join(design.feature_families)}: {features}; winsorised at the "
            f"{design.winsorize_quantile:.0%} tails, {design.scaling} scaling"
            + (f", PCA to {len(pca['components'])} components" if pca else "")
            + (
                f"; category shares (share) pooled to the weight of {design.category_mix_weight:g} feature"
                if design.category_mix_weight is not None
                else ""
            )
            + "".join(
                f"; {fam} not used: {why}" for fam, why in (design.unavailable_families or {}).items()
            )
        )
    if model.feature_set == "snapshot":
        return _snapshot_methods(settings, model, features, churn)
    return {
        "Window": f"{f.window_months} calendar months ending with the report's month; values as of the first "
        "day after it.",
        "Recency": "days from the last purchase date to the as-of date.",
        "Frequency": "distinct purchase invoices in the window"
        if f.frequency == "invoices"
        else "purchase invoices after the first, in the window",
        "Monetary": "net revenue in the window (purchases minus cancellations and returns)"
        if f.monetary == "sum"
        else "net revenue per purchase invoice in the window",
        "RFM scores": "quintiles, 5 best; ties broken by customer order (rank 'first'); FM = (F+M)/2 rounded "
        "half up; 11 named segments on the R × FM grid.",
        "Population": "customers with at least one purchase invoice in the window; customers with only "
        "cancellations or no purchase are not scored.",
        "Model": f"{model.family}, k in {model.settings['k_min']}..{model.settings['k_max']}, "
        f"n_init {model.settings['n_init']}, chosen k = {model.k} by the selection rule: "
        f"{selection_rule(model)}.",
        **_model_entries(settings, model, features, churn),
        "Population flows": "new = segmented this month but not last month; retained = segmented both "
        "months; lost = segmented last month, no purchase in this month's window (last month's segment).",
        "Campaign lift": "per segment and campaign, treatment vs control response rate; two-sided "
        "two-proportion z-test (pooled SE), 95% Wald CI of the difference; Holm-adjusted across the "
        f"month's tests at α = {r.alpha}; arms under {r.min_arm_size} exposed customers are not tested.",
        "Migration": "P(i → j) = customers in segment i last month and j this month, over customers in i "
        "last month.",
        "Drift": f"PSI against the previous month on its {r.psi_bins} quantile bins per numeric feature "
        "(tenure, active months and quintile scores excluded: they move by construction), and on segment "
        "shares (cluster shares only between segments aligned to the same id last month); < 0.1 stable, "
        "0.1–0.25 moderate, > 0.25 major. The model is refit every month, so drift is a reason to review "
        "the segments, not to refit.",
        "Click-to-open rate": "e-mail clicks over e-mail opens in the window (not over e-mails sent); the "
        "open rate is opens over e-mails sent.",
        "Backtest": f"segments of month T−{r.backtest_horizon_months} scored on net revenue and purchases "
        "in the following months up to T; Kruskal-Wallis test across segments.",
    }


def selection_rule(model: SegmentationModel) -> str:
    """The rule as stored with the model (``segflow.lib.models.selection.rule_text``): the report's
    model-selection footnote prints the same words."""
    return model.selection_rule or "not recorded with this model"


def _snapshot_methods(
    settings: Settings, model: SegmentationModel, features: str, churn: ChurnModel | None
) -> dict[str, str]:
    """Methods of the snapshot feature set: behaviour from a per-customer snapshot, and demographics."""
    f = settings.features
    c = settings.cleaning
    return {
        "Feature set": "snapshot: per-customer behaviour totals from a CRM export and demographics; no "
        "transaction line items, so no RFM (no quintile scores, no named RFM segments).",
        "Window": f"the snapshot's own: totals cover {f.snapshot_months} months before the snapshot; rates "
        "are per month of it. Only the report's month is read (a snapshot is cumulative).",
        "Recency": "days since the last purchase, as reported by the snapshot.",
        "Frequency": "purchases in the snapshot window (all channels); purchases per month in the model.",
        "Monetary": "spend in the snapshot window; spend per purchase (basket size) in the model.",
        "Population": "every customer whose snapshot row was accepted by cleaning.",
        "Demographics": "age in the report's year from the birth year; income and children. Impossible "
        f"values (an age under {c.min_age_years} or over {c.max_age_years or 'the year 1900 allows'}; "
        f"incomes above {c.max_income:,.0f}; unknown "
        "marital statuses) are recoded to null with a reason (see Data quality); birth year and income "
        "are then imputed by a model and flagged.",
        "Near duplicates": "records identical in every column but the customer id are "
        + (
            "quarantined, keeping the first (see Data quality)"
            if c.near_duplicates == "quarantine"
            else "kept"
        ),
        "Model": f"{model.family}, k in {model.settings['k_min']}..{model.settings['k_max']}, "
        f"chosen k = {model.k} by the selection rule: {selection_rule(model)}.",
        **_model_entries(settings, model, features, churn),
        "Drift": "PSI against the previous month's snapshot, when there is one.",
    }


def _model_entries(
    settings: Settings, model: SegmentationModel, features: str, churn: ChurnModel | None
) -> dict[str, str]:
    """Features, seed, versions, churn and privacy: worded the same in every feature set."""
    dropped = model.design.dropped_constant_features
    return {
        "Features": features + (f"; constant, so dropped: {', '.join(dropped)}" if dropped else ""),
        "Imputation": imputation_text(settings),
        "Seed": f"{model.seed} (model fit, samples and imputation).",
        "Model version": model.version,
        "Churn risk": churn_text(settings, churn),
        "Segment names": "from the two features that set a segment apart most (z-score of its mean). A "
        "segment matched to last month's keeps its id and its name while both named features still lie on "
        f"the same side of the average by at least {NAME_HOLDS_Z} standard deviations; otherwise it is renamed "
        "and the rename, with its reason, is listed under Stability.",
        "Money": f"every amount is in {settings.report.currency} (setting report.currency).",
        "Privacy": "no names, e-mails or customer ids; cells with fewer than "
        f"{settings.report.min_cell_customers} customers are suppressed.",
    }
