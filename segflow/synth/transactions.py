"""Line items: the product catalogue, each block's invoices and cancellations, as transactions.

A block-month's purchases are Poisson per customer (segment rate x customer multiplier x
intensity x seasonality x the share of the month the customer existed), with baskets drawn from
the segment's categories and price skew; a segment-dependent share of invoices is partly
cancelled ("C" invoices) a few days later. Dirt is then planted from the block's own dirt stream.

Line items grow with intensity, not only with customers: above ``TX_INTENSITY_PER_CHUNK`` a
block's transactions are made in ceil(intensity / TX_INTENSITY_PER_CHUNK) chunks of its customers,
each from its own random stream, so a block's lines in memory stay about those of intensity 20
(3.4M lines, 1.4 GB peak). At or below it there is one chunk and the data is what it always was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from segflow.lib.schema import CHANNELS
from segflow.synth.config import SynthConfig
from segflow.synth.customers import Block
from segflow.synth.dirt import transaction_dirt
from segflow.synth.segments import CATEGORIES, SEG, SEGMENTS
from segflow.synth.streams import (
    US_PER_DAY,
    US_PER_SECOND,
    Month,
    Stream,
    gather,
    pick,
    stream,
    uniform_times,
)

TX_INTENSITY_PER_CHUNK = 20.0
CATEGORY_MEDIAN_PRICE = (4.0, 8.0, 14.0, 18.0, 12.0, 35.0, 70.0, 160.0)
PRODUCTS_PER_CATEGORY = 25
MAX_QUANTITY = 99  # keeps normal lines far below the x1000 outliers, so outliers stay identifiable

# Purchase seasonality by calendar month (Jan..Dec): a December peak, a quiet February.
SEASONALITY = (0.92, 0.88, 0.95, 0.97, 1.0, 0.98, 0.96, 0.98, 1.0, 1.04, 1.12, 1.25)


@dataclass(frozen=True)
class Catalog:
    product_ids: pl.Series
    categories: pl.Series  # per product
    prices: np.ndarray  # per product, ascending within each category


def product_catalog(config: SynthConfig) -> Catalog:
    rng = stream(config, Stream.CATALOG)
    prices = []
    for median in CATEGORY_MEDIAN_PRICE:
        raw = np.sort(median * rng.lognormal(0.0, 0.35, PRODUCTS_PER_CATEGORY))
        prices.append(np.maximum(np.round(raw) - 0.01, 0.49))  # shop prices end in .99
    n = len(CATEGORIES) * PRODUCTS_PER_CATEGORY
    return Catalog(
        product_ids=pl.Series([f"P{i + 1:04d}" for i in range(n)], dtype=pl.String),
        categories=pl.Series(np.repeat(CATEGORIES, PRODUCTS_PER_CATEGORY).tolist(), dtype=pl.String),
        prices=np.concatenate(prices),
    )


@dataclass
class Lines:
    invoice: np.ndarray  # invoice number (int64)
    cancel: np.ndarray  # bool: a "C" invoice
    customer: np.ndarray  # position in the block
    time_us: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    price: np.ndarray
    channel: np.ndarray
    customer_null: np.ndarray  # bool

    def take(self, idx: np.ndarray) -> Lines:
        return Lines(**{k: v[idx] for k, v in vars(self).items()})

    @staticmethod
    def concat(parts: list[Lines]) -> Lines:
        return Lines(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])})


def _purchase_rates(config: SynthConfig, blk: Block, month: Month) -> np.ndarray:
    exposure = (month.end_us - np.maximum(blk.signup_us, month.start_us)) / month.length_us
    season = SEASONALITY[int(month.period[5:]) - 1]
    buying = month.index <= blk.churn_month
    return SEG["invoices_per_month"][blk.segment] * blk.rate * config.intensity * season * exposure * buying


def _invoice_lines(
    rng: np.random.Generator,
    blk: Block,
    month: Month,
    catalog: Catalog,
    n_inv: np.ndarray,
    block: int,
    numbered: int = 0,
) -> tuple[Lines, np.ndarray]:
    """Purchase lines of the block's invoices (numbered after the ``numbered`` invoices of the
    block's earlier chunks); also returns each line's invoice position."""
    inv_cust = np.repeat(np.arange(len(n_inv)), n_inv)
    n_invoices = len(inv_cust)
    if numbered + n_invoices >= 10**7 or block >= 10**4:
        # Invoice numbers are YYYYMM, 4 block digits and 7 sequence digits.
        raise ValueError(
            "more than 10 million invoices in a block-month, or 10,000 blocks: out of invoice numbers"
        )
    seg = blk.segment[inv_cust]
    inv_time = uniform_times(rng, np.maximum(blk.signup_us[inv_cust], month.start_us), month.end_us)
    inv_channel = pick(rng.random(n_invoices), blk.channel_weights[inv_cust])
    inv_lines = 1 + rng.poisson(SEG["extra_lines"][seg] * blk.basket[inv_cust])
    line_inv = np.repeat(np.arange(n_invoices), inv_lines)
    line_seg, line_cust = seg[line_inv], inv_cust[line_inv]
    category = np.empty(len(line_inv), dtype=np.int64)
    u = rng.random(len(line_inv))
    for s in range(len(SEGMENTS)):  # loop over five segments, not rows
        rows = line_seg == s
        cum = np.cumsum(SEG["category_weights"][s])
        category[rows] = np.minimum(
            np.searchsorted(cum / cum[-1], u[rows], side="right"), len(CATEGORIES) - 1
        )
    within = (PRODUCTS_PER_CATEGORY * rng.random(len(line_inv)) ** SEG["price_skew"][line_seg]).astype(
        np.int64
    )
    product = category * PRODUCTS_PER_CATEGORY + np.minimum(within, PRODUCTS_PER_CATEGORY - 1)
    # One line per product and invoice: a repeated product would make two identical rows, which
    # cleaning could not tell from an injected duplicate.
    _, first = np.unique(line_inv * len(catalog.prices) + product, return_index=True)
    keep = np.sort(first)
    line_inv, line_seg, line_cust, product = line_inv[keep], line_seg[keep], line_cust[keep], product[keep]
    quantity = np.minimum(
        1 + rng.poisson(SEG["extra_quantity"][line_seg] * blk.basket[line_cust]), MAX_QUANTITY
    )
    number = month.yyyymm * 10**11 + block * 10**7 + 1 + numbered + np.arange(n_invoices, dtype=np.int64)
    lines = Lines(
        invoice=number[line_inv], cancel=np.zeros(len(line_inv), dtype=bool), customer=line_cust,
        time_us=inv_time[line_inv], product=product, quantity=quantity.astype(np.int64),
        price=catalog.prices[product], channel=inv_channel[line_inv],
        customer_null=np.zeros(len(line_inv), dtype=bool),
    )  # fmt: skip
    return lines, line_inv


def _cancellations(
    rng: np.random.Generator, blk: Block, month: Month, lines: Lines, line_inv: np.ndarray
) -> Lines:
    """Cancellation lines ("C" invoices) for a segment-dependent share of invoices: a subset of the
    original lines (at least one), each with 1..bought units, 1-10 days later within the month."""
    n_invoices = int(line_inv[-1]) + 1 if len(line_inv) else 0
    first_line = np.searchsorted(line_inv, np.arange(n_invoices))
    n_lines = np.diff(np.append(first_line, len(line_inv)))
    inv_cust = lines.customer[first_line]
    seg = blk.segment[inv_cust]
    cancelled = rng.random(n_invoices) < np.minimum(SEG["cancel_prob"][seg] * blk.returns[inv_cust], 0.9)
    include = (rng.random(len(line_inv)) < SEG["cancel_line_prob"][blk.segment[lines.customer]]) & cancelled[
        line_inv
    ]
    forced = first_line + (rng.random(n_invoices) * n_lines).astype(np.int64)
    include[forced[cancelled]] = True
    delay_us = (
        (US_PER_DAY + (rng.random(n_invoices) * 9 * US_PER_DAY)).astype(np.int64)
        // US_PER_SECOND
        * US_PER_SECOND
    )
    returned = 1 + (rng.random(len(line_inv)) * lines.quantity).astype(np.int64)
    out = lines.take(np.flatnonzero(include))
    rows_inv = line_inv[include]
    out.cancel[:] = True
    out.quantity = -returned[include]
    out.time_us = np.minimum(out.time_us + delay_us[rows_inv], month.end_us - US_PER_SECOND)
    return out


def _transactions_frame(lines: Lines, blk: Block, catalog: Catalog) -> pl.DataFrame:
    number = pl.Series(lines.invoice).cast(pl.String)
    invoice = pl.select(pl.when(pl.Series(lines.cancel)).then("C" + number).otherwise(number)).to_series()
    # Gathering at a null position gives a null id, without a second pass over the strings.
    customer = pl.Series(np.ma.masked_array(lines.customer, lines.customer_null))
    return pl.DataFrame({
        "invoice_id": invoice,
        "customer_id": gather(blk.ids, customer, "customer_id"),
        "invoiced_at": pl.Series(lines.time_us).cast(pl.Datetime("us")),
        "product_id": gather(catalog.product_ids, lines.product, "product_id"),
        "category": gather(catalog.categories, lines.product, "category"),
        "quantity": pl.Series(lines.quantity, dtype=pl.Int64),
        "unit_price": pl.Series(lines.price, dtype=pl.Float64),
        "channel": gather(pl.Series(CHANNELS), lines.channel, "channel"),
    })  # fmt: skip


def _transaction_chunks(config: SynthConfig) -> int:
    return max(1, math.ceil(config.intensity / TX_INTENSITY_PER_CHUNK))


def transaction_frames(
    config: SynthConfig, blk: Block, month: Month, block: int, catalog: Catalog
) -> Iterator[tuple[list[pl.DataFrame], dict[str, int]]]:
    """Per chunk of the block's customers: its purchase and cancellation lines, then the injected
    duplicates (two frames, so the lines are never copied just to append a few rows), and the
    dirt counts. One chunk, on the block's own streams, unless the intensity is high."""
    chunks = _transaction_chunks(config)
    size = math.ceil(len(blk.index) / chunks)
    numbered = 0
    for chunk in range(chunks):
        part = blk if chunks == 1 else blk.rows(chunk * size, (chunk + 1) * size)
        chunk_id = None if chunks == 1 else chunk
        rng = stream(config, Stream.TX, month.index, block, chunk_id)
        n_inv = rng.poisson(_purchase_rates(config, part, month))
        purchases, line_inv = _invoice_lines(rng, part, month, catalog, n_inv, block, numbered)
        numbered += int(n_inv.sum())
        lines = Lines.concat([purchases, _cancellations(rng, part, month, purchases, line_inv)])
        del purchases, line_inv
        dirt_rng = stream(config, Stream.TX_DIRT, month.index, block, chunk_id)
        duplicates, counts = transaction_dirt(dirt_rng, lines, config.dirt)
        frames = [
            _transactions_frame(lines, part, catalog),
            _transactions_frame(lines.take(duplicates), part, catalog),
        ]
        del lines
        yield frames, counts
        del frames  # written by now: free it before the next chunk is made
