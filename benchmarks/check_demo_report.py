# Usage: python -m benchmarks.check_demo_report .segflow   (after `make demo`)
"""On a demo home: the headline stay rate of each report equals the share of last month's customers
with the same segment id this month (computed from segment_assignments), and the index's share
chart has one series per segment id."""
import json
import re
import sys
from pathlib import Path

import polars as pl

storage = Path(sys.argv[1]) / "storage"
reports = storage / "reports"
months = sorted(p.stem for p in reports.glob("20*.html"))
for m in months:
    html = (reports / f"{m}.html").read_text(encoding="utf-8")
    found = re.search(r'<p id="stay-cluster">([0-9.]+)%', html)
    prev_m = sorted(p.stem for p in (storage / "segment_assignments").glob("*.parquet") if p.stem < m)
    if not found or not prev_m:
        print(m, "no headline (first month)" if not found else "no previous month")
        continue
    prev = pl.read_parquet(storage / "segment_assignments" / f"{prev_m[-1]}.parquet").select("customer_id", "segment_id")
    cur = pl.read_parquet(storage / "segment_assignments" / f"{m}.parquet").select("customer_id", "segment_id")
    same = prev.join(cur, on="customer_id", suffix="_now").filter(pl.col("segment_id") == pl.col("segment_id_now")).height
    print(f"{m}: headline {found.group(1)}%, from ids {100 * same / prev.height:.1f}%")
records = [json.loads((reports / f"{m}.json").read_text(encoding="utf-8")) for m in months]
ids = sorted({i for r in records for i in r["segment_share"]}, key=int)
index = (reports / "index.html").read_text(encoding="utf-8")
latest = {i: r["segment_names"][i] for r in records for i in r["segment_names"]}
labels = [i for i in ids if f"{i}: {latest[i]}".replace("'", "&#39;") in index or f"{i}: {latest[i]}" in index]
print(f"index share chart: {len(ids)} segment ids across {len(months)} reports, {len(labels)} labelled series: "
      + "; ".join(f"{i}: {latest[i]}" for i in ids))
