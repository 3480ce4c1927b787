"""The synthetic landing zone: layout and schemas, byte-for-byte determinism, injected dirt that
matches the manifest, planted segments that k-means can recover, the campaign effect and
consistent cancellations."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from segflow.lib.periods import bounds
from segflow.lib.schema import (
    CAMPAIGN_ARMS,
    CAMPAIGNS,
    CHANNELS,
    CUSTOMERS,
    ENGAGEMENT,
    ENGAGEMENT_EVENT_TYPES,
    SURVEY_QUESTIONS,
    SURVEYS,
    TRANSACTIONS,
)
from segflow.synth import GROUND_TRUTH, SEGMENTS, DirtRates, SynthConfig, generate

PARQUET_SOURCES = {
    "transactions": TRANSACTIONS,
    "engagement": ENGAGEMENT,
    "surveys": SURVEYS,
    "campaigns": CAMPAIGNS,
}
DEMOGRAPHICS = ("birth_year", "income", "gender", "education", "household_size")
DIRTY = SynthConfig(customers=3000, months=12, seed=42)
CLEAN = SynthConfig(customers=1500, months=6, seed=3, dirt=DirtRates.none())


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_dirty")
    return out, generate(out, DIRTY)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_clean")
    return out, generate(out, CLEAN)


def _crm(out: Path, period: str) -> pl.DataFrame:
    return pl.read_csv(out / "crm_customers" / f"{period}.csv", schema=CUSTOMERS)


def _read(out: Path, source: str, period: str) -> pl.DataFrame:
    return pl.read_parquet(out / source / f"{period}.parquet")


def _read_all(out: Path, source: str, periods: list[str]) -> pl.DataFrame:
    return pl.concat([_read(out, source, p).with_columns(pl.lit(p).alias("period")) for p in periods])


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


# --- layout and schemas ---------------------------------------------------------------------


def test_every_file_exists_with_the_canonical_schema(dirty) -> None:
    out, manifest = dirty
    assert len(manifest["periods"]) == DIRTY.months and manifest["periods"][0] == DIRTY.start
    for period in manifest["periods"]:
        header = (out / "crm_customers" / f"{period}.csv").read_text(encoding="utf-8").splitlines()[0]
        assert header.split(",") == list(CUSTOMERS)
        crm = _crm(out, period)
        assert crm.schema == pl.Schema(CUSTOMERS)
        assert crm.height == manifest["row_counts"]["customers"][period]
        for source, schema in PARQUET_SOURCES.items():
            frame = _read(out, source, period)
            assert frame.schema == pl.Schema(schema), (source, period)
            assert frame.height == manifest["row_counts"][source][period]
    truth = pl.read_parquet(out / "_ground_truth" / "segments.parquet")
    assert truth.schema == pl.Schema(GROUND_TRUTH)
    assert truth["customer_id"].is_unique().all() and truth.height == manifest["customers_total"]
    assert set(truth["segment"]) == set(SEGMENTS)
    assert json.loads((out / "_manifest.json").read_text()) == manifest


def test_empty_files_still_carry_their_schema(tmp_path: Path) -> None:
    manifest = generate(tmp_path, SynthConfig(customers=1, months=2, seed=1, new_customer_rate=0.0))
    counts = [n for source in PARQUET_SOURCES for n in manifest["row_counts"][source].values()]
    assert 0 in counts  # a single customer leaves some source empty in some month
    for period in manifest["periods"]:
        for source, schema in PARQUET_SOURCES.items():
            assert _read(tmp_path, source, period).schema == pl.Schema(schema)
        assert _crm(tmp_path, period).height == 1


def test_parquet_has_statistics_and_bounded_row_groups(dirty) -> None:
    out, manifest = dirty
    meta = pq.ParquetFile(out / "engagement" / f"{manifest['periods'][0]}.parquet").metadata
    assert meta.num_row_groups >= 1
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        assert group.num_rows <= 1_000_000
        assert group.column(0).statistics is not None and group.column(0).statistics.has_min_max


def test_values_are_well_formed(dirty) -> None:
    out, manifest = dirty
    periods = manifest["periods"]
    tx = _read_all(out, "transactions", periods)
    assert set(tx["channel"]) <= set(CHANNELS)
    assert tx["customer_id"].drop_nulls().str.contains(r"^C\d{7}$").all()
    purchases = tx.filter(~pl.col("invoice_id").str.starts_with("C"))
    assert purchases["invoice_id"].str.contains(r"^\d+$").all()
    assert purchases.filter(pl.col("quantity") < 1000)["quantity"].min() >= 1
    events = _read_all(out, "engagement", periods)
    assert set(events["event_type"]) == set(ENGAGEMENT_EVENT_TYPES)
    answers = _read_all(out, "surveys", periods)
    assert set(answers["question_id"]) == set(SURVEY_QUESTIONS)
    assert answers["answer"].is_between(1, 5).all()
    # Each respondent answers once, in a single month.
    assert (answers.group_by("customer_id").agg(pl.col("period").n_unique())["period"] == 1).all()
    campaigns = _read_all(out, "campaigns", periods)
    assert set(campaigns["arm"]) == set(CAMPAIGN_ARMS)
    per_month = campaigns.group_by("period").agg(pl.col("campaign_id").n_unique())["campaign_id"]
    assert per_month.is_between(1, 2).all()


def test_crm_snapshots_grow_with_signups(dirty) -> None:
    out, manifest = dirty
    previous: set[str] = set()
    for period in manifest["periods"]:
        crm = _crm(out, period).drop_nulls("customer_id").unique("customer_id")
        assert crm["signup_date"].max() < bounds(period)[1].date()
        ids = set(crm["customer_id"])
        # Nulled ids differ from month to month, so compare all but a few.
        assert len(previous - ids) <= 0.01 * len(previous) + 5
        previous = ids
    first = _crm(out, manifest["periods"][0])
    assert first["signup_date"].min() >= date(2021, 1, 1)
    assert manifest["new_customers_per_month"] == round(DIRTY.new_customer_rate * DIRTY.customers)


def test_email_and_campaigns_only_reach_opted_in_customers(dirty) -> None:
    out, manifest = dirty
    last = manifest["periods"][-1]
    crm = _crm(out, last).drop_nulls("customer_id").unique("customer_id")
    opted_out = set(crm.filter(~pl.col("marketing_opt_in"))["customer_id"])
    events = _read(out, "engagement", last)
    assert not opted_out & set(events.filter(pl.col("event_type").str.starts_with("email"))["customer_id"])
    assert opted_out & set(events.filter(pl.col("event_type") == "session")["customer_id"])
    assert not opted_out & set(_read(out, "campaigns", last)["customer_id"])


# --- determinism ------------------------------------------------------------------------------


def test_same_config_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    config = SynthConfig(customers=600, months=3, seed=11)
    generate(tmp_path / "a", config)
    generate(tmp_path / "b", config)
    generate(tmp_path / "c", SynthConfig(customers=600, months=3, seed=12))
    a, b, c = (_digests(tmp_path / name) for name in "abc")
    assert a == b
    assert len(a) == 5 * 3 + 2
    assert a.keys() == c.keys()
    data = [k for k in a if not k.startswith("_")]
    assert all(a[k] != c[k] for k in data)


def test_high_intensity_is_made_in_chunks_deterministically_with_unique_invoices(tmp_path: Path) -> None:
    from segflow.synth.transactions import _transaction_chunks

    assert [_transaction_chunks(SynthConfig(intensity=i)) for i in (1.0, 20.0, 20.5, 45.0)] == [1, 1, 2, 3]
    high = SynthConfig(customers=900, months=1, seed=4, intensity=45.0, dirt=DirtRates.none())
    generate(tmp_path / "a", high)
    generate(tmp_path / "b", high)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    generate(
        tmp_path / "low", SynthConfig(customers=900, months=1, seed=4, intensity=20.0, dirt=DirtRates.none())
    )
    tx = _read(tmp_path / "a", "transactions", "2024-01")
    low = _read(tmp_path / "low", "transactions", "2024-01")
    assert 1.8 < tx.height / low.height < 2.7  # every chunk's customers buy at the configured rate
    # Chunks number their invoices after the block's earlier chunks: one customer per invoice and
    # the sequence numbers of the purchases are exactly 1..n, no gap and no repeat.
    assert (
        tx.group_by("invoice_id").agg(pl.col("customer_id").n_unique()).get_column("customer_id").max() == 1
    )
    purchases = tx.filter(~pl.col("invoice_id").str.starts_with("C"))["invoice_id"].unique()
    sequence = (purchases.cast(pl.Int64) % 10**7).sort()
    assert sequence.to_list() == list(range(1, purchases.len() + 1))
    assert tx["customer_id"].n_unique() > 850  # all three chunks of customers are present


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        SynthConfig(start="2024-13")
    with pytest.raises(ValueError, match="campaign_lift_segment"):
        SynthConfig(campaign_lift_segment="nobody")
    with pytest.raises(ValueError, match="rates"):
        SynthConfig(dirt=DirtRates(negative_price=1.5))


def test_demographic_codes_match_what_cleaning_accepts(clean: tuple[Path, dict]) -> None:
    """The generator and the cleaning share lib.schema's codes, so a clean CRM has no value that
    profiles would recode as invalid."""
    from segflow.lib.schema import EDUCATION_LEVELS, GENDERS

    crm = _crm(clean[0], "2024-01")
    assert set(crm["gender"].drop_nulls()) <= set(GENDERS)
    assert set(crm["education"].drop_nulls()) <= set(EDUCATION_LEVELS)
    assert crm["gender"].n_unique() >= 2 and crm["education"].n_unique() >= 3


# --- dirt -------------------------------------------------------------------------------------


def _observed_dirt(out: Path, period: str) -> dict[str, dict[str, int]]:
    start, end = bounds(period)
    tx = _read(out, "transactions", period)
    events = _read(out, "engagement", period)
    crm = _crm(out, period)
    originals = crm.unique(maintain_order=True)
    return {
        "transactions": {
            "missing_customer_id": tx["customer_id"].null_count(),
            "negative_price": int((tx["unit_price"] < 0).sum()),
            "future_date": int(((tx["invoiced_at"] < start) | (tx["invoiced_at"] >= end)).sum()),
            "outlier_quantity": int((tx["quantity"].abs() >= 1000).sum()),
            "duplicate_rows": tx.height - tx.unique().height,
        },
        "engagement": {"duplicate_rows": events.height - events.unique().height},
        "customers": {
            "missing_customer_rows": crm["customer_id"].null_count(),
            "duplicate_customers": crm.height - originals.height,
            "missing_demographics": int(sum(originals[c].null_count() for c in DEMOGRAPHICS)),
        },
    }


def test_injected_dirt_matches_manifest_and_files(dirty) -> None:
    out, manifest = dirty
    injected = manifest["injected_dirt"]
    for period in manifest["periods"]:
        observed = _observed_dirt(out, period)
        for source, kinds in observed.items():
            for kind, count in kinds.items():
                assert injected[source][kind][period] == count, (source, kind, period)
    for source, kinds in injected.items():
        for kind, per_month in kinds.items():
            assert sum(per_month.values()) > 0, (source, kind)
    future = _read_all(out, "transactions", manifest["periods"]).filter(
        pl.col("invoiced_at") > datetime(2025, 1, 1)
    )
    assert future.height > 0 and future["invoiced_at"].max() < datetime(2027, 6, 1)


def test_no_dirt_when_rates_are_zero(clean) -> None:
    out, manifest = clean
    for period in manifest["periods"]:
        observed = _observed_dirt(out, period)
        assert all(count == 0 for kinds in observed.values() for count in kinds.values()), observed
        assert all(n == 0 for kinds in manifest["injected_dirt"].values() for n in
                   (kinds[kind][period] for kind in kinds))  # fmt: skip


# --- planted structure ------------------------------------------------------------------------


def _features(out: Path, periods: list[str]) -> pl.DataFrame:
    """Per customer over the window, like the pipeline: cleaned rows only, no labels."""
    frames = []
    for period in periods:
        start, end = bounds(period)
        frames.append(_read(out, "transactions", period).unique(maintain_order=True).filter(
            pl.col("customer_id").is_not_null(), pl.col("unit_price") > 0, pl.col("quantity").abs() < 1000,
            pl.col("invoiced_at").is_between(start, end, closed="left")))  # fmt: skip
    tx = pl.concat(frames)
    events = pl.concat([_read(out, "engagement", p).unique() for p in periods])
    crm = _crm(out, periods[-1]).drop_nulls("customer_id").unique("customer_id", keep="first")
    first, as_of = bounds(periods[0])[0], bounds(periods[-1])[1]
    months_total = len(periods)
    cancel = pl.col("invoice_id").str.starts_with("C")
    amount = pl.col("quantity") * pl.col("unit_price")
    buying = (
        tx.group_by("customer_id")
        .agg(
            pl.col("invoice_id").filter(~cancel).n_unique().alias("invoices"),
            amount.filter(~cancel).sum().alias("gross"),
            (-amount.filter(cancel)).sum().alias("returned"),
            amount.sum().alias("net"),
            pl.col("invoiced_at").filter(~cancel).max().alias("last"),
            pl.col("invoice_id")
            .filter(~cancel & pl.col("channel").is_in(["web", "app"]))
            .n_unique()
            .alias("digital"),
        )
        .filter(pl.col("invoices") > 0)
    )
    engagement = events.group_by("customer_id").agg(
        [(pl.col("event_type") == t).sum().alias(t) for t in ENGAGEMENT_EVENT_TYPES]
    )
    signup_month = pl.col("signup_date").dt.year() * 12 + pl.col("signup_date").dt.month()
    first_month = first.year * 12 + first.month
    tenure = (months_total - (signup_month - first_month).clip(lower_bound=0)).cast(pl.Float64)
    joined = buying.join(crm.select("customer_id", "signup_date"), on="customer_id").join(
        engagement, on="customer_id", how="left"
    )
    features = joined.fill_null(0).select(
        "customer_id",
        (pl.lit(as_of.date()) - pl.col("last").dt.date()).dt.total_days().log1p().alias("recency"),
        (pl.col("invoices") / tenure).log1p().alias("invoices_per_month"),
        (pl.col("net") / pl.col("invoices")).clip(lower_bound=0).log1p().alias("order_value"),
        (pl.col("returned") / pl.col("gross")).alias("return_rate"),
        (pl.col("digital") / pl.col("invoices")).alias("digital_share"),
        (pl.col("session") / tenure).log1p().alias("sessions"),
        pl.when(pl.col("email_send") > 0)
        .then(pl.col("email_open") / pl.col("email_send"))
        .alias("open_rate"),
        pl.when(pl.col("email_open") > 0)
        .then(pl.col("email_click") / pl.col("email_open"))
        .alias("click_rate"),
    )
    return features.with_columns(pl.col("open_rate", "click_rate").fill_null(strategy="mean")).sort(
        "customer_id"
    )


def test_segments_differ_in_the_intended_direction(dirty) -> None:
    out, manifest = dirty
    truth = pl.read_parquet(out / "_ground_truth" / "segments.parquet")
    means = (
        _features(out, manifest["periods"]).join(truth, on="customer_id")
        .group_by("segment").agg(pl.exclude("customer_id", "churn_month").mean())
    )  # fmt: skip
    m = {row["segment"]: row for row in means.iter_rows(named=True)}
    assert m["bargain_hunters"]["invoices_per_month"] > m["champions"]["invoices_per_month"]
    assert m["champions"]["invoices_per_month"] > m["digital_browsers"]["invoices_per_month"]
    assert m["digital_browsers"]["invoices_per_month"] > m["big_occasional"]["invoices_per_month"]
    order_value = sorted(SEGMENTS, key=lambda s: m[s]["order_value"])
    assert order_value[0] == "bargain_hunters" and order_value[-2:] == ["champions", "big_occasional"]
    assert max(SEGMENTS, key=lambda s: m[s]["sessions"]) == "digital_browsers"
    assert max(SEGMENTS, key=lambda s: m[s]["return_rate"]) == "big_occasional"
    assert min(SEGMENTS, key=lambda s: m[s]["digital_share"]) == "big_occasional"
    assert max(SEGMENTS, key=lambda s: m[s]["open_rate"]) == "champions"
    assert max(SEGMENTS, key=lambda s: m[s]["click_rate"]) == "digital_browsers"
    assert max(SEGMENTS, key=lambda s: m[s]["recency"]) == "lapsing"
    assert abs(truth["segment"].value_counts(normalize=True).filter(pl.col("segment") == "lapsing")
               ["proportion"][0] - 0.2) < 0.03  # fmt: skip


def test_lapsing_customers_stop_buying_after_their_churn_month(dirty) -> None:
    out, manifest = dirty
    truth = pl.read_parquet(out / "_ground_truth" / "segments.parquet")
    assert (truth["churn_month"].is_not_null() == (truth["segment"] == "lapsing")).all()
    tx = _read_all(out, "transactions", manifest["periods"]).filter(
        ~pl.col("invoice_id").str.starts_with("C")
    )
    after = tx.join(truth, on="customer_id").filter(pl.col("period") > pl.col("churn_month"))
    assert after.height == 0
    initial_lapsing = truth.filter(
        pl.col("customer_id") <= f"C{DIRTY.customers:07d}", pl.col("segment") == "lapsing"
    )
    # The initial base churns in the first half of the history.
    first_half = manifest["periods"][0], manifest["periods"][DIRTY.months // 2 - 1]
    assert initial_lapsing["churn_month"].is_between(*first_half).all()


def test_kmeans_recovers_planted_segments(dirty) -> None:
    out, manifest = dirty
    features = _features(out, manifest["periods"][-12:])
    matrix = features.drop("customer_id").to_numpy()
    scaled = (matrix - matrix.mean(axis=0)) / matrix.std(axis=0)
    labels = KMeans(n_clusters=5, n_init=10, random_state=0).fit_predict(scaled)
    truth = features.select("customer_id").join(
        pl.read_parquet(out / "_ground_truth" / "segments.parquet"),
        on="customer_id",
        how="left",
        maintain_order="left",
    )
    assert truth["segment"].null_count() == 0 and features.height > 0.9 * DIRTY.customers
    ari = adjusted_rand_score(truth["segment"].to_list(), labels)
    assert ari >= 0.9, ari


# --- campaigns and cancellations --------------------------------------------------------------


def test_campaign_lift_only_in_its_segment(dirty) -> None:
    out, manifest = dirty
    truth = pl.read_parquet(out / "_ground_truth" / "segments.parquet")
    exposures = _read_all(out, "campaigns", manifest["periods"]).join(truth, on="customer_id")
    assert abs(exposures["arm"].eq("treatment").mean() - 0.5) < 0.03
    rates = exposures.group_by("segment", "arm").agg(pl.col("responded").mean(), pl.len())
    rate = {(r["segment"], r["arm"]): r["responded"] for r in rates.iter_rows(named=True)}
    for segment in SEGMENTS:
        lift = rate[(segment, "treatment")] - rate[(segment, "control")]
        expected = DIRTY.campaign_lift if segment == DIRTY.campaign_lift_segment else 0.0
        tolerance = 0.04 if segment == DIRTY.campaign_lift_segment else 0.03
        assert abs(lift - expected) < tolerance, (segment, lift)
    assert 0.03 < exposures.filter(pl.col("arm") == "control")["responded"].mean() < 0.07


def test_no_lift_when_disabled(tmp_path: Path) -> None:
    manifest = generate(tmp_path, SynthConfig(customers=2000, months=4, seed=5, campaign_lift_segment=None))
    truth = pl.read_parquet(tmp_path / "_ground_truth" / "segments.parquet")
    exposures = _read_all(tmp_path, "campaigns", manifest["periods"]).join(truth, on="customer_id")
    bargain = exposures.filter(pl.col("segment") == "bargain_hunters")
    lift = bargain.filter(pl.col("arm") == "treatment")["responded"].mean() - bargain.filter(
        pl.col("arm") == "control")["responded"].mean()  # fmt: skip
    assert abs(lift) < 0.04


def _check_cancellations(tx: pl.DataFrame) -> int:
    cancel = pl.col("invoice_id").str.starts_with("C")
    purchases = tx.filter(~cancel)
    cancellations = tx.filter(cancel).with_columns(pl.col("invoice_id").str.slice(1).alias("original"))
    assert (cancellations["quantity"] < 0).all() and (purchases["quantity"] > 0).all()
    invoices = purchases.group_by("invoice_id").agg(
        pl.col("customer_id").first(),
        pl.col("customer_id").n_unique().alias("customers"),
        pl.col("invoiced_at").min(),
    )
    assert (invoices["customers"] == 1).all()
    heads = cancellations.group_by("invoice_id", "original").agg(
        pl.col("customer_id").first(),
        pl.col("customer_id").n_unique().alias("customers"),
        pl.col("invoiced_at").min().alias("cancelled_at"),
    )
    assert (heads["customers"] == 1).all()
    matched = heads.join(invoices, left_on="original", right_on="invoice_id", how="left")
    assert matched["invoiced_at"].null_count() == 0  # every "C" invoice refers to an existing invoice
    assert (matched["customer_id"] == matched["customer_id_right"]).all()
    delay = matched["cancelled_at"] - matched["invoiced_at"]
    assert (delay.dt.total_seconds() > 0).all() and (delay.dt.total_days() <= 10).all()
    bought = purchases.group_by("invoice_id", "product_id", "unit_price").agg(pl.col("quantity").sum())
    returned = cancellations.group_by("original", "product_id", "unit_price").agg(-pl.col("quantity").sum())
    lines = returned.join(bought, left_on=["original", "product_id", "unit_price"],
                          right_on=["invoice_id", "product_id", "unit_price"], how="left")  # fmt: skip
    assert lines["quantity_right"].null_count() == 0
    assert (lines["quantity"] <= lines["quantity_right"]).all()  # never more than was bought
    return heads.height


def test_cancellations_refer_to_bought_lines(clean) -> None:
    out, manifest = clean
    cancelled = 0
    for period in manifest["periods"]:
        tx = _read(out, "transactions", period)
        cancelled += _check_cancellations(tx)
        start, end = bounds(period)
        assert tx["invoiced_at"].is_between(start, end, closed="left").all()
    assert cancelled > 0
    # Full and partial returns both occur.
    tx = _read_all(out, "transactions", manifest["periods"])
    cancel = tx.filter(pl.col("invoice_id").str.starts_with("C"))
    assert (cancel["quantity"] == -1).any() and (cancel["quantity"] < -1).any()


def test_cancellations_hold_in_dirty_data_apart_from_the_dirt(dirty) -> None:
    out, manifest = dirty
    for period in manifest["periods"][:3]:
        start, end = bounds(period)
        tx = _read(out, "transactions", period).unique(maintain_order=True)
        invoices_with_dirt = tx.filter(
            pl.col("customer_id").is_null()
            | (pl.col("unit_price") < 0)
            | (pl.col("quantity").abs() >= 1000)
            | ~pl.col("invoiced_at").is_between(start, end, closed="left")
        )["invoice_id"].str.strip_prefix("C")
        kept = tx.filter(~pl.col("invoice_id").str.strip_prefix("C").is_in(invoices_with_dirt.implode()))
        assert _check_cancellations(kept) > 0


def test_distinct_products_per_invoice(clean) -> None:
    out, manifest = clean
    tx = _read(out, "transactions", manifest["periods"][0])
    assert tx.select("invoice_id", "product_id").is_unique().all()
    cents = (tx["unit_price"] * 100).round().cast(pl.Int64) % 100
    assert cents.is_in([49, 99]).all()  # shop prices
    assert tx["product_id"].n_unique() <= 200
