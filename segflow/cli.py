"""The ``segflow`` command: generate, demo, materialize, backfill, export.

Runs happen in this process against the same definitions and Dagster instance as the UI.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from segflow.config import ConfigError
from segflow.lib.periods import is_period

DEMO_MONTHS = 3


def _period(value: str) -> str:
    if not is_period(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a period YYYY-MM")
    return value


def _cmd_generate(args: argparse.Namespace) -> int:
    from segflow.synth import SynthConfig, generate

    config = SynthConfig(customers=args.customers, months=args.months, start=args.start, seed=args.seed)
    started = time.perf_counter()
    manifest = generate(args.out, config, progress=print)
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s (seed {manifest['config']['seed']})")
    return 0


def segment_table(kpis):
    """The month's segments for a terminal: whole names, shares in percent, no dtype row."""
    import polars as pl

    def percent(column: str) -> pl.Expr:
        return pl.format("{}%", (pl.col(column) * 100).round(1)).alias(column.replace("_share", " %"))

    return kpis.sort("segment_id").select(
        pl.col("segment_id").alias("id"),
        pl.col("segment_name").alias("segment"),
        pl.col("customers"),
        percent("customer_share"),
        percent("revenue_share"),
        pl.col("avg_order_value").round(2).alias("avg order value"),
        pl.col("mean_frequency").round(2).alias("frequency"),
        pl.col("mean_recency_days").round(0).cast(pl.Int64, strict=False).alias("recency (days)"),
    )


def _print_summary(settings, period: str) -> None:
    import polars as pl

    from segflow.lib.storage import StorageLayout

    kpis = pl.read_parquet(StorageLayout(settings.storage_dir).table("kpi_audit", period))
    table = segment_table(kpis)
    with pl.Config(
        tbl_rows=-1, tbl_cols=-1, tbl_width_chars=400, fmt_str_lengths=200, float_precision=2,
        tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_formatting="ASCII_MARKDOWN",
    ):  # fmt: skip
        print(table)


def _finish_backfill(settings, summary) -> int:
    ok = len(summary.outcomes) - len(summary.failed)
    print(f"\n{ok} of {len(summary.outcomes)} runs succeeded")
    for outcome in summary.failed:
        where = f" (run {outcome.run_id}: its page in the UI has the traceback)" if outcome.run_id else ""
        print(f"  FAILED {outcome.period} {outcome.job}: {outcome.error}{where}")
    return _report_index(settings, 1 if summary.failed else 0)


def _report_index(settings, code: int) -> int:
    from segflow.lib.storage import StorageLayout

    index = StorageLayout(settings.storage_dir).report_index
    if index.exists():
        print(f"reports index: {index}")
    return code


def _cmd_demo(args: argparse.Namespace) -> int:
    # Said before anything heavy is imported, so the demo speaks from its first second.
    started = time.perf_counter()
    print(
        "segflow demo: a synthetic retailer, 15 months of five sources, segmented month by month", flush=True
    )
    from segflow import runner
    from segflow.lib.periods import month_range
    from segflow.lib.storage import StorageLayout
    from segflow.synth import SynthConfig, generate

    settings = runner.prepare_environment(args.config)
    landing = settings.landing_dir
    manifest_path = landing / "_manifest.json"
    if not manifest_path.exists():
        print(f"generating the synthetic landing zone in {landing} ...", flush=True)
        # The generated months are the configured partitions, so none is left without data.
        months = SynthConfig.months
        if settings.partitions_end:
            months = len(month_range(settings.partitions_start, settings.partitions_end))
        generate(
            landing,
            SynthConfig(start=settings.partitions_start, months=months),
            progress=lambda m: print(f"  {m}", flush=True),
        )
    months = sorted(p.stem for p in (landing / "transactions").glob("*.parquet"))
    last = months[-DEMO_MONTHS:]
    print(f"materialising {last[0]} .. {last[-1]} (and the trailing window's profiles)", flush=True)
    summary = runner.backfill(settings, last[0], last[-1], workers=args.workers)
    code = _finish_backfill(settings, summary)
    print("\nreports:")
    for period in last:
        path = StorageLayout(settings.storage_dir).report_page(period)
        print(f"  {period}: {path}" + ("" if path.exists() else " (missing)"))
    if code == 0:
        print(f"\nsegments for {last[-1]}:")
        _print_summary(settings, last[-1])
    print(f"\ndemo finished in {time.perf_counter() - started:.0f}s; open the UI with `make ui`")
    return code


def _cmd_materialize(args: argparse.Namespace) -> int:
    from segflow import runner

    settings = runner.prepare_environment(args.config)
    summary = runner.backfill(settings, args.period, args.period, force=True)
    return _finish_backfill(settings, summary)


def _cmd_backfill(args: argparse.Namespace) -> int:
    from segflow import runner

    if args.to < args.from_:
        raise SystemExit(f"--to {args.to} is before --from {args.from_}")
    settings = runner.prepare_environment(args.config)
    if args.launch:
        if args.workers != 1:
            raise SystemExit("--workers applies in process; with --launch the instance's run queue "
                             "sets how many runs proceed at once (max_concurrent_runs)")  # fmt: skip
        return _launch_backfill(settings, args)
    summary = runner.backfill(settings, args.from_, args.to, workers=args.workers, force=args.force)
    return _finish_backfill(settings, summary)


