"""The 12-lead ECG drawn as a clinician expects it: standard grid paper at 25 mm/s and 10 mm/mV.

One axes spans the paper and its data coordinates ARE millimetres of paper (the axes is placed at
an exact physical size inside a figure of exact physical size), so the clinical scales hold on
screen, in SVG and in print: 1 s of signal is 25 data units wide, 1 mV is 10 data units tall.

Layout (the common "3×4 + rhythm" format): rows I/aVR/V1/V4, II/aVL/V2/V5, III/aVF/V3/V6, each
column showing the 2.5 s of the record that falls in that column's time slot, then a 10 s lead II
rhythm strip; a 1 mV × 0.2 s calibration pulse starts every row. Figures are built with
`matplotlib.figure.Figure` (not pyplot), so a server can render many concurrently without global
state or leaked figures.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from ecgkt.atomic_files import replacing
from ecgkt.signals.leads import CANONICAL_LEADS

PAPER_SPEED_MM_PER_S = 25.0
GAIN_MM_PER_MV = 10.0
FIGURE_MM = (280.0, 200.0)  # width, height: A4-landscape-like sheet
GRID_ORIGIN_MM = (10.0, 12.0)  # lower-left corner of the grid paper inside the figure
CALIBRATION_WIDTH_MM = 10.0  # room at the left of every row for the calibration pulse
ROW_SPACING_MM = 40.0
COLUMN_SECONDS = 2.5
STRIP_SECONDS = 10.0
GRID_MM = (CALIBRATION_WIDTH_MM + STRIP_SECONDS * PAPER_SPEED_MM_PER_S, 4 * ROW_SPACING_MM + 10.0)

LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"
# SVG text settings are global rcParams read at save time; serialise SVG saves (the service renders
# from several threads) so one request's temporary settings never leak into another's.
_SVG_LOCK = threading.Lock()

PAPER_COLOUR = "#fff7f5"
MINOR_GRID_COLOUR = "#f7c9c9"
MAJOR_GRID_COLOUR = "#e58e8e"
TRACE_COLOUR = "#111111"


def plot_12lead(signal_mv: ArrayLike, fs: float, *, title: str | None = None) -> Figure:
    """Draw a (12, n) canonical-order signal in mV sampled at `fs` Hz on standard ECG paper.

    The first 10 s are shown (shorter records leave the rest of the paper blank); NaN stretches
    appear as gaps, never as invented signal.
    """
    signal = np.asarray(signal_mv, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[0] != len(CANONICAL_LEADS):
        raise ValueError(f"expected a (12, n) signal in canonical lead order, got shape {signal.shape}")
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"sampling rate must be a positive finite number, got {fs}")

    figure = Figure(figsize=(FIGURE_MM[0] / 25.4, FIGURE_MM[1] / 25.4), facecolor="white")
    axes = figure.add_axes(
        (
            GRID_ORIGIN_MM[0] / FIGURE_MM[0],
            GRID_ORIGIN_MM[1] / FIGURE_MM[1],
            GRID_MM[0] / FIGURE_MM[0],
            GRID_MM[1] / FIGURE_MM[1],
        )
    )
    _draw_paper(axes)
    baselines = [GRID_MM[1] - 25.0 - ROW_SPACING_MM * row for row in range(4)]
    for row, leads in enumerate(LAYOUT):
        _draw_calibration(axes, baselines[row])
        for column, lead in enumerate(leads):
            start_s = column * COLUMN_SECONDS
            trace = signal[CANONICAL_LEADS.index(lead)]
            _draw_trace(axes, trace, fs, start_s, COLUMN_SECONDS, baselines[row])
            _draw_label(axes, lead, start_s, baselines[row])
        _draw_separators(axes, baselines[row])
    _draw_calibration(axes, baselines[3])
    _draw_trace(axes, signal[CANONICAL_LEADS.index(RHYTHM_LEAD)], fs, 0.0, STRIP_SECONDS, baselines[3])
    _draw_label(axes, RHYTHM_LEAD, 0.0, baselines[3])

    header_y = (GRID_ORIGIN_MM[1] + GRID_MM[1] + 4.0) / FIGURE_MM[1]
    left, right = GRID_ORIGIN_MM[0] / FIGURE_MM[0], (GRID_ORIGIN_MM[0] + GRID_MM[0]) / FIGURE_MM[0]
    if title:
        figure.text(left, header_y, title, fontsize=11, weight="bold", va="bottom")
    duration = signal.shape[1] / fs
    settings = f"{PAPER_SPEED_MM_PER_S:g} mm/s   {GAIN_MM_PER_MV:g} mm/mV   {fs:g} Hz   {duration:.1f} s"
    figure.text(right, header_y, settings, fontsize=9, ha="right", va="bottom")
    return figure


def _draw_paper(axes: matplotlib.axes.Axes) -> None:
    """Pink paper with 1 mm minor and 5 mm major lines, drawn as two line collections (fast, small SVG)."""
    width, height = GRID_MM
    axes.set_xlim(0.0, width)
    axes.set_ylim(0.0, height)
    axes.set_facecolor(PAPER_COLOUR)
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_edgecolor(MAJOR_GRID_COLOUR)
        spine.set_linewidth(0.8)
    styles = ((1.0, MINOR_GRID_COLOUR, 0.3, 0.5), (5.0, MAJOR_GRID_COLOUR, 0.6, 0.6))
    for step, colour, linewidth, zorder in styles:
        xs = np.arange(0.0, width + 1e-9, step)
        ys = np.arange(0.0, height + 1e-9, step)
        if step == 1.0:  # minor lines only where no major line is drawn
            xs, ys = xs[np.mod(xs, 5.0) != 0], ys[np.mod(ys, 5.0) != 0]
        segments = [((x, 0.0), (x, height)) for x in xs] + [((0.0, y), (width, y)) for y in ys]
        grid = LineCollection(segments, colors=colour, linewidths=linewidth, zorder=zorder)
        grid.set_gid(f"grid-{step:g}mm")
        axes.add_collection(grid)


def _draw_calibration(axes: matplotlib.axes.Axes, baseline: float) -> None:
    """The 1 mV standardisation pulse: 10 mm tall, 0.2 s (5 mm) wide."""
    height = 1.0 * GAIN_MM_PER_MV
    width = 0.2 * PAPER_SPEED_MM_PER_S
    xs = [1.5, 3.0, 3.0, 3.0 + width, 3.0 + width, CALIBRATION_WIDTH_MM - 0.5]
    ys = [baseline, baseline, baseline + height, baseline + height, baseline, baseline]
    axes.plot(xs, ys, color=TRACE_COLOUR, linewidth=0.9, solid_joinstyle="miter", gid="calibration")


def _draw_trace(
    axes: matplotlib.axes.Axes,
    lead: NDArray[np.float64],
    fs: float,
    start_s: float,
    seconds: float,
    baseline: float,
) -> None:
    first = round(start_s * fs)
    last = min(round((start_s + seconds) * fs), lead.shape[0])
    if last <= first:
        return
    times = np.arange(first, last) / fs
    xs = CALIBRATION_WIDTH_MM + times * PAPER_SPEED_MM_PER_S
    ys = baseline + lead[first:last] * GAIN_MM_PER_MV
    axes.plot(xs, ys, color=TRACE_COLOUR, linewidth=0.7, solid_joinstyle="round", gid="trace")


def _draw_label(axes: matplotlib.axes.Axes, lead: str, start_s: float, baseline: float) -> None:
    x = CALIBRATION_WIDTH_MM + start_s * PAPER_SPEED_MM_PER_S + 1.5
    axes.text(x, baseline + 11.0, lead, fontsize=9, weight="bold", color=TRACE_COLOUR, va="bottom")


def _draw_separators(axes: matplotlib.axes.Axes, baseline: float) -> None:
    """Short vertical marks where one lead's 2.5 s slot ends and the next begins."""
    xs = [CALIBRATION_WIDTH_MM + column * COLUMN_SECONDS * PAPER_SPEED_MM_PER_S for column in (1, 2, 3)]
    segments = [((x, baseline - 4.0), (x, baseline + 4.0)) for x in xs]
    separators = LineCollection(segments, colors=TRACE_COLOUR, linewidths=0.9)
    separators.set_gid("separators")
    axes.add_collection(separators)


# ---- output helpers for reports -----------------------------------------------------------


def save_png(figure: Figure, path: Path | str, *, dpi: int = 200) -> Path:
    """Write a PNG atomically (temporary file in the same folder, then rename)."""
    with replacing(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, facecolor=figure.get_facecolor())
    return Path(path)


def figure_to_svg(figure: Figure) -> str:
    """Inline SVG markup (starting at `<svg`) for embedding in HTML; text stays text (searchable)."""
    buffer = io.StringIO()
    with _SVG_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ecgkt"}):
        figure.savefig(buffer, format="svg", facecolor=figure.get_facecolor(), metadata={"Date": None})
    markup = buffer.getvalue()
    return markup[markup.index("<svg") :]


def figure_to_png_data_uri(figure: Figure, *, dpi: int = 150) -> str:
    """`data:image/png;base64,...` for an `<img src>` when SVG is not wanted (e.g. e-mail, PDF tools)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor=figure.get_facecolor())
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
