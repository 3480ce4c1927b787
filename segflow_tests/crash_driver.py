"""The process that ``test_crash_resume.py`` kills: run as ``python -m segflow_tests.crash_driver
SPEC.json``, it imports segflow once and then forks one child per backfill, so that no child pays
the imports (about 10 s of CPU each) and every kill is a real SIGKILL of a real process.

A child runs the backfill uninterrupted: the reference. Beside it, in a second home, the kill
points in the order the backfill reaches them: a child runs the backfill with ``os.replace``
wrapped, and when the file being published matches the point's path, it tells the driver (a
marker file) and waits, before or after the rename as the point says; the driver SIGKILLs it. The
next point's child is the plain resume of the kill before it (the same backfill, unchanged), and a
last plain resume runs to the end. So every kill is resumed by a plain backfill, and the whole
chain costs about one backfill plus the runs the kills cut short, rather than one per point. The
driver writes what happened to ``SPEC.json``'s ``result`` path; the test compares the bytes.

Forking is safe here because the driver itself computes nothing: no polars, OpenMP or BLAS thread
pool and no Dagster instance exists in it when it forks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def _prepare(home: Path, landing: Path, config: str) -> None:
    shutil.copytree(landing, home / "landing")
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text(INSTANCE_YAML)
    (home / "segflow.yaml").write_text(config)


def _backfill(home: Path, first: str, last: str, pause: tuple[str, str, Path] | None) -> None:
    """The child: ``segflow backfill --from first --to last`` (optionally pausing at a publish)."""
    os.environ["SEGFLOW_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    if pause is not None:
        fragment, when, marker = pause
        real_replace = os.replace

        def reached(dst) -> None:  # noqa: ANN001
            # Written aside and renamed: the parent kills on the marker's first appearance, and a
            # marker created by write_text can be seen (and the child killed) before it has content.
            aside = marker.with_name(marker.name + ".part")
            aside.write_text(str(dst))
            real_replace(aside, marker)
            time.sleep(600)

        def replace(src, dst):  # noqa: ANN001 - os.replace's own signature
            hit = fragment in str(dst)
            if hit and when == "before":
                reached(dst)
            real_replace(src, dst)
            if hit:
                reached(dst)

        os.replace = replace
    from segflow import runner

    settings = runner.prepare_environment(str(home / "segflow.yaml"))
    summary = runner.backfill(settings, first, last, echo=lambda line: None)
    failed = [f"{o.period} {o.job}: {o.error}" for o in summary.failed]
    (home / "backfill.json").write_text(json.dumps({"failed": failed}))
    os._exit(1 if failed else 0)


def _fork(home: Path, first: str, last: str, pause=None) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            _backfill(home, first, last, pause)
        except BaseException as exc:  # noqa: BLE001 - the child reports and exits, never returns
            (home / "backfill.json").write_text(json.dumps({"failed": [repr(exc)]}))
            os._exit(2)
    return pid


def _kill_at(home: Path, first: str, last: str, fragment: str, when: str) -> dict:
    marker = home / "reached"
    pid = _fork(home, first, last, (fragment, when, marker))
    deadline = time.monotonic() + 300
    while not marker.exists():
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            if not done:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            return {"killed": False, "reason": f"never published {fragment} (status {status})"}
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return {
        "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
        "at": marker.read_text(),
    }


def main(spec_path: str) -> None:
    # Imported once here, before any fork, so the children start warm.
    import dagster  # noqa: F401
    import great_expectations  # noqa: F401
    import polars  # noqa: F401
    import sklearn.cluster  # noqa: F401

    import segflow.definitions  # noqa: F401
    from segflow import runner  # noqa: F401

    spec = json.loads(Path(spec_path).read_text())
    base, landing = Path(spec["base"]), Path(spec["landing"])
    first, last, config = spec["first"], spec["last"], spec["config"]
    results = {}
    reference = base / "reference"
    _prepare(reference, landing, config)
    # The reference runs beside the chain (a home and an instance of its own), on the other core.
    reference_pid = _fork(reference, first, last)
    home = base / "killed"
    _prepare(home, landing, config)
    for name, (fragment, when) in spec["points"].items():
        outcome = _kill_at(home, first, last, fragment, when)
        outcome["tmp_after_kill"] = len(list((home / "storage").rglob(".*.tmp")))
        (home / "reached").unlink(missing_ok=True)
        results[name] = outcome
    _, status = os.waitpid(reference_pid, 0)
    results["reference"] = {"exit": os.waitstatus_to_exitcode(status)}
    _, status = os.waitpid(_fork(home, first, last), 0)  # the last plain resume, to the end
    results["final_resume"] = {"exit": os.waitstatus_to_exitcode(status),
                               **json.loads((home / "backfill.json").read_text())}  # fmt: skip
    Path(spec["result"]).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
