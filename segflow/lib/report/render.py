"""Build the HTML report from aggregate tables only; customer-level data never reaches it.

Every table handed in is already aggregated per segment (or per feature, rule, campaign). The
privacy rule is applied here once more, at the last step: any cell that describes fewer than
``min_cell`` customers is shown as "<k" or left out, and a segment smaller than ``min_cell`` is
not named anywhere (tables, charts, summary, index record).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jinja2
import polars as pl

from segflow.lib.audit.drift import MAJOR, MODERATE
from segflow.lib.audit.migration import LOST, NEW, stay_rate
from segflow.lib.models.alignment import aligned_ids
from segflow.lib.models.model_types import SegmentationModel
from segflow.lib.report import charts
from segflow.lib.report.selection import selection_section
from segflow.lib.report.value import value_section

if TYPE_CHECKING:
    from segflow.lib.models.clv import ClvModel

PROFILE_FEATURES = (
    "recency_days",
    "invoices_per_month",
    "avg_order_value",
    "monetary",
    "return_rate",
    "digital_share",
    "sessions_per_month",
    "email_open_rate",
)


@dataclass(frozen=True)
class ReportInputs:
    period: str
    kpis: pl.DataFrame  # segment_kpis output for the period
    profile_z: pl.DataFrame  # segment_id, segment_name, customers, one z column per profile feature
    sweep: list[dict]
    rfm_counts: pl.DataFrame  # rfm_segment, customers
    model: SegmentationModel
    methods: dict[str, str]
    quality: dict = field(default_factory=dict)  # accounting, quarantine_by_rule, checks, trend
    min_cell: int = 10
    kpi_history: dict[str, pl.DataFrame] = field(default_factory=dict)  # period -> kpis, earlier months
    lift: pl.DataFrame | None = None  # campaign_lift output
    migration: pl.DataFrame | None = None  # migration_matrix outputs (kinds cluster and rfm)
    drift: pl.DataFrame | None = None  # feature_drift output
    backtest: pl.DataFrame | None = None  # backtest output (assigned h months before the period)
    previous_period: str | None = None
    alpha: float = 0.05
    min_arm_size: int = 50
    profile_features: tuple[str, ...] = PROFILE_FEATURES  # the columns of profile_z
    # Feature families (rfm, behaviour, ...): available or not, from which source, used by the model.
    families: list[dict] = field(default_factory=list)
    clv: ClvModel | None = None  # the month's CLV model
    currency: str = "EUR"  # of every money figure (report.currency)
    # The trailing window's length, and how many of its months hold data (the earliest month seen
    # in it); fewer means the first months' growth is partly the window filling up.
    window_months: int = 12
    window_months_with_data: int | None = None


def segment_profile_z(
    features: pl.DataFrame, assignments: pl.DataFrame, columns: tuple[str, ...] = PROFILE_FEATURES
) -> pl.DataFrame:
    """z-score of each segment's feature means against the whole population."""
    joined = features.join(assignments.select("customer_id", "segment_id", "segment_name"), on="customer_id")
    stats = {
        f: (joined[f].cast(pl.Float64).fill_nan(None).mean(), joined[f].cast(pl.Float64).fill_nan(None).std())
        for f in columns
    }
    z = [
        ((pl.col(f).cast(pl.Float64).fill_nan(None).mean() - (mean or 0.0)) / (std if std else 1.0))
        .fill_null(0.0)
        .alias(f)
        for f, (mean, std) in stats.items()
    ]
    return (
        joined.group_by("segment_id", "segment_name").agg(pl.len().alias("customers"), *z).sort("segment_id")
    )


# ---------------------------------------------------------------------------------------------
# Formatting and suppression


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return {
        "int": f"{value:,.0f}",
        "pct": f"{100 * value:.1f}%",
        "money": f"{value:,.2f}",
        "num": f"{value:,.2f}",
        "pp": f"{100 * value:+.1f} pp",
        "p": "<0.001" if value < 0.001 else f"{value:.3f}",
        "psi": f"{value:.3f}",
    }[kind]


def _count(value, k: int) -> str:
    """A customer count, suppressed below k (zero is not a person and is shown)."""
    if value is None:
        return "–"
    return f"<{k}" if 0 < value < k else f"{value:,.0f}"


def _label(row: dict) -> str:
    return f"{row['segment_id']}: {row['segment_name']}"


def _persona(model: SegmentationModel, segment_id) -> str:
    personas = model.personas or {}
    persona = personas.get(str(segment_id)) if isinstance(personas, dict) else None
    if (
        persona is None
        and isinstance(personas, list)
        and isinstance(segment_id, int)
        and segment_id < len(personas)
    ):
        persona = personas[segment_id]
    if isinstance(persona, dict):
        for key in ("description", "summary", "persona", "text", "name"):
            if persona.get(key):
                return str(persona[key])
        return "; ".join(f"{k}: {v}" for k, v in sorted(persona.items()) if isinstance(v, str | int | float))
    return str(persona) if persona else ""


