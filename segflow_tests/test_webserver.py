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
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The webserver's DAGSTER_HOME; SEGFLOW_HOME is its ``segflow`` folder (default settings)."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture(scope="module")
def graphql(ui_home: Path):
    home = ui_home
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


JOB_RUNS = """
query($backfill: String!) {
  pipelineOrError(params: {pipelineName: "ingest_job", repositoryName: "__repository__",
                           repositoryLocationName: "segflow"}) {
    ... on Pipeline { runs { runId status repositoryOrigin { repositoryLocationName repositoryName } } } }
  partitionBackfillOrError(backfillId: $backfill) {
    ... on PartitionBackfill { status title partitionNames runs { runId } } }
  assetNodes(assetKeys: [{path: ["customer_profiles"]}]) { partitionKeys }
}
"""


def _post_vars(url: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_cli_runs_show_on_their_job_page_and_under_backfills(
    graphql: str, ui_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the job page's Runs tab, the timeline and Backfills read: runs filtered by the code
    location's repository, and the backfill with its runs. The run is the CLI's: the runner's
    ``run_partition`` inside the backfill record ``runner.backfill`` keeps (one month of ingest
    only, to keep the test short)."""
    import dagster as dg

    from segflow import launch, runner
    from segflow.config import load_settings
    from segflow.definitions import build_defs
    from segflow.lib.periods import month_range
    from segflow.synth import SynthConfig, generate

    monkeypatch.setenv("DAGSTER_HOME", str(ui_home))
    monkeypatch.setenv("SEGFLOW_HOME", str(ui_home / "segflow"))
    monkeypatch.delenv("SEGFLOW_CONFIG", raising=False)
    settings = load_settings()  # the demo's settings, as the webserver loaded them
    generate(settings.landing_dir, SynthConfig(customers=100, months=1, start="2024-01", seed=3))
    with dg.DagsterInstance.get() as instance:
        record = launch.start_backfill(instance, ["2024-01"], "segflow backfill 2024-01")
        outcome = runner.run_partition(build_defs(settings), instance, "ingest_job", "2024-01", record.tags)
        launch.finish_backfill(instance, record, outcome.success)
    assert outcome.success, outcome.error
    data = _post_vars(graphql, JOB_RUNS, {"backfill": record.backfill_id})
    assert "errors" not in data, data
    data = data["data"]
    runs = data["pipelineOrError"]["runs"]
    assert [r["runId"] for r in runs] == [outcome.run_id]
    assert runs[0]["repositoryOrigin"] == {
        "repositoryLocationName": "segflow",
        "repositoryName": "__repository__",
    }
    backfill = data["partitionBackfillOrError"]
    assert backfill["status"] == "COMPLETED_SUCCESS" and backfill["partitionNames"] == ["2024-01"]
    assert [r["runId"] for r in backfill["runs"]] == [outcome.run_id]
    # The demo's partitions are the months it generates: none is missing for want of data.
    (node,) = data["assetNodes"]
    assert node["partitionKeys"] == month_range("2024-01", "2025-03")
