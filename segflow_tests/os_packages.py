"""Install a Debian package that a test needs (a real server or browser) when it is absent.

CI starts from a clean machine that has only what the repo installs, so the tests that need a live
PostgreSQL or a headless Chromium install them from the OS packages themselves. They skip, with the
reason, only where installing is impossible (not root, no apt-get, or apt-get refused).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest


def ensure_debian_package(package: str, found: Callable[[], object]) -> None:
    """Run ``apt-get install package`` unless ``found()`` is already truthy; skip if that fails."""
    if found():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{package} is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", package],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"installing {package} failed ({' '.join(command)}): {done.stderr[-500:]}")
    if not found():
        pytest.skip(f"apt-get installed {package}, but what the test needs is still missing")