def _persona_rows(model: SegmentationModel, segment_id) -> list[dict]:
    """The persona card (segflow.lib.models.personas) as term/value rows; empty for a plain-text persona."""
    personas = model.personas or {}
    card = personas.get(str(segment_id)) if isinstance(personas, dict) else None
    if not isinstance(card, dict) or "top_features" not in card:
        return []

    def mix(items: list[dict]) -> str:
        return ", ".join(f"{i['value']} {i['share']:.0%}" for i in items)

    rows = [
        {
            "term": "Stands out by",
            "value": "; ".join(f"{e['label']} {e['direction']}" for e in card["top_features"])
            + " than average (effect sizes in the appendix)",
        }
    ]
    demo = card.get("demographics") or {}
    who = [f"median age {demo['median_age']:.0f}"] if "median_age" in demo else []
    who += [f"median income {demo['median_income']:,.0f}"] if "median_income" in demo else []
    who += [mix(demo[c]) for c in ("gender", "education") if demo.get(c)]
    if who:
        rows.append({"term": "Demographics", "value": "; ".join(who)})
    geo = card.get("geography") or {}
    if geo.get("country") or geo.get("region"):
        rows.append(
            {
                "term": "Geography",
                "value": "; ".join(mix(geo[c]) for c in ("country", "region") if geo.get(c)),
            }
        )
    channel = []
    if card.get("purchase_channel"):
        channel.append(
            f"buys via {card['purchase_channel']} ({card['channel_shares'][card['purchase_channel']]:.0%})"
        )
    if card.get("preferred_channel"):
        channel.append(f"states {card['preferred_channel']} ({card['preferred_channel_share']:.0%})")
    if channel:
        rows.append({"term": "Channel", "value": "; ".join(channel)})
    if card.get("psychographic_traits"):
        rows.append(
            {
                "term": "Traits",
                "value": ", ".join(f"{t['trait']} ({t['respondents']} answers)" for t in card["psychographic_traits"]),
            }
        )
    if card.get("dominant_rfm_segment"):
        rows.append(
            {
                "term": "RFM segment",
                "value": f"{card['dominant_rfm_segment']} ({card['dominant_rfm_share']:.0%})",
            }
        )
    return rows


def _visible(kpis: pl.DataFrame, k: int) -> pl.DataFrame:
    return kpis.filter(pl.col("customers") >= k)


# ---------------------------------------------------------------------------------------------
# Sections


def _history_series(
    inputs: ReportInputs, ids: list[int]
) -> tuple[list[str], dict[int, list[float | None]]]:
    """Share of customers per month for each segment id: one line per id, whatever it was called
    (ids are aligned month to month, names are bound to them)."""
    months = sorted({*inputs.kpi_history, inputs.period})
    history = {**inputs.kpi_history, inputs.period: inputs.kpis}
    series: dict[int, list[float | None]] = {i: [] for i in ids}
    for month in months:
        rows = {
            r["segment_id"]: r for r in history[month].iter_rows(named=True) if r["customers"] >= inputs.min_cell
        }
        for i in ids:
            continues = month == inputs.period or _continues(inputs, i)  # a new segment has no past
            series[i].append(rows[i]["customer_share"] * 100 if i in rows and continues else None)
    return months, series


def _continues(inputs: ReportInputs, segment_id: int) -> bool:
    """Whether the segment is last month's under the same id (matched by the model's alignment), so
    that comparing it with last month's same id means something. A new segment may reuse an id."""
    aligned = aligned_ids(inputs.model)
    return aligned is None or segment_id in aligned


def _previous_kpis(inputs: ReportInputs) -> pl.DataFrame | None:
    if inputs.previous_period and inputs.previous_period in inputs.kpi_history:
        return inputs.kpi_history[inputs.previous_period]
    return None


def _segment_cards(inputs: ReportInputs) -> list[dict]:
    visible = _visible(inputs.kpis, inputs.min_cell)
    labels = [_label(r) for r in visible.iter_rows(named=True)]
    months, series = _history_series(inputs, visible["segment_id"].to_list())
    previous = _previous_kpis(inputs)
    before = {r["segment_id"]: r for r in previous.iter_rows(named=True)} if previous is not None else {}
    renames = {c["segment_id"]: c for c in inputs.model.segment_renames or []}
    since = inputs.model.segment_named_since or {}
    cards = []
    for row, label in zip(visible.iter_rows(named=True), labels, strict=True):
        prior = before.get(row["segment_id"]) if _continues(inputs, row["segment_id"]) else None
        change = ""
        if prior is not None and prior["customers"] >= inputs.min_cell:
            delta = row["customer_share"] - prior["customer_share"]
            change = f"{100 * delta:+.1f} pp share vs {inputs.previous_period}".replace(
                "-0.0", "0.0"
            ).replace("+0.0", "0.0")
        elif previous is not None and not _continues(inputs, row["segment_id"]):
            change = f"new this month: no segment of {inputs.previous_period} matches it"
        cards.append(
            {
                "label": label,
                "persona": _persona(inputs.model, row["segment_id"]),
                "persona_card": _persona_rows(inputs.model, row["segment_id"]),
                "customers": _fmt(row["customers"], "int"),
                "share": _fmt(row["customer_share"], "pct"),
                "revenue_share": _fmt(row["revenue_share"], "pct"),
                "aov": f"{_fmt(row['avg_order_value'], 'money')} {inputs.currency}",
                "recency": _fmt(row["mean_recency_days"], "num"),
                "change": change,
                "named": _naming_note(renames.get(row["segment_id"]), since.get(str(row["segment_id"]))),
                "spark": charts.sparkline(
                    series[row["segment_id"]], label=f"share of customers, {months[0]} to {months[-1]}"
                ),
                "spark_range": f"{months[0]} – {months[-1]}" if len(months) > 1 else months[0],
            }
        )
    return cards


