"""Typed settings, loaded from a YAML file named by ``--config`` or ``SEGFLOW_CONFIG``.

Every field has an embedded default, so segflow runs with no file at all: synthetic landing zone
under ``.segflow/landing`` and Parquet storage under ``.segflow/storage``. Relative paths in a
config file are resolved against the file's own folder, so a config works from any directory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_ENV = "SEGFLOW_CONFIG"
HOME_ENV = "SEGFLOW_HOME"


class ConfigError(ValueError):
    """A settings file that cannot be used; the message names the file and the key."""


def _default_home() -> Path:
    return Path(os.environ.get(HOME_ENV, ".segflow")).resolve()


@dataclass(frozen=True)
class SourceSettings:
    """Where one source lives and how its columns map onto segflow's canonical names.

    ``location`` may contain ``{landing}`` and ``{period}`` (YYYY-MM); ``columns`` maps a
    canonical name to the user's column name.
    """

    location: str = ""
    format: str = "parquet"  # parquet | csv
    columns: dict[str, str] = field(default_factory=dict)
    csv_separator: str = ","
    enabled: bool = True


def _default_sources() -> dict[str, SourceSettings]:
    return {
        "customers": SourceSettings("{landing}/crm_customers/{period}.csv", format="csv"),
        "transactions": SourceSettings("{landing}/transactions/{period}.parquet"),
        "engagement": SourceSettings("{landing}/engagement/{period}.parquet"),
        "surveys": SourceSettings("{landing}/surveys/{period}.parquet"),
        "campaigns": SourceSettings("{landing}/campaigns/{period}.parquet"),
    }


@dataclass(frozen=True)
class CleaningSettings:
    """Row-level thresholds applied while building customer profiles."""

    max_abs_quantity: int = 1_000  # synthetic default; set per data set (wholesale data needs more)
    max_unit_price: float = 50_000.0
    min_age_years: int = 14
    adjustment_prefixes: tuple[str, ...] = ("A",)  # invoice ids of accounting adjustments, not sales


@dataclass(frozen=True)
class FeatureSettings:
    """RFM definitions. They differ between tools, so each is a choice stated in the report."""

    window_months: int = 12
    monetary: str = "sum"  # sum: net revenue in the window | mean: net revenue per invoice
    frequency: str = "invoices"  # invoices: distinct purchase invoices | repeat: invoices - 1
    # Months of history a window needs before it is modelled; earlier partitions are not segmented.
    min_history_months: int = 1


@dataclass(frozen=True)
class ModelSettings:
    """k-means sweep and selection thresholds."""

    seed: int = 42
    k_min: int = 2
    k_max: int = 8
    silhouette_sample: int = 5_000
    min_segment_share: float = 0.02
    n_init: int = 10
    max_fit_rows: int = 200_000


@dataclass(frozen=True)
class ReportSettings:
    min_cell_customers: int = 10  # cells describing fewer customers are suppressed


@dataclass(frozen=True)
class Settings:
    home: Path
    storage_dir: Path
    landing_dir: Path
    partitions_start: str = "2024-01"
    partitions_end: str | None = None
    sources: dict[str, SourceSettings] = field(default_factory=_default_sources)
    cleaning: CleaningSettings = CleaningSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    report: ReportSettings = ReportSettings()
    config_file: Path | None = None

    @property
    def reports_dir(self) -> Path:
        return self.storage_dir / "reports"

    def source_location(self, source: str, period: str) -> str:
        return self.sources[source].location.format(landing=str(self.landing_dir), period=period)


_SECTIONS = {
    "cleaning": CleaningSettings,
    "features": FeatureSettings,
    "model": ModelSettings,
    "report": ReportSettings,
}


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**raw)


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from ``path`` (or ``$SEGFLOW_CONFIG``), falling back to embedded defaults."""
    path = path or os.environ.get(CONFIG_ENV) or None
    home = _default_home()
    defaults = Settings(home=home, storage_dir=home / "storage", landing_dir=home / "landing")
    if path is None:
        return defaults
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: top level must be a mapping")
    base = file.parent
    top_known = {"storage_dir", "landing_dir", "partitions", "sources", *_SECTIONS}
    unknown = sorted(set(raw) - top_known)
    if unknown:
        raise ConfigError(f"{file}: unknown key(s) {unknown}; known keys are {sorted(top_known)}")
    kwargs: dict[str, Any] = {"home": home, "config_file": file}
    kwargs["storage_dir"] = _resolve(base, raw["storage_dir"]) if "storage_dir" in raw else defaults.storage_dir
    kwargs["landing_dir"] = _resolve(base, raw["landing_dir"]) if "landing_dir" in raw else defaults.landing_dir
    parts = raw.get("partitions", {}) or {}
    kwargs["partitions_start"] = str(parts.get("start", defaults.partitions_start))
    kwargs["partitions_end"] = str(parts["end"]) if parts.get("end") else None
    for name, cls in _SECTIONS.items():
        if name in raw:
            kwargs[name] = _build(cls, raw[name], f"{file}: {name}")
    if "sources" in raw:
        sources = dict(defaults.sources)
        for name, spec in (raw["sources"] or {}).items():
            if name not in sources:
                raise ConfigError(f"{file}: sources.{name}: unknown source; known are {sorted(sources)}")
            source = _build(SourceSettings, spec, f"{file}: sources.{name}")
            location = source.location
            if location and "://" not in location and not location.startswith("{landing}"):
                location = str(_resolve(base, location))
            sources[name] = dataclasses.replace(source, location=location)
        if not sources["transactions"].enabled:
            raise ConfigError(f"{file}: sources.transactions: the transactions source is required")
        kwargs["sources"] = sources
    return Settings(**kwargs)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from ``$SEGFLOW_CONFIG`` (or the defaults)."""
    return load_settings()
