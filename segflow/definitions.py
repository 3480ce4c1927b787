"""The Dagster entry point (``workspace.yaml`` and ``[tool.dagster]`` load this module).

``build_defs(settings)`` builds the whole graph for one settings value; the UI and ``dagster`` CLI
load ``defs``, which reads the settings file named by ``$SEGFLOW_CONFIG`` (or the defaults) once.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from segflow.config import Settings, load_settings
from segflow.defs.resources import build_resources
from segflow.defs.scope import settings_scope


def build_defs(settings: Settings) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, built from ``settings`` (a value, read once)."""
    with settings_scope(settings):
        loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs")
    # The default executor is the one the asset jobs that Dagster builds itself use (a backfill the
    # daemon runs, a materialisation from the UI): in process, like segflow's own jobs (jobs.py).
    extra = dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor)
    return dg.Definitions.merge(loaded, extra)


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(load_settings())