def _naming_note(rename: dict | None, since: str | None) -> str:
    """Where the segment's name comes from: renamed this month (and why), or named since when."""
    if rename:
        return f"renamed this month from “{rename['previous_name']}”: {rename['reason']}"
    return f"named in {since}" if since else ""


def _kpi_rows(inputs: ReportInputs) -> tuple[list[dict], int]:
    k = inputs.min_cell
    rows, suppressed = [], 0
    for row in inputs.kpis.iter_rows(named=True):
        if row["customers"] < k:
            suppressed += 1
            continue

        def arm(name: str, row=row) -> str:
            n = row.get(f"{name}_exposed") or 0
            return "–" if n < k else f"{_fmt(row.get(f'{name}_response_rate'), 'pct')} (n={n:,})"

        rows.append(
            {
                "segment": _label(row),
                "customers": _fmt(row["customers"], "int"),
                "share": _fmt(row["customer_share"], "pct"),
                "new": _count(row.get("new_customers"), k),
                "retained": _count(row.get("retained_customers"), k),
                "lost": _count(row.get("lost_customers"), k),
                "revenue": _fmt(row["revenue"], "money"),
                "revenue_share": _fmt(row["revenue_share"], "pct"),
                "aov": _fmt(row["avg_order_value"], "money"),
                "frequency": _fmt(row["mean_frequency"], "num"),
                "recency": _fmt(row["mean_recency_days"], "num"),
                "return_rate": _fmt(row.get("return_rate"), "pct"),
                "open_rate": _fmt(row.get("email_open_rate"), "pct"),
                "click_rate": _fmt(row.get("email_click_rate"), "pct"),
                "sessions": _fmt(row.get("sessions_per_month"), "num"),
                "churn_risk": _fmt(row.get("mean_churn_risk"), "pct"),
                "treatment": arm("treatment"),
                "control": arm("control"),
            }
        )
    return rows, suppressed


def _arm_cell(row: dict, arm: str, k: int) -> str:
    rate = _fmt(row[f"{arm}_rate"], "pct") if row[f"{arm}_n"] >= k else "–"
    return f"{rate} (n={_count(row[f'{arm}_n'], k)})"


def _lift_section(inputs: ReportInputs) -> dict:
    lift = inputs.lift
    if lift is None or lift.height == 0:
        return {"rows": [], "chart": "", "suppressed": 0}
    k = inputs.min_cell
    rows, suppressed, tested = [], 0, []
    for r in lift.iter_rows(named=True):
        if r["treatment_n"] + r["control_n"] < k:
            suppressed += 1
            continue
        ok = r["status"] == "tested"
        rows.append(
            {
                "segment": _label(r),
                "campaign": r["campaign_id"],
                "treatment": _arm_cell(r, "treatment", k),
                "control": _arm_cell(r, "control", k),
                "abs": _fmt(r["abs_lift"], "pp") if ok else "–",
                "rel": _fmt(r["rel_lift"], "pct") if ok else "–",
                "ci": f"{100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f} pp" if ok else "–",
                "p": _fmt(r["p_value"], "p") if ok else "–",
                "p_holm": _fmt(r["p_value_holm"], "p") if ok else "–",
                # Untested rows say why: no control group, no treatment group, or too few exposed.
                "verdict": ("significant" if r["significant"] else "not significant") if ok else r["status"],
                "significant": bool(r["significant"]),
                "tested": ok,
            }
        )
        if ok:
            tested.append(r)
    chart = ""
    if tested:
        chart = charts.lift_chart(
            [f"{_label(r)} · {r['campaign_id']}" for r in tested],
            [r["abs_lift"] for r in tested],
            [r["ci_low"] for r in tested],
            [r["ci_high"] for r in tested],
            [bool(r["significant"]) for r in tested],
            "Campaign lift per segment and campaign",
        )
    return {"rows": rows, "chart": chart, "suppressed": suppressed}


