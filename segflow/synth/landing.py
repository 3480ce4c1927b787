"""Orchestration: the landing zone written month by month, block by block, then the truth and the
manifest.

A month's blocks are made one after the other and each block's sources one at a time, every
frame written as soon as it is made, so memory is bounded by one block's rows of one source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import polars as pl

from segflow import __version__
from segflow.synth.campaigns import Campaign, campaign_frame, campaign_plan
from segflow.synth.config import SynthConfig
from segflow.synth.crm import GROUND_TRUTH, crm_frames, ground_truth_frame
from segflow.synth.customers import Block, Population, customer_block, population
from segflow.synth.engagement import engagement_frames
from segflow.synth.segments import SEGMENTS
from segflow.synth.streams import BLOCK_SIZE, Month, calendar
from segflow.synth.surveys import survey_frame
from segflow.synth.transactions import Catalog, product_catalog, transaction_frames
from segflow.synth.writers import FILE_LAYOUT, SOURCE_SCHEMAS, MonthSinks, ParquetSink, write_json

SYNTH_VERSION = "1"
_DEFAULT_CONFIG = SynthConfig()  # frozen, so one shared default is safe


def _block_outputs(
    config: SynthConfig, blk: Block, month: Month, block: int, catalog: Catalog, plan: list[Campaign]
) -> Iterator[tuple[str, list[pl.DataFrame], dict[str, int]]]:
    """One block's frames per source with their dirt counts, one source at a time to bound memory."""
    yield "customers", *crm_frames(config, blk, month, block)
    for frames, counts in transaction_frames(config, blk, month, block, catalog):
        yield "transactions", frames, counts
        del frames  # the next chunk is made on resumption; hold no copy of this one meanwhile
    yield "engagement", *engagement_frames(config, blk, month, block)
    yield "surveys", [survey_frame(config, blk, month, block)], {}
    yield "campaigns", [campaign_frame(config, blk, month, block, plan)], {}


def _generate_month(
    config: SynthConfig, out: Path, pop: Population, months: list[Month], month: Month, catalog: Catalog
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Write one month's five files; return their row counts and the dirt injected, by source."""
    present = pop.present(month.index)
    plan = campaign_plan(config, month)
    dirt = {"customers": {}, "transactions": {}, "engagement": {}}
    with MonthSinks(out, month.period) as sinks:
        for block in pop.blocks(present):
            blk = customer_block(config, pop, block, months).head(present - block * BLOCK_SIZE)
            for source, frames, counts in _block_outputs(config, blk, month, block, catalog, plan):
                for frame in frames:
                    sinks[source].write(frame)
                for kind, count in counts.items():
                    dirt[source][kind] = dirt[source].get(kind, 0) + count
                del frames  # written: free it before the next source is generated
    return sinks.rows(), dirt


def _write_ground_truth(
    config: SynthConfig, out: Path, pop: Population, months: list[Month]
) -> dict[str, int]:
    """Write every customer's planted segment and churn month; return the customers per segment."""
    counts: dict[str, int] = dict.fromkeys(SEGMENTS, 0)
    with ParquetSink(out / FILE_LAYOUT["ground_truth"], GROUND_TRUTH) as sink:
        for block in pop.blocks(pop.total):
            frame = ground_truth_frame(customer_block(config, pop, block, months), config)
            sink.write(frame)
            for name, n in frame["segment"].value_counts().iter_rows():
                counts[name] += n
    return counts


def generate(
    out_dir: str | Path, config: SynthConfig = _DEFAULT_CONFIG, progress: Callable[[str], None] | None = None
) -> dict:
    """Write the landing zone; return the manifest dict (also written to out_dir/_manifest.json)."""
    out = Path(out_dir)
    for layout in FILE_LAYOUT.values():
        (out / layout).parent.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    pop = population(config)
    months = calendar(config)
    catalog = product_catalog(config)
    row_counts: dict[str, dict[str, int]] = {source: {} for source in SOURCE_SCHEMAS}
    injected: dict[str, dict[str, dict[str, int]]] = {}
    for month in months:
        rows, dirt = _generate_month(config, out, pop, months, month, catalog)
        for source, n in rows.items():
            row_counts[source][month.period] = n
        for source, kinds in dirt.items():
            for kind, n in kinds.items():
                injected.setdefault(source, {}).setdefault(kind, {})[month.period] = n
        say(
            f"{month.period}: {rows['customers']:,} CRM rows, {rows['transactions']:,} transaction lines, "
            f"{rows['engagement']:,} events, {rows['surveys']:,} survey answers, "
            f"{rows['campaigns']:,} exposures"
        )
    segment_counts = _write_ground_truth(config, out, pop, months)
    manifest = {
        "generator": "segflow.synth",
        "code_version": f"segflow {__version__} / synth {SYNTH_VERSION}",
        "config": asdict(config),
        "block_size": BLOCK_SIZE,
        "periods": [m.period for m in months],
        "customers_total": pop.total,
        "new_customers_per_month": pop.new_per_month,
        "segments": list(SEGMENTS),
        "segment_counts": segment_counts,
        "row_counts": row_counts,
        "injected_dirt": injected,
        "files": FILE_LAYOUT,
    }
    write_json(out / "_manifest.json", manifest)
    say(f"wrote {len(months)} months for {pop.total:,} customers to {out}")
    return manifest
