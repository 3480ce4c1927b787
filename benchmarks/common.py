"""Shared helpers for the benchmarks: timing, peak memory, machine facts, and the results table."""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def repeat(fn: Callable[[], float], runs: int) -> dict[str, float]:
    """Median, min and max of ``runs`` measurements returned by ``fn``."""
    values = [fn() for _ in range(runs)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    import os

    packages = ("polars", "pyarrow", "great-expectations", "dagster", "scikit-learn", "pandas", "duckdb")
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {versions}"
