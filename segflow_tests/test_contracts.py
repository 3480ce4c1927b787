"""Data contracts: parsing, every rule kind (pass and fail), PII masking, and the Dagster checks."""

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from segflow.lib import schema
from segflow.lib.contracts import validation as quality
from segflow.lib.contracts.dtypes import parse_physical_type
from segflow.lib.contracts.model import ContractError
from segflow.lib.contracts.spec import (
    CONTRACTS_ENV,
    contracts_dir,
    load_contract,
    parse_contract,
    parse_contract_file,
)
from segflow.lib.contracts.suite import build_suite
from segflow.lib.contracts.validation import MASK, mask_record, validate_frame

REPO_CONTRACTS = sorted(Path(__file__).resolve().parents[1].joinpath("data_contracts").glob("*.yaml"))
JAN_START, JAN_END = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)

# A small contract with every rule kind; ids are asserted exactly below.
DEMO_YAML = textwrap.dedent(
    """
    apiVersion: v3.0.2
    kind: DataContract
    id: urn:test:demo
    name: demo
    version: 2.3.4
    status: active
    description: {purpose: test}
    team: [{username: tester, role: owner}]
    schema:
      - name: demo
        quality:
          - {id: demo.schema, rule: schema, severity: error, extraColumns: warn, description: columns}
          - {id: demo.rows, rule: row_count_between, min: 2, max: 10, severity: error, description: rows}
          - {id: demo.volume, rule: volume_change, maxDrop: 0.5, maxGrowth: 1.0, severity: warn,
             description: volume}
        properties:
          - name: id
            logicalType: string
            physicalType: String
            required: true
            unique: true
            quality:
              - {id: demo.id.not_null, rule: not_null, severity: error, description: ids}
              - {id: demo.id.unique, rule: unique, severity: error, description: unique ids}
          - name: email
            logicalType: string
            pii: true
            quality:
              - {id: demo.email.format, rule: regex, pattern: '^[^@]+@[^@]+$', severity: warn,
                 description: email}
              - {id: demo.email.null_rate, rule: not_null, mostly: 0.5, severity: warn, description: half}
          - name: amount
            logicalType: number
            quality:
              - {id: demo.amount.range, rule: between, min: 0, max: 100, severity: error, description: range}
          - name: kind
            logicalType: string
            quality:
              - {id: demo.kind.allowed, rule: in_set, values: [a, b], severity: error, description: set}
          - name: ts
            logicalType: timestamp
            quality:
              - {id: demo.ts.min, rule: min_between, min: '${partition_start}', severity: error,
                 description: m}
              - {id: demo.ts.max, rule: max_between, max: '${partition_end}', strictMax: true,
                 severity: error, description: m}
              - {id: demo.ts.max_plausible, rule: max_between, max: '${partition_end} + 10 days',
                 severity: warn, description: m}
          - name: d
            logicalType: date
            quality:
              - {id: demo.d.min, rule: min_between, min: 2020-01-01, severity: warn, description: d}
    """
)


