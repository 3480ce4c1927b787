"""The fitted segmentation and churn models, stored as plain parameters (JSON), never as pickles."""

from collections.abc import Iterator
from typing import Optional

import dagster as dg
import polars as pl

from segflow.defs.lineage import OWNERS, lineage, lineage_output, table_metadata
from segflow.defs.models.checks import model_gate_specs, segment_sizes_viable, segments_stable
from segflow.defs.partitions import (
    PREVIOUS_MONTH,
    churn_history,
    clv_history,
    monthly_partitions,
    months,
    out_of_time_anchor,
    out_of_time_outcomes,
)
from segflow.defs.policies import AUTOMATION
from segflow.defs.resources import SegflowSettings
from segflow.defs.scope import settings_in_scope
from segflow.lib.models.churn import churn_periods, churn_scores, fit_churn_model
from segflow.lib.models.clustering import assign, fit_segments, publish_segments
from segflow.lib.models.clv import ClvModel, fit_clv_model, withheld
from segflow.lib.models.model_types import ChurnModel, SegmentationFit, SegmentationModel
from segflow.lib.models.out_of_time import build_evidence, evidence_periods


def previous_partition(loaded: object) -> object:
    """The single previous-month object, whether the IO manager hands it bare or keyed by partition."""
    if loaded is None:
        return None
    if isinstance(loaded, dict):  # models are typed values, so a dict is keyed by partition
        values = [v for _, v in sorted(loaded.items()) if v is not None]
        return values[-1] if values else None
    return loaded


# Shared by every model asset: stored as JSON parameters by the model IO manager.
_MODEL = {
    "io_manager_key": "model_io_manager",
    "group_name": "models",
    "kinds": {"scikitlearn", "json"},
    "owners": OWNERS,
    "automation_condition": AUTOMATION,
}


def _sweep_table(rows: list[dict]) -> dg.TableMetadataValue:
    return table_metadata(
        pl.DataFrame([{**{k: v for k, v in r.items() if k != "segment_jaccard"}, "params": str(r["params"])}
                      for r in rows])
    )  # fmt: skip


def segmentation_fit(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    customer_features: dict[str, pl.LazyFrame],
    outcome_profiles: dict[str, pl.LazyFrame],
) -> dg.Output[SegmentationFit]:
    """Four candidate families (k-means, Ward, HDBSCAN, Gaussian mixture), each swept; every candidate
    scored by sampled validity indices, the gap statistic, bootstrap stability and out-of-time value
    separation (how much of the revenue and purchases of months T-h..T-1 its segments of the
    customers of T-h-1 explain); the winner chosen by the documented rule in
    ``segflow.lib.models.selection``, its segments numbered by value. Reads only the month's features and
    months before it, so months fit in parallel; ``segmentation_model`` then aligns the ids to last
    month's. Seeded; the sweep table, sampling, out-of-time evidence and seed are recorded.
    """
    period = context.partition_key
    if customer_features.get(period) is None:
        raise dg.Failure(f"segmentation_fit {period}: the month's customer_features are not built.")
    # The windows are contiguous (and Dagster takes one input per upstream asset); of their months,
    # only T's features, the out-of-time anchor T-h-1 and the outcome months T-h..T-1 are read.
    anchor, outcomes = evidence_periods(period, settings.report.backtest_horizon_months)
    history = {m: f.collect() for m, f in customer_features.items() if m == anchor and f is not None}
    later = {m: f.collect() for m, f in (outcome_profiles or {}).items() if m in outcomes and f is not None}
    customer_features = customer_features[period].collect()
    if customer_features.height < settings.model.k_max * 2:
        raise dg.Failure(
            f"segmentation_fit {context.partition_key}: only {customer_features.height} customers with a "
            f"purchase in the window; at least {settings.model.k_max * 2} are needed to sweep k up to "
            f"{settings.model.k_max}."
        )
    evidence = build_evidence(
        period,
        settings.report.backtest_horizon_months,
        history,
        later,
        settings.feature_set,
    )
    fit = fit_segments(
        customer_features, settings.model, context.partition_key, settings.feature_set, evidence
    )
    winner = fit.winner
    return lineage_output(
        context,
        fit,
        rows_in={"customer_features": customer_features.height},
        rows_out=customer_features.height,
        family=winner["family"],
        chosen_k=fit.k,
        seed=settings.model.seed,
        sweep=_sweep_table(fit.sweep),
        sampling=dg.MetadataValue.json(fit.sampling),
        out_of_time=dg.MetadataValue.json(fit.out_of_time),
    )


