"""Watching the landing zone: which months have new or changed files since the last look."""

from __future__ import annotations

import glob
import hashlib
import json
import re
from pathlib import Path


def scan(location_templates: dict[str, str], landing: str) -> dict[str, dict]:
    """Every landed file of every per-period source: {path: {"period", "signature"}}.

    The signature (size and modification time in ns) changes whenever a file is rewritten.
    Sources whose location has no ``{period}`` are one file for all months and are not watched.
    """
    found: dict[str, dict] = {}
    for template in location_templates.values():
        if "{period}" not in template or "://" in template:
            continue
        pattern = template.format(landing=landing, period="*")
        regex = re.compile(re.escape(template.format(landing=landing, period="\0")).replace("\\\0", "\0")
                           .replace("\0", r"(\d{4}-\d{2})") + "$")  # fmt: skip
        for path in sorted(glob.glob(pattern)):
            match = regex.search(path)
            if not match:
                continue
            stat = Path(path).stat()
            found[path] = {"period": match.group(1), "signature": f"{stat.st_size}:{stat.st_mtime_ns}"}
    return found


def changed_periods(previous: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """Months with a file that is new or whose signature changed, oldest first."""
    changed = {entry["period"] for path, entry in current.items() if previous.get(path) != entry}
    return sorted(changed)


def month_key(current: dict[str, dict], period: str) -> str:
    """A stable key for a month's set of files, so the same landing never makes two runs."""
    files = {path: entry["signature"] for path, entry in current.items() if entry["period"] == period}
    return f"{period}:{hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]}"
