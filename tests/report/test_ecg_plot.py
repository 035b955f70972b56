"""The 12-lead grid plot: layout, clinical scales in physical millimetres, outputs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from ecgkt.report.ecg_plot import (
    CALIBRATION_WIDTH_MM,
    FIGURE_MM,
    LAYOUT,
    figure_to_png_data_uri,
    figure_to_svg,
    plot_12lead,
    save_png,
)
from ecgkt.signals.leads import CANONICAL_LEADS

FS = 500


def _lead_offsets_signal(seconds: float = 10.0) -> np.ndarray:
    """Each lead constant at its own level (lead k at 0.1·(k+1) mV), so a line reveals its lead."""
    levels = 0.1 * (np.arange(12) + 1)
    return np.repeat(levels[:, None], int(seconds * FS), axis=1)


def _traces(figure: Figure) -> list:
    return [line for line in figure.axes[0].lines if line.get_gid() == "trace"]


def _physical_mm(figure: Figure, point: tuple[float, float]) -> np.ndarray:
    """Data coordinates → millimetres from the figure's lower-left corner."""
    pixels = figure.axes[0].transData.transform(point)
    return np.asarray(pixels) / figure.dpi * 25.4


def test_renders_one_sheet_with_the_expected_artists() -> None:
    figure = plot_12lead(_lead_offsets_signal(), FS, title="Patient X")
    assert len(figure.axes) == 1
    np.testing.assert_allclose(figure.get_size_inches() * 25.4, FIGURE_MM)
    lines = figure.axes[0].lines
    assert len(_traces(figure)) == 13  # 12 lead slots + the lead II rhythm strip
    assert sum(line.get_gid() == "calibration" for line in lines) == 4  # one pulse per row
    assert len(lines) == 17
    gids = {collection.get_gid() for collection in figure.axes[0].collections}
    assert {"grid-1mm", "grid-5mm", "separators"} <= gids
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == [lead for row in LAYOUT for lead in row] + ["II"]
    assert "Patient X" in [text.get_text() for text in figure.texts]


def test_ten_millimetres_per_millivolt_and_25_mm_per_second_on_paper() -> None:
    figure = plot_12lead(_lead_offsets_signal(), FS)
    # Data units are paper millimetres: check against the figure's physical size.
    origin = _physical_mm(figure, (0.0, 0.0))
    np.testing.assert_allclose(_physical_mm(figure, (25.0, 10.0)) - origin, [25.0, 10.0], atol=1e-6)
    # The calibration pulse is 1 mV tall (10 mm) and 0.2 s wide (5 mm).
    pulse = next(line for line in figure.axes[0].lines if line.get_gid() == "calibration")
    ys, xs = np.asarray(pulse.get_ydata()), np.asarray(pulse.get_xdata())
    assert ys.max() - ys.min() == pytest.approx(10.0)
    top = xs[ys == ys.max()]
    assert top.max() - top.min() == pytest.approx(5.0)
    # Lead I is at 0.1 mV: its trace sits 1 mm above its row's baseline (the pulse's base).
    lead_i = _traces(figure)[0]
    np.testing.assert_allclose(np.asarray(lead_i.get_ydata()) - ys.min(), 1.0)
    # 2.5 s of signal spans 62.5 mm (less one sample).
    xs_i = np.asarray(lead_i.get_xdata())
    assert xs_i[0] == pytest.approx(CALIBRATION_WIDTH_MM)
    assert xs_i[-1] - xs_i[0] == pytest.approx(62.5 - 25.0 / FS)


def test_each_slot_shows_its_lead_and_its_time() -> None:
    figure = plot_12lead(_lead_offsets_signal(), FS)
    traces = _traces(figure)
    row_baselines = []
    for row, leads in enumerate(LAYOUT):
        for column, lead in enumerate(leads):
            trace = traces[row * 4 + column]
            xs, ys = np.asarray(trace.get_xdata()), np.asarray(trace.get_ydata())
            level_mm = 10 * 0.1 * (CANONICAL_LEADS.index(lead) + 1)
            baseline = float(ys[0]) - level_mm
            if column == 0:
                row_baselines.append(baseline)
            assert baseline == pytest.approx(row_baselines[row]), lead  # same row, right lead's level
            assert xs[0] == pytest.approx(CALIBRATION_WIDTH_MM + column * 62.5), lead  # t = 2.5·column s
    assert row_baselines == sorted(row_baselines, reverse=True)
    rhythm_x = np.asarray(traces[-1].get_xdata())
    assert rhythm_x[-1] - rhythm_x[0] == pytest.approx(250.0 - 25.0 / FS)  # the full 10 s of lead II


def test_nan_stretches_stay_gaps_and_short_records_draw() -> None:
    signal = _lead_offsets_signal(seconds=4.0)
    signal[0, 100:200] = np.nan
    figure = plot_12lead(signal, FS)
    traces = _traces(figure)
    assert np.isnan(np.asarray(traces[0].get_ydata())).sum() == 100
    assert len(traces) == 3 * 2 + 1  # columns 3 and 4 (5–10 s) have no signal left to show


def test_rejects_wrong_shapes_and_rates() -> None:
    with pytest.raises(ValueError, match=r"\(12, n\)"):
        plot_12lead(np.zeros((8, 1000)), FS)
    with pytest.raises(ValueError, match="sampling rate"):
        plot_12lead(np.zeros((12, 1000)), 0)


def test_png_svg_and_data_uri_outputs(tmp_path: Path) -> None:
    figure = plot_12lead(_lead_offsets_signal(), FS, title="grid")
    path = save_png(figure, tmp_path / "out" / "ecg.png", dpi=100)
    assert [p.name for p in path.parent.iterdir()] == ["ecg.png"]  # no temporary file left behind
    height, width = imread(path).shape[:2]
    assert (width, height) == (round(FIGURE_MM[0] / 25.4 * 100), round(FIGURE_MM[1] / 25.4 * 100))

    svg = figure_to_svg(figure)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert ">aVR<" in svg  # labels stay text, so browsers can find them

    uri = figure_to_png_data_uri(figure, dpi=50)
    assert uri.startswith("data:image/png;base64,")
    assert imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).shape[1] == round(
        FIGURE_MM[0] / 25.4 * 50
    )