def segmentation_model(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    segmentation_fit: SegmentationFit,
    customer_features: pl.DataFrame,
    previous_model: Optional[SegmentationModel],  # noqa: UP045 - Dagster resolves typing.Optional
) -> Iterator:
    """The month's published segmentation: the fit of ``segmentation_fit`` with its segment ids aligned
    to last month's model by Hungarian matching, each segment named and described as a persona, and a
    version. A light step, run in month order. The winner, sweep, alignment and names are recorded.
    Write-audit-publish: the blocking gates (``segment_sizes_viable``, ``segments_stable``) are evaluated
    before the model is stored, and a model failing either is never stored, so the month's previous
    model stays published.
    """
    previous = previous_partition(previous_model)
    model = publish_segments(segmentation_fit, customer_features, settings.model, previous)
    gates = [segment_sizes_viable(model), segments_stable(model)]
    failed = [gate for gate in gates if not gate.passed]
    if failed:
        yield from gates  # recorded as the checks' evaluations, with the shares and thresholds
        raise dg.Failure(
            description=f"segmentation_model {context.partition_key} not published: "
            + "; ".join(f"{gate.check_name}: {gate.description}" for gate in failed),
            metadata={"failing_rules": ", ".join(gate.check_name for gate in failed)},
        )
    yield _model_output(context, settings, model, customer_features)
    yield from gates


def _model_output(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    model: SegmentationModel,
    customer_features: pl.DataFrame,
) -> dg.Output[SegmentationModel]:
    return dg.Output(
        model,
        metadata=lineage(
            context,
            rows_in={"segmentation_fit": 1, "customer_features": customer_features.height},
            rows_out=model.n_customers,
            model_version=model.version,
            family=model.family,
            chosen_k=model.k,
            seed=model.seed,
            min_segment_share=model.min_segment_share,
            stability=model.stability,
            sweep=_sweep_table(model.sweep),
            sampling=dg.MetadataValue.json(model.sampling),
            alignment=dg.MetadataValue.json(model.alignment),
            segment_names=dg.MetadataValue.md(_names_table(model)),
            feature_set=settings.feature_set,
            model_features=dg.MetadataValue.json([f["name"] for f in model.features]),
            feature_families=dg.MetadataValue.json(
                {"declared": model.design.feature_families, "unavailable": model.design.unavailable_families or {}}
            ),
        ),
    )


def _names_table(model: SegmentationModel) -> str:
    """The segments' names as a Markdown table: since when each holds, and this month's renames."""
    since = model.segment_named_since
    renames = {str(c["segment_id"]): c for c in model.segment_renames}
    rows = [
        f"| {i} | {name} | {since.get(i, '')} | "
        + (f"renamed from “{renames[i]['previous_name']}”: {renames[i]['reason']}" if i in renames else "")
        + " |"
        for i, name in sorted(model.segment_names.items(), key=lambda kv: int(kv[0]))
    ]
    return "\n".join(["| id | name | named in | change |", "|---:|---|---|---|", *rows])


