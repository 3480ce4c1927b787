"""Shared fixtures: paths to the real data sets, and an in-memory Dagster instance."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ONLINE_RETAIL = SHARED_DATA / "online_retail_ii" / "online_retail_ii.parquet"
CUSTOMER_PERSONALITY = SHARED_DATA / "customer_personality" / "marketing_campaign.csv"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data set not found at {path} (see ../shared/data/README.md)")
    return path


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
