"""A snapshot of the asset graph: every asset (group, kinds, owners, upstream assets, partitions,
automation), every check (blocking or not), every job, schedule and sensor.

A change to the graph that nobody meant shows here as a diff against
``snapshots/asset_graph.json``. When the change is meant, write the new snapshot with
``SEGFLOW_UPDATE_SNAPSHOT=1 python -m pytest segflow_tests/test_graph_snapshot.py`` and commit it
with the change, so that the review sees the graph's diff beside the code's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from segflow.config import Settings
from segflow.definitions import build_defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _defs() -> dg.Definitions:
    """The default graph over fixed partitions: neither the clock nor a home's demo manifest moves it."""
    home = Path("/nonexistent-segflow-home")
    return build_defs(Settings(home=home, storage_dir=home / "storage", landing_dir=home / "landing",
                               partitions_start="2024-01", partitions_end="2024-12"))  # fmt: skip


def _partitions(partitions_def) -> dict | None:
    if partitions_def is None:
        return None
    keys = partitions_def.get_partition_keys()
    return {"kind": type(partitions_def).__name__, "first": keys[0], "last": keys[-1], "count": len(keys)}


def _asset(defs: dg.Definitions, key: dg.AssetKey) -> dict:
    spec = next(s for a in defs.assets if isinstance(a, dg.AssetsDefinition) for s in a.specs if s.key == key)
    assets_def = defs.resolve_assets_def(key)
    condition = spec.automation_condition
    return {
        "group": spec.group_name,
        "kinds": sorted(spec.kinds),
        "owners": sorted(spec.owners),
        "has_description": bool(spec.description),
        "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
        "partitions": _partitions(assets_def.partitions_def),
        "automation": condition.get_label() or type(condition).__name__ if condition else None,
        "freshness": spec.freshness_policy is not None,
    }


def graph_snapshot(defs: dg.Definitions) -> dict:
    """The graph as plain, sorted data: what a reviewer should see change."""
    graph = defs.resolve_asset_graph()
    checks = {
        key.to_user_string(): {"blocking": graph.get_check_spec(key).blocking}
        for key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
    }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit job of all assets
            continue
        selected = job.asset_layer.selected_asset_keys if job.asset_layer else set()
        jobs[job.name] = sorted(k.to_user_string() for k in selected)
    resolved = [defs.resolve_schedule_def(s.name) for s in defs.schedules]
    schedules = {s.name: {"cron": s.cron_schedule, "job": s.job_name, "status": s.default_status.value}
                 for s in resolved}  # fmt: skip
    sensors = {s.name: {"status": s.default_status.value, "type": type(s).__name__}
               for s in (defs.resolve_sensor_def(s.name) for s in defs.sensors)}  # fmt: skip
    assets = {key.to_user_string(): _asset(defs, key) for key in sorted(graph.get_all_asset_keys())}
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_the_asset_graph_matches_its_snapshot() -> None:
    current = graph_snapshot(_defs())
    text = json.dumps(current, indent=1, sort_keys=True) + "\n"
    if os.environ.get("SEGFLOW_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    stored = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "checks", "jobs", "schedules", "sensors"):
        added = sorted(set(current[part]) - set(stored[part]))
        removed = sorted(set(stored[part]) - set(current[part]))
        changed = sorted(k for k in set(current[part]) & set(stored[part]) if current[part][k] != stored[part][k])
        assert not (added or removed or changed), (
            f"{part} differ from {SNAPSHOT.name}: added {added}, removed {removed}, changed {changed}; "
            "if meant, rewrite it with SEGFLOW_UPDATE_SNAPSHOT=1 (see this module's docstring)"
        )


def test_the_snapshot_sees_a_changed_graph() -> None:
    """The comparison is not blind: a graph without one asset and with another group differs."""
    current = graph_snapshot(_defs())
    assert current["assets"]["customer_profiles"]["group"]
    assert len(current["checks"]) > 10 and all("blocking" in c for c in current["checks"].values())
    altered = json.loads(json.dumps(current))
    altered["assets"].pop("customer_features")
    altered["assets"]["customer_profiles"]["group"] = "elsewhere"
    assert altered != current
