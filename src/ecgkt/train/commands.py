"""CLI: `ecgkt pretrain | finetune | train-labs | train-baseline | benchmark | ablation`.

Every command takes `--store`, `--out`, `--preset`, `--config YAML` and `--resume`. Heavy imports
(torch, lightning) happen inside the command bodies so `ecgkt --help` stays fast. Expected failures
(bad config, bad store, output folder in the wrong state) print one red line and exit with code 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ecgkt.cli_errors import cli_error

if TYPE_CHECKING:
    from ecgkt.config import RunConfig

STORE = typer.Option(..., "--store", help="Dataset store folder written by `ecgkt build`.", show_default=False)
OUT = typer.Option(..., "--out", help="Output folder of this run.", show_default=False)
PRESET = typer.Option(None, "--preset", help="paper | cpu | smoke (default: the YAML's `preset`, else paper).")
CONFIG = typer.Option(None, "--config", help="YAML file overriding preset keys (unknown keys are errors).")
RESUME = typer.Option(False, "--resume", help="Continue an interrupted run from last.ckpt; reuse finished stages.")
SEED = typer.Option(None, "--seed", help="Override the config's seed.")


def user_error_types(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    from ecgkt.bundle import BundleError
    from ecgkt.config import ConfigError
    from ecgkt.store import StoreError
    from ecgkt.train.data import DataError
    from ecgkt.train.stages import StageError

    return (ConfigError, StoreError, StageError, DataError, BundleError, *extra)


@contextmanager
def clear_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn the errors users can fix into one red line and exit code 2 (no traceback)."""
    try:
        yield
    except user_error_types(*extra) as error:
        raise cli_error(error) from None


def _config(preset: str | None, config: Path | None, seed: int | None) -> RunConfig:
    from ecgkt.config import load_config

    return load_config(preset, config, overrides={"seed": seed} if seed is not None else None)


def _encoder_file(path: Path) -> Path:
    """Accept a stage folder (holding encoder.safetensors) or the .safetensors file itself."""
    from ecgkt.train.stages import ENCODER_FILE, StageError

    candidate = path / ENCODER_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise StageError(f"{candidate}: encoder weights not found (pass a finished stage folder or its {ENCODER_FILE})")
    return candidate


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ecgkt.train.benchmark import is_global_zero

    if not is_global_zero():  # under DDP every rank runs the command; one summary is enough
        return

    table = Table(title=title)
    for column in ("split", "macro AUROC", "95% CI", "records"):
        table.add_column(column)
    for split in ("val", "test"):
        score = metrics.get(split)
        if not score:
            continue
        macro = score.get("macro_auroc")
        ci = (
            f"[{score['ci_low']:.3f}, {score['ci_high']:.3f}]"
            if score.get("ci_low") is not None and score.get("ci_high") is not None
            else "-"
        )
        table.add_row(split, "-" if macro is None else f"{macro:.3f}", ci, str(score.get("n_records", "")))
    if "best_val_loss" in metrics:
        table.add_row(
            "val loss", f"{metrics['best_val_loss']:.4f}", "-", str(metrics.get("n_records", {}).get("val", ""))
        )
    Console().print(table)


