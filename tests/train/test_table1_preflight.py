"""`ecgkt benchmark` checks the store before training (issue 18): rows that cannot be trained are
reported as not available with the reason, the others are still trained; nothing trainable stops at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_store import make_tiny_store
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.config import load_config
from ecgkt.train.table1 import preflight

STAGES = ("pretrain", "finetune", "labs", "baseline")


@pytest.fixture(scope="module")
def labless_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_store(tmp_path_factory.mktemp("labless") / "store", lab_labels=False)


def test_preflight_names_the_rows_without_labels(labless_store: Path, tiny_store: Path) -> None:
    config = load_config("smoke")
    reasons = preflight(config, labless_store)
    assert reasons["signal"] is None and reasons["mm-diag"] is None
    assert "no labs labels to train on" in (reasons["mm-labs"] or "")
    assert "labs:" in (reasons["je"] or "")
    assert all(reason is None for reason in preflight(config, tiny_store).values())


def test_benchmark_reports_unavailable_rows_and_trains_the_others(labless_store: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "bench"
    one_epoch = tmp_path / "one-epoch.yaml"
    one_epoch.write_text("preset: smoke\n" + "".join(f"{stage}:\n  optim:\n    max_epochs: 1\n" for stage in STAGES))
    result = CliRunner().invoke(
        app, ["benchmark", "--store", str(labless_store), "--out", str(out), "--config", str(one_epoch)]
    )
    assert result.exit_code == 0, result.output
    assert not (out / "pretrain").exists()  # the JE row cannot be finished: none of its stages started
    assert not (out / "bundle").exists()
    table = json.loads((out / "table1.json").read_text())
    rows = {row["key"]: row for row in table["rows"]}
    assert rows["signal"]["diagnoses"]["macro_auroc"] is not None and "unavailable" not in rows["signal"]
    assert rows["mm-diag"]["diagnoses"]["macro_auroc"] is not None
    assert "no labs labels" in rows["mm-labs"]["unavailable"] and rows["mm-labs"]["labs"] is None
    assert "no labs labels" in rows["je"]["unavailable"]
    assert [c["comparison"] for c in table["comparisons"]] == []
    markdown = (out / "table1.md").read_text()
    assert "| Multimodal Lab Prediction | not available | not available |" in markdown
    assert "Rows not available on this store" in markdown


def test_nothing_trainable_stops_before_training(tmp_path: Path, labless_store: Path) -> None:
    config_file = tmp_path / "huge-batch.yaml"
    config_file.write_text("preset: smoke\ndata:\n  batch_size: 100000\n")
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        app, ["benchmark", "--store", str(labless_store), "--out", str(out), "--config", str(config_file)]
    )
    assert result.exit_code == 2 and "no Table 1 row can be trained" in result.output
    assert "Traceback" not in result.output and not out.exists()
