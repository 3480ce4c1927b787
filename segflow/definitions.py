"""The Dagster entry point (``workspace.yaml`` and ``[tool.dagster]`` load this module)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from segflow.defs.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs"),
        dg.Definitions(resources=build_resources()),
    )
