"""Shared fixtures: paths to the real data sets, Dagster instances for tests, and the synthetic
8-month history that the orchestration tests build once and copy."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ONLINE_RETAIL = SHARED_DATA / "online_retail_ii" / "online_retail_ii.parquet"
CUSTOMER_PERSONALITY = SHARED_DATA / "customer_personality" / "marketing_campaign.csv"
# Eight months: the longest window a test reads is seven (migration across six month pairs); twelve
# cost another 85 s of the test budget in built_history alone.
HISTORY_MONTHS = [f"2024-{m:02d}" for m in range(1, 9)]


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data set not found at {path} (see ../shared/data/README.md)")
    return path


class DagsterInstanceLeakWarning(UserWarning):
    """The defs state storage of an exited Dagster instance was found current, and cleared."""


def _clear_dead_defs_state_storage() -> bool:
    """Clear the current defs state storage if its instance is gone; True if it was."""
    import sys

    base = sys.modules.get("dagster._core.storage.defs_state.base")
    storage = base.DefsStateStorage.get() if base is not None else None
    weakref = getattr(storage, "_instance_weakref", None)
    if storage is None or weakref is None or weakref() is not None:
        return False
    base._current_storage.set(None)
    return True


@pytest.fixture(autouse=True)
def dagster_instances_exited_in_order() -> Iterator[None]:
    """No test inherits the defs state storage of a Dagster instance that has exited.

    Entering a DagsterInstance sets a context variable (the defs state storage) that its exit
    resets to what it was before. A Dagster context that enters an instance and is not closed in a
    with block (``build_init_resource_context()``, ``build_schedule_context`` of a persistent
    instance once it reads ``context.instance``) does that reset when the garbage collector
    finalises it, which can be after the enclosing instance has exited: the variable then names
    the storage of a dead instance, and every later ``load_from_defs_folder`` or ``materialize``
    in the process fails with "Attempted to resolve undefined DagsterInstance weakref", far from
    the cause (CI of stop 28: 6 and 7 tests of one worker). When the collector runs is not up to
    the test, so the test that leaked cannot be named reliably: the storage is cleared before and
    after every test, and a warning in the summary says where it was found."""
    if _clear_dead_defs_state_storage():
        warnings.warn("a dead instance's defs state storage was current before this test; cleared",
                      DagsterInstanceLeakWarning, stacklevel=1)  # fmt: skip
    yield
    if _clear_dead_defs_state_storage():
        warnings.warn("this test left a dead instance's defs state storage current; cleared",
                      DagsterInstanceLeakWarning, stacklevel=1)  # fmt: skip


@pytest.fixture
def online_retail() -> Path:
    return require(ONLINE_RETAIL)


@pytest.fixture
def memory_instance():
    """A Dagster instance whose run and event storage live in memory, for tests that assert runs
    and stored files rather than the instance on disk. A SQLite instance commits and closes a
    connection per event: about a third of a small run's time went there."""
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def home_settings(home: Path):
    """The default settings of a segflow home (what the CLI reads with ``SEGFLOW_HOME=home`` and no
    config file): landing and storage under ``home``."""
    from segflow.config import Settings

    home = home.resolve()
    return Settings(home=home, storage_dir=home / "storage", landing_dir=home / "landing")


def home_layout(home: Path):
    """Where a segflow home's stored outputs live (``home_settings(home)``'s storage layout): tests
    find an asset's month through it, never by joining paths themselves."""
    from segflow.lib.storage import StorageLayout

    return StorageLayout(home_settings(home).storage_dir)


@contextmanager
def dagster_home(home: Path) -> Iterator[Path]:
    """Point ``DagsterInstance.get()`` at ``home/dagster_home`` (as the CLI does), in this process
    and in the workers a backfill spawns, which inherit the environment."""
    from segflow.runner import INSTANCE_YAML

    path = home / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists():
        (path / "dagster.yaml").write_text(INSTANCE_YAML)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(path))
        mp.delenv("SEGFLOW_CONFIG", raising=False)
        yield path


def segflow_cli(home: Path, *args: str) -> str:
    """``segflow ARGS`` with ``SEGFLOW_HOME=home`` (and no ``SEGFLOW_CONFIG`` or ``DAGSTER_HOME``), run
    by the CLI's own ``main`` in this process; asserts it succeeded and returns what it printed.
    Tests whose subject is the process itself (a kill, the entry point) start a real one instead."""
    from segflow.cli import main

    out = io.StringIO()
    with dagster_home(home), pytest.MonkeyPatch.context() as mp, redirect_stdout(out):
        mp.setenv("SEGFLOW_HOME", str(home))
        code = main(list(args))
    assert code == 0, out.getvalue()[-3000:]
    return out.getvalue()


@pytest.fixture(scope="session")
def history_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic landing zone of the HISTORY_MONTHS and 400 customers (seed 11); read only: copy it."""
    from segflow.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("history_landing")
    generate(root, SynthConfig(customers=400, months=len(HISTORY_MONTHS), start=HISTORY_MONTHS[0], seed=11))
    return root


@pytest.fixture(scope="session")
def built_history(tmp_path_factory: pytest.TempPathFactory, history_landing: Path) -> Path:
    """A segflow home (landing, storage, Dagster instance) with all the months of ``history_landing``
    backfilled in order, in one process, as ``segflow backfill`` does. Read only: tests that write
    start from ``copy_home``. Built once per session because the full chain is the heaviest
    thing the orchestration tests need (24 runs)."""
    from segflow import runner

    home = tmp_path_factory.mktemp("built_history")
    shutil.copytree(history_landing, home / "landing")
    with dagster_home(home):
        summary = runner.backfill(home_settings(home), HISTORY_MONTHS[0], HISTORY_MONTHS[-1])
    assert not summary.failed, [(o.period, o.job, o.error) for o in summary.failed]
    return home


def stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a server started with ``start_new_session=True`` (dagster dev, dagster-daemon) and the
    processes it spawned; SIGKILL them if they are not gone within ``timeout`` seconds."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def copy_home(source: Path, target: Path) -> Path:
    """A writable copy of a segflow home (its SQLite instance included: no process holds it open)."""
    shutil.copytree(source, target)
    return target


# The modules that take the longest, by `pytest --durations` of the whole suite before it was split
# over workers (seconds on a loaded 2-core machine: 1861, ~850 with its first test cut short, 852,
# 446, 397, 166, 119, 115, 105). Started first under xdist, so that a long one does not start last
# and run alone on one worker while the other idles.
LONGEST_FIRST = (
    "test_online_retail_example",
    "test_orchestration",
    "test_modelling",
    "test_pipeline",
    "test_bench_smoke",
    "test_own_data",
    "test_ui_backfill",
    "test_customer_personality",
    "test_report",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest modules first. ``make test`` runs ``--dist loadfile`` (a module's tests on one worker,
    so its module and session fixtures are built once) with ``--no-loadscope-reorder``, so workers
    take modules in this order."""

    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rpartition(".")[2]
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a rank, collection order
