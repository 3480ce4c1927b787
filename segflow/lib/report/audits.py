"""The audit sections: campaign lift, segment migration, drift, the out-of-time backtest, the model's
stability and alignment, and the appendix of effect sizes and test statistics.
"""

from __future__ import annotations

import polars as pl

from segflow.lib.audit.migration import LOST, NEW, stay_rate
from segflow.lib.report import charts
from segflow.lib.report.cells import _count, _fmt, _label, _visible
from segflow.lib.report.inputs import ReportInputs


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
