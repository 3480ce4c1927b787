"""Install a Debian package that a test needs (a real server or browser) when it is absent.

CI starts from a clean machine that has only what the repo installs, so the tests that need a live
PostgreSQL or a headless Chromium install them from the OS packages themselves. They skip, with the
reason, only where installing is impossible (not root, no apt-get, or apt-get refused).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

# One `apt-get update` per test session: the package lists are fresh enough for every package the
# tests install, and each update costs tens of seconds. The xdist workers of one session share
# its run id, so they share the marker; the lock keeps two workers' apt-gets from racing for
# dpkg's lock.
LOCK = Path(tempfile.gettempdir()) / "segflow-tests-apt.lock"


def _session_marker() -> Path:
    session = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    return Path(tempfile.gettempdir()) / f"segflow-tests-apt-updated-{session}"


def ensure_debian_package(package: str, found: Callable[[], object]) -> None:
    """Run ``apt-get install package`` unless ``found()`` is already truthy; skip if that fails."""
    if found():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{package} is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if found():  # another worker installed it while this one waited
            return
        updated = _session_marker()
        commands = [["apt-get", "install", "-y", "--no-install-recommends", package]]
        if not updated.exists():
            commands.insert(0, ["apt-get", "update"])
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"installing {package} failed ({' '.join(command)}): {done.stderr[-500:]}")
        updated.touch()
    if not found():
        pytest.skip(f"apt-get installed {package}, but what the test needs is still missing")