def _launch_backfill(settings, args: argparse.Namespace) -> int:
    """``--launch``: the backfill as a Dagster asset backfill that the daemon runs (segflow.fanout)."""
    import dagster as dg

    from segflow import fanout

    with dg.DagsterInstance.get() as instance:
        for warning in fanout.check_instance(instance):
            print(f"segflow: warning: {warning}", file=sys.stderr)
        launched = fanout.launch(settings, args.from_, args.to, args.force, instance)
        if launched.skipped:
            print(f"already built, skipped (use --force to rebuild): {', '.join(launched.skipped)}")
        if not launched.backfill_id:
            print("nothing to launch: every month is built")
            return 0
        print(f"launched backfill {launched.backfill_id}: {len(launched.ingest)} ingest and "
              f"{len(launched.model)} modelling months, run by the daemon at most {fanout.run_limit(instance)} "
              "at a time (the UI lists it under Backfills)")  # fmt: skip
        if not args.wait:
            return 0
        try:
            ok = fanout.follow(instance, launched.backfill_id, print)
        except KeyboardInterrupt:  # the daemon owns the backfill: stopping to watch stops nothing
            print(f"\nstopped following; backfill {launched.backfill_id} goes on in the daemon (UI: Backfills)")
            return 130
    return _report_index(settings, 0 if ok else 1)


def _cmd_export(args: argparse.Namespace) -> int:
    import polars as pl

    from segflow import runner
    from segflow.lib import storage

    settings = runner.prepare_environment(args.config)
    layout = storage.StorageLayout(settings.storage_dir)
    tables = layout.table_assets()
    if not layout.ASSET_NAME.match(args.asset) or args.asset not in tables:
        raise SystemExit(
            f"{args.asset!r} is not a stored table asset; the stored tables are: {', '.join(tables)}"
        )
    source = layout.table(args.asset, args.period)
    if not source.exists():
        months = layout.table_periods(args.asset)
        raise SystemExit(f"{source}: no {args.asset} for {args.period}; it is stored for {', '.join(months)}")
    out = Path(args.out)
    frame = pl.read_parquet(source)

    if out.suffix == ".csv":
        from segflow.lib.export import write_csv

        write_csv(frame, out)  # formula-guarded, nested columns as JSON (segflow.lib.export)
    elif out.suffix == ".parquet":
        storage.write_parquet(frame, out)
    else:
        raise SystemExit(f"{out}: the output must end in .csv or .parquet")
    print(f"wrote {frame.height:,} rows of {args.asset} {args.period} to {out}")
    return 0


CONFIG_HELP = "settings YAML file (default: $SEGFLOW_CONFIG, else the built-in synthetic demo settings)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segflow",
        description="Monthly customer segmentation on Dagster. Runs happen in this process, against the "
        "same definitions and Dagster instance as the UI (make ui).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write a synthetic multi-source landing zone")
    gen.add_argument("--out", required=True, metavar="DIR", help="the landing folder to write")
    gen.add_argument(
        "--customers", type=int, default=5000, metavar="N", help="customers (default: %(default)s)"
    )
    gen.add_argument(
        "--months", type=int, default=15, metavar="N", help="months of data (default: %(default)s)"
    )
    gen.add_argument("--start", type=_period, default="2024-01", metavar="YYYY-MM",
                     help="the first month (default: %(default)s)")  # fmt: skip
    gen.add_argument("--seed", type=int, default=42, metavar="N", help="random seed (default: %(default)s)")
    gen.set_defaults(func=_cmd_generate)

    demo = sub.add_parser("demo", help="generate (if empty) and materialise the latest 3 months")
    demo.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    demo.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), metavar="N",
                      help="months run in parallel where they are independent (default: 2 or the cores)")  # fmt: skip
    demo.set_defaults(func=_cmd_demo)

    mat = sub.add_parser("materialize", help="materialise one month through the whole graph")
    mat.add_argument("--period", type=_period, required=True, metavar="YYYY-MM", help="the month to build")
    mat.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    mat.set_defaults(func=_cmd_materialize)

    back = sub.add_parser("backfill", help="materialise a range of months, oldest first")
    back.add_argument("--from", dest="from_", type=_period, required=True, metavar="YYYY-MM",
                      help="the first month to build")  # fmt: skip
    back.add_argument("--to", type=_period, required=True, metavar="YYYY-MM", help="the last month to build")
    back.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    back.add_argument("--workers", type=int, default=1, metavar="N",
                      help="months run in parallel within a phase (default: %(default)s)")  # fmt: skip
    back.add_argument("--force", action="store_true", help="rebuild months that are already built")
    back.add_argument("--launch", action="store_true",
                      help="submit the months to the Dagster instance's run queue as one backfill, for "
                           "dagster-daemon to run (deploy/dagster.yaml), instead of running them here")  # fmt: skip
    back.add_argument("--wait", action="store_true", help="with --launch: follow the runs until the backfill ends")
    back.set_defaults(func=_cmd_backfill)

    exp = sub.add_parser("export", help="write a stored table asset for a month to CSV or Parquet")
    exp.add_argument("asset", help="a table asset, e.g. segment_assignments (a wrong name lists them)")
    exp.add_argument("--period", type=_period, required=True, metavar="YYYY-MM", help="the month to export")
    exp.add_argument(
        "--out", required=True, metavar="FILE", help="the file to write, ending in .csv or .parquet"
    )
    exp.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    exp.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Progress is read as it happens, also through a pipe (make, CI logs, tee).
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"segflow: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
