"""Segment names: each segment's profile against all customers, fresh names, and names bound to
aligned segment ids.

A segment is named by the two features that set it apart most (``segment_z``).
Ids are aligned month to month by Hungarian matching; this module keeps a matched segment's name
while what the name states still holds, so that a reshuffle of which feature ranks first never
renames it, and records every rename with its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from segflow.lib.models.model_types import SegmentationModel

# Phrases for naming a segment by its most distinctive features: (above average, below average).
_PHRASES = {
    "monetary": ("High-value", "Low-value"),
    "invoices_per_month": ("Frequent", "Infrequent"),
    "avg_order_value": ("Big-basket", "Small-basket"),
    "recency_days": ("Lapsing", "Recently active"),
    "sessions_per_month": ("Highly engaged", "Disengaged"),
    "return_rate": ("Return-prone", "Low-return"),
    "digital_share": ("Digital-first", "Store-first"),
    "email_open_rate": ("Email-responsive", "Email-quiet"),
}

# A kept name must still be true: each feature it names still lies on its side of the average by at
# least this many standard deviations. Below that the segment no longer stands out as named (a
# material change of its profile); above it, a reshuffle of which feature ranks first is not one, so
# "Frequent, recently active" never flips to "Recently active, frequent" between months.
NAME_HOLDS_Z = 0.3


# Money, counts and recency are judged on log1p, as the design sees them: on the raw scale a few
# very large spenders make every segment's mean monetary value look ordinary.
_NAMING_LOG = ("monetary", "invoices_per_month", "avg_order_value", "recency_days", "sessions_per_month")


def segment_z(frame: pl.DataFrame, labels: np.ndarray, phrases: dict | None = None) -> dict[int, dict[str, float]]:
    """Per segment, the z-score of its mean of each naming feature against all customers."""
    phrases = _PHRASES if phrases is None else {f: p for f, p in phrases.items() if f in frame.columns}
    columns = [
        (pl.col(c).cast(pl.Float64).fill_nan(None).clip(lower_bound=0.0).log1p() if c in _NAMING_LOG
         else pl.col(c).cast(pl.Float64).fill_nan(None)).alias(c)
        for c in phrases
    ]  # fmt: skip
    values = frame.select(columns)
    stats = {c: (values[c].mean(), values[c].std()) for c in phrases}
    profiles = (
        values.with_columns(pl.Series("segment_id", labels, dtype=pl.Int32))
        .group_by("segment_id")
        .agg([pl.col(c).mean() for c in phrases])
        .sort("segment_id")
    )
    out: dict[int, dict[str, float]] = {}
    for row in profiles.iter_rows(named=True):
        out[int(row["segment_id"])] = {
            feature: (row[feature] - mean) / std
            for feature, (mean, std) in stats.items()
            if std and row[feature] is not None and np.isfinite(std) and std > 0
        }
    return out


def _basis(z: dict[str, float]) -> list[dict]:
    """The two most distinctive features of a segment: what its name says about it."""
    top = sorted(z.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:2]
    return [{"feature": f, "direction": "higher" if v > 0 else "lower", "z": round(v, 3)} for f, v in top]


def _fresh_name(basis: list[dict], phrases: dict) -> str:
    words = [phrases[b["feature"]][0 if b["direction"] == "higher" else 1] for b in basis]
    return f"{words[0]}, {words[1].lower()} customers" if len(words) == 2 else "Typical customers"


def name_segments(frame: pl.DataFrame, labels: np.ndarray, phrases: dict | None = None) -> dict[int, str]:
    """A short name per segment from its two most distinctive features (z-score of its mean)."""
    phrases = _PHRASES if phrases is None else phrases
    fresh = {i: _fresh_name(_basis(z), phrases) for i, z in segment_z(frame, labels, phrases).items()}
    return _unique(fresh, {})


def _unique(fresh: dict[int, str], kept: dict[int, str]) -> dict[int, str]:
    """Kept names first, then fresh ones; a fresh name already taken gets its segment id appended."""
    names = dict(kept)
    for i in sorted(fresh):
        name = fresh[i]
        names[i] = f"{name} (segment {i})" if name in names.values() else name
    return dict(sorted(names.items()))


def previous_naming(previous: SegmentationModel | None) -> dict | None:
    """What ``bind_names`` reads of last month's model: its period and naming entries."""
    if previous is None:
        return None
    return {"period": previous.period, "segment_names": previous.segment_names,
            "segment_name_basis": previous.segment_name_basis,
            "segment_named_since": previous.segment_named_since}  # fmt: skip


def bind_names(
    z: dict[int, dict[str, float]], phrases: dict, alignment: dict, previous: dict | None, period: str
) -> dict:
    """Names bound to aligned segment ids: a segment matched to last month's keeps its name while the
    profile the name describes still holds (``NAME_HOLDS_Z``); a new segment, or one whose profile
    changed materially, gets a fresh name, and the change is recorded with its reason.

    ``z`` is ``segment_z`` of this month; ``alignment`` the record of ``align_to_previous``;
    ``previous`` last month's naming (``previous_naming``). Returns the model's naming entries: ``segment_names``,
    ``segment_name_basis`` (per id, the named features with this month's z), ``segment_named_since``
    (per id, the month the name was given) and ``segment_renames`` (id, previous id and name, new
    name, reason).
    """
    previous = previous or {}
    old_names = previous.get("segment_names", {})
    old_basis = previous.get("segment_name_basis", {})
    old_since = previous.get("segment_named_since", {})
    kept, fresh, basis, since, renames = {}, {}, {}, {}, []
    for i, scores in sorted(z.items()):
        match = alignment.get("matched", {}).get(str(i))
        prev = str(match["previous_id"]) if match else None
        name_was, basis_was = old_names.get(prev), old_basis.get(prev)
        broken = [b for b in basis_was or [] if not _holds(b, scores.get(b["feature"]))]
        if name_was is not None and basis_was is not None and not broken:
            kept[i] = name_was
            basis[str(i)] = [{**b, "z": round(scores[b["feature"]], 3)} for b in basis_was]
            since[str(i)] = old_since.get(prev, previous.get("period"))
            continue
        basis[str(i)] = _basis(scores)
        fresh[i] = _fresh_name(basis[str(i)], phrases)
        since[str(i)] = period
        if name_was is not None:
            reason = (
                "; ".join(_why_broken(b, scores.get(b["feature"])) for b in broken)
                if basis_was is not None
                else "last month's model records no naming basis"
            )
            renames.append(
                {"segment_id": i, "previous_id": int(prev), "previous_name": name_was, "reason": reason}
            )
    names = _unique(fresh, kept)
    for change in renames:
        change["name"] = names[change["segment_id"]]
    return {
        "segment_names": {str(i): n for i, n in names.items()},
        "segment_name_basis": basis,
        "segment_named_since": since,
        "segment_renames": [c for c in renames if c["name"] != c["previous_name"]],
    }


def _holds(basis: dict, z: float | None) -> bool:
    if z is None:
        return False
    return z >= NAME_HOLDS_Z if basis["direction"] == "higher" else z <= -NAME_HOLDS_Z


def _why_broken(basis: dict, z: float | None) -> str:
    from segflow.lib.models.personas import DESCRIPTIVE

    what = DESCRIPTIVE.get(basis["feature"], basis["feature"].replace("_", " "))  # words, for the report
    if z is None:
        return f"{what} is no longer measured"
    return (
        f"{what} no longer clearly {basis['direction']} than average "
        f"(z {basis['z']:+.2f} last month, {z:+.2f} now; a name holds while |z| >= {NAME_HOLDS_Z})"
    )
