"""The README's "Use your own data" walk-through, end to end through the CLI: map, backfill, export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from segflow.lib.storage import StorageLayout
from segflow_tests.conftest import segflow_cli

CONFIG = """
storage_dir: out
partitions: {start: 2023-01}
sources:
  transactions:
    location: orders.csv
    format: csv
    columns: {invoice_id: OrderNo, customer_id: Client, invoiced_at: OrderDate,
              product_id: SKU, quantity: Qty, unit_price: UnitPrice}
  customers: {enabled: false}
  engagement: {enabled: false}
  surveys: {enabled: false}
  campaigns: {enabled: false}
"""


def _orders(path: Path) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 1500
    heavy = rng.random(n) < 0.3
    frame = pl.DataFrame({
        "OrderNo": [f"O{i}" for i in range(n)],
        "Client": [f"K{c}" for c in np.where(heavy, rng.integers(0, 20, n), rng.integers(20, 90, n))],
        "OrderDate": [f"2023-0{1 + m}-{1 + d:02d} 12:00:00" for m, d in zip(rng.integers(0, 3, n), rng.integers(0, 28, n), strict=True)],
        "SKU": [f"S{s}" for s in rng.integers(0, 30, n)],
        "Qty": rng.integers(1, 6, n),
        "UnitPrice": np.round(np.where(heavy, rng.uniform(50, 90, n), rng.uniform(2, 9, n)), 2),
    })  # fmt: skip
    frame.write_csv(path)
    return frame


def test_csv_export_to_report_in_three_steps(tmp_path: Path) -> None:
    orders = _orders(tmp_path / "orders.csv")
    (tmp_path / "my.yaml").write_text(CONFIG)
    env = {**{k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME")},
           "SEGFLOW_HOME": str(tmp_path / "home")}  # fmt: skip
    cli = [sys.executable, "-m", "segflow.cli"]
    run = subprocess.run([*cli, "backfill", "--config", "my.yaml", "--from", "2023-02", "--to", "2023-03"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert StorageLayout(tmp_path / "out").report_page("2023-03").exists()
    # The export by the CLI's main in this process: the backfill above already runs the command as
    # a process, and a second process would only pay the imports again.
    out = tmp_path / "segments.csv"
    segflow_cli(tmp_path / "home", "export", "segment_assignments", "--config", str(tmp_path / "my.yaml"),
                "--period", "2023-03", "--out", str(out))  # fmt: skip
    segments = pl.read_csv(out)
    active = set(orders["Client"])  # every client bought inside the 3-month window
    assert set(segments["customer_id"]) == active
    assert segments["segment_id"].null_count() == 0 and segments["rfm_segment"].null_count() == 0
