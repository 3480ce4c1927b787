"""Definitions are built from a settings value: two configs in one process, nothing read at import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import dagster as dg

from segflow.config import FeatureSettings, ModelSettings, ReportSettings, load_settings
from segflow.definitions import build_defs


def _window(defs: dg.Definitions, asset: str, upstream: str) -> tuple[int, int]:
    mapping = defs.resolve_assets_def(asset).get_partition_mapping(dg.AssetKey(upstream))
    return mapping.start_offset, mapping.end_offset


def test_two_configs_build_two_graphs_in_one_process(tmp_path: Path) -> None:
    base = load_settings()
    short = dataclasses.replace(
        base,
        storage_dir=tmp_path / "short",
        partitions_start="2023-03",
        features=dataclasses.replace(FeatureSettings(), window_months=6),
        model=dataclasses.replace(ModelSettings(), churn_horizon_months=2),
        report=dataclasses.replace(ReportSettings(), backtest_horizon_months=2, trend_months=4),
    )
    first, second = build_defs(base), build_defs(short)
    keys = {name: d.resolve_assets_def("customer_features").partitions_def.get_first_partition_key()
            for name, d in (("base", first), ("short", second))}  # fmt: skip
    assert keys == {"base": base.partitions_start, "short": "2023-03"}
    assert _window(first, "customer_features", "customer_profiles") == (-11, 0)
    assert _window(second, "customer_features", "customer_profiles") == (-5, 0)
    assert _window(first, "churn_model", "customer_features") == (-6, 0)
    assert _window(second, "churn_model", "customer_features") == (-4, 0)
    assert _window(second, "segment_backtest", "segment_assignments") == (-2, 0)
    assert _window(second, "audit_report", "kpi_audit") == (-3, 0)
    # The checks are built for the same partitions as their assets: evaluated in the asset's step
    # (contract checks, and the accounting balance and model gates, before publishing).
    raw = second.resolve_assets_def("raw_transactions")
    assert dg.AssetCheckKey(raw.key, "raw_transactions_contract_errors") in raw.check_keys
    for asset, check_name in (("row_accounting", "row_accounting_balances"),
                              ("segmentation_model", "segment_sizes_viable")):  # fmt: skip
        key = dg.AssetCheckKey(dg.AssetKey(asset), check_name)
        (owner,) = [a for a in second.assets if key in a.check_keys]
        assert owner.partitions_def.get_first_partition_key() == "2023-03"
        assert not [c for c in second.asset_checks if key in c.check_keys]  # no step of its own
    # Each graph's assets receive their own settings value through the resource.
    def served(defs: dg.Definitions):
        return defs.resources["settings"].resource_fn(dg.build_init_resource_context())

    assert served(first) is base and served(second) is short


def test_no_settings_are_read_at_import(tmp_path: Path) -> None:
    """Importing the definitions module with a broken config named in the environment succeeds;
    only building the definitions reads (and rejects) the file."""
    missing = tmp_path / "missing.yaml"
    code = (
        "import segflow.definitions as d\n"
        "import segflow.defs.sources.assets, segflow.defs.audit.assets, segflow.defs.sensors\n"
        "try:\n    d.defs()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={"SEGFLOW_CONFIG": str(missing), "PATH": ""},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ConfigError") and "config file not found" in done.stdout