def _migration_section(inputs: ReportInputs, kind: str) -> dict:
    if inputs.migration is None:
        return {}
    matrix = inputs.migration.filter(pl.col("kind") == kind)
    if matrix.height == 0:
        return {}
    k = inputs.min_cell
    # Rows and columns in id order (cluster) or name order (RFM), pseudo-states last, so that the
    # diagonal is "stayed in the same segment" and matches the headline's stay rate.
    rows = _states(matrix, "from_segment", "from_id", NEW)
    cols = _states(matrix, "to_segment", "to_id", LOST)
    cells = {(r["from_segment"], r["to_segment"]): r for r in matrix.iter_rows(named=True)}
    totals = {r["from_segment"]: r["from_customers"] for r in matrix.iter_rows(named=True)}
    rows = [r for r in rows if totals.get(r, 0) >= k]  # a row describing fewer than k customers is dropped
    cols = [c for c in cols if sum(cells[(r, c)]["customers"] for r in rows if (r, c) in cells) >= k]
    probability, labels = [], []
    for r in rows:
        p_row, l_row = [], []
        for c in cols:
            cell = cells.get((r, c))
            if cell is None:
                p_row.append(0.0)
                l_row.append("0%")
            elif cell["customers"] < k:
                p_row.append(None)
                l_row.append(f"<{k}\ncustomers")  # a count, not a percentage like its neighbours
            else:
                p_row.append(cell["probability"])
                l_row.append(f"{100 * cell['probability']:.0f}%")
        probability.append(p_row)
        labels.append(l_row)
    if not rows or not cols:
        return {}
    title = "Cluster segment migration" if kind == "cluster" else "RFM segment migration"
    chart = charts.migration_heatmap(
        rows,
        cols,
        probability,
        labels,
        f"{title}, {inputs.previous_period} → {inputs.period}",
        f"segment in {inputs.period}",
        f"segment in {inputs.previous_period}",
    )
    stay = stay_rate(matrix)
    return {"chart": chart, "stay": _fmt(stay, "pct") if stay is not None else "–", "stay_rate": stay}


def _states(matrix: pl.DataFrame, label: str, key: str, pseudo: str) -> list[str]:
    """The distinct states of one side of the matrix, ordered by segment id (then label), the
    pseudo-state (new or lost) last."""
    if key not in matrix.columns:  # a matrix stored before ids were recorded
        matrix = matrix.with_columns(pl.lit(None, dtype=pl.Int64).alias(key))
    states = matrix.select(label, key).unique().filter(pl.col(label) != pseudo).sort(key, label, nulls_last=True)
    return states[label].to_list() + ([pseudo] if pseudo in set(matrix[label]) else [])


def _drift_section(inputs: ReportInputs) -> dict:
    drift = inputs.drift
    if drift is None or drift.height == 0:
        return {"rows": [], "chart": "", "major": [], "moderate": [], "refit": False, "shares_moved": []}
    ordered = drift.filter(pl.col("psi").is_not_null()).sort(["psi", "name"], descending=[True, False])
    features = ordered.filter(pl.col("kind") == "feature")
    chart = (
        charts.psi_chart(
            features["name"].to_list(),
            features["psi"].to_list(),
            features["band"].to_list(),
            f"Feature drift, {inputs.previous_period} → {inputs.period}",
        )
        if features.height
        else ""
    )
    rows = [
        {
            "kind": "segment shares" if r["kind"] == "segment_share" else "feature",
            "name": r["name"],
            "psi": _fmt(r["psi"], "psi"),
            "band": r["band"],
            "ref": _fmt(r["reference_mean"], "num"),
            "cur": _fmt(r["current_mean"], "num"),
        }
        for r in ordered.iter_rows(named=True)
    ]
    # Only features count: the model is refit every month anyway, and segment shares moving (k
    # changed, a segment split) is what the refit produced, not a reason to distrust it.
    major = features.filter(pl.col("band") == "major")["name"].to_list()
    moderate = features.filter(pl.col("band") == "moderate")["name"].to_list()
    shares = ordered.filter((pl.col("kind") == "segment_share") & (pl.col("band") != "stable"))
    return {
        "rows": rows,
        "chart": chart,
        "major": major,
        "moderate": moderate,
        "refit": bool(major),
        "shares_moved": [f"{r['name']} (PSI {r['psi']:.2f})" for r in shares.iter_rows(named=True)],
    }


def _backtest_section(inputs: ReportInputs) -> dict:
    bt = inputs.backtest
    if bt is None or bt.height == 0:
        return {}
    k = inputs.min_cell
    visible = bt.filter(pl.col("customers") >= k)
    first = bt.row(0, named=True)
    rows = [
        {
            "segment": _label(r),
            "customers": _fmt(r["customers"], "int"),
            "mean": _fmt(r["mean_future_revenue"], "money"),
            "median": _fmt(r["median_future_revenue"], "money"),
            "invoices": _fmt(r["mean_future_invoices"], "num"),
            "purchase_rate": _fmt(r["purchase_rate"], "pct"),
        }
        for r in visible.iter_rows(named=True)
    ]
    chart = (
        charts.bar_chart(
            [_label(r) for r in visible.iter_rows(named=True)],
            visible["mean_future_revenue"].to_list(),
            f"Realised revenue after {first['assigned_period']}, by segment assigned then",
            f"mean net revenue per customer over the next {first['months_observed']} month(s) "
            f"({inputs.currency})",
        )
        if visible.height
        else ""
    )
    p = first["kruskal_p"]
    return {
        "rows": rows,
        "chart": chart,
        "assigned": first["assigned_period"],
        "horizon": first["horizon_months"],
        "observed": first["months_observed"],
        "h": _fmt(first["kruskal_h"], "num"),
        "p": _fmt(p, "p"),
        "separates": p is not None and p < inputs.alpha,
        "suppressed": bt.height - visible.height,
    }