def churn_model(
    context: dg.AssetExecutionContext, settings: SegflowSettings, customer_features: dict[str, pl.LazyFrame]
) -> dg.Output[ChurnModel]:
    """Churn risk: the probability that a customer makes no purchase in the next h months
    (``model.churn_horizon_months``). An L2 logistic regression on the customer features, fitted on
    month T-2h with labels read from T-h, validated out of time on T-h with labels read from T against
    a recency-only logistic baseline (AUC, Brier score, reliability by decile, top-decile lift), then
    applied to the customers of T by ``segment_assignments``. With too little history (a month
    missing, or fewer than ``model.churn_min_customers`` labelled customers) it stores the reason
    instead, and churn risk stays null. Guarded (``segflow.lib.models.churn_guard``): with fewer than
    ``model.churn_min_churners`` churners churn risk is withheld, and a model that does not beat its
    baseline's validation AUC is replaced by the baseline; the churner counts, bootstrap AUC
    intervals and a calibration check are recorded. Stored as JSON parameters, never a pickle.
    """
    period = context.partition_key
    months = churn_periods(period, settings.model.churn_horizon_months)
    # Only the three months the model uses are read; the months between are in the mapping because
    # a time-window mapping is contiguous.
    needed = {months.train, months.validation, months.score}
    loaded = sorted((customer_features or {}).items())
    frames = {m: f.collect() for m, f in loaded if m in needed and f is not None}
    model = fit_churn_model(frames, period, settings.model, settings.features.window_months)
    rows_in = {m: f.height for m, f in frames.items()}
    if not model.available:
        context.log.warning(f"churn_model {period}: no model: {model.reason}")
        validated = {
            "churners": dg.MetadataValue.json({"train": model.train["churners"],
                                               "validation": model.validation["churners"]}),
            **{f"validation_{name}": value for name, value in model.metrics.items()},
        } if model.metrics is not None else {}  # fmt: skip
        return dg.Output(
            model,
            metadata=lineage(
                context, rows_in=rows_in, rows_out=0, available=False, reason=model.reason,
                horizon_months=model.horizon_months, **validated,
            ),
        )  # fmt: skip
    if model.guard["scorer"] != "model":
        context.log.warning(f"churn_model {period}: {model.guard['reason']}")
    scores = churn_scores(frames[period], model)["churn_risk"]
    reliability = pl.DataFrame(model.reliability).join(
        pl.DataFrame(model.baseline_reliability).select(
            "decile", pl.col("mean_predicted").alias("baseline_mean_predicted"),
            pl.col("observed_rate").alias("baseline_observed_rate"),
        ),
        on="decile",
    )  # fmt: skip
    coefficients = pl.DataFrame(
        {"feature": [f["name"] for f in model.design], "coefficient": model.coefficients}
    ).sort(pl.col("coefficient").abs(), descending=True)
    return dg.Output(
        model,
        metadata=lineage(
            context,
            rows_in=rows_in,
            rows_out=scores.len(),
            available=True,
            model_version=model.version,
            horizon_months=model.horizon_months,
            seed=model.seed,
            train=dg.MetadataValue.json(model.train),
            validation=dg.MetadataValue.json(model.validation),
            scored_by=model.guard["scorer"],
            guard=model.guard["reason"],
            calibration=dg.MetadataValue.json(model.calibration),
            # validation_auc, validation_brier, validation_top_decile_lift and the baseline's, out of time
            **{f"validation_{name}": value for name, value in model.metrics.items()},
            reliability=table_metadata(reliability),
            coefficients=table_metadata(coefficients),
            scored_customers=scores.len(),
            mean_churn_risk=float(scores.mean()),
        ),
    )


