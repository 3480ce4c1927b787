"""Charts as inline SVG, so a report is one self-contained file that opens offline.

matplotlib renders to SVG with a fixed hash salt and no date metadata, so the same data always
gives the same bytes. The palette is Okabe-Ito, which stays distinguishable for the common forms
of colour blindness.
"""

from __future__ import annotations

import io

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "segflow", "svg.fonttype": "none", "font.size": 9})
    return plt.subplots(figsize=(width, height))


def _to_svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def bar_chart(labels: list[str], values: list[float], title: str, xlabel: str) -> str:
    """Horizontal bars, one per label, each in its own palette colour."""
    fig, ax = _figure(7, 0.45 * len(labels) + 1.2)
    colours = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(labels))]
    ax.barh(range(len(labels)), values, color=colours)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    for i, value in enumerate(values):
        ax.annotate(f"{value:,.1f}", (value, i), xytext=(3, 0), textcoords="offset points", va="center")
    return _to_svg(fig)


def profile_heatmap(segments: list[str], features: list[str], z: list[list[float]], title: str) -> str:
    """Segments by features, coloured by the z-score of the segment mean against all customers."""
    import numpy as np

    fig, ax = _figure(1.1 * len(features) + 3, 0.5 * len(segments) + 1.8)
    matrix = np.array(z, dtype=float)
    image = ax.imshow(matrix, cmap="PuOr_r", vmin=-2, vmax=2, aspect="auto")
    ax.set_xticks(range(len(features)), features, rotation=35, ha="right")
    ax.set_yticks(range(len(segments)), segments)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=8)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="z-score of segment mean (standard deviations)")
    return _to_svg(fig)


def line_chart(x: list, series: dict[str, list[float]], title: str, ylabel: str, xlabel: str) -> str:
    fig, ax = _figure(7, 3)
    for i, (name, values) in enumerate(series.items()):
        ax.plot(x, values, marker="o", color=OKABE_ITO[i % len(OKABE_ITO)], label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False)
    return _to_svg(fig)
