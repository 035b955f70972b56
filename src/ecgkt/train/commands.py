"""CLI: `ecgkt pretrain | finetune | train-labs | train-baseline | benchmark | ablation`.

Every command takes `--store`, `--out`, `--preset`, `--config YAML`, `--resume` and `--seed`
(declared once below). Heavy imports (torch, lightning) happen inside the command bodies so
`ecgkt --help` stays fast. Expected failures (bad config, bad store, output folder in the wrong
state) are `UserError`s: `ecgkt.cli` shows them as one red line with exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ecgkt.config import RunConfig
    from ecgkt.train.stages import StageResult

Store = Annotated[
    Path, typer.Option("--store", help="Dataset store folder written by `ecgkt build`.", show_default=False)
]
Out = Annotated[Path, typer.Option("--out", help="Output folder of this run.", show_default=False)]
Preset = Annotated[
    str | None, typer.Option("--preset", help="paper | cpu | smoke (default: the YAML's `preset`, else paper).")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML file overriding preset keys (unknown keys are errors).")
]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run from last.ckpt; reuse finished stages.")
]
Seed = Annotated[int | None, typer.Option("--seed", help="Override the config's seed.")]
PretrainPool = Annotated[
    Path | None,
    typer.Option(
        "--pretrain-pool",
        help="Pretraining pool store (`ecgkt build --pretrain-pool`): pretrain on all its (ECG, tabular) pairs, "
        "the store's validation and test patients kept out. Sets pretrain.pool.",
    ),
]
CeilingCohort = Annotated[
    Path | None,
    typer.Option(
        "--ceiling-cohort",
        help="The synthetic cohort (`ecgkt synth`) the store was built from: Table 1 also reports the ECG-only "
        "oracle ceiling on the same test records and labels, and the share of the gap to it that JE closes.",
    ),
]
Encoder = Annotated[
    Path, typer.Option("--encoder", help="Previous stage's folder (or its encoder.safetensors).", show_default=False)
]


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
    app.command("finetune")(finetune)
    app.command("train-labs")(train_labs)
    app.command("train-baseline")(train_baseline)
    app.command("benchmark")(benchmark)
    app.command("ablation")(ablation)


def resolve_config(preset: str | None, config: Path | None, seed: int | None, pool: Path | None = None) -> RunConfig:
    from ecgkt.config import load_config

    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if pool is not None:
        overrides["pretrain"] = {"pool": str(pool.resolve())}
    return load_config(preset, config, overrides=overrides or None)


def encoder_file(path: Path) -> Path:
    """Accept a stage folder (holding encoder.safetensors) or the .safetensors file itself."""
    from ecgkt.train.stages import ENCODER_FILE, StageError

    candidate = path / ENCODER_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise StageError(f"{candidate}: encoder weights not found (pass a finished stage folder or its {ENCODER_FILE})")
    return candidate


def stage_command(
    title: str,
    preset: str | None,
    config: Path | None,
    seed: int | None,
    run: Callable[[RunConfig], StageResult],
    pool: Path | None = None,
) -> None:
    """One training stage: resolve the config from the shared options, run, print the summary (rank 0)."""
    result = run(resolve_config(preset, config, seed, pool))
    print_metrics(title, result.metrics)


def pretrain(
    store: Store,
    out: Out,
    preset: Preset = None,
    config: ConfigFile = None,
    resume: Resume = False,
    seed: Seed = None,
    pretrain_pool: PretrainPool = None,
) -> None:
    """Stage 1: joint-embedding pretraining of the ECG encoder against tabular data (no labels)."""
    from ecgkt.train.stages import run_pretrain

    stage_command(
        f"pretrain → {out}",
        preset,
        config,
        seed,
        lambda cfg: run_pretrain(cfg, store, out, resume=resume),
        pool=pretrain_pool,
    )


def finetune(
    store: Store,
    out: Out,
    encoder: Encoder,
    preset: Preset = None,
    config: ConfigFile = None,
    resume: Resume = False,
    seed: Seed = None,
) -> None:
    """Stage 2: diagnosis head on the pretrained encoder (early layers frozen)."""
    from ecgkt.train.stages import run_finetune

    weights = encoder_file(encoder)
    stage_command(
        f"finetune (diagnoses) → {out}",
        preset,
        config,
        seed,
        lambda cfg: run_finetune(cfg, store, out, pretrained_encoder=weights, resume=resume),
    )


def train_labs(
    store: Store,
    out: Out,
    encoder: Encoder,
    preset: Preset = None,
    config: ConfigFile = None,
    resume: Resume = False,
    seed: Seed = None,
) -> None:
    """Stage 3: lab-abnormality head on the same encoder as the diagnosis head."""
    from ecgkt.train.stages import run_labs

    weights = encoder_file(encoder)
    stage_command(
        f"train-labs → {out}",
        preset,
        config,
        seed,
        lambda cfg: run_labs(cfg, store, out, encoder=weights, resume=resume),
    )


def train_baseline(
    kind: Annotated[str, typer.Argument(help="signal | mm-labs | mm-diag")],
    store: Store,
    out: Out,
    preset: Preset = None,
    config: ConfigFile = None,
    resume: Resume = False,
    seed: Seed = None,
) -> None:
    """A Table-1 baseline: signal-only, multimodal lab prediction, or multimodal classification."""
    from ecgkt.train.stages import BASELINES, StageError, run_baseline

    if kind not in BASELINES:
        raise StageError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    stage_command(
        f"baseline {kind} → {out}", preset, config, seed, lambda cfg: run_baseline(kind, cfg, store, out, resume=resume)
    )


def benchmark(
    store: Store,
    out: Out,
    preset: Preset = None,
    config: ConfigFile = None,
    resume: Resume = False,
    seed: Seed = None,
    pretrain_pool: PretrainPool = None,
    ceiling_cohort: CeilingCohort = None,
) -> None:
    """All four rows of Table 1 from one config: table1.md/json, per-label CSVs, plots, the bundle."""
    from rich.console import Console

    from ecgkt.train.table1 import print_table, run_benchmark

    cfg = resolve_config(preset, config, seed, pretrain_pool)
    table = run_benchmark(cfg, store, out, resume=resume, ceiling_cohort=ceiling_cohort)
    if not table.rows:  # a non-zero DDP rank
        return
    console = Console()
    print_table(console, table)
    bundle = ", bundle/" if (out / "bundle").is_dir() else " (no bundle: the JE row is not available)"
    console.print(f"Written: {out / 'table1.md'}, {out / 'table1.json'}, plots/, per_label/{bundle}")
    if (out / "bundle").is_dir():
        from ecgkt.explain.bundle_calibration import calibrate_for_release

        release = calibrate_for_release(out / "bundle", store)
        console.print(f"Bundle calibrated; explanation shown: {release.default_method} ({release.reason})")


def ablation(
    store: Store, out: Out, preset: Preset = None, config: ConfigFile = None, resume: Resume = False, seed: Seed = None
) -> None:
    """Pretraining objective (none / Barlow Twins / VICReg / InfoNCE) and frozen-layer ablations."""
    from rich.console import Console

    from ecgkt.train.ablation import render_markdown, run_ablation
    from ecgkt.train.table1 import is_global_zero

    cfg = resolve_config(preset, config, seed)
    rows = run_ablation(cfg, store, out, resume=resume)
    if not is_global_zero():
        return
    Console().print(render_markdown(rows, cfg, Path(store)), soft_wrap=True)


def print_metrics(title: str, metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ecgkt.train.table1 import is_global_zero

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
