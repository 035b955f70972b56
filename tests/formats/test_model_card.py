"""`ecgkt model-card` renders what the bundle records, and fails cleanly on a non-bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgkt.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "predict"))
from predict_samples import make_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_bundle(tmp_path_factory.mktemp("card") / "bundle")
    (path.parent / "table1.md").write_text("# Table 1\n\n| row | AUROC |\n| --- | --- |\n| ECG only | 0.71 |\n")
    return path


def test_markdown_and_html_cards(bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["model-card", str(bundle)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for heading in ("## Intended use", "## Training data and cohort", "## Calibration", "## Limits",
                    "Table 1 of the run", "| ECG only | 0.71 |"):
        assert heading in text
    assert "Not calibrated" in text  # the sample bundle has no temperature/thresholds
    out = tmp_path / "card.html"
    result = runner.invoke(app, ["model-card", str(bundle), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page and "<h2>Limits</h2>" in page


def test_not_a_bundle_is_one_red_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model-card", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a model bundle folder" in result.output
