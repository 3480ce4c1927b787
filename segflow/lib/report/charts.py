"""Charts as inline SVG, so a report is one self-contained file that opens offline.

matplotlib renders to SVG with a fixed hash salt and no date metadata, so the same data always
gives the same bytes. The palette is Okabe-Ito, which stays distinguishable for the common forms
of colour blindness.
"""

from __future__ import annotations

import functools
import io

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


@functools.cache
def _figure_class():
    """matplotlib's Figure, with the report's settings applied once per process. Figures are made
    and saved through the object API, so pyplot's global figure registry is never loaded and no
    figure outlives its chart. (The bytes are the same as through pyplot; the time is in savefig's
    two layout passes for the tight crop, which no cheaper crop measured here beat.)"""
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams.update({"svg.hashsalt": "segflow", "svg.fonttype": "none", "font.size": 9})
    return Figure


def _figure(width: float, height: float):
    fig = _figure_class()(figsize=(width, height))
    return fig, fig.subplots()


def _to_svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # The RDF <metadata> block only names the generator; drop it so no outside URL is left in the page.
    start, end = svg.find("<metadata>"), svg.find("</metadata>")
    if start != -1 and end != -1:
        svg = svg[:start] + svg[end + len("</metadata>") :]
    return svg


def bar_chart(labels: list[str], values: list[float], title: str, xlabel: str) -> str:
    """Horizontal bars, one per label, each in its own palette colour."""
    fig, ax = _figure(7, 0.45 * len(labels) + 1.2)
    colours = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(labels))]
    ax.barh(range(len(labels)), values, color=colours)
    _finish_rows(ax, labels, xlabel, title)
    for i, value in enumerate(values):
        label = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
        ax.annotate(label, (value, i), xytext=(3, 0), textcoords="offset points", va="center")
    return _to_svg(fig)


def profile_heatmap(segments: list[str], features: list[str], z: list[list[float]], title: str) -> str:
    """Segments by features, coloured by the z-score of the segment mean against all customers; no
    chart ("") when no segment is reportable (every one under ``report.min_cell_customers``)."""
    import numpy as np

    if not segments:
        return ""
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
    _open_frame(ax)
    ax.legend(frameon=False)
    return _to_svg(fig)


