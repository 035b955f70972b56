"""Every training command on a tiny store through the real CLI, and its clear errors (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgkt.cli import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    torch.set_num_threads(1)
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_stage_commands_chain(tiny_store: Path, tmp_path: Path) -> None:
    store = str(tiny_store)
    code, output = _invoke("pretrain", "--store", store, "--out", str(tmp_path / "pre"), "--preset", "smoke")
    assert code == 0, output
    code, output = _invoke(
        "finetune",
        "--store",
        store,
        "--out",
        str(tmp_path / "ft"),
        "--preset",
        "smoke",
        "--encoder",
        str(tmp_path / "pre"),
    )
    assert code == 0, output
    assert "test" in output
    code, output = _invoke(
        "train-labs",
        "--store",
        store,
        "--out",
        str(tmp_path / "labs"),
        "--preset",
        "smoke",
        "--encoder",
        str(tmp_path / "ft" / "encoder.safetensors"),
    )
    assert code == 0, output
    metrics = json.loads((tmp_path / "labs" / "metrics.json").read_text())
    assert metrics["target"] == "labs" and metrics["freeze_encoder"] is True
    # running again without --resume is refused; with --resume the finished stage is reused
    code, output = _invoke("pretrain", "--store", store, "--out", str(tmp_path / "pre"), "--preset", "smoke")
    assert code == 2 and "pass --resume" in output
    code, _ = _invoke("pretrain", "--store", store, "--out", str(tmp_path / "pre"), "--preset", "smoke", "--resume")
    assert code == 0


@pytest.mark.parametrize("kind", ["signal", "mm-labs", "mm-diag"])
def test_train_baseline_command(kind: str, tiny_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("preset: smoke\nbaseline:\n  optim:\n    max_epochs: 1\n")
    code, output = _invoke(
        "train-baseline",
        kind,
        "--store",
        str(tiny_store),
        "--out",
        str(tmp_path / kind),
        "--config",
        str(config),
        "--seed",
        "3",
    )
    assert code == 0, output
    metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
    assert metrics["epochs"] == 1
    assert metrics["tabular_groups"] == {"signal": [], "mm-labs": ["routine"], "mm-diag": ["routine", "lab"]}[kind]


def test_bad_inputs_are_one_line_errors(tiny_store: Path, tmp_path: Path) -> None:
    store = str(tiny_store)
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("finetune:\n  frozen: 2\n")
    code, output = _invoke("pretrain", "--store", store, "--out", str(tmp_path / "a"), "--config", str(bad_key))
    assert code == 2 and "unknown key 'finetune.frozen'" in output
    impossible = tmp_path / "impossible.yaml"
    impossible.write_text("preset: smoke\npretrain:\n  optim:\n    max_epochs: 0\n")
    code, output = _invoke("pretrain", "--store", store, "--out", str(tmp_path / "a"), "--config", str(impossible))
    assert code == 2 and "pretrain.optim.max_epochs" in output
    code, output = _invoke(
        "train-baseline", "tabular", "--store", store, "--out", str(tmp_path / "b"), "--preset", "smoke"
    )
    assert code == 2 and "unknown baseline 'tabular'" in output
    code, output = _invoke(
        "finetune",
        "--store",
        store,
        "--out",
        str(tmp_path / "c"),
        "--preset",
        "smoke",
        "--encoder",
        str(tmp_path / "missing"),
    )
    assert code == 2 and "encoder weights not found" in output
    code, output = _invoke(
        "pretrain", "--store", str(tmp_path / "nostore"), "--out", str(tmp_path / "d"), "--preset", "smoke"
    )
    assert code == 2 and "not a store folder" in output
    assert "Traceback" not in output


def test_store_of_another_format_version_is_refused(tiny_store: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "old-store"
    shutil.copytree(tiny_store, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, output = _invoke(
        "train-baseline", "signal", "--store", str(copy), "--out", str(tmp_path / "x"), "--preset", "smoke"
    )
    assert code == 2 and "store format version 0" in output and "rebuild the store" in output
