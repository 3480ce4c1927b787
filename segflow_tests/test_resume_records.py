"""What a resume trusts (the instance's records, not files), what it cleans up after a kill (runs
left started, hidden temporary files), and the CSV export's guards. Small and in-process; the
real kills are in ``test_crash_resume.py``."""

import contextlib
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from segflow.lib import storage
from segflow.lib.export import csv_ready, write_csv
from segflow.records import PROCESS_TAG, built_months, fail_stale_runs, process_tag

MONTHS = dg.StaticPartitionsDefinition(["2024-01", "2024-02", "2024-03", "2024-04"])


@pytest.fixture(autouse=True)
def _no_preview_warnings():
    # partitions_def on check specs is "preview" in 1.13, and what segflow's own specs use too.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        yield


def _toy_defs() -> dg.Definitions:
    """Two outputs with a blocking check each, and a month-dependent way to fail: 2024-02 dies
    between its outputs, 2024-03 fails its check, 2024-04 is not run at all."""

    @dg.multi_asset(
        outs={"first": dg.AssetOut(), "second": dg.AssetOut()},
        partitions_def=MONTHS,
        check_specs=[dg.AssetCheckSpec("second_ok", asset="second", blocking=True, partitions_def=MONTHS)],
    )
    def pair(context: dg.AssetExecutionContext):
        yield dg.Output(1, output_name="first")
        if context.partition_key == "2024-02":
            raise RuntimeError("killed between outputs")
        yield dg.Output(2, output_name="second")
        passed = context.partition_key != "2024-03"
        yield dg.AssetCheckResult(asset_key="second", check_name="second_ok", passed=passed)

    job = dg.define_asset_job("toy_job", selection=[pair], executor_def=dg.in_process_executor)
    return dg.Definitions(assets=[pair], jobs=[job], resources={"io_manager": dg.mem_io_manager})


def test_a_month_is_built_only_with_every_output_and_passed_checks(memory_instance) -> None:
    defs = _toy_defs()
    for month in ("2024-01", "2024-02", "2024-03"):
        defs.resolve_job_def("toy_job").execute_in_process(
            partition_key=month, instance=memory_instance, raise_on_error=False
        )
    assert built_months(defs, memory_instance, "toy_job", MONTHS.get_partition_keys()) == {"2024-01"}
    # 2024-02 has a file-like trace (its first output) but is not built; 2024-03 has both outputs.
    assert "2024-02" in memory_instance.get_materialized_partitions(dg.AssetKey("first"))
    assert "2024-03" in memory_instance.get_materialized_partitions(dg.AssetKey("second"))
    # A later run of a built month that fails its check makes it not built again.
    failing = _toy_defs()
    memory_instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=dg.AssetKey("second"), check_name="second_ok", passed=False,
                                partition="2024-01")
    )  # fmt: skip
    assert built_months(failing, memory_instance, "toy_job", ["2024-01"]) == set()


def test_runs_of_dead_processes_are_marked_failed_and_live_ones_left(memory_instance) -> None:
    job = _toy_defs().resolve_job_def("toy_job")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    host = process_tag()[PROCESS_TAG].rpartition(":")[0]
    killed = memory_instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={PROCESS_TAG: f"{host}:{dead.stdout.strip()}"}
    )
    alive = memory_instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED, tags=process_tag())
    elsewhere = memory_instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={PROCESS_TAG: f"another-host:{dead.stdout.strip()}"}
    )
    not_ours = memory_instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    assert fail_stale_runs(memory_instance) == [killed.run_id]
    status = {run.run_id: run.status for run in memory_instance.get_runs()}
    assert status[killed.run_id] == dg.DagsterRunStatus.FAILURE
    assert {status[r.run_id] for r in (alive, elsewhere, not_ours)} == {dg.DagsterRunStatus.STARTED}


def test_sweep_removes_dead_writers_temp_files_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    folder = tmp_path / "customer_profiles"
    folder.mkdir()
    stale = folder / f".2024-01.parquet.{dead}-abc123_x.tmp"
    live = folder / f".2024-02.parquet.{os.getpid()}-def456yz.tmp"
    old_format = folder / ".2024-03.parquet.k2j4h5g6.tmp"  # written before names carried a pid
    published = folder / "2024-01.parquet"
    for path in (stale, live, old_format, published):
        path.write_bytes(b"x")
    assert storage.sweep_stale_temp(tmp_path) == [stale, old_format]
    assert live.exists() and published.exists()
    # atomic_write names its temporary file after the writing process, which the sweep reads back.
    storage.atomic_write(folder / "2024-04.parquet", lambda tmp: tmp.write_text(tmp.name))
    assert f".2024-04.parquet.{os.getpid()}-" in (folder / "2024-04.parquet").read_text()


ATTACKS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\t=1", "\r=1"]


