"""A real, throwaway PostgreSQL server from the OS packages, for the tests that need one (the SQL
source and the production Dagster instance).

``initdb``/``pg_ctl`` come from the machine image; when they are absent, ``apt-get install
postgresql`` is run. The server listens on 127.0.0.1 and a free port, with a data directory that is
removed afterwards, fsync off, and every statement logged (the SQL source test reads the log). Run as
root, the server runs as the ``postgres`` user. A test is skipped, with the reason, only when the
server cannot be installed or started.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from segflow_tests.os_packages import ensure_debian_package


@dataclass(frozen=True)
class Server:
    uri: str  # postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication)
    log: Path
    version: str


def _pg_bin() -> Path | None:
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"):
        for found in sorted(glob.glob(pattern), reverse=True):
            if (Path(found) / "pg_ctl").exists():
                return Path(found)
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[Server]:
    pytest.importorskip("psycopg", reason="psycopg is a pinned dependency; reinstall the venv")
    ensure_debian_package("postgresql", _pg_bin)
    bindir = _pg_bin()
    as_root = os.geteuid() == 0
    runas = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="segflow-pg-"))
    data, log = root / "data", root / "server.log"
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    started = False
    try:
        init = subprocess.run(
            [*runas, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "--no-sync", "-E", "UTF8"],
            capture_output=True, text=True,
        )  # fmt: skip
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr[-500:]}")
        options = f"-h 127.0.0.1 -p {port} -k {root} -c log_statement=all -c fsync=off"
        start = subprocess.run(
            [*runas, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
             "-w", "-t", "60", "start"],
            capture_output=True, text=True,
        )  # fmt: skip
        if start.returncode != 0:
            tail = log.read_text()[-500:] if log.exists() else ""
            pytest.skip(f"PostgreSQL did not start: {start.stderr[-500:]} {tail}")
        started = True
        import psycopg

        uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(uri, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        yield Server(uri, log, version)
    finally:
        if started:
            subprocess.run(
                [*runas, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
            )
            for _ in range(50):
                if not (data / "postmaster.pid").exists():
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
