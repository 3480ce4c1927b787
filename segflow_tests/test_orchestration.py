"""Orchestration promises: byte-identical outputs whatever the build order or parallelism, crash
safety under SIGKILL, and resumable backfills.

The runs whose process is what is tested (killed by SIGKILL or mid-backfill, spawned workers) are
real processes; the others call ``segflow.runner`` in this process, as the CLI does, so that they
do not pay Dagster's, polars' and scikit-learn's imports again (about 10 s a process)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from segflow import runner
from segflow_tests.conftest import HISTORY_MONTHS as MONTHS
from segflow_tests.conftest import copy_home, dagster_home, home_layout, home_settings

pytestmark = pytest.mark.slow
SEGFLOW = [sys.executable, "-m", "segflow.cli"]
ROOT = Path(__file__).resolve().parents[1]
# dagster-daemon, with its backfill loop polled every 2 s instead of 30. The 30 s are a constant of
# dagster._daemon.controller, not an instance setting, and each level of the month chain (last
# month's model, then this month's) waits for one loop: 4 months spent five minutes of the test
# budget idle. Nothing else about the daemon changes.
DAEMON = (
    "import sys; import dagster._daemon.controller as c; c.DEFAULT_DAEMON_INTERVAL_SECONDS = 2; "
    "from dagster._daemon.cli import main; sys.exit(main())"
)


def _home(base: Path, landing: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    shutil.copytree(landing, base / "landing")
    return base


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEGFLOW_CONFIG", "DAGSTER_HOME")}
    return {**env, "SEGFLOW_HOME": str(home)}


def _backfill(home: Path, first: str, last: str, **options) -> runner.BackfillSummary:
    """What ``segflow backfill`` (or, with force, ``segflow materialize``) runs, in this process."""
    with dagster_home(home):
        summary = runner.backfill(home_settings(home), first, last, **options)
    assert not summary.failed, [(o.period, o.job, o.error) for o in summary.failed]
    return summary


def _digests(home: Path) -> dict[str, str]:
    storage = home_layout(home).root
    return {str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(storage.rglob("*")) if p.is_file()}  # fmt: skip


def test_outputs_identical_whatever_the_order_or_parallelism(tmp_path: Path, built_history: Path) -> None:
    # Sequential: built_history is the HISTORY_MONTHS backfilled oldest first in one process.
    # Parallel: from a copy of it, the last two months rebuilt on two spawned worker processes
    # (ingest and the fits in parallel, features and publish in month order). Building them all
    # from empty cost four minutes of the test budget and exercises no other code path; two months
    # are what two workers need to overlap.
    parallel = copy_home(built_history, tmp_path / "parallel")
    summary = _backfill(parallel, MONTHS[-2], MONTHS[-1], workers=2, force=True)
    assert {(o.period, o.job) for o in summary.outcomes} == {
        (month, job) for month in MONTHS[-2:] for job in ("ingest_job", "features_job", "fit_job", "publish_job")
    }
    # One process, newest month first, each month forced as `segflow materialize` does. On an empty
    # home the first of these (the last month) extended back and built the whole chain oldest first, since
    # no earlier month had a model: that is built_history, so start from a copy of it and rebuild
    # the last two months newest first (each rebuild reads the month before it, already rebuilt
    # or not: the order is what is under test, and two months are the least that have one; all
    # twelve cost five minutes of the test budget).
    reverse = copy_home(built_history, tmp_path / "reverse")
    for month in reversed(MONTHS[-2:]):
        summary = _backfill(reverse, month, month, force=True)
        assert {(o.period, o.job) for o in summary.outcomes} == {
            (month, "ingest_job"),
            (month, "modelling_job"),
        }
    expected = _digests(built_history)
    assert len([k for k in expected if k.startswith("segment_assignments/")]) == len(MONTHS)
    assert _digests(parallel) == expected
    assert _digests(reverse) == expected
    # A modelling-only resume on two workers: the runs that published the last two months' models
    # deleted from the instance, so those months are not built there, while their profiles still are.
    # A plain resume rebuilds features through the report of those months only, the fits in fresh
    # worker processes that ran no ingest. (SQLite storage cannot wipe single partitions.)
    import dagster as dg

    with dagster_home(parallel), dg.DagsterInstance.get() as instance:
        for month in MONTHS[-2:]:
            for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": month})):
                if run.job_name in ("modelling_job", "publish_job"):
                    instance.delete_run(run.run_id)
    summary = _backfill(parallel, MONTHS[0], MONTHS[-1], workers=2)
    assert {(o.period, o.job) for o in summary.outcomes} == {
        (month, job) for month in MONTHS[-2:] for job in ("features_job", "fit_job", "publish_job")
    }
    assert _digests(parallel) == expected


KILLER = textwrap.dedent(
    """
    import os, sys, time
    real_replace = os.replace
    def slow_replace(src, dst):
        if "customer_profiles" in str(dst):
            open(sys.argv[1], "w").close()   # tell the test we are about to publish
            time.sleep(600)
        return real_replace(src, dst)
    os.replace = slow_replace
    from segflow.cli import main
    sys.exit(main(["materialize", "--period", "2024-03"]))
    """
)


def test_launched_backfill_runs_on_the_daemon_and_postgres_as_in_process(
    tmp_path: Path, built_history: Path, history_landing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``segflow backfill --launch`` on the shipped production instance (deploy/dagster.yaml): a real
    PostgreSQL server and ``dagster-daemon``, 4 months from empty, at most 2 runs at a time. Every
    stored output of those months equals the in-process backfill's (built_history: the same landing
    zone, oldest first in one process; a month's outputs read no later month)."""
    import dagster as dg
    from dagster._core.storage.tags import BACKFILL_ID_TAG

    from segflow_tests.conftest import segflow_cli, stop_process_group
    from segflow_tests.pg_server import postgres_server

    months = MONTHS[:4]
    home = _home(tmp_path / "queued", history_landing)
    instance_dir = home / "dagster_home"
    instance_dir.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", instance_dir / "dagster.yaml")
    with postgres_server() as server, pytest.MonkeyPatch.context() as mp:
        url = server.uri.replace("postgresql://", "postgresql+psycopg2://")  # deploy/dagster.yaml says why
        mp.setenv("SEGFLOW_DAGSTER_PG_URL", url)
        # Two runs at a time on two cores: each run gets one thread (deploy/dagster.yaml says why).
        env = {**_env(home), "DAGSTER_HOME": str(instance_dir), "SEGFLOW_DAGSTER_PG_URL": url,
               "OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}  # fmt: skip
        daemon_log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [sys.executable, "-c", DAEMON, "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=daemon_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        launch = ("backfill", "--launch", "--from", months[0], "--to", months[-1])
        try:
            out = segflow_cli(home, *launch, "--wait")
            # The instance records those months as built, as the in-process backfill reads it: a
            # second launch resumes to nothing.
            again = segflow_cli(home, *launch)
        finally:
            stop_process_group(daemon, timeout=60)
            daemon_log.close()
        # The warnings go to stderr: none says the instance is SQLite's (it is deploy/dagster.yaml's).
        assert "SQLite" not in capsys.readouterr().err and "launched backfill" in out, out
        assert "nothing to launch: every month is built" in again and "already built" in again, again
        backfill_id = out.split("launched backfill ", 1)[1].split(":", 1)[0]
        with dagster_home(home), dg.DagsterInstance.get() as instance:
            assert "Postgres" in type(instance.run_storage).__name__
            records = instance.get_run_records(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    assert records and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    # The queue's limit held, and it was reached: the months' independent runs overlapped.
    spans = [(r.start_time, r.end_time) for r in records]
    print(f"\n[queue] {len(records)} runs, {sum(e - s for s, e in spans):.0f} s of runs, "
          f"{max(e for _, e in spans) - min(s for s, _ in spans):.0f} s from the first start to the last end")
    overlap = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert overlap == 2, spans
    def of_months(digests: dict[str, str]) -> dict[str, str]:
        return {path: digest for path, digest in digests.items() if Path(path).stem in months}

    expected = of_months(_digests(built_history))
    assert len(expected) > 20 * len(months)
    assert of_months(_digests(home)) == expected


def test_sigkill_during_write_leaves_no_partial_partition(tmp_path: Path, built_history: Path) -> None:
    home = copy_home(built_history, tmp_path / "home")  # 2024-03 and its window are built
    target = home_layout(home).table("customer_profiles", "2024-03")
    good = target.read_bytes()
    marker = tmp_path / "publishing"
    process = subprocess.Popen([sys.executable, "-c", KILLER, str(marker)], env=_env(home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before publishing"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert target.read_bytes() == good  # the previous good version, never a partial file
    leftovers = list(target.parent.glob(".*.tmp"))
    assert leftovers  # the killed writer's temporary file is hidden, not published
    _backfill(home, "2024-03", "2024-03", force=True)  # `segflow materialize --period 2024-03`
    assert target.read_bytes() == good
    assert not list(target.parent.glob(".*.tmp"))


def test_interrupted_backfill_resumes_without_redoing(tmp_path: Path, history_landing: Path) -> None:
    home = _home(tmp_path / "home", history_landing)
    process = subprocess.Popen([*SEGFLOW, "backfill", "--from", "2024-01", "--to", "2024-04"], env=_env(home),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    for line in process.stdout:
        if "2024-02 modelling_job" in line and " ok" in line:
            process.kill()
            break
    process.wait()
    layout = home_layout(home)
    report = layout.reports_dir
    assert sorted(p.name for p in report.glob("20*.html")) == ["2024-01.html", "2024-02.html"]
    # Month reports of finished months are never rewritten; the index is, as months are added.
    done_before = {p: p.stat().st_mtime_ns for p in report.glob("20*.html")}
    # The resumed backfill in this process; its progress lines are what `segflow backfill` prints.
    lines: list[str] = []
    _backfill(home, "2024-01", "2024-04", echo=lines.append)
    output = "\n".join(lines)
    assert "skipped (use --force to rebuild): 2024-01, 2024-02" in output
    assert "2024-01 modelling_job" not in output and "2024-02 modelling_job" not in output
    assert "2024-03 modelling_job" in output and "2024-04 modelling_job" in output
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before
    assert sorted(p.name for p in report.glob("20*.html")) == [f"2024-0{m}.html" for m in range(1, 5)]
    assert all(f"2024-0{m}.html" in layout.report_index.read_text() for m in range(1, 5))


def test_cli_backfill_is_one_dagster_backfill_of_runs_the_ui_attributes(built_history: Path) -> None:
    """Every run of ``segflow backfill`` carries segflow's code-location origin (what a job's Runs
    tab, the timeline and re-execution filter on), belongs to the one backfill it recorded, and its
    metadata is rounded for people. Read from the session's history: no run of its own."""
    import re

    import dagster as dg
    from dagster._core.events import DagsterEventType

    CHECK_EVALUATION = DagsterEventType.ASSET_CHECK_EVALUATION
    with dagster_home(built_history), dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        (backfill,) = instance.get_backfills()
        materializations = [
            (record.asset_materialization.asset_key.to_user_string(), record.asset_materialization.metadata)
            for key in instance.get_asset_keys()
            for record in instance.fetch_materializations(key, limit=1000).records
        ]
        evaluations = [
            (evaluation.check_name, evaluation.metadata)
            for run in runs
            for record in instance.get_records_for_run(run.run_id, of_type=CHECK_EVALUATION).records
            for evaluation in [record.event_log_entry.dagster_event.event_specific_data]
        ]
    assert len(runs) == 2 * len(MONTHS)
    assert {r.remote_job_origin.repository_origin.get_label() for r in runs} == {"__repository__@segflow"}
    assert {r.tags.get("dagster/backfill") for r in runs} == {backfill.backfill_id}
    assert backfill.status.value == "COMPLETED_SUCCESS" and backfill.partition_names == MONTHS
    long_floats = re.compile(r"\d\.0*[1-9]\d{6,}")  # 7+ significant digits (0.0008869 is 4)
    noisy = {
        (name, key)
        for name, metadata in materializations + evaluations
        for key, value in metadata.items()
        if long_floats.search(repr(getattr(value, "value", value)))
    }
    assert evaluations and not noisy, sorted(noisy)


# ------------------------------------------------------------------- names, ids and headlines
# (read from built_history, the months the tests above share: no run of their own)


def _model(home: Path, month: str) -> dict:
    import json

    return json.loads(home_layout(home).model("segmentation_model", month).read_text(encoding="utf-8"))


def _words(name: str) -> frozenset[str]:
    return frozenset(name.lower().replace(",", "").split())


def test_segment_names_stay_bound_to_ids_across_six_months(built_history: Path) -> None:
    """Issue 16.1: a segment matched to last month's keeps its id and its name unless the profile the
    name states no longer holds, and then the rename is recorded with its reason."""
    import json

    import polars as pl

    months = MONTHS[-6:]
    models = {m: _model(built_history, m) for m in months}
    kept = 0
    for before, after in zip(months, months[1:], strict=False):
        old, new = models[before], models[after]
        renames = {c["segment_id"]: c for c in new["segment_renames"]}
        for sid, match in new["alignment"]["matched"].items():
            previous_name = old["segment_names"][str(match["previous_id"])]
            if int(sid) in renames:
                assert renames[int(sid)]["previous_name"] == previous_name and renames[int(sid)]["reason"]
                assert new["segment_names"][sid] != previous_name
                # A reordering of the same two features is never a rename ("Frequent, recently
                # active" vs "Recently active, frequent"): a rename says something new.
                assert _words(new["segment_names"][sid]) != _words(previous_name)
            else:
                assert new["segment_names"][sid] == previous_name, (after, sid)
                kept += 1
        assignments = pl.read_parquet(home_layout(built_history).table("segment_assignments", after))
        pairs = assignments.select("segment_id", "segment_name").unique()
        assert pairs.height == assignments["segment_id"].n_unique()  # one name per id
        assert {str(i): n for i, n in pairs.iter_rows()} == {
            i: n for i, n in new["segment_names"].items() if int(i) in set(pairs["segment_id"])
        }
    assert kept >= 3  # matched segments keep their name month to month
    # The index draws one share line per id (its records are keyed by id), labelled by the latest name.
    layout = home_layout(built_history)
    records = [json.loads(layout.report_record(m).read_text(encoding="utf-8")) for m in MONTHS]
    ids = {i for r in records for i in r["segment_share"]}
    assert all(i.isdigit() for i in ids)
    index = layout.report_index.read_text(encoding="utf-8")
    latest = {i: r["segment_names"][i] for r in records for i in r["segment_names"]}
    for i in ids:
        assert f"{i}: {latest[i]}".replace("'", "&#39;") in index or f"{i}: {latest[i]}" in index


def test_migration_headline_equals_the_heatmap_diagonal(built_history: Path) -> None:
    """Issue 16.2: the stay rate in the report is computed from ids and equals the migration matrix's
    diagonal share (same id both months), which equals what the assignments say."""
    import re

    import polars as pl

    layout = home_layout(built_history)
    for before, after in zip(MONTHS[-7:-1], MONTHS[-6:], strict=True):
        html = layout.report_page(after).read_text(encoding="utf-8")
        headline = re.search(r'<p id="stay-cluster">([0-9.]+)% of last month', html)
        assert headline, after
        matrix = pl.read_parquet(layout.table("segment_migration", after)).filter(
            (pl.col("kind") == "cluster") & pl.col("from_id").is_not_null()
        )
        diagonal = matrix.filter(pl.col("from_id") == pl.col("to_id"))["customers"].sum() / matrix["customers"].sum()
        prev = pl.read_parquet(layout.table("segment_assignments", before))
        cur = pl.read_parquet(layout.table("segment_assignments", after))
        joined = prev.select("customer_id", "segment_id").join(
            cur.select("customer_id", pl.col("segment_id").alias("now")), on="customer_id", how="left"
        )
        truth = (joined["segment_id"] == joined["now"]).fill_null(False).mean()
        assert diagonal == pytest.approx(truth)
        assert headline.group(1) == f"{100 * truth:.1f}", (after, headline.group(1), truth)
