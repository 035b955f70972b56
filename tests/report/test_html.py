"""The clinical report: HTML content and escaping, PDF pages, `ecgkt report`, and a real browser render.

The browser check opens the written HTML in Debian's headless Chromium (driven by Playwright, since
Playwright's own browser download does not work here) and reads the diagnoses off the rendered page;
it is skipped, with the reason, only when /usr/bin/chromium or the playwright package is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from predict_samples import DIAGNOSES, make_bundle, make_store, realistic_ecg_mv
from typer.testing import CliRunner

from ecgkt.bundle import load_bundle
from ecgkt.cli import app
from ecgkt.predict.engine import Predictor
from ecgkt.report.html import render_report_fragment, render_report_html
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import read_ecg_array

CHROMIUM = Path("/usr/bin/chromium")
runner = CliRunner()


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calibrated (temperatures, thresholds, association) so the report shows the default explanation."""
    from ecgkt.explain.calibrate_bundle import calibrate_bundle

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report")
    bundle = make_bundle(root / "bundle")
    calibrate_bundle(bundle, make_store(root / "store", n_records=70))
    return bundle


@pytest.fixture(scope="module")
def low_threshold_bundle(tmp_path_factory: pytest.TempPathFactory, bundle_path: Path) -> Path:
    """The calibrated bundle with every diagnosis threshold at 0: all positive, all explained."""
    from ecgkt.explain.calibrate_bundle import write_manifest

    copy = tmp_path_factory.mktemp("report-low") / "bundle"
    shutil.copytree(bundle_path, copy)
    bundle = load_bundle(copy)
    write_manifest(bundle, bundle.manifest.model_copy(update={"thresholds_diagnosis": dict.fromkeys(DIAGNOSES, 0.0)}))
    return copy


@pytest.fixture(scope="module")
def npy_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import json

    path = tmp_path_factory.mktemp("report-input") / "patient <i>7&$x_1$.npy"
    np.save(path, realistic_ecg_mv(seed=7), allow_pickle=False)
    path.with_name(path.name + ".json").write_text(json.dumps({"sampling_rate_hz": 500, "units": "mV"}))
    return path


def test_report_html_content_and_escaping(low_threshold_bundle: Path) -> None:
    bundle = load_bundle(low_threshold_bundle)
    predictor = Predictor(bundle)
    ecg = read_ecg_array(realistic_ecg_mv(seed=3), 500, CANONICAL_LEADS, source="<script>alert(1)</script>.npy")
    result = predictor.predict(ecg)
    html = render_report_html(result, ecg, bundle.manifest)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<svg" in html  # the tracing, inline
    for code, title in DIAGNOSES.items():
        assert f"<code>{code}</code>" in html and title in html
    assert "0.81" in html  # validation AUROC of E875
    assert "Potassium_high" in html  # supporting lab of E875 (planted)
    assert "research software, not a medical device" in html
    assert "associations inside the model, not causes" in html
    assert "association of each lab abnormality with the diagnosis in the training cohort" in html
    assert "resampled 500→100 Hz" in html  # input notes
    fragment = render_report_fragment(result, ecg, bundle.manifest)
    assert fragment.lstrip().startswith("<section") and "<html" not in fragment


def test_uncalibrated_bundle_says_so(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path / "bundle"))
    ecg = read_ecg_array(realistic_ecg_mv(seed=3), 500, CANONICAL_LEADS)
    html = render_report_html(Predictor(bundle).predict(ecg), ecg, bundle.manifest)
    assert "NOT calibrated" in html and "gradients in the ECG embedding" in html


def test_report_command_html_and_pdf(bundle_path: Path, npy_input: Path, tmp_path: Path) -> None:
    html_out = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(bundle_path), str(npy_input), "--out", str(html_out)])
    assert result.exit_code == 0, result.stderr
    text = html_out.read_text()
    assert "patient &lt;i&gt;7&amp;$x_1$.npy" in text and "<i>7" not in text
    pdf_out = tmp_path / "report.pdf"
    result = runner.invoke(app, ["report", str(bundle_path), str(npy_input), "--out", str(pdf_out)])
    assert result.exit_code == 0, result.stderr
    data = pdf_out.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") >= 2
    result = runner.invoke(app, ["report", str(bundle_path), str(npy_input), "--out", str(tmp_path / "r.docx")])
    assert result.exit_code == 2 and ".html or .pdf" in result.stderr
    result = runner.invoke(app, ["report", str(bundle_path), str(tmp_path / "none.npy"), "--out", str(html_out)])
    assert result.exit_code == 2 and "none.npy" in result.stderr


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed (apt-get install -y chromium chromium-driver)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


def test_report_renders_in_headless_chromium(
    chromium: object, low_threshold_bundle: Path, npy_input: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(low_threshold_bundle), str(npy_input), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        page.goto(out.as_uri())
        codes = page.locator("table.ecgkt-diagnoses tbody tr td:first-child").all_inner_texts()
        assert set(codes) == set(DIAGNOSES)
        rows = page.locator("table.ecgkt-diagnoses tbody tr").all_inner_texts()
        hyperkalaemia = next(row for row in rows if row.startswith("E875"))
        assert "Hyperkalemia" in hyperkalaemia and "positive" in hyperkalaemia and "Potassium_high" in hyperkalaemia
        assert page.locator(".ecgkt-tracing svg").count() == 1
        box = page.locator(".ecgkt-tracing svg").bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 400
        assert "not a medical device" in page.locator(".ecgkt-statement").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        page.close()