# Hennig (2007): a segment whose bootstrap Jaccard is at least 0.75 is stable, at most 0.5 dissolved.
STABLE_JACCARD, DISSOLVED_JACCARD = 0.75, 0.5


def _stability_section(inputs: ReportInputs) -> dict:
    """The model's stability and its alignment to last month, in sentences and one table (never raw
    JSON). Segments under ``min_cell`` customers are left out, like everywhere else."""
    model, k = inputs.model, inputs.min_cell
    visible = {r["segment_id"]: _label(r) for r in _visible(inputs.kpis, k).iter_rows(named=True)}
    jaccard = model.segment_jaccard or []
    alignment = model.alignment or {}
    matched = alignment.get("matched") or {}
    lines = []
    if model.stability is not None:
        minimum = model.min_stability_threshold
        lines.append(
            f"Mean bootstrap Jaccard {model.stability:.2f}"
            + (f" (the model needs at least {minimum:.2f})" if minimum is not None else "")
            + (f"; mean agreement of refits (ARI) {model.ari_refits:.2f}" if model.ari_refits is not None else "")
            + "."
        )
    if alignment.get("previous_period"):
        lines.append(
            f"Segment ids follow {alignment['previous_period']}'s: {len(matched)} segment(s) matched by their "
            f"profiles, {len(alignment.get('new') or [])} new, {len(alignment.get('vanished') or [])} of last "
            "month's without a match."
        )
    elif alignment:
        lines.append("First month with a model: segment ids are numbered by value, highest first.")
    rows = []
    for i, label in sorted(visible.items()):
        j = jaccard[i] if i < len(jaccard) else None
        reading = (
            "–" if j is None else "stable" if j >= STABLE_JACCARD else "dissolved" if j <= DISSOLVED_JACCARD
            else "unclear"
        )
        match = matched.get(str(i))
        previous = (
            f"segment {match['previous_id']} of {alignment['previous_period']} (distance {match['distance']:.2f} sd)"
            if match else "new this month" if alignment.get("previous_period") else "–"
        )  # fmt: skip
        rows.append({"segment": label, "jaccard": _fmt(j, "num"), "reading": reading, "previous": previous})
    renames = [
        f"Segment {c['segment_id']} “{c['previous_name']}” is now “{c['name']}”: {c['reason']}."
        for c in model.segment_renames or []
        if c["segment_id"] in visible
    ]
    return {"lines": lines, "rows": rows, "renames": renames}


def _appendix(inputs: ReportInputs, lift: dict, backtest: dict) -> dict:
    """Effect sizes and test statistics, for the reader who wants them (the sections say what)."""
    visible = {str(r["segment_id"]): _label(r) for r in _visible(inputs.kpis, inputs.min_cell).iter_rows(named=True)}
    personas = inputs.model.personas or {}
    effects = []
    for key, label in visible.items():
        card = personas.get(key) if isinstance(personas, dict) else None
        if not isinstance(card, dict):
            continue
        for e in card.get("top_features") or []:
            effects.append({"segment": label, "measure": e["label"], "d": f"{e['cohens_d']:+.2f}",
                            "segment_mean": _fmt(e["segment_mean"], "num"), "overall_mean": _fmt(e["overall_mean"], "num")})  # fmt: skip
        for t in card.get("psychographic_traits") or []:
            effects.append({"segment": label, "measure": f"survey: {t['question']} ({t['respondents']} answers)",
                            "d": f"{t['cohens_d']:+.2f}", "segment_mean": "–", "overall_mean": "–"})  # fmt: skip
    tests = [r for r in lift["rows"] if r["tested"]]
    return {"effects": effects, "tests": tests, "backtest": backtest}


def _imputation_rows(rates: list[dict], k: int) -> list[dict]:
    """Imputed cells and their rate per column. A count under k customers is suppressed, and so is
    its rate, which with the customer count would give it back."""
    rows = []
    for r in rates:
        hidden = 0 < r["imputed"] < k
        rows.append({
            "column": r["column"],
            "imputed": _count(r["imputed"], k),
            "customers": _count(r["customers"], k),
            "rate": "–" if hidden or 0 < r["customers"] < k else _fmt(r["rate"], "pct"),
        })  # fmt: skip
    return rows


def _orphans_note(quality: dict, k: int) -> str:
    """What ``cleaning.orphans`` did with rows of customers missing from the CRM, with the count.
    Sources are summed for rows; customers are counted once each (they may be in several)."""
    setting = quality.get("orphan_setting")
    accounting = quality.get("accounting") or {}
    if setting is None or "customers" not in accounting:
        return ""
    if setting == "quarantine":
        return ("Rows of customers missing from the CRM are quarantined as orphan_customer_id "
                "(cleaning.orphans: quarantine).")  # fmt: skip
    rows = sum(a.get("orphan_rows") or 0 for a in accounting.values())
    customers = accounting["customers"].get("orphan_customers") or 0  # the CRM row: all, once each
    return (
        f"{rows:,} accepted rows of {_count(customers, k)} customers missing from the CRM were kept "
        "(cleaning.orphans: keep): these customers are profiled with unknown demographics, "
        "imputed and flagged like any missing value."
    )


