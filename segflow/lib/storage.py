"""Atomic, deterministic file writes, and the storage layout (``StorageLayout``), shared by the IO
managers, the report, the CLI, the runner and the tests.

A crash mid-write must never leave a partial partition behind, so every writer writes to a
temporary file in the destination folder and renames it into place (rename is atomic on POSIX
filesystems). Object stores have no rename; fsspec's put of a finished local file is the nearest
equivalent there, and a partial upload is never visible under the final key.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

# Row groups with statistics let later scans prune by customer or time.
PARQUET_ROW_GROUP_SIZE = 512_000
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``; clean up on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed before its rename leaves a hidden temporary file; it is never read, and the
    # next write of the same target clears it (``sweep_stale_temp`` clears the others at a run's start).
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    # The writer's pid is in the name, so that a sweep can tell a dead writer's file from a live one's.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644 & ~_UMASK)  # mkstemp creates 0600; published files are ordinary files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a reused pid reads as alive: the safe side)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale_temp(root: str | Path) -> list[Path]:
    """Delete the hidden temporary files under ``root`` that ``atomic_write`` calls killed before
    their rename left behind, and return them. A file whose writer (the pid in its name) is still
    alive is left alone: it may be a concurrent run's write in progress. A temporary name without a
    pid comes from an older segflow, which wrote no pid; its writer is long gone.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    for tmp in sorted(root.rglob(".*.tmp")):
        match = _TEMP_NAME.match(tmp.name)
        if match and pid_alive(int(match.group(1))):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def write_parquet_in_place(frame: pl.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as Parquet with statistics and bounded row groups, not atomically.

    Only for a path that is itself a temporary file: nesting ``atomic_write`` would leave a
    temporary file of a temporary file behind a killed writer, which the stale sweep misses.
    """
    frame.write_parquet(path, compression="zstd", statistics=True, row_group_size=PARQUET_ROW_GROUP_SIZE)


def write_parquet(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` atomically as Parquet with statistics and bounded row groups."""
    return atomic_write(path, lambda tmp: write_parquet_in_place(frame, tmp))


def write_text(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(obj: Any, path: str | Path) -> Path:
    """Deterministic JSON (sorted keys), so that equal objects give equal bytes."""
    return write_text(json.dumps(obj, sort_keys=True, indent=1, default=str), path)


# --- Storage layout ------------------------------------------------------------------------------
# The one place that knows where an asset's month is stored, so that nothing else joins these paths:
# the IO managers take their root and suffixes from here; the report, the CLI and the tests ask here.


@dataclass(frozen=True)
class StorageLayout:
    """The files under a storage root (``settings.storage_dir``; the IO managers hold it as a ``UPath``,
    so an object-store root is laid out alike)::

        <root>/<asset>/<YYYY-MM>.parquet   a table asset's month (quarantined rows are a table too)
        <root>/<asset>/<YYYY-MM>.json      a model asset's month
        <root>/reports/<YYYY-MM>.html      the month's report, beside its record <YYYY-MM>.json
        <root>/reports/index.html          the index of every month's report
    """

    root: Path

    TABLE_SUFFIX: ClassVar[str] = ".parquet"
    MODEL_SUFFIX: ClassVar[str] = ".json"
    REPORTS: ClassVar[str] = "reports"
    # An asset name, never a path: a name from the command line must not leave the root.
    ASSET_NAME: ClassVar[re.Pattern] = re.compile(r"^[a-z][a-z0-9_]*$")

    def asset_dir(self, asset: str) -> Path:
        return self.root / asset

    def table(self, asset: str, period: str) -> Path:
        return self.asset_dir(asset) / f"{period}{self.TABLE_SUFFIX}"

    def model(self, asset: str, period: str) -> Path:
        return self.asset_dir(asset) / f"{period}{self.MODEL_SUFFIX}"

    @property
    def reports_dir(self) -> Path:
        return self.root / self.REPORTS

    def report_page(self, period: str) -> Path:
        return self.reports_dir / f"{period}.html"

    def report_record(self, period: str) -> Path:
        return self.reports_dir / f"{period}.json"

    @property
    def report_index(self) -> Path:
        return self.reports_dir / "index.html"

    def report_records(self, periods: list[str]) -> list[dict]:
        """The index records of ``periods`` whose record is stored, in the order given."""
        paths = [self.report_record(period) for period in periods]
        return [json.loads(path.read_text(encoding="utf-8")) for path in paths if path.exists()]

    def table_periods(self, asset: str) -> list[str]:
        """The months for which ``asset`` is stored as a table, oldest first."""
        return sorted(p.stem for p in self.asset_dir(asset).glob(f"*{self.TABLE_SUFFIX}"))

    def table_assets(self) -> list[str]:
        """The assets stored as monthly tables (models are JSON, reports HTML: not tables)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and self.ASSET_NAME.match(p.name) and any(p.glob(f"*{self.TABLE_SUFFIX}"))
        )
