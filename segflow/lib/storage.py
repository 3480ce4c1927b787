"""Atomic, deterministic file writes shared by the IO manager, the report and the CLI.

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
from pathlib import Path
from typing import Any

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


# The reports folder (``Settings.reports_dir``): one HTML report and one JSON index record per month,
# and the index page over every month.
def report_file(reports_dir: str | Path, period: str, suffix: str) -> Path:
    """``<reports>/<YYYY-MM><suffix>``: the month's report (``.html``) or index record (``.json``)."""
    return Path(reports_dir) / f"{period}{suffix}"


def report_index_file(reports_dir: str | Path) -> Path:
    return Path(reports_dir) / "index.html"


def report_records(reports_dir: str | Path, periods: list[str]) -> list[dict]:
    """The index records of ``periods`` whose record is stored, in the order given."""
    paths = [report_file(reports_dir, period, ".json") for period in periods]
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths if path.exists()]