def _orphans_cell(accounting: dict, k: int) -> str:
    """Rows / customers missing from the CRM on one source's accounting row (customers suppressed)."""
    return f"{accounting.get('orphan_rows') or 0:,} / {_count(accounting.get('orphan_customers') or 0, k)}"


def _quality_section(inputs: ReportInputs) -> dict:
    quality = dict(inputs.quality)
    trend = quality.get("trend") or {}
    chart = ""
    if len(trend) >= 2:
        months = sorted(trend)
        sources = sorted({s for m in months for s in trend[m]})
        series = {s: [trend[m].get(s) for m in months] for s in sources}
        chart = charts.multi_line_chart(
            months, series, "Quarantined share of raw rows, by source", "rows quarantined (% of raw rows)"
        )
    quality["trend_chart"] = chart
    quality["imputation_rows"] = _imputation_rows(quality.get("imputation") or [], inputs.min_cell)
    quality["orphans"] = _orphans_note(quality, inputs.min_cell)
    # The column only where orphans are kept: without a CRM nobody is one, and quarantined ones
    # are in the quarantine table.
    quality["orphans_column"] = quality.get("orphan_setting") == "keep" and bool(quality["orphans"])
    quality["accounting"] = {
        source: {**a, "orphans_cell": _orphans_cell(a, inputs.min_cell)}
        for source, a in (quality.get("accounting") or {}).items()
    }
    checks = quality.get("checks") or []
    quality["checks_failed"] = sum(c["failed"] for c in checks)
    quality["checks_warned"] = sum(c["warned"] for c in checks)
    quality["checks_passed"] = sum(c["passed"] for c in checks)
    return quality


def _summary(
    inputs: ReportInputs, drift: dict, lift: dict, backtest: dict, quality: dict
) -> tuple[list[str], list[str]]:
    """What changed (sentences) and what to do (actions)."""
    k = inputs.min_cell
    kpis = inputs.kpis
    visible = _visible(kpis, k)
    if visible.height == 0:
        return ["No segment is large enough to report."], []
    total = int(kpis["customers"].sum())
    lines, actions = [], []
    previous = _previous_kpis(inputs)
    flows = ""
    if kpis["new_customers"].null_count() < kpis.height:
        new, lost = (
            int(kpis["new_customers"].fill_null(0).sum()),
            int(kpis["lost_customers"].fill_null(0).sum()),
        )
        flows = f" ({_count(new, k)} new, {_count(lost, k)} lost since {inputs.previous_period})"
    change = ""
    if previous is not None and previous.height:
        before = int(previous["customers"].sum())
        direction = "up" if total >= before else "down"
        change = f", {direction} {abs(total - before) / before:.1%} on {inputs.previous_period}"
    population = (
        "customers in the behaviour snapshot"
        if inputs.model.feature_set == "snapshot"
        else "customers with a purchase in the trailing window"
    )
    lines.append(f"{total:,} {population} were segmented into {kpis.height} segments{change}{flows}.")
    if filling := _window_filling(inputs):
        lines.append(filling)
    missing = [f["family"] for f in inputs.families if not f["available"]]
    if "rfm" in missing:
        used = [f["family"] for f in inputs.families if f["used_in_model"]]
        lines.append(
            f"Segments are built from {', '.join(used)} features; RFM was not available "
            "(no transaction line items), so there are no RFM scores or RFM segments."
        )
    top = visible.sort(["revenue", "segment_id"], descending=[True, False]).row(0, named=True)
    lines.append(
        f"“{top['segment_name']}” brings the most revenue: {_fmt(top['revenue_share'], 'pct')} of the total "
        f"from {_fmt(top['customer_share'], 'pct')} of customers."
    )
    if previous is not None:
        before = {r["segment_id"]: r for r in previous.iter_rows(named=True) if r["customers"] >= k}
        moves = [
            (r["customer_share"] - before[r["segment_id"]]["customer_share"], r)
            for r in visible.iter_rows(named=True)
            if r["segment_id"] in before and _continues(inputs, r["segment_id"])
        ]
        if moves:
            delta, row = max(moves, key=lambda m: (abs(m[0]), -m[1]["segment_id"]))
            if abs(delta) >= 0.005:
                lines.append(
                    f"The biggest shift is “{row['segment_name']}”: {'+' if delta > 0 else ''}"
                    f"{100 * delta:.1f} percentage points of customers, "
                    f"now {_fmt(row['customer_share'], 'pct')}."
                )
            else:
                lines.append("Segment sizes are stable: no segment moved by half a percentage point or more.")
    drift_lines, drift_actions = _drift_summary(drift)
    lines += drift_lines
    actions += drift_actions
    wins = [r for r in lift["rows"] if r["significant"]]
    if wins:
        best = wins[0]
        lines.append(
            f"Campaign {best['campaign']} lifted response in “{best['segment']}” by {best['abs']} "
            f"(95% CI {best['ci']}); {len(wins)} of {sum(r['tested'] for r in lift['rows'])} segment×campaign tests "
            "were significant (tests in the appendix)."
        )
        segments = sorted({r["segment"] for r in wins})
        actions.append(
            f"Prioritise campaigns for {', '.join(f'“{s}”' for s in segments)}, where treatment beat control."
        )
    elif lift["rows"]:
        lines.append(f"No campaign showed a significant lift in any segment at α = {inputs.alpha}.")
        actions.append("Do not scale the month's campaigns on these results; keep the control groups.")
    if backtest:
        lines.append(
            f"Segments assigned in {backtest['assigned']} "
            + ("did" if backtest["separates"] else "did not clearly")
            + f" predict revenue over the following {backtest['observed']} month(s)"
            + f" (Kruskal-Wallis p {backtest['p']})."
        )
    if quality.get("checks_failed"):
        lines.append(f"{quality['checks_failed']} data-quality check(s) failed this month.")
        actions.append("Review the failed data-quality checks below before acting on this report.")
    elif quality.get("checks"):
        lines.append(
            f"All blocking data-quality checks passed ({quality['checks_warned']} advisory warning(s))."
        )
    if not actions:
        actions.append("No action needed: the segments are stable and the data passed its checks.")
    return lines, actions


