"""The peer notebook: Online Retail II segmented for one month the way an analyst's notebook does it,
in plain pandas and scikit-learn. It is the baseline of the fixed-cost benchmark, timed as a whole
process (imports included), so it is written as a notebook is: read, clean, RFM, a k-means sweep.

    python -m benchmarks.peer_notebook --period 2011-11 [--customers 300]

Cleaning is the usual notebook's, not segflow's: rows without a customer, cancellations (invoices
starting with C, dropped rather than netted), non-positive quantities and prices, and exact
duplicate rows are dropped. RFM is computed over the trailing 12 months as of the month's end;
quintile scores are 1..5, 5 the best (most recent, most frequent, highest spend).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail_ii" / "online_retail_ii.parquet"
)
KS = range(2, 11)
SEED = 42


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    df = raw.dropna(subset=["Customer ID"])
    df = df[~df["Invoice"].str.startswith("C")]
    df = df[(df["Quantity"] > 0) & (df["Price"] > 0)].drop_duplicates()
    return df.assign(Revenue=df["Quantity"] * df["Price"])


def rfm(df: pd.DataFrame, period: str, window_months: int = 12) -> pd.DataFrame:
    """Recency (days before the month's end), frequency (invoices) and monetary (revenue) per
    customer over the trailing window, with quintile scores."""
    end = pd.Timestamp(f"{period}-01") + pd.DateOffset(months=1)
    window = df[(df["InvoiceDate"] >= end - pd.DateOffset(months=window_months)) & (df["InvoiceDate"] < end)]
    table = window.groupby("Customer ID").agg(
        Recency=("InvoiceDate", lambda d: (end - d.max()).days),
        Frequency=("Invoice", "nunique"),
        Monetary=("Revenue", "sum"),
    )
    # Ranks first: frequencies tie heavily, and qcut needs distinct bin edges.
    for column, best_high in (("Recency", False), ("Frequency", True), ("Monetary", True)):
        ranks = table[column].rank(method="first", ascending=best_high)
        table[column[0]] = pd.qcut(ranks, 5, labels=[1, 2, 3, 4, 5]).astype(int)
    return table


def sweep(table: pd.DataFrame) -> dict[int, float]:
    """Silhouette of k-means on the standardised log RFM values, for every k."""
    x = StandardScaler().fit_transform(np.log1p(table[["Recency", "Frequency", "Monetary"]]))
    scores = {}
    for k in KS:
        labels = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(x)
        scores[k] = float(silhouette_score(x, labels))
    return scores


def notebook(path: Path, period: str, customers: int | None = None) -> tuple[pd.DataFrame, dict[int, float]]:
    """The whole notebook; ``customers`` keeps only that many (the lowest ids), for a quick run."""
    df = clean(pd.read_parquet(path))
    if customers is not None:
        df = df[df["Customer ID"].isin(np.sort(df["Customer ID"].unique())[:customers])]
    table = rfm(df, period)
    return table, sweep(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--period", default="2011-11")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--customers", type=int, help="keep only this many customers (a quick run)")
    args = parser.parse_args()
    table, scores = notebook(args.data, args.period, args.customers)
    best = max(scores, key=scores.__getitem__)
    print(json.dumps({"period": args.period, "customers": len(table), "silhouette": scores, "best_k": best}))


if __name__ == "__main__":
    main()
