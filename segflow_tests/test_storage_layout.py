"""The storage layout is one: what the IO managers write is where ``StorageLayout`` says it is, and
the CLI's listing of stored tables reads the same places."""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg
import polars as pl

from segflow.defs.resources import build_resources
from segflow.lib.storage import StorageLayout
from segflow_tests.conftest import home_layout, home_settings

MONTHS = dg.StaticPartitionsDefinition(["2024-01", "2024-02"])


@dg.asset(partitions_def=MONTHS)
def toy_table() -> pl.DataFrame:
    return pl.DataFrame({"customer_id": ["c1"]})


@dg.asset(partitions_def=MONTHS, io_manager_key="model_io_manager")
def toy_model() -> dict:
    return {"k": 2}


def test_io_managers_write_where_the_layout_says(tmp_path: Path, memory_instance) -> None:
    resources = build_resources(home_settings(tmp_path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        result = dg.materialize([toy_table, toy_model], partition_key="2024-02", resources=resources,
                                instance=memory_instance)  # fmt: skip
    assert result.success
    layout = home_layout(tmp_path)
    assert pl.read_parquet(layout.table("toy_table", "2024-02"))["customer_id"].to_list() == ["c1"]
    assert layout.model("toy_model", "2024-02").read_text(encoding="utf-8") == '{\n "k": 2\n}'
    stored = sorted(str(p.relative_to(layout.root)) for p in layout.root.rglob("*") if p.is_file())
    assert stored == ["toy_model/2024-02.json", "toy_table/2024-02.parquet"]
    assert layout.table_assets() == ["toy_table"] and layout.table_periods("toy_table") == ["2024-02"]


def test_report_paths(tmp_path: Path) -> None:
    layout = StorageLayout(tmp_path)
    assert layout.report_page("2024-03") == tmp_path / "reports" / "2024-03.html"
    assert layout.report_record("2024-03") == tmp_path / "reports" / "2024-03.json"
    assert layout.report_index == tmp_path / "reports" / "index.html"
    layout.reports_dir.mkdir()
    for period in ("2024-01", "2024-03"):
        layout.report_record(period).write_text(f'{{"period": "{period}"}}')
    # The months asked, in the order given; a month without a stored record is left out.
    assert layout.report_records(["2024-03", "2024-02", "2024-01"]) == [{"period": "2024-03"}, {"period": "2024-01"}]