@pytest.fixture()
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A contracts folder holding the demo contract, made the active one via the env var."""
    (tmp_path / "demo.yaml").write_text(DEMO_YAML)
    monkeypatch.setenv(CONTRACTS_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture()
def demo(demo_dir: Path):
    return load_contract("demo")


def good_frame(n: int = 4) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "email": [f"u{i}@x.org" for i in range(n)],
            "amount": [float(i) for i in range(n)],
            "kind": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
            "ts": [JAN_START + dt.timedelta(days=i) for i in range(n)],
            "d": [dt.date(2021, 1, 1)] * n,
        },
        schema_overrides={"ts": pl.Datetime("us")},
    )


def run(df: pl.DataFrame, contract, severity: str, **kw):
    kw.setdefault("partition_start", JAN_START)
    kw.setdefault("partition_end", JAN_END)
    return validate_frame(df, contract, severity, **kw)


# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("path", REPO_CONTRACTS, ids=lambda p: p.name)
def test_repo_contracts_load(path: Path) -> None:
    contract = parse_contract_file(path)
    assert contract.name == path.stem
    assert contract.rules_for("error"), "every contract guards something blocking"
    assert all(r.description for r in contract.rules)


def test_repo_contract_set_and_raw_schemas_match_canonical() -> None:
    names = {p.stem for p in REPO_CONTRACTS}
    assert {f"raw_{s}" for s in schema.SOURCES} | {"customer_profiles", "quarantined_rows"} <= names
    for source, canonical in schema.SOURCES.items():
        contract = load_contract(f"raw_{source}")
        assert contract.column_names == list(canonical)
        assert {c.name: parse_physical_type(c.physical_type) for c in contract.columns} == canonical
        assert contract.pii_columns == schema.PII_COLUMNS & set(canonical)
    profiles = load_contract("customer_profiles")
    assert {f"survey_{q}" for q in schema.SURVEY_QUESTIONS} <= set(profiles.column_names)
    assert not profiles.pii_columns
    # Demographics are null when there is no CRM source, so their not-null rules only warn.
    assert sorted(r.id for r in profiles.rules_for("warn")) == sorted(
        [
            "customer_profiles.schema.extra",
            "customer_profiles.volume_change",
            *(
                f"customer_profiles.{c}.not_null"
                for c in ("birth_year", "gender", "income", "education", "household_size")
            ),
        ]
    )


def test_contracts_dir_defaults_to_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTRACTS_ENV, raising=False)
    assert contracts_dir() == REPO_CONTRACTS[0].parent


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("status: active", "status: active\nowner: me", "unknown key(s) ['owner']"),
        ("severity: error, extraColumns", "severity: fatal, extraColumns", "severity: 'fatal'"),
        ("pattern: '^[^@]+@[^@]+$'", "patern: 'x'", "unknown key(s) ['patern']"),
        ("pattern: '^[^@]+@[^@]+$'", "pattern: '^(a|b)$'", "non-capturing"),
        ("rule: in_set, values: [a, b]", "rule: in_set, values: []", "non-empty list"),
        ("rule: between, min: 0, max: 100", "rule: between", "needs 'min' or 'max'"),
        ("min: 2020-01-01", "min: 2020-13-01", "month must be in 1..12"),
        ("min: 2020-01-01", "min: '1st of May'", "ISO"),
        ("{id: demo.id.not_null, rule: not_null", "{id: demo.id.unique, rule: not_null", "used twice"),
        ("logicalType: number", "logicalType: money", "logicalType: 'money'"),
        ("rule: min_between, min: 2020-01-01", "rule: between, min: 2020-01-01", "use min_between"),
        ("rule: row_count_between, min: 2", "rule: row_count, min: 2", "is not a dataset rule"),
    ],
)
def test_bad_contract_names_file_and_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in DEMO_YAML
    path = tmp_path / "broken.yaml"
    path.write_text(DEMO_YAML.replace(old, new, 1))
    with pytest.raises(ContractError) as err:
        parse_contract_file(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_required_and_unique_flags_need_rules() -> None:
    raw = yaml.safe_load(DEMO_YAML)
    raw["schema"][0]["properties"][0]["quality"] = []
    with pytest.raises(ContractError, match="required: true needs a not_null rule"):
        parse_contract(raw, "x.yaml")


def test_parsed_fields(demo) -> None:
    assert (demo.version, demo.owner, demo.pii_columns) == ("2.3.4", "tester", frozenset({"email"}))
    assert [r.id for r in demo.rules_for("warn")] == [
        "demo.schema.extra",
        "demo.volume",
        "demo.email.format",
        "demo.email.null_rate",
        "demo.ts.max_plausible",
        "demo.d.min",
    ]
    assert demo.rules_for_column("d")[0].min_value == dt.datetime(2020, 1, 1)  # YAML date -> datetime


def test_build_suite_uses_datetime_bounds_and_rule_ids(demo) -> None:
    suite = build_suite(demo, "error", partition_start=JAN_START, partition_end=JAN_END)
    by_id = {e.meta["rule_id"]: e for e in suite.expectations}
    assert set(by_id) == {
        "demo.id.not_null",
        "demo.id.unique",
        "demo.amount.range",
        "demo.kind.allowed",
        "demo.ts.min",
        "demo.ts.max",
    }
    assert by_id["demo.ts.max"].max_value == JAN_END and by_id["demo.ts.max"].strict_max
    assert by_id["demo.ts.min"].min_value == JAN_START
    # Without a partition the datetime rules are left out rather than given string bounds.
    assert len(build_suite(demo, "error").expectations) == 4


# --------------------------------------------------------------------------------- rule kinds


def test_good_frame_passes_every_rule(demo) -> None:
    for severity in ("error", "warn"):
        report = run(good_frame(), demo, severity, previous_row_count=4)
        assert report.failed_rule_ids == [], report.to_records()
        assert report.skipped == []
        assert report.row_count == 4


def test_failing_column_rules_report_counts_and_examples(demo) -> None:
    df = pl.DataFrame(
        {
            "id": ["c1", "c1", None, "c4", "c5"],
            "email": ["ok@x", "bad", None, None, "ok@y"],
            "amount": [1.0, -1.0, 150.0, None, 2.0],
            "kind": ["a", "z", "b", None, "a"],
            "ts": [JAN_START - dt.timedelta(hours=1), JAN_START, JAN_END, JAN_START, JAN_START],
            "d": [dt.date(2019, 5, 1)] * 5,
        },
        schema_overrides={"ts": pl.Datetime("us")},
    )
    errors = run(df, demo, "error")
    assert errors.failed_rule_ids == [
        "demo.id.not_null",
        "demo.id.unique",
        "demo.amount.range",
        "demo.kind.allowed",
        "demo.ts.min",
        "demo.ts.max",
    ]
    r = errors.result
    assert (r("demo.id.not_null").unexpected_count, r("demo.id.not_null").unexpected_percent) == (1, 20.0)
    assert r("demo.id.unique").unexpected_count == 2 and r("demo.id.unique").examples == ("c1", "c1")
    assert r("demo.amount.range").unexpected_count == 2
    assert sorted(r("demo.amount.range").examples) == [-1.0, 150.0]
    assert r("demo.kind.allowed").examples == ("z",) and r("demo.kind.allowed").unexpected_count == 1
    assert r("demo.ts.min").observed_value == "2023-12-31T23:00:00"
    assert r("demo.ts.max").observed_value == "2024-02-01T00:00:00"  # strictMax: the end itself fails
    assert r("demo.ts.min").expectation == "expect_column_min_to_be_between"
    assert errors.result("demo.schema").success and errors.result("demo.rows").success

    warns = run(df, demo, "warn")
    assert warns.failed_rule_ids == ["demo.email.format", "demo.d.min"]
    assert warns.result("demo.email.null_rate").success  # 40% null, mostly 0.5
    assert warns.result("demo.d.min").observed_value == "2019-05-01T00:00:00"
    assert warns.result("demo.volume").success is None  # no previous count given


def test_memoised_expectation_configurations_change_no_result(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """gx_runtime builds each expectation's configuration once per validate call: the failing and
    passing frames give the same results, field for field, as GX's own property, which is back in
    place after the call."""
    import contextlib

    from great_expectations.expectations.expectation import Expectation

    from segflow.lib.contracts import gx_runtime

    original = Expectation.__dict__["configuration"]
    bad = good_frame(6).with_columns(
        pl.Series("id", ["c1", "c1", None, "c4", "c5", "c6"]),
        pl.Series("amount", [1.0, -1.0, 150.0, None, 2.0, 3.0]),
    )
    memoised = [
        run(frame, demo, severity) for frame in (bad, good_frame(6)) for severity in ("error", "warn")
    ]
    assert Expectation.__dict__["configuration"] is original
    monkeypatch.setattr(gx_runtime, "memoised_expectation_configurations", contextlib.nullcontext)
    plain = [run(frame, demo, severity) for frame in (bad, good_frame(6)) for severity in ("error", "warn")]
    assert [r.results for r in memoised] == [r.results for r in plain]
    assert memoised[0].failed_rule_ids and not memoised[2].failed_rule_ids  # failing input as well


def test_not_null_mostly_threshold(demo) -> None:
    df = good_frame(5).with_columns(pl.Series("email", [None, None, None, "a@b", "c@d"]))
    report = run(df, demo, "warn")
    assert report.result("demo.email.null_rate").success is False
    assert report.result("demo.email.null_rate").unexpected_percent == 60.0


def test_partition_substitution_and_offsets(demo) -> None:
    df = good_frame().with_columns(pl.lit(JAN_END + dt.timedelta(days=3)).cast(pl.Datetime("us")).alias("ts"))
    assert run(df, demo, "error").failed_rule_ids == ["demo.ts.max"]
    assert run(df, demo, "warn").result("demo.ts.max_plausible").success  # within end + 10 days
    # February as the partition: the same frame is in range.
    feb = run(df, demo, "error", partition_start=JAN_END, partition_end=dt.datetime(2024, 3, 1))
    assert feb.success
    # Aware partition bounds (as Dagster gives them) are compared as naive UTC.
    cet = dt.timezone(dt.timedelta(hours=1))
    aware = run(
        df,
        demo,
        "error",
        partition_start=dt.datetime(2024, 2, 1, 1, tzinfo=cet),
        partition_end=dt.datetime(2024, 3, 1, 1, tzinfo=cet),
    )
    assert aware.success
    # Without a partition, rules that need it are skipped with a note, not failed.
    bare = validate_frame(df, demo, "error")
    assert bare.success and {r.rule_id for r in bare.skipped} == {"demo.ts.min", "demo.ts.max"}
    assert "partition" in bare.result("demo.ts.max").note


def test_all_null_datetime_column_passes_min_max(demo) -> None:
    df = good_frame().with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("ts"))
    report = run(df, demo, "error")
    assert report.success and report.result("demo.ts.max").note == "no non-null values"


def test_row_count_bounds(demo) -> None:
    assert run(good_frame(1), demo, "error").failed_rule_ids == ["demo.rows"]
    assert run(good_frame(1), demo, "error").result("demo.rows").observed_value == 1
    assert run(good_frame(11), demo, "error").failed_rule_ids == ["demo.rows"]
    assert run(good_frame(10), demo, "error").success


def test_schema_missing_extra_and_mistyped_columns(demo) -> None:
    missing = run(good_frame().drop("kind"), demo, "error")
    assert missing.failed_rule_ids == ["demo.schema", "demo.kind.allowed"]
    assert missing.result("demo.schema").examples == ("missing kind",)
    assert "missing" in missing.result("demo.kind.allowed").note

    extra = good_frame().with_columns(pl.lit(1).alias("surprise"))
    assert run(extra, demo, "error").success
    warns = run(extra, demo, "warn")
    assert warns.failed_rule_ids == ["demo.schema.extra"]
    assert warns.result("demo.schema.extra").observed_value == "surprise"

    mistyped = good_frame().with_columns(pl.col("id").str.len_chars().alias("id"))  # String -> UInt32
    report = run(mistyped, demo, "error")
    assert "demo.schema" in report.failed_rule_ids
    assert report.result("demo.schema").examples == ("type id: UInt32",)


@pytest.mark.parametrize(
    ("previous", "status"), [(4, True), (3, True), (2, True), (1, False), (9, False), (None, None), (0, None)]
)
def test_volume_change(demo, previous: int | None, status: bool | None) -> None:
    # 4 rows now: vs 9 is -56% (max drop 50%), vs 1 is +300% (max growth 100%), vs 2 is +100% (ok).
    result = run(good_frame(4), demo, "warn", previous_row_count=previous).result("demo.volume")
    assert result.success is status
    if previous == 9:
        assert result.observed_value == pytest.approx(-5 / 9, abs=1e-6)


# ---------------------------------------------------------------------------------- PII


def test_pii_values_are_masked_in_examples_and_observed_values(demo) -> None:
    df = good_frame().with_columns(pl.Series("email", ["jane.doe", "john@x", None, "secret-name"]))
    result = run(df, demo, "warn").result("demo.email.format")
    assert result.unexpected_count == 2
    assert result.examples == (MASK, MASK)
    assert "jane" not in str(run(df, demo, "warn").to_records())
    assert mask_record({"email": "a@b", "name": None, "x": 1}, {"email", "name"}) == {
        "email": MASK,
        "name": None,
        "x": 1,
    }


def test_raw_customers_contract_masks_email_examples() -> None:
    contract = load_contract("raw_customers")
    df = pl.DataFrame(
        {c: pl.Series([None, None], dtype=t) for c, t in schema.CUSTOMERS.items()}
    ).with_columns(pl.Series("customer_id", ["c1", "c1"]), pl.Series("email", ["not-an-email", "x@y.z"]))
    report = validate_frame(df, contract, "warn")
    assert report.result("raw_customers.email.format").examples == (MASK,)
    assert report.result("raw_customers.customer_id.unique").examples == ("c1", "c1")
    assert validate_frame(df, contract, "error").success


# ---------------------------------------------------------------------------------- one validation


@pytest.fixture()
def gx_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The contract name of every GX run."""
    runs: list[str] = []
    real = quality._run_gx

    def counted(df: pl.DataFrame, contract, *args):
        runs.append(contract.name)
        return real(df, contract, *args)

    monkeypatch.setattr(quality, "_run_gx", counted)
    return runs