def test_csv_export_neutralises_formulas_and_writes_nested_columns(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "segment_name": [*ATTACKS, "Champions", None],
            "net_revenue": [12.340000000000002, 0.1 + 0.2, -3.0, 1e-20, 98765432109.87001, 5.0, 7.5, None],
            "category_revenue": [[{"category": "=x", "net_revenue": 1.5}], [], None, *[[]] * 5],
            "n": [-1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    ready = csv_ready(frame)
    assert ready["segment_name"].to_list()[:6] == [f"'{a}" for a in ATTACKS]
    assert ready["segment_name"].to_list()[6:] == ["Champions", None]
    assert ready["category_revenue"].to_list()[:3] == ['[{"category":"=x","net_revenue":1.5}]', "[]", None]
    out = write_csv(frame, tmp_path / "x.csv")
    lines = out.read_text().splitlines()
    # Every text cell is quoted and none starts with a formula character; numbers stay numbers.
    assert lines[1].startswith("\"'=HYPERLINK(") and lines[1].endswith(",-1")
    assert ",12.34," in lines[1] and ",0.3," in lines[2] and ",1e-20," in lines[4]
    assert ",98765432109.9," in lines[5]
    back = pl.read_csv(out)
    assert back.height == frame.height and back["n"].to_list() == frame["n"].to_list()


def test_export_command_writes_a_nested_table(tmp_path: Path) -> None:
    from segflow_tests.conftest import home_layout, segflow_cli

    profiles = pl.DataFrame({"customer_id": ["c1", "c2"], "notes": ["=1+1", "fine"],
                             "category_revenue": [[{"category": "toys", "net_revenue": 2.5}], []]})  # fmt: skip
    storage.write_parquet(profiles, home_layout(tmp_path).table("customer_profiles", "2024-01"))
    out = tmp_path / "profiles.csv"
    segflow_cli(tmp_path, "export", "customer_profiles", "--period", "2024-01", "--out", str(out))
    text = out.read_text()
    assert '"\'=1+1"' in text and '[{""category"":""toys"",""net_revenue"":2.5}]' in text


@pytest.mark.parametrize("value", ["=1", "+1", "-1", "@1", "\t1", "\r1"])
def test_formula_guard_on_each_leading_character(value: str) -> None:
    assert csv_ready(pl.DataFrame({"s": [value]}))["s"][0] == "'" + value
    assert csv_ready(pl.DataFrame({"s": ["a" + value]}))["s"][0] == "a" + value


# A fit's bytes, as a fresh process computes them with the given environment. First call in the
# process, as in a modelling-only resume or a backfill worker: scikit-learn is not loaded yet.
FIT = """
import hashlib, json, sys
import numpy as np, polars as pl
{preload}
from segflow.config import ModelSettings
from segflow.lib.models.clustering import fit_segments

rng = np.random.default_rng(3)
centres = rng.normal(size=(3, 4)) * 3
rows = np.vstack([c + rng.normal(size=(500, 4)) for c in centres])
frame = pl.DataFrame({
    "customer_id": [f"c{i:05d}" for i in range(len(rows))],
    "recency_days": np.exp(np.abs(rows[:, 0])).round(0),
    "invoices_per_month": np.abs(rows[:, 1]),
    "avg_order_value": np.exp(np.abs(rows[:, 2])),
    "return_rate": np.clip(np.abs(rows[:, 3]) / 10, 0, 1),
    "monetary": np.exp(np.abs(rows[:, 2])) * np.abs(rows[:, 1]),
})
settings = ModelSettings(families=("kmeans", "gmm"), k_max=4, n_init=2, stability_resamples=2,
                         gap_references=2, feature_families=("rfm", "behaviour"))
fit = fit_segments(frame, settings, "2024-01")
print(hashlib.sha256(json.dumps(fit.to_dict(), sort_keys=True).encode()).hexdigest())
"""


def _fit_digest(preload: str, **env: str) -> str:
    base = {
        k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "POLARS_MAX_THREADS"
    }
    done = subprocess.run([sys.executable, "-c", FIT.replace("{preload}", preload)], env={**base, **env},
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every pool has one thread anyway")
def test_fit_bytes_do_not_depend_on_what_the_process_ran_before() -> None:
    """19.9: the same fit in a fresh process whose first call it is (a modelling-only resume), in
    one that loaded scikit-learn before (a sequential backfill, after ingest's imputation), and in
    a backfill worker's layout (one thread per pool) gives the same bytes. Before the thread limit
    held on a process's first call, the first gave centroids different in their last bits: k-means'
    OpenMP threads add their partial sums in whichever order they finish (1,500 rows: 6 chunks)."""
    fresh = _fit_digest("")
    worker = _fit_digest("", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", POLARS_MAX_THREADS="1")
    # Preloaded: this process, which has scikit-learn loaded, as a sequential backfill has by then.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(FIT.replace("{preload}", "import sklearn.cluster, sklearn.mixture, scipy.linalg"), {})  # noqa: S102
    assert fresh == worker == printed.getvalue().strip()
