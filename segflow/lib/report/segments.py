"""The segment sections: one card per segment (persona, size, value, change, share sparkline) and
the KPI table, small segments suppressed.
"""

from __future__ import annotations

from segflow.lib.models.model_types import SegmentationModel
from segflow.lib.report import charts
from segflow.lib.report.cells import _count, _fmt, _label, _visible
from segflow.lib.report.inputs import ReportInputs
from segflow.lib.report.months import _continues, _history_series, _previous_kpis


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