def _drift_summary(drift: dict) -> tuple[list[str], list[str]]:
    """The summary's drift sentence and action: only feature drift counts (see _drift_section)."""
    lines: list[str] = []
    actions: list[str] = []
    if drift["refit"]:
        lines.append(f"Major drift (PSI > {MAJOR}) in: {', '.join(drift['major'][:5])}.")
        actions.append(
            "Review the segments before reusing last month's audiences: the customer base drifted, and "
            "this month's model (refit on this month's data, as every month) may group customers differently."
        )
    elif drift["moderate"]:
        lines.append(
            f"Moderate drift (PSI {MODERATE}–{MAJOR}) in: {', '.join(drift['moderate'][:5])}; nothing major."
        )
        actions.append("Keep the model; watch the moderately drifting features next month.")
    elif drift["rows"] and not drift["shares_moved"]:
        lines.append("No feature or segment share drifted (every PSI below 0.1).")
    elif drift["rows"]:
        lines.append("No feature drifted (every feature PSI below 0.1).")
    return lines, actions


def _window_filling(inputs: ReportInputs) -> str:
    """A sentence when the trailing window is not yet full of data: early growth is then the window
    accumulating months of history, not the customer base growing."""
    filled = inputs.window_months_with_data
    if filled is None or filled >= inputs.window_months or inputs.model.feature_set == "snapshot":
        return ""
    return (
        f"The {inputs.window_months}-month window holds only {filled} month(s) of data so far: until it "
        "is full, growth in customers and revenue is partly the window filling up, not the business growing."
    )


def executive_summary(inputs: ReportInputs) -> tuple[list[str], list[str]]:
    """The summary sentences and the recommended actions, as plain text (also used for metadata)."""
    return _summary(
        inputs,
        _drift_section(inputs),
        _lift_section(inputs),
        _backtest_section(inputs),
        _quality_section(inputs),
    )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("segflow.lib.report", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )


def render_report(inputs: ReportInputs) -> str:
    k = inputs.min_cell
    visible = _visible(inputs.kpis, k)
    labels = [_label(r) for r in visible.iter_rows(named=True)]
    size_chart = charts.bar_chart(
        labels, visible["customers"].cast(pl.Float64).to_list(), "Customers per segment", "customers (count)"
    )
    revenue_chart = charts.bar_chart(
        labels,
        (visible["revenue_share"].fill_null(0) * 100).to_list(),
        "Share of revenue per segment",
        "share of net revenue in window (%)",
    )
    profile = inputs.profile_z.filter(pl.col("customers") >= k)
    profile_chart = charts.profile_heatmap(
        [_label(r) for r in profile.iter_rows(named=True)],
        list(inputs.profile_features),
        profile.select(inputs.profile_features).rows(),
        "Segment profiles",
    )
    months, by_id = _history_series(inputs, visible["segment_id"].to_list())
    share_series = dict(zip(labels, by_id.values(), strict=True))  # one line per id, today's name
    trend_chart = (
        charts.multi_line_chart(months, share_series, "Segment share over time", "share of customers (%)")
        if len(months) > 1
        else ""
    )
    selection = selection_section(inputs.sweep, inputs.model)
    kpi_rows, suppressed = _kpi_rows(inputs)
    rfm = inputs.rfm_counts.filter(pl.col("customers") >= k)
    lift = _lift_section(inputs)
    drift = _drift_section(inputs)
    backtest = _backtest_section(inputs)
    quality = _quality_section(inputs)
    summary, actions = _summary(inputs, drift, lift, backtest, quality)
    return (
        _environment()
        .get_template("report.html")
        .render(
            period=inputs.period,
            previous_period=inputs.previous_period,
            summary=summary,
            actions=actions,
            cards=_segment_cards(inputs),
            kpi_rows=kpi_rows,
            suppressed=suppressed,
            min_cell=k,
            size_chart=size_chart,
            revenue_chart=revenue_chart,
            profile_chart=profile_chart,
            trend_chart=trend_chart,
            selection=selection,
            model=inputs.model,
            methods=inputs.methods,
            rfm_rows=rfm.iter_rows(named=True),
            rfm_suppressed=inputs.rfm_counts.height - rfm.height,
            quality=quality,
            lift=lift,
            alpha=inputs.alpha,
            min_arm_size=inputs.min_arm_size,
            cluster_migration=_migration_section(inputs, "cluster"),
            rfm_migration=_migration_section(inputs, "rfm"),
            drift=drift,
            backtest=backtest,
            stability=_stability_section(inputs),
            appendix=_appendix(inputs, lift, backtest),
            families=inputs.families,
            value=value_section(inputs.clv, inputs.kpis, k),
            currency=inputs.currency,
            window_note=_window_filling(inputs),
        )
    )


