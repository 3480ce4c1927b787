"""Typed settings, loaded from a YAML file named by ``--config`` or ``SEGFLOW_CONFIG``.

Every field has an embedded default, so segflow runs with no file at all: synthetic landing zone
under ``.segflow/landing`` and Parquet storage under ``.segflow/storage``. Relative paths in a
config file are resolved against the file's own folder, so a config works from any directory.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segflow.config_sources import SQL_SCHEMES, JoinSettings, SourceSettings, default_sources
from segflow.lib.periods import is_period

CONFIG_ENV = "SEGFLOW_CONFIG"
HOME_ENV = "SEGFLOW_HOME"


class ConfigError(ValueError):
    """A settings file that cannot be used; the message names the file and the key."""


def _default_home() -> Path:
    return Path(os.environ.get(HOME_ENV, ".segflow")).resolve()


@dataclass(frozen=True)
class CleaningSettings:
    """Row-level thresholds applied while building customer profiles."""

    max_abs_quantity: int = 1_000  # synthetic default; set per data set (wholesale data needs more)
    max_unit_price: float = 50_000.0
    min_age_years: int = 14
    # Birth years before max(1900, year - max_age_years) are impossible and recoded (null: 1900 only).
    max_age_years: int | None = None
    max_income: float = 10_000_000.0  # incomes above this are recoded to null and imputed
    # Records identical in every canonical column but the customer id (customers and snapshot
    # together): "keep" them all, or "quarantine" all but the first in file order, naming it.
    near_duplicates: str = "keep"
    # Rows of a customer missing from the CRM (with a customers source on): "keep" them, the
    # customer profiled with unknown demographics (imputed and flagged like any missing value), or
    # "quarantine" every such row as `orphan_customer_id`. Real exports often hold line items of
    # households the CRM extract does not cover (43% of one grocery export's line items).
    # "keep" is the default (issue 17): dropping a customer's purchases because an extract of the
    # CRM missed them loses real revenue. It waited for the selection's near-tie rule
    # (segflow/lib/models/selection.py tie_tolerance): before it, keeping the planted histories'
    # orphan lines flipped the choice between near-tied candidates (planted ARI 0.888, ids kept 0.827).
    orphans: str = "keep"
    # Transaction lines equal in every canonical column: "drop" all but the first (a repeated
    # export), "keep" them as repeat purchases, or "auto": drop where the source has invoice ids,
    # keep where segflow derives them (one invoice per customer and day), since two identical lines
    # on one day without an invoice to tell them apart are as likely two purchases as one.
    exact_duplicates: str = "auto"
    adjustment_prefixes: tuple[str, ...] = ("A",)  # invoice ids of accounting adjustments, not sales


CLEANING_CHOICES = {
    "near_duplicates": ("keep", "quarantine"),
    "orphans": ("keep", "quarantine"),
    "exact_duplicates": ("auto", "drop", "keep"),
}
IMPUTATION_METHODS = ("iterative", "knn")
SURVEY_IMPUTATION = ("partial", "none")


@dataclass(frozen=True)
class ImputationSettings:
    """How missing demographics and survey answers are filled in customer profiles (seeded with
    ``model.seed``). See segflow/lib/profiles/imputation.py for the models."""

    # iterative: IterativeImputer (each numeric column regressed on the others) | knn: KNNImputer
    # (the mean of the nearest complete-enough customers, on standardised columns).
    method: str = "iterative"
    n_neighbors: int = 5  # knn only
    # partial: a customer who answered some of the month's survey questions gets the others
    # imputed | none: survey answers are never imputed. Customers who answered nothing are never
    # imputed: there is nothing of theirs to impute from, only their demographics.
    surveys: str = "partial"

    def problems(self) -> list[str]:
        """What is wrong with these settings (empty when usable)."""
        out = []
        if self.method not in IMPUTATION_METHODS:
            out.append(f"method: {self.method!r} is not one of {list(IMPUTATION_METHODS)}")
        if (
            isinstance(self.n_neighbors, bool)
            or not isinstance(self.n_neighbors, int)
            or self.n_neighbors < 1
        ):
            out.append(f"n_neighbors: {self.n_neighbors!r} must be a whole number of at least 1")
        if self.surveys not in SURVEY_IMPUTATION:
            out.append(f"surveys: {self.surveys!r} is not one of {list(SURVEY_IMPUTATION)}")
        return out


@dataclass(frozen=True)
class FeatureSettings:
    """RFM definitions. They differ between tools, so each is a choice stated in the report."""

    window_months: int = 12
    monetary: str = "sum"  # sum: net revenue in the window | mean: net revenue per invoice
    frequency: str = "invoices"  # invoices: distinct purchase invoices | repeat: invoices - 1
    # Months of history a window needs before it is modelled; earlier partitions are not segmented.
    min_history_months: int = 1
    # A behaviour snapshot (sources.snapshot) reports totals over this many months; rates divide by it.
    snapshot_months: int = 12
    # Category mix: revenue shares of the top N categories by window revenue (ties by name), the rest
    # summed as `other`; a bound keeps the feature table's width fixed whatever the catalogue.
    category_top_n: int = 8


@dataclass(frozen=True)
class ModelSettings:
    """Candidate model sweeps, selection thresholds, id alignment and churn settings."""

    seed: int = 42
    k_min: int = 2
    k_max: int = 8
    silhouette_sample: int = 5_000
    min_segment_share: float = 0.02
    n_init: int = 10
    max_fit_rows: int = 200_000
    # Feature preparation (segflow/lib/models/design.py FEATURE_FAMILIES): the families clustered on,
    # from rfm, behaviour, engagement, channel_mix, category_mix, psychographic, demographic.
    # Demographic and psychographic families are opt-in: segments are behavioural, and age, gender
    # and income describe them in the personas instead of defining them. category_mix is opt-in so
    # that the default design stays the one the planted-recovery bounds were measured on.
    feature_families: tuple[str, ...] = ("rfm", "behaviour", "engagement", "channel_mix")
    # The opt-in category_mix family (revenue shares of the top categories) counts, in total, as this
    # many standardised features, however many categories it has (design._pool_share_scales).
    category_mix_weight: float = 1.0
    winsorize_quantile: float = 0.01  # clip every numeric column to its [q, 1 - q] quantiles
    scaling: str = "standard"  # standard: mean and sd | robust: median and IQR (sd where IQR is 0)
    pca_components: float | None = None  # None: no PCA | int: components | float in (0,1): variance share
    # Candidate families and their sweeps (see segflow/lib/models/selection.py for the selection rule).
    families: tuple[str, ...] = ("kmeans", "ward", "hdbscan", "gmm")
    minibatch_above: int = 100_000  # k-means fits MiniBatchKMeans above this many fit rows
    ward_sample: int = 3_000  # Ward is O(n^2): fitted on a seeded sample, extended by nearest centroid
    hdbscan_sample: int = 3_000
    hdbscan_min_cluster_shares: tuple[float, ...] = (0.02, 0.05)  # min cluster size as a share of the sample
    hdbscan_metrics: tuple[str, ...] = ("euclidean",)
    gmm_covariance_types: tuple[str, ...] = ("full", "diag")
    gmm_fit_rows: int = 20_000
    gap_references: int = 5  # uniform reference sets per k for the gap statistic
    stability_resamples: int = 5  # B bootstrap refits per candidate (Hennig 2007 Jaccard, ARI)
    stability_sample: int = 1_500  # rows each bootstrap refit draws from
    min_stability: float = 0.75  # candidates with a lower mean per-segment Jaccard are discarded
    # Out-of-time value separation (segflow/lib/models/out_of_time.py; horizon report.backtest_horizon_months):
    # a candidate whose separation beyond the RFM segments falls below (1 - oot_tolerance) of the best
    # candidate that passes both floors loses oot_weight times the shortfall, as a share of that best
    # (segflow/lib/models/selection.py _oot_target, oot_shortfall). oot_weight 0 turns it off.
    oot_weight: float = 1.0
    oot_tolerance: float = 0.25
    align_max_distance: float = 1.0  # Hungarian match beyond this (pooled-sd units) is a new segment
    churn_horizon_months: int = 3  # h: churned = no purchase in the next h months
    churn_min_customers: int = 200  # fewer labelled customers in train or validation: no churn model
    # Predicted value (segflow/lib/models/clv.py): BG/NBD + Gamma-Gamma, validated on the last h months.
    clv_horizon_months: int = 3  # h: the prediction horizon, and the out-of-time holdout
    clv_discount_rate: float = 0.01  # per month, applied to the predicted h-month value
    clv_min_customers: int = 200  # fewer calibration customers (or half as many repeaters): no model
    # Months of profiles the BTYD summary reads back from the month (first purchases further back
    # are not seen, so a customer's age is capped there).
    clv_history_months: int = 120
    # Fewer churners than this in train or validation: churn risk is withheld (segflow/lib/models/churn_guard.py).
    churn_min_churners: int = 30


ENGINES = ("polars", "spark")


@dataclass(frozen=True)
class SparkSettings:
    """``engine: spark``: where the line-item stage runs (a master URL, ``local[N]`` on one host)
    and any further Spark configuration, passed to the session as given."""

    master: str = "local[2]"
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PolarsSettings:
    """``engine: polars``: a stored month of at least ``in_memory_below`` line items is cleaned in
    buckets of about ``bucket_lines`` lines of whole customers (segflow.lib.profiles.bucketed),
    spilled under ``spill_dir`` (the system's temporary directory when unset); a smaller month
    in one frame, which is faster there."""

    # Measured (benchmarks/RESULTS.md): below about 2M lines one frame is the faster path and fits
    # in memory easily; above, buckets of about 1M lines keep the stage's peak flat in the month.
    in_memory_below: int = 2_000_000
    bucket_lines: int = 1_000_000
    spill_dir: str | None = None


@dataclass(frozen=True)
class ReportSettings:
    min_cell_customers: int = 10  # cells describing fewer customers are suppressed
    min_arm_size: int = 50  # campaign lift: fewer exposed per arm is "insufficient sample", no p-value
    alpha: float = 0.05  # significance level of the lift tests (Holm-adjusted) and the backtest
    backtest_horizon_months: int = 3  # h: segments of month T-h are scored on months T-h+1..T
    psi_bins: int = 10  # quantile bins of the reference month for feature PSI
    trend_months: int = 6  # months of history in segment trends and data-quality trends
    # The currency every money figure of the report is in (after any sources' currency_rate):
    # shown beside amounts and on axes. EUR unless set; a report must not show bare amounts.
    currency: str = "EUR"


@dataclass(frozen=True)
class Settings:
    home: Path
    storage_dir: Path
    landing_dir: Path
    partitions_start: str = "2024-01"
    partitions_end: str | None = None
    sources: dict[str, SourceSettings] = field(default_factory=default_sources)
    cleaning: CleaningSettings = CleaningSettings()
    imputation: ImputationSettings = ImputationSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    report: ReportSettings = ReportSettings()
    # The engine of the line-item stage (cleaning and per-customer sums of transactions): polars in
    # this process, or Spark (segflow.lib.spark; the `spark` extra) with the `spark` section.
    engine: str = "polars"
    polars: PolarsSettings = PolarsSettings()
    spark: SparkSettings = SparkSettings()
    config_file: Path | None = None

    @property
    def feature_set(self) -> str:
        """``transactions`` (RFM and behaviour from line items) or ``snapshot`` (behaviour from a
        per-customer snapshot, and demographics; no RFM), from which sources are enabled."""
        return "transactions" if self.sources["transactions"].enabled else "snapshot"

    def source_location(self, source: str, period: str) -> str:
        return self.sources[source].location.format(landing=str(self.landing_dir), period=period)

    @property
    def fingerprint(self) -> str:
        """A digest of every setting (paths included, the file's name not): two processes that read
        the same settings agree on it, so a run can tell it was planned with other settings."""
        import hashlib

        return hashlib.sha256(repr(dataclasses.replace(self, config_file=None)).encode()).hexdigest()[:16]


_SECTIONS = {
    "cleaning": CleaningSettings,
    "imputation": ImputationSettings,
    "features": FeatureSettings,
    "model": ModelSettings,
    "report": ReportSettings,
    "polars": PolarsSettings,
    "spark": SparkSettings,
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


# With no config file, segflow runs the synthetic demo, so its partitions are the months of the
# generated landing zone (its _manifest.json), or before it exists the months the demo generates
# (segflow.synth.SynthConfig: 15 from 2024-01): no partition shows as missing for want of data,
# and the schedule never targets a month that has none. A config file names its own
# (`partitions.end` absent: open-ended, up to the last complete month, for sources that keep landing).
DEMO_PARTITIONS = ("2024-01", "2025-03")


def _demo_partitions(landing: Path) -> tuple[str, str]:
    manifest = landing / "_manifest.json"
    if not manifest.is_file():
        return DEMO_PARTITIONS
    import json

    try:
        periods = json.loads(manifest.read_text(encoding="utf-8"))["periods"]
        return str(periods[0]), str(periods[-1])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(f"{manifest}: not a segflow generator manifest with its periods ({exc})") from exc


def _joins(raw: Any, base: Path, where: str) -> tuple[JoinSettings, ...]:
    """The ``joins`` list of a source, each location resolved against the config file's folder."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of joins, got {type(raw).__name__}")
    out = []
    for i, spec in enumerate(raw):
        if isinstance(spec, dict) and True in spec and "on" not in spec:
            # YAML 1.1, which PyYAML reads, takes a bare `on` key for the boolean true.
            spec = {("on" if k is True else k): v for k, v in spec.items()}
        join = _build(JoinSettings, spec, f"{where}[{i}]")
        location = join.location
        if isinstance(location, str) and location and "://" not in location and "{" not in location:
            join = dataclasses.replace(join, location=str(_resolve(base, location)))
        out.append(join)
    return tuple(out)


def _source(name: str, spec: Any, base: Path, where: str) -> SourceSettings:
    """One entry of ``sources``, checked, its paths resolved against the config file's folder."""
    if isinstance(spec, dict) and spec.get("starts") is not None:
        # YAML reads 2024-03 as text but 2024-03-01 as a date.
        spec = {**spec, "starts": str(spec["starts"])}
    location_text = str(spec.get("location", "")) if isinstance(spec, dict) else ""
    if isinstance(spec, dict) and "format" not in spec and location_text.startswith(SQL_SCHEMES):
        spec = {**spec, "format": "sql"}  # location: "postgresql://..." with a query
    if isinstance(spec, dict) and "joins" in spec:
        spec = {**spec, "joins": _joins(spec["joins"], base, f"{where}.joins")}
    source = _build(SourceSettings, spec, where)
    problems = source.problems(name) if source.enabled else []
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    location = source.location
    if location and "://" not in location and not location.startswith("{landing}"):
        location = str(_resolve(base, location))
    uri = source.uri or (location if source.format == "sql" else "")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(_resolve(base, uri.removeprefix("sqlite:///")))  # relative to the file
    return dataclasses.replace(source, location=location, uri=uri)


def _sources(
    raw: Any, defaults: dict[str, SourceSettings], base: Path, file: Path
) -> dict[str, SourceSettings]:
    """The ``sources`` section over the defaults: a source not named keeps its default."""
    sources = dict(defaults)
    for name, spec in (raw or {}).items():
        if name not in sources:
            raise ConfigError(f"{file}: sources.{name}: unknown source; known are {sorted(sources)}")
        sources[name] = _source(name, spec, base, f"{file}: sources.{name}")
    if not sources["transactions"].enabled and not sources["snapshot"].enabled:
        raise ConfigError(
            f"{file}: sources.transactions: the transactions source is required, unless a "
            "sources.snapshot carries per-customer behaviour (recency, spend, purchases per channel)"
        )
    return sources


def _partitions(raw: Any, defaults: Settings, file: Path) -> tuple[str, str | None]:
    """``partitions.start`` and ``partitions.end`` (None: open-ended), checked as months in order."""
    parts = raw or {}
    start = str(parts.get("start", defaults.partitions_start))
    end = str(parts["end"]) if parts.get("end") else None
    for key, value in (("start", start), ("end", end)):
        if value is not None and not is_period(value):
            raise ConfigError(f"{file}: partitions.{key}: {value!r} is not a month YYYY-MM")
    if end is not None and end < start:
        raise ConfigError(f"{file}: partitions.end {end} is before partitions.start {start}")
    return start, end


def _sections(raw: dict, defaults: Settings, file: Path) -> dict[str, Any]:
    """The sections the file sets (cleaning, imputation, features, model, report), checked."""
    built = {
        name: _build(cls, raw[name], f"{file}: {name}") for name, cls in _SECTIONS.items() if name in raw
    }
    for key, choices in CLEANING_CHOICES.items():
        value = getattr(built.get("cleaning", defaults.cleaning), key)
        if value not in choices:
            raise ConfigError(f"{file}: cleaning: {key}: {value!r} is not one of {list(choices)}")
    imputation_problems = built.get("imputation", defaults.imputation).problems()
    if imputation_problems:
        raise ConfigError(f"{file}: imputation: " + "; ".join(imputation_problems))
    return built


_TOP_LEVEL = {"storage_dir", "landing_dir", "partitions", "sources", "engine", *_SECTIONS}


def _engine(raw: dict, file: Path) -> str:
    """``engine``, checked: one of ENGINES, and Spark's package installed when it is chosen."""
    engine = raw.get("engine", "polars")
    if engine not in ENGINES:
        raise ConfigError(f"{file}: engine: {engine!r} is not one of {list(ENGINES)}")
    if engine == "spark":
        import importlib.util

        if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("dagster_pyspark") is None:
            raise ConfigError(f"{file}: engine: spark needs the spark extra: pip install 'segflow[spark]'")
    return engine


def _read(file: Path) -> dict:
    """The config file's top-level mapping, with no key segflow does not know."""
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: top level must be a mapping")
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{file}: unknown key(s) {unknown}; known keys are {sorted(_TOP_LEVEL)}")
    return raw


def _check_polars(polars: PolarsSettings, file: Path) -> None:
    for key in ("in_memory_below", "bucket_lines"):
        value = getattr(polars, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "in_memory_below" else 1):
            raise ConfigError(f"{file}: polars: {key}: expected a whole number of line items, got {value!r}")
    if polars.spill_dir is not None and not isinstance(polars.spill_dir, str):
        raise ConfigError(f"{file}: polars: spill_dir: expected a directory path, got {polars.spill_dir!r}")


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from ``path`` (or ``$SEGFLOW_CONFIG``), falling back to embedded defaults."""
    path = path or os.environ.get(CONFIG_ENV) or None
    home = _default_home()
    defaults = Settings(home=home, storage_dir=home / "storage", landing_dir=home / "landing")
    if path is None:
        start, end = _demo_partitions(defaults.landing_dir)
        return dataclasses.replace(defaults, partitions_start=start, partitions_end=end)
    file = Path(path).resolve()
    raw = _read(file)
    base = file.parent
    storage_dir = _resolve(base, raw["storage_dir"]) if "storage_dir" in raw else defaults.storage_dir
    landing_dir = _resolve(base, raw["landing_dir"]) if "landing_dir" in raw else defaults.landing_dir
    start, end = _partitions(raw.get("partitions", {}), defaults, file)
    sections = _sections(raw, defaults, file)
    if "sources" in raw:
        sections["sources"] = _sources(raw["sources"], defaults.sources, base, file)
    engine = _engine(raw, file)
    if not isinstance(sections.get("spark", defaults.spark).config, dict):
        raise ConfigError(f"{file}: spark: config: expected a mapping of Spark keys to values")
    _check_polars(sections.get("polars", defaults.polars), file)
    return Settings(home, storage_dir, landing_dir, start, end, engine=engine, config_file=file, **sections)
