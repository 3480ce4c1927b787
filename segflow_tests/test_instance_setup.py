"""The Dagster instance segflow prepares: telemetry off (no network at run time), a user's own
dagster.yaml left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segflow import runner


def test_new_instance_has_telemetry_off_and_existing_config_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGFLOW_CONFIG", raising=False)
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path / "segflow"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "fresh"))
    runner.prepare_environment(None)
    assert yaml.safe_load((tmp_path / "fresh" / "dagster.yaml").read_text()) == {
        "telemetry": {"enabled": False}
    }

    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("run_launcher: {module: x, class: Y}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(own))
    runner.prepare_environment(None)
    assert (own / "dagster.yaml").read_text() == "run_launcher: {module: x, class: Y}\n"
