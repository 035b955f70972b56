"""The clinical report as PDF, with matplotlib only: page 1 the tracing, page 2 the findings.

Same content as the HTML report (`report_content`), so the two formats cannot disagree. matplotlib's
PdfPages keeps the dependency list short (no HTML-to-PDF engine); the tracing page keeps the exact
25 mm/s, 10 mm/mV scale because `plot_12lead` sizes its figure in millimetres.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ecgkt.atomic_files import replacing
from ecgkt.report.ecg_plot import FIGURE_MM, plot_12lead
from ecgkt.report.html import ReportContent
from ecgkt.signals.readers import EcgInput

LINE_MM = 4.6
MARGIN_MM = 12.0
WRAP_CHARS = 120


def _plain(text: str) -> str:
    """Escape `$` so matplotlib never parses input text (a file name, a note) as mathtext."""
    return text.replace("$", r"\$")


def _text_lines(content: ReportContent) -> list[tuple[str, str]]:
    """(style, text) lines of the findings page; style is 'h' (heading), 'b' (bold) or ''."""
    lines: list[tuple[str, str]] = [("h", f"ECG report — {content.source_name}")]
    lines.append(("", f"{content.duration_s} s at {content.sampling_rate_hz} Hz, {content.n_windows} window(s)"))
    if content.measurements:
        lines.append(("", f"Measurements: {content.measurements}"))
    lines.append(("h", "Predicted diagnoses"))
    lines.append(("", content.diagnosis_caption))
    for d in content.diagnoses:
        call = "POSITIVE" if d.positive else "negative"
        style = "b" if d.positive else ""
        lines.append(
            (
                style,
                f"{d.code}  {d.title or '—'}  p={d.probability:.2f} (threshold {d.threshold:.2f}, {call}), "
                f"validation AUROC {d.auroc_text}",
            )
        )
        for s in d.supporting:
            lines.append(
                ("", f"      supported by {s.label}: p={s.probability:.2f}, score {s.score:+.3f}, AUROC {s.auroc_text}")
            )
    lines.append(("h", "Predicted lab abnormalities"))
    lines.append(("", content.lab_caption))
    for lab in content.labs:
        call = "POSITIVE" if lab.positive else "negative"
        lines.append(
            ("b" if lab.positive else "", f"{lab.label}  p={lab.probability:.2f} ({call}), AUROC {lab.auroc_text}")
        )
    lines.append(("h", "Input notes"))
    lines.extend(("", f"• {note}") for note in content.notes or ["none"])
    lines.append(("h", "What this model is and is not"))
    lines.extend(("", paragraph) for paragraph in content.statement)
    lines.append(("", f"ecgkt {content.ecgkt_version} · report generated {content.generated_utc}"))
    wrapped: list[tuple[str, str]] = []
    for style, text in lines:
        pieces = textwrap.wrap(text, WRAP_CHARS, subsequent_indent="   ") or [""]
        wrapped.extend((style, piece) for piece in pieces)
    return wrapped


def _text_pages(content: ReportContent) -> list[Figure]:
    width_mm, height_mm = FIGURE_MM
    per_page = int((height_mm - 2 * MARGIN_MM) / LINE_MM)
    lines = _text_lines(content)
    pages = []
    for start in range(0, len(lines), per_page):
        figure = Figure(figsize=(width_mm / 25.4, height_mm / 25.4), facecolor="white")
        for row, (style, text) in enumerate(lines[start : start + per_page]):
            y = 1 - (MARGIN_MM + row * LINE_MM) / height_mm
            figure.text(
                MARGIN_MM / width_mm,
                y,
                _plain(text),
                fontsize=11 if style == "h" else 8.5,
                weight="bold" if style in ("h", "b") else "normal",
                va="top",
                family="DejaVu Sans",
            )
        pages.append(figure)
    return pages


def write_report_pdf(path: Path, content: ReportContent, ecg: EcgInput) -> Path:
    """Write the PDF atomically (temporary file in the same folder, then rename)."""
    metadata = {"Title": f"ECG report — {content.source_name}", "Creator": "ecgkt"}
    with replacing(path, suffix=".pdf") as temporary, PdfPages(temporary, metadata=metadata) as pdf:
        pdf.savefig(
            plot_12lead(ecg.signal_mv, ecg.sampling_rate_hz, title=_plain(f"12-lead ECG — {content.source_name}"))
        )
        for page in _text_pages(content):
            pdf.savefig(page)
    return Path(path)
