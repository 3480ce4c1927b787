"""Monthly customer profiles of a planted synthetic history, built through lib functions only
(no Dagster run), for tests that need several months of features."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segflow.synth import SynthConfig


def synthetic_profiles(root: Path, config: SynthConfig) -> dict[str, pl.DataFrame]:
    """Generate ``config``'s landing zone under ``root`` and build each month's profiles, by month."""
    from segflow.config import load_settings
    from segflow.lib import periods
    from segflow.lib.profiles.profiles import RawSources, build_profiles
    from segflow.lib.sources.ingest import empty_source, read_source
    from segflow.synth import generate

    generate(root, config)
    settings = load_settings()
    profiles = {}
    for month in periods.month_range(config.start, periods.shift(config.start, config.months - 1)):
        start, end = periods.bounds(month)
        locations = {
            src: settings.sources[src].location.format(landing=root, period=month) for src in settings.sources
        }
        # A disabled source has no file (a missing file is an error): empty, as its raw asset is.
        raw = {
            src: read_source(src, settings.sources[src], loc).frame if settings.sources[src].enabled
            else empty_source(src)
            for src, loc in locations.items()
        }  # fmt: skip
        profiles[month] = build_profiles(RawSources(**raw), month, start, end, settings.cleaning, 42).profiles
    return profiles
