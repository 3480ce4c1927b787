"""Writers of the landing zone: streaming Parquet and CSV sinks, and the JSON manifest.

Every file is written under a temporary name and replaced atomically, and a month's five files
only once the whole month is made, so an interrupted run leaves no half-written file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from segflow.lib.schema import CAMPAIGNS, CUSTOMERS, ENGAGEMENT, SURVEYS, TRANSACTIONS

ROW_GROUP_ROWS = 1_000_000


# Where each source's month goes under the landing folder (and the truth, written once); the
# manifest records it, and the sinks take their paths and formats from it.
FILE_LAYOUT = {
    "customers": "crm_customers/{period}.csv",
    "transactions": "transactions/{period}.parquet",
    "engagement": "engagement/{period}.parquet",
    "surveys": "surveys/{period}.parquet",
    "campaigns": "campaigns/{period}.parquet",
    "ground_truth": "_ground_truth/segments.parquet",
}
SOURCE_SCHEMAS = {"customers": CUSTOMERS, "transactions": TRANSACTIONS, "engagement": ENGAGEMENT,
                  "surveys": SURVEYS, "campaigns": CAMPAIGNS}  # fmt: skip


def _arrow_schema(schema: dict[str, pl.DataType]) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


class _Closing:
    """As a context manager: closed when the block ends, aborted (nothing left behind) when it raises."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _AtomicSink(_Closing):
    """A file written under a temporary name, moved into place on close and removed on abort."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = _tmp_path(path)
        self.rows = 0

    def _close_file(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._close_file()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._close_file()
        self.tmp.unlink(missing_ok=True)


class ParquetSink(_AtomicSink):
    """Streams blocks into one Parquet file in row groups of ROW_GROUP_ROWS, replaced atomically."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]) -> None:
        super().__init__(path)
        self.schema = _arrow_schema(schema)
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", write_statistics=True)
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.buffer.append(frame.to_arrow().cast(self.schema))
        self.buffered += frame.height
        self.rows += frame.height
        if self.buffered >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.concat_tables(self.buffer)
        full = table.num_rows if final else table.num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS
        if full:
            self.writer.write_table(table.slice(0, full), row_group_size=ROW_GROUP_ROWS)
        rest = table.num_rows - full
        # Take copies the remainder, so that a slice does not keep the whole block's buffers alive.
        self.buffer = [table.take(np.arange(full, table.num_rows))] if rest else []
        self.buffered = rest

    def close(self) -> None:
        if self.buffer:
            self._flush(final=True)
        super().close()

    def _close_file(self) -> None:
        self.writer.close()


class _CsvSink(_AtomicSink):
    """CSV with a header, appended block by block, replaced atomically."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]) -> None:
        super().__init__(path)
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in close/abort
        pl.DataFrame(schema=schema).write_csv(self.handle)

    def write(self, frame: pl.DataFrame) -> None:
        frame.write_csv(self.handle, include_header=False)
        self.rows += frame.height

    def _close_file(self) -> None:
        self.handle.close()


class MonthSinks(_Closing):
    """The five files of one month, under temporary names until the whole month is written."""

    def __init__(self, out: Path, period: str) -> None:
        self.sinks: dict[str, ParquetSink | _CsvSink] = {}
        try:
            for source, schema in SOURCE_SCHEMAS.items():
                path = out / FILE_LAYOUT[source].format(period=period)
                self.sinks[source] = (_CsvSink if path.suffix == ".csv" else ParquetSink)(path, schema)
        except BaseException:
            self.abort()
            raise

    def __getitem__(self, source: str) -> ParquetSink | _CsvSink:
        return self.sinks[source]

    def rows(self) -> dict[str, int]:
        return {source: sink.rows for source, sink in self.sinks.items()}

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()


def write_json(path: Path, data: dict) -> None:
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