def clv_model(
    context: dg.AssetExecutionContext,
    settings: SegflowSettings,
    customer_profiles: dict[str, pl.LazyFrame],
    validation_features: Optional[pl.DataFrame],  # noqa: UP045 - Dagster resolves typing.Optional
    validation_model: Optional[SegmentationModel],  # noqa: UP045
) -> dg.Output[ClvModel]:
    """Predicted customer value: BG/NBD (repeat purchases and dropout) and Gamma-Gamma (spend per
    purchase), fitted by maximum likelihood on the BTYD summary (repeat purchase days, recency, age,
    mean value) as of the end of T-h from the monthly profiles (h = ``model.clv_horizon_months``),
    validated out of time on (T-h, T] against the naive baseline "each customer repeats their past
    rate", in total, per decile and per segment of T-h, then applied by ``segment_assignments`` to
    the summary as of T. Withheld, with the reason, when a fit does not converge, the model loses to
    the baseline, or the history is too short. Stored as JSON parameters, never a pickle.
    """
    period = context.partition_key
    if settings.feature_set == "snapshot":
        model = withheld(period, settings.model, "no transaction line items, so no purchase dates to model")
    else:
        features = previous_partition(validation_features)
        segmentation = previous_partition(validation_model)
        segments = assign(features, segmentation) if features is not None and segmentation is not None else None
        model = fit_clv_model(customer_profiles or {}, period, settings.model, segments)
    facts = {"available": model.available, "horizon_months": model.horizon_months,
             "discount_rate_monthly": model.discount_rate, "model_version": model.version}  # fmt: skip
    if model.fit:
        facts["fit"] = dg.MetadataValue.json(model.fit)
    if model.validation:
        totals = model.validation["totals"]
        facts["validation_totals"] = dg.MetadataValue.json(totals)
        facts["validation_deciles"] = table_metadata(pl.DataFrame(model.validation["deciles"]))
    if not model.available:
        context.log.warning(f"clv_model {period}: withheld: {model.reason}")
        facts["reason"] = model.reason
    return dg.Output(
        model,
        metadata=lineage(
            context,
            rows_in={"customer_profiles": len(customer_profiles or {})},
            rows_out=model.fit.get("customers", 0) if model.available else 0,
            **facts,
        ),
    )


def _clv_ins(settings) -> dict[str, dg.AssetIn]:
    """The profiles of the whole history the BTYD summary reads, and the features and segmentation
    of T-h, whose segments the validation is broken down by; months never built are skipped."""
    h = settings.model.clv_horizon_months
    missing_ok = {"allow_missing_partitions": True}
    return {
        "customer_profiles": dg.AssetIn(partition_mapping=clv_history(settings), metadata=missing_ok),
        "validation_features": dg.AssetIn(key="customer_features", partition_mapping=months(-h, -h),
                                          metadata=missing_ok),
        "validation_model": dg.AssetIn(key="segmentation_model", partition_mapping=months(-h, -h),
                                       metadata=missing_ok),
    }  # fmt: skip


@dg.definitions
def model_defs() -> dg.Definitions:
    settings = settings_in_scope()
    model = {**_MODEL, "partitions_def": monthly_partitions(settings)}
    previous = dg.AssetIn(
        key="segmentation_model",
        partition_mapping=PREVIOUS_MONTH,
        metadata={"allow_missing_partitions": True},
    )
    history = dg.AssetIn(
        partition_mapping=churn_history(settings), metadata={"allow_missing_partitions": True}
    )
    # The month's features, and the months before T that the out-of-time criterion reads (the first
    # months have none).
    out_of_time = {
        "customer_features": dg.AssetIn(
            partition_mapping=out_of_time_anchor(settings), metadata={"allow_missing_partitions": True}
        ),
        "outcome_profiles": dg.AssetIn(
            key="customer_profiles",
            partition_mapping=out_of_time_outcomes(settings),
            metadata={"allow_missing_partitions": True},
        ),
    }
    return dg.Definitions(
        assets=[
            dg.asset(**model, code_version="2", ins=out_of_time)(segmentation_fit),
            dg.asset(
                **model, code_version="3", ins={"previous_model": previous}, check_specs=model_gate_specs()
            )(segmentation_model),
            dg.asset(**model, code_version="1", ins={"customer_features": history})(churn_model),
            dg.asset(**{**model, "kinds": {"scipy", "json"}}, code_version="1", ins=_clv_ins(settings))(
                clv_model
            ),
        ]
    )