def test_publish_gate_report_is_the_blocking_checks_result(demo_dir: Path, gx_runs: list[str]) -> None:
    """An asset that validates its own value runs GX once per severity: the gate's error report
    becomes the blocking check's result, and a broken value is never written."""
    from segflow.defs.contract_checks import contract_specs, publish_checked
    from segflow.defs.partitions import monthly_partitions
    from segflow.defs.scope import settings_in_scope

    # Check specs are partitioned like segflow's assets (the months of the settings in scope).
    monthly = monthly_partitions(settings_in_scope())
    frames = {
        "2024-01": good_frame(4),
        "2024-02": good_frame(4).with_columns(pl.Series("amount", [1.0, -5, 2, 3])),
    }

    @dg.asset(name="gated", partitions_def=monthly, check_specs=contract_specs("gated", "demo"))
    def gated(context: dg.AssetExecutionContext):
        frame = _shift_ts(
            frames[context.partition_key], context.partition_time_window.start.replace(tzinfo=None)
        )
        checks = publish_checked(context, "gated", frame, "demo")
        yield dg.Output(frame, metadata={"dagster/row_count": frame.height})
        yield from checks

    written = []

    class Memory(dg.IOManager):
        def handle_output(self, context, obj) -> None:
            written.append(context.partition_key)

        def load_input(self, context):  # pragma: no cover - nothing reads it
            raise NotImplementedError

    instance = dg.DagsterInstance.ephemeral()
    ok = dg.materialize(
        [gated], partition_key="2024-01", instance=instance, resources={"io_manager": Memory()}
    )
    evaluations = {e.check_name: e for e in ok.get_asset_check_evaluations()}
    assert evaluations["gated_contract_errors"].passed and evaluations["gated_contract_warnings"].passed
    assert evaluations["gated_contract_errors"].metadata["row_count"].value == 4
    assert gx_runs == ["demo", "demo"]  # error and warn, once each
    broken = dg.materialize(
        [gated], partition_key="2024-02", instance=instance, resources={"io_manager": Memory()},
        raise_on_error=False,
    )  # fmt: skip
    assert not broken.success and written == ["2024-01"]
    failure = next(e for e in broken.all_events if e.is_step_failure)
    assert "not published" in failure.step_failure_data.error.message
    assert "demo.amount.range" in failure.step_failure_data.error.message
    assert gx_runs == ["demo", "demo", "demo"]  # the gate's error run only


