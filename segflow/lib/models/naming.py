"""Segment names bound to aligned segment ids.

A segment is named by the two features that set it apart most (``segflow.lib.models.clustering.segment_z``).
Ids are aligned month to month by Hungarian matching; this module keeps a matched segment's name
while what the name states still holds, so that a reshuffle of which feature ranks first never
renames it, and records every rename with its reason.
"""

from __future__ import annotations

from segflow.lib.models.clustering import _basis, _fresh_name, _unique

# A kept name must still be true: each feature it names still lies on its side of the average by at
# least this many standard deviations. Below that the segment no longer stands out as named (a
# material change of its profile); above it, a reshuffle of which feature ranks first is not one, so
# "Frequent, recently active" never flips to "Recently active, frequent" between months.
NAME_HOLDS_Z = 0.3


def bind_names(
    z: dict[int, dict[str, float]], phrases: dict, alignment: dict, previous: dict | None, period: str
) -> dict:
    """Names bound to aligned segment ids: a segment matched to last month's keeps its name while the
    profile the name describes still holds (``NAME_HOLDS_Z``); a new segment, or one whose profile
    changed materially, gets a fresh name, and the change is recorded with its reason.

    ``z`` is ``segment_z`` of this month; ``alignment`` the record of ``align_to_previous``;
    ``previous`` last month's model. Returns the model's naming entries: ``segment_names``,
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
