"""A backfill launched the way the UI launches it (GraphQL `launchPartitionBackfill`) is run by the
daemon that `make ui` starts (`dagster dev`), against the same definitions and storage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from segflow.synth import SynthConfig, generate
from segflow_tests.conftest import home_layout, stop_process_group

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}
"""
STATUS = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"


def _post(url: str, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def test_ui_backfill_runs_through_the_daemon(tmp_path: Path) -> None:
    generate(tmp_path / "landing", SynthConfig(customers=200, months=1, start="2024-01", seed=1))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DAGSTER_HOME": str(home), "SEGFLOW_HOME": str(tmp_path)}
    env.pop("SEGFLOW_CONFIG", None)
    dagster = Path(sys.executable).parent / "dagster"
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "dagster dev did not start"
                time.sleep(0.5)
        params = {
            "selector": {
                "partitionSetName": "ingest_job_partition_set",
                "repositorySelector": {
                    "repositoryLocationName": "segflow",
                    "repositoryName": "__repository__",
                },
            },
            "partitionNames": ["2024-01"],
        }
        launched = _post(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        target = home_layout(tmp_path).table("customer_profiles", "2024-01")
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline:
            status = _post(url, STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]["status"]
            if (
                status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED")
                and target.exists()
            ):
                break
            time.sleep(2)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
        assert target.exists()
    finally:
        stop_process_group(process, timeout=30)
