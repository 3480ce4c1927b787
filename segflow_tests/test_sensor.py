"""The landing sensor: new files for a month make exactly one run request, and never twice."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from segflow.config import load_settings


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("SEGFLOW_CONFIG", raising=False)
    return tmp_path / "landing"


def _tick(cursor: str | None) -> dg.SensorResult:
    from segflow.defs.sensors import landing_sensor

    with dg.DagsterInstance.ephemeral() as instance:
        return landing_sensor(load_settings())(dg.build_sensor_context(instance=instance, cursor=cursor))


def _drop(landing: Path, source: str, name: str, content: bytes = b"x") -> None:
    path = landing / source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_new_month_requests_one_run_and_never_again(landing: Path) -> None:
    assert _tick(None).run_requests == []
    _drop(landing, "transactions", "2024-03.parquet")
    _drop(landing, "engagement", "2024-03.parquet")
    _drop(landing, "crm_customers", "2024-03.csv")
    first = _tick(None)
    assert [r.partition_key for r in first.run_requests] == ["2024-03"]
    second = _tick(first.cursor)
    assert second.run_requests == []
    _drop(landing, "transactions", "2024-04.parquet")
    _drop(landing, "transactions", "notes.txt")  # not a month file: ignored
    third = _tick(second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2024-04"]
    assert _tick(third.cursor).run_requests == []


def test_rewritten_file_requests_its_month_again(landing: Path) -> None:
    _drop(landing, "transactions", "2024-03.parquet")
    first = _tick(None)
    _drop(landing, "transactions", "2024-03.parquet", b"a longer rewrite")
    again = _tick(first.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2024-03"]
    assert again.run_requests[0].run_key != first.run_requests[0].run_key
