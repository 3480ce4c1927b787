"""The UI for real: dagster-webserver on a free loopback port, asserted through its GraphQL API."""

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

ROOT = Path(__file__).resolve().parents[1]
QUERY = """
{
  assetNodes { assetKey { path } groupName description
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name scheduleState { status } } sensors { name sensorState { status } } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, query: str) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def graphql(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SEGFLOW_HOME": str(home / "segflow")}
    env.pop("SEGFLOW_CONFIG", None)
    webserver = Path(sys.executable).parent / "dagster-webserver"
    process = subprocess.Popen(
        [str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"webserver did not start: {process.stderr.read().decode()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        yield f"{url}/graphql"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_ui_loads_everything(graphql: str) -> None:
    from segflow.definitions import defs

    expected = defs()
    data = _post(graphql, QUERY)["data"]
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == {k.to_user_string() for k in expected.resolve_asset_graph().get_all_asset_keys()}
    groups = {"raw", "profiles", "features", "models", "segments", "audit"}
    for name, node in nodes.items():
        assert node["groupName"] in groups, name
        assert node["description"] and len(node["description"]) > 30, name
    checks = {c["name"] for n in data["assetNodes"] for c in n["assetChecksOrError"]["checks"]}
    assert checks == {k.name for k in expected.resolve_asset_graph().asset_check_keys}
    repo = data["repositoriesOrError"]["nodes"][0]
    assert {j["name"] for j in repo["jobs"]} >= {"segmentation_job", "ingest_job", "modelling_job"}
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
        "segmentation_job_schedule": "STOPPED"
    }
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]} == {
        "landing_sensor": "STOPPED", "segflow_automation": "STOPPED"}  # fmt: skip