# ---------------------------------------------------------------------------------------------
# Index across months


def summary_record(inputs: ReportInputs) -> dict:
    """What the index page needs from one month: aggregates only, small segments left out."""
    k = inputs.min_cell
    visible = _visible(inputs.kpis, k)
    drift = inputs.drift if inputs.drift is not None else pl.DataFrame({"kind": [], "psi": []})
    features = drift.filter((pl.col("kind") == "feature") & pl.col("psi").is_not_null())
    lift = inputs.lift
    return {
        "period": inputs.period,
        "customers": int(inputs.kpis["customers"].sum()),
        "revenue": round(float(inputs.kpis["revenue"].sum()), 2),
        "segments": inputs.kpis.height,
        # Keyed by segment id (names are bound to ids but may change on a material change of
        # the profile): the index draws one line per id, labelled with its latest name.
        "segment_share": {
            str(r["segment_id"]): round(100 * r["customer_share"], 3) for r in visible.iter_rows(named=True)
        },
        "segment_names": {str(r["segment_id"]): r["segment_name"] for r in visible.iter_rows(named=True)},
        # Ids that start a new segment this month (no match last month): the index ends the id's line.
        "new_ids": [str(i) for i in visible["segment_id"].to_list() if inputs.previous_period and not _continues(inputs, i)],
        "currency": inputs.currency,
        "window_filling": bool(_window_filling(inputs)),
        "max_feature_psi": round(float(features["psi"].max()), 4) if features.height else None,
        "refit_recommended": bool(features.height and float(features["psi"].max()) > MAJOR),
        "significant_lifts": int(lift["significant"].fill_null(False).sum())
        if lift is not None and lift.height
        else 0,
        "model_version": inputs.model.version,
    }


def render_index(records: list[dict]) -> str:
    """The index page: a link to every month's report, and trends across months."""
    records = sorted(records, key=lambda r: r["period"])
    months = [r["period"] for r in records]
    trend_charts = []
    if len(records) >= 1:
        trend_charts.append(
            charts.multi_line_chart(
                months,
                {"customers": [r["customers"] for r in records]},
                "Segmented customers per month",
                "customers (count)",
            )
        )
        currency = records[-1].get("currency", "currency units")
        trend_charts.append(
            charts.multi_line_chart(
                months,
                {"net revenue": [r["revenue"] for r in records]},
                "Net revenue in the trailing window",
                f"net revenue ({currency})",
            )
        )
        lines, breaks = _share_lines(records)
        trend_charts.append(
            charts.multi_line_chart(
                months, lines, "Segment share per month", "share of customers (%)", breaks=breaks
            )
        )
        trend_charts.append(
            charts.multi_line_chart(
                months,
                {"largest feature PSI": [r["max_feature_psi"] for r in records]},
                "Largest feature drift vs previous month (dashed: 0.1 and 0.25)",
                "PSI (unitless)",
                hlines=(0.1, 0.25),
            )
        )
    rows = [{**r, "href": f"{html.escape(r['period'])}.html"} for r in reversed(records)]
    filling = [r["period"] for r in records if r.get("window_filling")]
    note = (
        f"Until {filling[-1]} the trailing window was still filling up with months of data, so the growth of "
        "customers and revenue in those months is partly the window lengthening, not the business growing."
        if filling
        else ""
    )
    return _environment().get_template("index.html").render(rows=rows, charts=trend_charts, window_note=note)


def _share_lines(records: list[dict]) -> tuple[dict[str, list[float | None]], dict[str, set[int]]]:
    """One line per segment id, labelled with its latest name, and per line the months where a new
    segment took the id over (no match the month before): the line is broken there, so it never
    joins two different segments."""
    shares = [_shares_by_id(r) for r in records]
    names = {i: n for r in records for i, n in _names_by_id(r).items()}  # the latest name wins
    ids = sorted({i for share in shares for i in share})
    label = {i: f"{i}: {names.get(i, '')}" for i in ids}
    breaks = {label[i]: {p for p, r in enumerate(records) if str(i) in r.get("new_ids", [])} for i in ids}
    return {label[i]: [share.get(i) for share in shares] for i in ids}, breaks


def _shares_by_id(record: dict) -> dict[int, float]:
    """A month's segment shares by id; records written before ids were the key used "id: name"."""
    return {int(key.split(":", 1)[0]): value for key, value in record["segment_share"].items()}


def _names_by_id(record: dict) -> dict[int, str]:
    if "segment_names" in record:
        return {int(i): n for i, n in record["segment_names"].items()}
    return {int(key.split(":", 1)[0]): key.split(":", 1)[1].strip() for key in record["segment_share"] if ":" in key}
