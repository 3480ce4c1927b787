"""The report's model-selection section: the whole sweep as a table, one chart line per family, and
the rule in the words the model stored (``segflow.lib.models.selection.rule_text``), so the footnote and
Methods print the same sentence the code applied."""

from __future__ import annotations

from segflow.lib.models.families import FAMILY_NAMES
from segflow.lib.models.model_types import SegmentationModel
from segflow.lib.report import charts
from segflow.lib.report.methods import selection_rule


def _params(row: dict) -> str:
    p = row.get("params") or {}
    if row.get("family") == "hdbscan":
        return f"min cluster {p.get('min_cluster_share', 0):.0%} of sample, {p.get('metric', 'euclidean')}"
    if row.get("family") == "gmm":
        return f"k = {p.get('k')}, {p.get('covariance_type')} covariance"
    return f"k = {p.get('k', row.get('k'))}"


def _num(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _oot(row: dict) -> str:
    if row.get("oot_separation") is None:
        return "–"
    short, gain = row.get("oot_shortfall"), row.get("oot_beyond_rfm")
    return (
        f"{row['oot_separation']:.3f} ({_num(row.get('oot_revenue'), '.3f')} / "
        f"{_num(row.get('oot_purchases'), '.3f')})"
        + ("" if gain is None else f", {gain:+.3f} beyond RFM")
        + (f", {short:.0%} short" if short else "")
    )


def _row(row: dict, chosen: bool) -> dict:
    """One table row as text. A degenerate fit (HDBSCAN finding fewer than two clusters, a k above
    the rows) says so instead of showing empty scores as zeros."""
    fitted = row.get("silhouette") is not None
    stability = (
        f"{row['stability']:.2f} (ARI {row['ari_refits']:.2f})"
        if row.get("stability") is not None
        else "not measured: could not win"
        if fitted
        else "–"
    )
    return {
        "family": FAMILY_NAMES.get(row.get("family"), row.get("family") or "k-means"),
        "params": _params(row),
        "chosen": chosen,
        "fitted": fitted,
        "k": _num(row.get("k"), "d"),
        "noise": row.get("noise_share"),
        "silhouette": _num(row.get("silhouette"), ".3f"),
        "ch": _num(row.get("calinski_harabasz"), ",.0f"),
        "db": _num(row.get("davies_bouldin"), ".3f"),
        "smallest": _num(row.get("min_segment_share"), ".1%"),
        "stability": stability,
        "oot": _oot(row),
        "score": _num(row.get("combined"), ".3f"),
        "viable": "yes" if row.get("viable") else "no" if row.get("finalist") else "–",
    }


def _chosen_index(sweep: list[dict], model: SegmentationModel) -> int | None:
    """The chosen row: the model's ``chosen_index``; for a model stored without one, its family and k."""
    index = model.chosen_index
    if index is not None and 0 <= index < len(sweep):
        return index
    family = model.family
    matches = [i for i, r in enumerate(sweep) if r.get("k") == model.k
               and (family is None or r.get("family", family) == family)]  # fmt: skip
    return matches[0] if matches else None


def _why(sweep: list[dict], chosen: int | None) -> str:
    if chosen is None:
        return ""
    r = sweep[chosen]
    parts = [f"silhouette {_num(r.get('silhouette'), '.3f')}"]
    if r.get("stability") is not None:
        parts.append(f"stability {r['stability']:.2f}, refit ARI {r['ari_refits']:.2f}")
    if r.get("oot_separation") is not None:
        short, gain = r.get("oot_shortfall"), r.get("oot_beyond_rfm")
        parts.append(f"out-of-time separation {r['oot_separation']:.3f}"
                     + ("" if gain is None else f", {gain:+.3f} beyond the RFM segments")
                     + (f" ({short:.0%} of the best short of the target)" if short
                        else " (no shortfall)" if short is not None else ""))  # fmt: skip
    return (
        f"{FAMILY_NAMES.get(r.get('family'), 'k-means')} ({_params(r)}, {r.get('k')} segments) scored "
        f"{_num(r.get('combined'), '.3f')}: {', '.join(parts)}."
    )


def _evidence(model: SegmentationModel) -> str:
    record = model.out_of_time or {}
    if record.get("available"):
        months = record["outcome_periods"]
        return (
            f"Out-of-time separation: this month's candidates applied to the {record['customers']:,} "
            f"customers of {record['anchor_period']}, scored on their revenue and purchases in "
            f"{months[0]}..{months[-1]}; the share of the rank variance of each explained by the "
            "segments (Kruskal-Wallis η², 0 to 1), shown as mean (revenue / purchases); then what "
            "the segments add to that month's RFM segments"
            + (f" (which alone explain {record['rfm_separation']:.3f})" if record.get("rfm_separation") is not None else "")
            + ", and the shortfall below the target, as a share of the best candidate's gain, that the "
            "score subtracts."
        )
    if record:
        return f"Out-of-time separation not available this month: {record.get('reason')}; counted as 0."
    return ""


def selection_chart(sweep: list[dict]) -> str:
    """Score terms by k, one line per family (per variant for families swept over more than k:
    Gaussian mixtures per covariance type, HDBSCAN per metric), silhouette and out-of-time
    separation side by side: joining every family into one line drew a zig-zag."""
    lines: dict[str, list[dict]] = {}
    for r in sweep:
        if r.get("silhouette") is None or r.get("k") is None:
            continue
        p, family = r.get("params") or {}, FAMILY_NAMES.get(r.get("family"), r.get("family") or "k-means")
        variant = p.get("covariance_type") or (p.get("metric") if r.get("family") == "hdbscan" else None)
        lines.setdefault(f"{family} ({variant})" if variant else family, []).append(r)
    panels = {"silhouette (sampled, −1 to 1)": "silhouette"}
    if any(r.get("oot_separation") is not None for r in sweep):
        panels["out-of-time separation (η², 0 to 1)"] = "oot_separation"
    if any(r.get("oot_beyond_rfm") is not None for r in sweep):
        panels["out-of-time separation beyond RFM (η² gained)"] = "oot_beyond_rfm"
    series = {
        name: {label: sorted((r["k"], r[key]) for r in rows if r.get(key) is not None)
               for label, key in panels.items()}
        for name, rows in lines.items()
    }  # fmt: skip
    return charts.family_lines(series, list(panels), "Model selection: score terms by number of segments")


def selection_section(sweep: list[dict], model: SegmentationModel) -> dict:
    """Everything the template's model-selection section prints."""
    chosen = _chosen_index(sweep, model)
    return {
        "rows": [_row(r, i == chosen) for i, r in enumerate(sweep)],
        "rule": selection_rule(model),
        "why": _why(sweep, chosen),
        "evidence": _evidence(model),
        "chart": selection_chart(sweep) if sweep else "",
    }