def family_lines(series: dict[str, dict[str, list[tuple[int, float]]]], panels: list[str], title: str) -> str:
    """One panel per score (its label is the y axis), one line per family: ``series[line][panel]``
    is that family's (k, value) points in k order."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure_class()(figsize=(4.2 * len(panels) + 1.5, 3.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for i, (name, by_panel) in enumerate(series.items()):
            points = by_panel.get(panel, [])
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", markersize=4, label=name,
                        color=OKABE_ITO[i % len(OKABE_ITO)], linestyle=("-", "--", ":")[i // len(OKABE_ITO) % 3])  # fmt: skip
        ax.set_xlabel("k (segments)")
        ax.set_ylabel(panel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # k is a count: no 2.25 segments
        _open_frame(ax)
    axes[0].set_title(title, loc="left")
    axes[-1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _to_svg(fig)


BAND_COLOURS = {"stable": "#009E73", "moderate": "#E69F00", "major": "#D55E00", "n/a": "#999999"}


def _open_frame(ax) -> None:
    """No top or right axis line: the data, not a box, frames the chart."""
    ax.spines[["top", "right"]].set_visible(False)


def _finish_rows(ax, labels: list[str], xlabel: str, title: str) -> None:
    """One labelled row per item, first at the top: the layout of every horizontal chart here."""
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _open_frame(ax)


def migration_heatmap(
    rows: list[str],
    cols: list[str],
    probability: list[list[float | None]],
    labels: list[list[str]],
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """Row-normalised transition probabilities; a None cell (suppressed or empty) is left blank."""
    import numpy as np

    fig, ax = _figure(0.75 * len(cols) + 3.2, 0.42 * len(rows) + 1.8)
    matrix = np.array([[np.nan if v is None else 100 * v for v in row] for row in probability], dtype=float)
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="Blues", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), text in np.ndenumerate(np.array(labels, dtype=object)):
        if text:
            dark = not np.isnan(matrix[i, j]) and matrix[i, j] > 60
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "#1b1b1b")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the row's customers (%)")
    return _to_svg(fig)


def lift_chart(
    labels: list[str],
    lift: list[float],
    low: list[float],
    high: list[float],
    significant: list[bool],
    title: str,
) -> str:
    """Absolute lift in percentage points with its 95% CI; significant rows in blue, others grey."""
    fig, ax = _figure(7, 0.38 * len(labels) + 1.4)
    for i, (value, lo, hi, sig) in enumerate(zip(lift, low, high, significant, strict=True)):
        colour = OKABE_ITO[0] if sig else "#7f7f7f"
        ax.errorbar(
            100 * value,
            i,
            xerr=[[100 * (value - lo)], [100 * (hi - value)]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    ax.axvline(0, color="#1b1b1b", linewidth=0.8)
    _finish_rows(ax, labels, "treatment minus control response rate (percentage points, 95% CI)", title)
    return _to_svg(fig)


def psi_chart(names: list[str], psi: list[float], bands: list[str], title: str) -> str:
    """PSI per feature, coloured by band, with the 0.1 and 0.25 band limits."""
    fig, ax = _figure(7, 0.28 * len(names) + 1.4)
    ax.barh(range(len(names)), psi, color=[BAND_COLOURS.get(b, "#999999") for b in bands])
    for limit, text in ((0.1, "moderate 0.1"), (0.25, "major 0.25")):
        ax.axvline(limit, color="#555555", linestyle="--", linewidth=0.8)
        ax.annotate(text, (limit, -0.6), fontsize=7, color="#555555", ha="left")
    _finish_rows(ax, names, "population stability index vs previous month (unitless)", title)
    return _to_svg(fig)


def multi_line_chart(
    x: list[str],
    series: dict[str, list[float | None]],
    title: str,
    ylabel: str,
    xlabel: str = "month",
    hlines: tuple[float, ...] = (),
    breaks: dict[str, set[int]] | None = None,
) -> str:
    """Lines over months; None values leave gaps. Legend outside the plot when there are many series.
    ``breaks`` names, per series, the positions where it starts afresh: the line is not drawn from
    the point before (one legend entry, no line joining two different things)."""
    fig, ax = _figure(7.5, 3.2)
    positions = list(range(len(x)))
    for i, (name, values) in enumerate(series.items()):
        y = [float("nan") if v is None else v for v in values]
        starts = sorted({0, *(breaks or {}).get(name, set())} | {len(y)})
        for run, (a, b) in enumerate(zip(starts, starts[1:], strict=False)):
            ax.plot(
                positions[a:b],
                y[a:b],
                marker="o",
                markersize=3,
                color=OKABE_ITO[i % len(OKABE_ITO)],
                label=name if run == 0 else "_nolegend_",
                linestyle=("-", "--", ":")[i // len(OKABE_ITO) % 3],
            )
    for level in hlines:
        ax.axhline(level, color="#555555", linestyle="--", linewidth=0.8)
    ax.set_xticks(positions, x, rotation=35 if len(x) > 8 else 0, ha="right" if len(x) > 8 else "center")
    _plain_numbers(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _open_frame(ax)
    if len(series) > 1:
        ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _to_svg(fig)


def _plain_numbers(ax) -> None:
    """Tick labels as plain numbers with thousands separators: matplotlib's default moves a large
    scale into a "1e6" multiplier at the axis' corner, which readers miss."""
    from matplotlib.ticker import FuncFormatter

    def plain(value: float, _position: int) -> str:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")

    ax.yaxis.set_major_formatter(FuncFormatter(plain))


def sparkline(values: list[float | None], width: int = 160, height: int = 36, label: str = "") -> str:
    """A tiny hand-written SVG trend line (no axes), with the last value marked."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{label}: not enough history"><text x="0" y="{height - 12}" font-size="10" '
            'fill="#555">not enough history</text></svg>'
        )
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span = (hi - lo) or 1.0
    step = (width - 8) / max(len(values) - 1, 1)
    xy = [(4 + i * step, height - 4 - (v - lo) / span * (height - 8)) for i, v in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    x_last, y_last = xy[-1]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{label}"><polyline fill="none" stroke="{OKABE_ITO[0]}" stroke-width="2" '
        f'points="{path}"/>'
        f'<circle cx="{x_last:.1f}" cy="{y_last:.1f}" r="3" fill="{OKABE_ITO[5]}"/></svg>'
    )
