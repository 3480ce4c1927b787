"""The command line as a user meets it: a configuration error comes first, once, before any month
runs; partitions end with the data; help, the segment table, the summary and export are readable.
(That the UI lists the CLI's runs is asserted through the webserver in test_webserver.py.)"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from segflow_tests.conftest import dagster_home

TX_HEADER = "invoice_id,Client,invoiced_at,product_id,category,quantity,unit_price,channel"
TX_LINE = "I{n},C{c},{month}-0{d} 10:00:00,P1,toys,2,3.50,web"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _config(home: Path, customer_column: str, extra: str = "") -> Path:
    return _write(
        home / "segflow.yaml",
        "storage_dir: storage\nlanding_dir: landing\npartitions: {start: 2024-01, end: 2024-06}\n"
        f"{extra}sources:\n"
        "  transactions:\n    location: '{landing}/tx/{period}.csv'\n    format: csv\n"
        f"    columns: {{customer_id: {customer_column}}}\n"
        "  customers: {enabled: false}\n  engagement: {enabled: false}\n  surveys: {enabled: false}\n"
        "  campaigns: {enabled: false}\n",
    )


def _month(home: Path, month: str, header: str = TX_HEADER) -> None:
    lines = [TX_LINE.format(n=n, c=n % 3, month=month, d=1 + n % 8) for n in range(12)]
    _write(home / "landing" / "tx" / f"{month}.csv", "\n".join([header, *lines]) + "\n")


def _cli(home: Path, capsys, *args: str) -> tuple[int, str, str]:
    from segflow.cli import main

    with dagster_home(home), pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGFLOW_HOME", str(home))
        code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _runs(home: Path) -> list[dg.DagsterRun]:
    with dagster_home(home), dg.DagsterInstance.get() as instance:
        return list(instance.get_runs())


def test_a_mapping_error_stops_the_backfill_before_any_month_runs(tmp_path: Path, capsys) -> None:
    for month in ("2024-01", "2024-02", "2024-03"):
        _month(tmp_path, month)
    config = _config(tmp_path, "Cliant")
    code, out, err = _cli(
        tmp_path, capsys, "backfill", "--config", str(config), "--from", "2024-01", "--to", "2024-03"
    )
    assert code == 2
    # First and once: the file, the column, the rule and the hint, with no traceback before it.
    assert err.startswith("segflow: configuration error: "), err
    assert err.count("Cliant") == 1 and "did you mean 'Client'" in err
    assert "tx/2024-01.csv" in err and "Traceback" not in out + err
    assert _runs(tmp_path) == []  # no month ran
    assert "(run )" not in out


def test_a_mapping_that_a_later_file_breaks_stops_the_backfill_there(tmp_path: Path, capsys) -> None:
    from segflow.lib.sources.preflight import SAMPLE_ROWS

    # 2024-01 passes the check on its first rows but fails its run: most of its quantities are
    # text after them (a data problem of that month, so the backfill goes on). 2024-02's export
    # renamed the column the mapping reads: that breaks every month after it, so it stops there.
    good = [TX_LINE.format(n=n, c=n % 3, month="2024-01", d=1 + n % 8) for n in range(SAMPLE_ROWS)]
    bad = [line.replace(",2,3.50,", ",two,3.50,") for line in good] + [
        good[0].replace(",2,3.50,", ",x,3.50,")
    ]
    _write(tmp_path / "landing" / "tx" / "2024-01.csv", "\n".join([TX_HEADER, *good, *bad]) + "\n")
    _month(tmp_path, "2024-02", TX_HEADER.replace("Client", "Customer"))
    _month(tmp_path, "2024-03")
    config = _config(tmp_path, "Client")
    code, out, err = _cli(
        tmp_path, capsys, "backfill", "--config", str(config), "--from", "2024-01", "--to", "2024-03"
    )
    assert code == 2
    assert "2024-01 ingest_job" in out and "column 'quantity'" in out  # its own error, then on
    assert err.startswith("segflow: configuration error: ") and err.count("is missing column 'Client'") == 1
    assert "tx/2024-02.csv" in err and "'Customer'" in err  # the file and what it has instead
    runs = _runs(tmp_path)
    # Nothing started after 2024-02: not 2024-03's ingest, not a modelling run.
    assert sorted((r.tags["dagster/partition"], r.job_name, r.status.value) for r in runs) == [
        ("2024-01", "ingest_job", "FAILURE"), ("2024-02", "ingest_job", "FAILURE")]  # fmt: skip


def test_a_month_after_partitions_end_is_a_configuration_error(tmp_path: Path, capsys) -> None:
    _month(tmp_path, "2024-07")
    config = _config(tmp_path, "Client")
    code, _, err = _cli(
        tmp_path, capsys, "backfill", "--config", str(config), "--from", "2024-07", "--to", "2024-07"
    )
    assert code == 2 and "partitions.end is 2024-06; 2024-07 is after it" in err
    assert _runs(tmp_path) == []


@pytest.mark.parametrize(
    ("partitions", "expected"),
    [("{start: 2024-01, end: 2024-13}", "partitions.end: '2024-13' is not a month"),
     ("{start: 2024-05, end: 2024-02}", "partitions.end 2024-02 is before partitions.start 2024-05")],
)  # fmt: skip
def test_partitions_setting_is_checked(tmp_path: Path, partitions: str, expected: str) -> None:
    from segflow.config import ConfigError, load_settings

    config = _write(tmp_path / "c.yaml", f"partitions: {partitions}\n")
    with pytest.raises(ConfigError, match=expected):
        load_settings(config)


def test_demo_partitions_end_with_the_generated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segflow.config import load_settings
    from segflow.definitions import build_defs
    from segflow.lib.periods import shift
    from segflow.synth import SynthConfig, generate

    monkeypatch.delenv("SEGFLOW_CONFIG", raising=False)
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    settings = load_settings()  # before the demo generates its landing zone
    generated = SynthConfig(start=settings.partitions_start)
    assert settings.partitions_end == shift(generated.start, generated.months - 1) == "2025-03"
    defs = build_defs(settings)
    keys = defs.resolve_job_def("segmentation_job").partitions_def.get_partition_keys()
    assert keys[0] == "2024-01" and keys[-1] == "2025-03" and len(keys) == generated.months
    # Long after the data ends, the schedule still targets its last month, never one without data.
    schedule = defs.resolve_schedule_def("segmentation_job_schedule")
    # The context opens its own instance from the test's; closed in a with block, it resets the
    # defs state storage in order (conftest.dagster_instances_exited_in_order).
    tick = dt.datetime(2026, 12, 2, 6, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2025-03"]
    # A landing zone generated otherwise (`segflow generate --months 2`) sets the months itself.
    generate(tmp_path / "landing", SynthConfig(customers=20, months=2, start="2024-05", seed=1))
    settings = load_settings()
    assert (settings.partitions_start, settings.partitions_end) == ("2024-05", "2024-06")


def test_every_option_has_help_and_a_readable_placeholder() -> None:
    from segflow.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        text = command.format_help()
        assert "FROM_" not in text and "==SUPPRESS==" not in text, name
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, (name, action.dest)


def test_segment_table_shows_whole_names_and_percentages(tmp_path: Path, capsys) -> None:
    from segflow.cli import _print_summary
    from segflow_tests.conftest import home_layout, home_settings

    settings = home_settings(tmp_path)
    name = "Highly engaged, digital-first, frequent big spenders"
    kpis = pl.DataFrame({
        "segment_id": [2, 1], "segment_name": [name, "Lost"], "customers": [120, 880],
        "customer_share": [0.12, 0.88], "revenue_share": [0.6543, 0.3457],
        "avg_order_value": [123.456789, 20.0], "mean_frequency": [4.123456, 1.0], "mean_recency_days": [12.6, 300.2],
    })  # fmt: skip
    path = home_layout(tmp_path).table("kpi_audit", "2024-01")
    path.parent.mkdir(parents=True)
    kpis.write_parquet(path)
    _print_summary(settings, "2024-01")
    text = capsys.readouterr().out
    assert name in text and "12.0%" in text and "65.4%" in text and "123.46" in text
    assert not any(dtype in text.split() for dtype in ("str", "f64", "i64", "---"))
    assert text.index(" 1 ") < text.index(" 2 ")  # in id order


def test_summary_names_what_failed_without_an_empty_run_id(tmp_path: Path, capsys) -> None:
    from segflow.cli import _finish_backfill
    from segflow.runner import BackfillSummary, RunOutcome
    from segflow_tests.conftest import home_layout, home_settings

    settings = home_settings(tmp_path)
    index = home_layout(tmp_path).report_index
    _write(index, "<html></html>")
    summary = BackfillSummary([
        RunOutcome("2024-02", "ingest_job", False, 1.0, "abc-123", "raw_transactions: tx.csv: bad"),
        RunOutcome("2024-03", "modelling_job", False, 0.0, "", "not run: a month it reads failed (2024-02)"),
    ])  # fmt: skip
    assert _finish_backfill(settings, summary) == 1
    text = capsys.readouterr().out
    assert "(run )" not in text and "run abc-123" in text and "(2024-02)" in text
    assert f"reports index: {index}" in text


def test_export_lists_only_tables_and_rejects_paths(tmp_path: Path, capsys) -> None:
    from segflow_tests.conftest import home_layout

    layout = home_layout(tmp_path)
    layout.asset_dir("segment_assignments").mkdir(parents=True)
    pl.DataFrame({"customer_id": ["C1"], "segment_id": [1]}).write_parquet(
        layout.table("segment_assignments", "2024-01")
    )
    _write(layout.model("segmentation_model", "2024-01"), "{}")
    _write(layout.report_page("2024-01"), "<html></html>")
    _write(tmp_path / "secret" / "x" / "2024-01.parquet", "")
    for name in ("../secret/x", "reports", "segmentation_model", "/etc/passwd"):
        with pytest.raises(SystemExit) as exc:
            _cli(tmp_path, capsys, "export", name, "--period", "2024-01", "--out", str(tmp_path / "o.csv"))
        message = str(exc.value)
        assert "the stored tables are: segment_assignments" in message and message.endswith(
            "segment_assignments"
        )
    assert not (tmp_path / "o.csv").exists()
    code, out, _ = _cli(tmp_path, capsys, "export", "segment_assignments", "--period", "2024-01",
                        "--out", str(tmp_path / "o.csv"))  # fmt: skip
    # Every text cell is quoted (segflow.lib.export's CSV-injection guard).
    assert code == 0 and (tmp_path / "o.csv").read_text() == '"customer_id","segment_id"\n"C1",1\n'


def test_metadata_is_rounded_for_people() -> None:
    from segflow.defs.lineage import for_people, table_metadata

    assert for_people(0.16842105263157894) == 0.1684 and for_people(776.0899999999999) == 776.09
    assert for_people({"shares": [0.7359307359307359, "x", 3, True]}) == {"shares": [0.7359, "x", 3, True]}
    assert for_people(dg.MetadataValue.float(4.295198134000937)).value == 4.3
    table = table_metadata(pl.DataFrame({"share": [0.013071895424836602], "name": ["a"]}))
    assert table.records[0].data == {"share": 0.01307, "name": "a"}


def test_column_constraints_describe_partition_bounds_in_words() -> None:
    from segflow.defs.contract_checks import column_schema

    texts = [t for c in column_schema("raw_transactions").columns for t in c.constraints.other]
    assert texts and not any("${" in t for t in texts)
    assert any("the month's end + 1826 days" in t for t in texts), texts


def test_a_killed_backfill_is_closed_by_the_next_one(memory_instance) -> None:
    import subprocess
    import sys

    from segflow import launch
    from segflow.records import PROCESS_TAG, process_tag

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    killed = launch.start_backfill(memory_instance, ["2024-01"], "segflow backfill 2024-01")
    # As if its process had been killed before it finished the record.
    record = memory_instance.get_backfill(killed.backfill_id)
    host = process_tag()[PROCESS_TAG].rpartition(":")[0]
    memory_instance.update_backfill(record._replace(tags={**record.tags, PROCESS_TAG: f"{host}:{gone.pid}"}))
    running = launch.start_backfill(memory_instance, ["2024-02"], "segflow backfill 2024-02")
    statuses = {b.backfill_id: b.status.value for b in memory_instance.get_backfills()}
    assert statuses == {killed.backfill_id: "COMPLETED_FAILED", running.backfill_id: "REQUESTED"}