def test_loading_definitions_imports_no_gx(tmp_path: Path) -> None:
    """GX costs ~3 CPU-s to import: only a process that validates should pay it."""
    code = (
        "import sys; from segflow.definitions import defs; defs(); print('great_expectations' in sys.modules)"
    )
    env = {**os.environ, "SEGFLOW_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------------------------- Dagster


def test_column_schema_and_version(demo_dir: Path) -> None:
    from segflow.defs.contract_checks import column_schema, contract_version

    cols = {c.name: c for c in column_schema("demo").columns}
    assert contract_version("demo") == "2.3.4"
    assert cols["id"].type == "String"
    assert (cols["id"].constraints.nullable, cols["id"].constraints.unique) == (False, True)
    assert cols["amount"].constraints.nullable
    assert cols["amount"].constraints.other == ["values in [0, 100] [error: demo.amount.range]"]
    assert cols["kind"].constraints.other == ["in {a, b} [error: demo.kind.allowed]"]
    assert "[PII]" in cols["email"].description


def test_contract_checks_module_defines_nothing_at_import() -> None:
    import segflow.defs.contract_checks as module

    kinds = (
        dg.AssetsDefinition,
        dg.AssetChecksDefinition,
        dg.JobDefinition,
        dg.ScheduleDefinition,
        dg.SensorDefinition,
        dg.Definitions,
        dg.AssetSpec,
    )
    assert [n for n, v in vars(module).items() if isinstance(v, kinds)] == []


MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2024-01", fmt="%Y-%m")
FRAMES = {
    "2024-01": good_frame(4),
    "2024-02": good_frame(4),
    # Error rule broken (negative amount): the blocking check must stop `downstream`.
    "2024-03": good_frame(4).with_columns(pl.Series("amount", [1.0, -5.0, 2.0, 3.0])),
    # Only warn rules broken (bad email, +125% volume): downstream still runs.
    "2024-04": good_frame(9).with_columns(pl.lit("no-email").alias("email")),
}


def _shift_ts(frame: pl.DataFrame, partition_start: dt.datetime) -> pl.DataFrame:
    """Move the demo timestamps into the given month, so the partition-bound rules pass."""
    return frame.with_columns((pl.col("ts") + (partition_start - JAN_START)).alias("ts"))


@dg.asset(partitions_def=MONTHLY)
def demo_table(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
    """The checked asset; emits dagster/row_count like segflow's real assets."""
    start = context.partition_time_window.start.replace(tzinfo=None)
    frame = _shift_ts(FRAMES[context.partition_key], start)
    return dg.Output(frame, metadata={"dagster/row_count": frame.height})


@dg.asset(partitions_def=MONTHLY)
def downstream(demo_table: pl.DataFrame) -> int:
    return demo_table.height


def _materialize(
    instance: dg.DagsterInstance, partition: str, tmp_path: Path, checks
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [demo_table, downstream, *checks],
        partition_key=partition,
        instance=instance,
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))},
        raise_on_error=False,
    )


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_dagster_checks_pass_block_and_warn(demo_dir: Path, tmp_path: Path) -> None:
    from segflow.defs.contract_checks import build_contract_checks

    checks = build_contract_checks(demo_table.key, "demo", MONTHLY)
    assert [next(iter(c.check_specs)).name for c in checks] == [
        "demo_table_contract_errors",
        "demo_table_contract_warnings",
    ]
    assert [next(iter(c.check_specs)).blocking for c in checks] == [True, False]
    instance = dg.DagsterInstance.ephemeral()

    first = _materialize(instance, "2024-01", tmp_path, checks)
    ev = _evaluations(first)
    assert (
        first.success
        and ev["demo_table_contract_errors"].passed
        and ev["demo_table_contract_warnings"].passed
    )
    meta = ev["demo_table_contract_errors"].metadata
    assert meta["row_count"].value == 4 and meta["failing_rule_count"].value == 0
    assert meta["contract_version"].value == "2.3.4"
    assert {rec.data["rule_id"] for rec in meta["rules"].value.records} >= {"demo.id.unique", "demo.ts.max"}
    assert "no previous partition" in ev["demo_table_contract_warnings"].metadata["note"].value
    assert _materialized(first) == {"demo_table", "downstream"}

    second = _evaluations(_materialize(instance, "2024-02", tmp_path, checks))
    assert second["demo_table_contract_warnings"].passed
    assert (
        second["demo_table_contract_warnings"].metadata["note"].value == "previous partition 2024-01: 4 rows"
    )

    blocked = _materialize(instance, "2024-03", tmp_path, checks)
    ev = _evaluations(blocked)
    assert not ev["demo_table_contract_errors"].passed
    assert ev["demo_table_contract_errors"].severity == dg.AssetCheckSeverity.ERROR
    assert ev["demo_table_contract_errors"].metadata["failing_rules"].value == "demo.amount.range"
    assert ev["demo_table_contract_errors"].metadata["failing_rule_count"].value == 1
    assert _materialized(blocked) == {"demo_table"}  # written, but downstream never ran
    assert not blocked.success  # Dagster fails the run on a failed blocking check

    warned = _materialize(instance, "2024-04", tmp_path, checks)
    ev = _evaluations(warned)
    assert ev["demo_table_contract_errors"].passed
    assert not ev["demo_table_contract_warnings"].passed
    assert ev["demo_table_contract_warnings"].severity == dg.AssetCheckSeverity.WARN
    assert (
        ev["demo_table_contract_warnings"].metadata["failing_rules"].value == "demo.volume, demo.email.format"
    )
    assert _materialized(warned) == {"demo_table", "downstream"} and warned.success