def _run(body: Callable[[], None]) -> None:
    with clear_errors():
        body()


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain(
        store: Path = STORE,
        out: Path = OUT,
        preset: str | None = PRESET,
        config: Path | None = CONFIG,
        resume: bool = RESUME,
        seed: int | None = SEED,
    ) -> None:
        """Stage 1: joint-embedding pretraining of the ECG encoder against tabular data (no labels)."""

        def body() -> None:
            from ecgkt.train.stages import run_pretrain

            result = run_pretrain(_config(preset, config, seed), store, out, resume=resume)
            _print_metrics(f"pretrain → {out}", result.metrics)

        _run(body)

    @app.command("finetune")
    def finetune(
        store: Path = STORE,
        out: Path = OUT,
        encoder: Path = typer.Option(..., "--encoder", help="Pretrain folder (or its encoder.safetensors)."),
        preset: str | None = PRESET,
        config: Path | None = CONFIG,
        resume: bool = RESUME,
        seed: int | None = SEED,
    ) -> None:
        """Stage 2: diagnosis head on the pretrained encoder (early layers frozen)."""

        def body() -> None:
            from ecgkt.train.stages import run_finetune

            result = run_finetune(
                _config(preset, config, seed), store, out, pretrained_encoder=_encoder_file(encoder), resume=resume
            )
            _print_metrics(f"finetune (diagnoses) → {out}", result.metrics)

        _run(body)

    @app.command("train-labs")
    def train_labs(
        store: Path = STORE,
        out: Path = OUT,
        encoder: Path = typer.Option(..., "--encoder", help="Finetune folder (or its encoder.safetensors)."),
        preset: str | None = PRESET,
        config: Path | None = CONFIG,
        resume: bool = RESUME,
        seed: int | None = SEED,
    ) -> None:
        """Stage 3: lab-abnormality head on the same encoder as the diagnosis head."""

        def body() -> None:
            from ecgkt.train.stages import run_labs

            result = run_labs(_config(preset, config, seed), store, out, encoder=_encoder_file(encoder), resume=resume)
            _print_metrics(f"train-labs → {out}", result.metrics)

        _run(body)

    @app.command("train-baseline")
    def train_baseline(
        kind: str = typer.Argument(..., help="signal | mm-labs | mm-diag"),
        store: Path = STORE,
        out: Path = OUT,
        preset: str | None = PRESET,
        config: Path | None = CONFIG,
        resume: bool = RESUME,
        seed: int | None = SEED,
    ) -> None:
        """A Table-1 baseline: signal-only, multimodal lab prediction, or multimodal classification."""

        def body() -> None:
            from ecgkt.train.stages import BASELINES, StageError, run_baseline

            if kind not in BASELINES:
                raise StageError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
            result = run_baseline(kind, _config(preset, config, seed), store, out, resume=resume)
            _print_metrics(f"baseline {kind} → {out}", result.metrics)

        _run(body)

    @app.command("benchmark")
    def benchmark(
        store: Path = STORE,
        out: Path = OUT,
        preset: str | None = PRESET,
        config: Path | None = CONFIG,
        resume: bool = RESUME,
        seed: int | None = SEED,
    ) -> None:
        """All four rows of Table 1 from one config: table1.md/json, per-label CSVs, plots, the bundle."""

        def body() -> None:
            from rich.console import Console

            from ecgkt.train.benchmark import console_table, run_benchmark

            table = run_benchmark(_config(preset, config, seed), store, out, resume=resume)
            if not table.rows:  # a non-zero DDP rank
                return
            console = Console()
            console.print(console_table(table))
            console.print(f"Written: {out / 'table1.md'}, {out / 'table1.json'}, plots/, per_label/, bundle/")
            from ecgkt.explain.bundle_calibration import calibrate_for_release  # h16: calibrated bundle

            release = calibrate_for_release(out / "bundle", store)
            console.print(f"Bundle calibrated; explanation shown: {release.default_method} ({release.reason})")

        _run(body)

    @app.command("ablation")
    def ablation(
        store: Path = STORE,
        out: Path = OUT,
        preset: str | None = PRESET,
        config: Path | None = CONFIG,
        resume: bool = RESUME,
        seed: int | None = SEED,
    ) -> None:
        """Pretraining objective (none / Barlow Twins / VICReg / InfoNCE) and frozen-layer ablations."""

        def body() -> None:
            from rich.console import Console

            from ecgkt.train.ablation import render_markdown, run_ablation
            from ecgkt.train.benchmark import is_global_zero

            cfg = _config(preset, config, seed)
            rows = run_ablation(cfg, store, out, resume=resume)
            if not is_global_zero():
                return
            Console().print(render_markdown(rows, cfg, Path(store)), soft_wrap=True)

        _run(body)
