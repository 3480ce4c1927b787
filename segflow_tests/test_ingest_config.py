"""Reading sources and settings: mapping, casting with errors kept, period split, helpful errors."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from segflow.config import ConfigError, load_settings
from segflow.config_sources import SourceSettings
from segflow.lib.sources.ingest import SourceError, period_filter_for, read_source


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tx.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


HEADER = "Inv,Cust,When,Qty,Price\n"


def _settings(**columns: str) -> SourceSettings:
    mapping = {"invoice_id": "Inv", "customer_id": "Cust", "invoiced_at": "When", "quantity": "Qty",
               "unit_price": "Price"} | columns  # fmt: skip
    return SourceSettings(location="x", format="csv", columns=mapping)


def test_mapping_casts_and_fills_optional_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "1,7,2024-03-01 10:00:00,2,1.5\n2,8,2024-03-02 11:00:00,x,2\n")
    frame = read_source("transactions", _settings(), path).frame
    assert frame["customer_id"].to_list() == ["7", "8"]
    assert frame["quantity"].to_list() == [2, None]
    assert frame["channel"].null_count() == 2  # optional and unmapped
    assert frame["_parse_error"].to_list()[0] is None
    # The failed value is masked (it may be personal data): the column is named, the value is not.
    assert "'quantity'" in frame["_parse_error"][1] and "value masked" in frame["_parse_error"][1]
    assert frame["_source_row"].to_list() == [0, 1]


def test_unknown_column_lists_available_and_suggests(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Invoice,Cust,When,Qty,Price\n1,7,2024-03-01,2,1.5\n")
    with pytest.raises(SourceError) as err:
        read_source("transactions", _settings(invoice_id="Invoic"), path)
    message = str(err.value)
    assert (
        path in message
        and "'Invoic'" in message
        and "did you mean 'Invoice'" in message
        and "Cust" in message
    )


def test_expression_mapping_and_bad_expression(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "1,7,2024-03-01 10:00:00,2,1.5\n")
    frame = read_source("transactions", _settings(channel="'web'"), path).frame
    assert frame["channel"].to_list() == ["web"]
    with pytest.raises(SourceError, match=r"column mapping 'channel': cannot evaluate expression"):
        read_source("transactions", _settings(channel="Qty ** ("), path)


def test_shared_file_is_split_by_time_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "1,7,2024-03-01 10:00:00,2,1\n2,7,2024-04-01 00:00:00,2,1\n3,7,,2,1\n")
    start, end = datetime(2024, 3, 1), datetime(2024, 4, 1)
    first = period_filter_for("transactions", path, start, end, is_first_partition=True)
    later = period_filter_for("transactions", path, start, end, is_first_partition=False)
    assert read_source("transactions", _settings(), path, first).frame["invoice_id"].to_list() == ["1", "3"]
    assert read_source("transactions", _settings(), path, later).frame["invoice_id"].to_list() == ["1"]
    assert period_filter_for("transactions", "{landing}/{period}.csv", start, end, True) is None


def test_missing_location_is_an_error_naming_the_file(tmp_path: Path) -> None:
    # Not an empty month: a missing export used to surface only as a row_count failure (issue 16.13).
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match=rf"^{re.escape(missing)}: no such file for source 'transactions'"):
        read_source("transactions", _settings(), missing)


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  seeds: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model: unknown key\(s\) \['seeds'\]"):
        load_settings(bad)
    bad.write_text("sources:\n  transaction: {location: x}\n")
    with pytest.raises(ConfigError, match=r"sources.transaction: unknown source"):
        load_settings(bad)


def test_config_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text("storage_dir: out\nsources:\n  transactions: {location: data/tx.parquet}\n")
    settings = load_settings(cfg)
    assert settings.storage_dir == (tmp_path / "sub" / "out").resolve()
    assert settings.sources["transactions"].location == str(
        (tmp_path / "sub" / "data" / "tx.parquet").resolve()
    )
    assert pl.Series([settings.model.seed]).item() == 42