def test_checks_omitted_without_rules_of_a_severity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segflow.defs.contract_checks import build_contract_checks

    raw = yaml.safe_load(DEMO_YAML)
    table = raw["schema"][0]
    table["quality"] = [q for q in table["quality"] if q["severity"] == "error"]
    for prop in table["properties"]:
        prop["quality"] = [q for q in prop.get("quality", []) if q["severity"] == "error"]
    (tmp_path / "demo.yaml").write_text(
        yaml.safe_dump(raw).replace("extraColumns: warn", "extraColumns: ignore")
    )
    monkeypatch.setenv(CONTRACTS_ENV, str(tmp_path))
    checks = build_contract_checks("demo_table", "demo", None)
    assert [next(iter(c.check_specs)).name for c in checks] == ["demo_table_contract_errors"]


# ---------------------------------------------------------------------------------- speed


def test_speed_one_million_rows_report() -> None:
    """Not an assertion: prints the GX time for ~12 column rules on 1M rows."""
    contract = load_contract("customer_profiles")
    n = 1_000_000
    idx = pl.int_range(n, eager=True)
    df = pl.DataFrame(
        {
            "customer_id": ("c" + idx.cast(pl.String)),
            "period": ["2024-01"] * n,
            "gender": pl.Series(["F", "M", "X"] * (n // 3) + ["F"] * (n % 3)),
            "education": pl.Series(["basic", "master"] * (n // 2)),
            "birth_year": (1940 + idx % 70).cast(pl.Int32),
            "income": (idx % 100_000).cast(pl.Float64),
            "household_size": (1 + idx % 6).cast(pl.Int32),
            "n_invoices": idx % 20,
        }
    ).with_columns(
        first_purchase_at=pl.lit(JAN_START).cast(pl.Datetime("us")) + pl.duration(seconds=idx % 2_000_000),
        signup_date=pl.lit(dt.date(2020, 1, 1)) + pl.duration(days=idx % 1400),
    )
    every = [r for r in contract.rules_for("error") if r.column in df.columns]
    typical = [r for r in every if r.kind != "not_null" or r.column == "customer_id"]
    for rules in (typical, every):
        sub = dataclasses.replace(contract, rules=tuple(rules))
        validate_frame(df.head(10), sub, "error", partition_start=JAN_START, partition_end=JAN_END)  # warm
        started = time.perf_counter()
        report = validate_frame(df, sub, "error", partition_start=JAN_START, partition_end=JAN_END)
        total = time.perf_counter() - started
        print(
            f"\n[speed] {len(rules)} column rules on {n:,} rows: GX {report.gx_elapsed_s:.3f} s, "
            f"total {total:.3f} s"
        )
        assert report.row_count == n and report.success
