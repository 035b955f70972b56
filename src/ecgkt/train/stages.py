"""The training stages as functions: config + store → an output folder.

Every stage folder holds:
    config.yaml              the resolved RunConfig the stage ran with
    metrics.json             written LAST: its presence means the stage finished
    checkpoints/best.ckpt    best epoch by the monitored metric (val macro AUROC; val loss in stage 1)
    checkpoints/last.ckpt    end of the latest epoch, for `--resume` after a kill
    logs/version_*/metrics.csv  per-epoch curves (one version per attempt)
    encoder.safetensors      Φx weights of the best epoch (the hand-off to the next stage)
    model.safetensors        the whole network of the best epoch
    predictions_{val,test}.npz, per_label_auroc.csv   (supervised stages)

Hardware is chosen only through `lightning.Trainer` arguments from `config.trainer` (CPU, GPU, DDP,
bf16): there is no distributed code here. Under DDP only global rank 0 scores the splits after fit.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from pydantic import ValidationError
from safetensors.torch import load_file
from torch import nn

from ecgkt.config import OptimConfig, RunConfig, write_config
from ecgkt.errors import UserError
from ecgkt.models.config import HeadConfig
from ecgkt.models.weights import save_weights
from ecgkt.store import FeatureGroup, Split
from ecgkt.train.callbacks import RngStateCallback
from ecgkt.train.data import StoreDataModule, TargetName
from ecgkt.train.evaluation import Score, save_predictions, score_predictions, write_json, write_per_label_csv
from ecgkt.train.modules import (
    EcgClassifier,
    JointEmbeddingModule,
    SupervisedModule,
    compile_encoder,
    predict_split,
)

BaselineKind = Literal["signal", "mm-labs", "mm-diag"]
BASELINES: tuple[BaselineKind, ...] = ("signal", "mm-labs", "mm-diag")
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
ENCODER_FILE = "encoder.safetensors"
MODEL_FILE = "model.safetensors"
HEAD_FILE = "head.safetensors"


class StageError(UserError, RuntimeError):
    """A stage that cannot run: output folder in the wrong state, missing inputs, mismatched config."""


@dataclass(frozen=True)
class StageResult:
    name: str
    out_dir: Path
    metrics: dict[str, Any]

    @property
    def encoder_path(self) -> Path:
        return self.out_dir / ENCODER_FILE


# ---- output folder state ---------------------------------------------------------------------------


PRETRAIN_SECTIONS = ("seed", "encoder", "data", "pretrain")


def _comparable(config: RunConfig, sections: Sequence[str]) -> dict[str, Any]:
    """The config sections a stage's result depends on (hardware settings may change on resume)."""
    return config.model_dump(mode="json", include=set(sections))


def _check_out_dir(
    out_dir: Path, config: RunConfig, resume: bool, sections: Sequence[str]
) -> Literal["done", "resume", "fresh"]:
    finished = (out_dir / METRICS_FILE).exists()
    interrupted = (out_dir / "checkpoints" / "last.ckpt").exists()
    if (finished or interrupted) and not resume:
        state = "a finished run" if finished else "an interrupted run"
        raise StageError(f"{out_dir}: already holds {state}; pass --resume to reuse it, or choose another --out")
    if finished or interrupted:
        saved_path = out_dir / CONFIG_FILE
        if saved_path.exists():
            try:
                saved = RunConfig.model_validate(yaml.safe_load(saved_path.read_text()))
            except (ValidationError, yaml.YAMLError) as error:
                raise StageError(
                    f"{saved_path}: the saved config of the run in {out_dir} cannot be read ({error}); "
                    "choose another --out"
                ) from None
            before, now = _comparable(saved, sections), _comparable(config, sections)
            if before != now:
                changed = sorted(key for key in now if before.get(key) != now.get(key))
                raise StageError(
                    f"{saved_path}: the run in {out_dir} used a different config ({', '.join(changed)} "
                    "changed); resume with the same config or choose another --out"
                )
    if finished:
        return "done"
    return "resume" if interrupted else "fresh"


def _publish(trainer: L.Trainer, name: str, out_dir: Path, outputs: Callable[[], dict[str, Any]]) -> StageResult:
    """Global rank 0 writes the stage's weights, predictions and metrics; every rank waits at a
    barrier (Lightning's strategy API) and then reads the same metrics.json, so the next stage can
    start on all ranks from the files rank 0 wrote."""
    if trainer.is_global_zero:
        write_json(out_dir / METRICS_FILE, outputs())
    trainer.strategy.barrier(f"ecgkt-{name}-outputs")
    return _load_result(name, out_dir)


def _load_result(name: str, out_dir: Path) -> StageResult:
    return StageResult(name, out_dir, json.loads((out_dir / METRICS_FILE).read_text()))


def _start_stage(
    name: str, config: RunConfig, out_dir: str | Path, resume: bool, sections: Sequence[str]
) -> tuple[Path, StageResult | Literal["resume", "fresh"]]:
    """The preamble every stage shares: check the output folder, return the finished result when
    there is one, otherwise configure torch and seed everything before any model or data exists.

    Returns (output folder, the finished StageResult or whether to resume / start fresh).
    """
    out = Path(out_dir)
    state = _check_out_dir(out, config, resume, sections)
    if state == "done":
        return out, _load_result(name, out)
    configure_torch(config)
    L.seed_everything(config.seed, workers=True, verbose=False)
    return out, state


def _maybe_compile(config: RunConfig, encoder: nn.Module) -> None:
    """`trainer.compile`: compile Φx for the device the Trainer will train on (see compile_encoder)."""
    if config.trainer.compile:
        compile_encoder(encoder, mode=config.trainer.compile_mode, device_type=evaluation_device(config).type)


# ---- trainer ---------------------------------------------------------------------------------------


def configure_torch(config: RunConfig) -> None:
    """Threads, and quiet Lightning's informational chatter (hardware banners, product tips)."""
    if config.trainer.cpu_threads:
        torch.set_num_threads(config.trainer.cpu_threads)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # Frozen encoder blocks are in eval mode on purpose (no dropout in frozen layers).
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # resume
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # lightning vs torch 2.13


def build_trainer(
    config: RunConfig,
    out_dir: Path,
    optim: OptimConfig,
    *,
    monitor: str,
    mode: Literal["min", "max"],
    extra_callbacks: Sequence[Callback] = (),
) -> tuple[L.Trainer, ModelCheckpoint]:
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        enable_version_counter=False,
    )
    # Lightning's own `save_last` only refreshes last.ckpt when a new best is saved; resuming needs
    # the latest epoch, so a second, unmonitored checkpoint overwrites last.ckpt every epoch.
    latest = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", filename="last", save_top_k=1, monitor=None, enable_version_counter=False
    )
    callbacks: list[Callback] = [checkpoint, latest, RngStateCallback(), *extra_callbacks]
    if config.trainer.progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    trainer = L.Trainer(
        default_root_dir=out_dir,
        max_epochs=optim.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        strategy=config.trainer.strategy,
        num_nodes=config.trainer.num_nodes,
        precision=config.trainer.precision,
        deterministic=config.trainer.deterministic,
        gradient_clip_val=optim.gradient_clip,
        callbacks=callbacks,
        logger=CSVLogger(save_dir=out_dir, name="logs"),
        enable_progress_bar=config.trainer.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=config.trainer.log_every_n_steps,
        num_sanity_val_steps=0,
        # StoreDataModule shards its own batches per rank (ecgkt.train.data); Lightning's sampler
        # replacement would wrap them again and pad with repeated batches.
        use_distributed_sampler=False,
    )
    return trainer, checkpoint


def _fit(
    module: L.LightningModule,
    datamodule: StoreDataModule,
    trainer: L.Trainer,
    checkpoint: ModelCheckpoint,
    out_dir: Path,
    state: Literal["resume", "fresh"],
) -> tuple[Path, float]:
    """Fit (resuming from last.ckpt when asked), then load the best epoch's weights into `module`."""
    started = time.perf_counter()
    ckpt_path = out_dir / "checkpoints" / "last.ckpt" if state == "resume" else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    seconds = time.perf_counter() - started
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else out_dir / "checkpoints" / "last.ckpt"
    if not best.exists():
        raise StageError(f"{out_dir}: training finished without writing a checkpoint")
    payload = torch.load(best, map_location="cpu", weights_only=True)
    module.load_state_dict(payload["state_dict"])
    return best, seconds


def _save_weights(path: Path, module: nn.Module) -> Path:
    return save_weights(path, module)


def load_encoder_weights(encoder: nn.Module, path: Path) -> None:
    if not path.exists():
        raise StageError(f"{path}: encoder weights not found (run the previous stage first)")
    state = load_file(str(path))
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise StageError(f"{path}: encoder weights do not fit this encoder config: {error}") from None


def _best_epoch(checkpoint_path: Path) -> int | None:
    with contextlib.suppress(Exception):
        return int(torch.load(checkpoint_path, map_location="cpu", weights_only=True)["epoch"])
    return None


def read_history(out_dir: Path) -> list[dict[str, float]]:
    """Per-epoch metrics (train_loss, val_loss, val_macro_auroc) merged over every attempt's CSV."""
    by_epoch: dict[int, dict[str, float]] = {}
    logs = sorted((out_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for path in logs:
        with path.open(newline="") as stream:
            for row in csv.DictReader(stream):
                if not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"]))
                entry = by_epoch.setdefault(epoch, {"epoch": float(epoch)})
                for key, value in row.items():
                    if key in {"epoch", "step"} or value in (None, ""):
                        continue
                    entry[key.removesuffix("_epoch")] = float(value)
    return [by_epoch[e] for e in sorted(by_epoch)]


@contextlib.contextmanager
def _stage_announcement(name: str, out_dir: Path) -> Iterator[None]:
    from rich.console import Console

    console = Console(stderr=True)
    console.print(f"[bold cyan]▶ {name}[/] → {out_dir}")
    yield
    console.print(f"[green]✓ {name}[/] done")


# ---- stage 1 ---------------------------------------------------------------------------------------


def run_pretrain(
    config: RunConfig,
    store: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    extra_callbacks: Sequence[Callback] = (),
) -> StageResult:
    """Stage 1: joint-embedding pretraining of Φx against Φm on (ECG, tabular) pairs."""
    out, state = _start_stage("pretrain", config, out_dir, resume, PRETRAIN_SECTIONS)
    if isinstance(state, StageResult):
        return state
    stage = config.pretrain
    if stage.pool is not None:  # pretrain on the pool's pairs, the labelled store's val/test patients kept out
        from ecgkt.train.transfer.splits import SplitError, pool_for_store

        try:
            store = pool_for_store(Path(stage.pool), Path(store), out / "pool-store", config.seed)
        except SplitError as error:
            raise StageError(str(error)) from None
    datamodule = StoreDataModule(store, config.data, seed=config.seed, target=None, tabular_groups=stage.tabular_groups)
    n_numeric, cardinalities = datamodule.tabular_shape
    module = JointEmbeddingModule(
        encoder=config.encoder.model_dump(),
        tabular_encoder=stage.tabular_encoder.model_dump(),
        projector=stage.projector.model_dump(),
        n_numeric=n_numeric,
        categorical_cardinalities=cardinalities,
        objective=stage.objective,
        objective_kwargs=stage.objective_kwargs(),
        optim=stage.optim.model_dump(),
    )
    _maybe_compile(config, module.encoder)
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / CONFIG_FILE)
    trainer, checkpoint = build_trainer(
        config, out, stage.optim, monitor="val_loss", mode="min", extra_callbacks=extra_callbacks
    )
    with _stage_announcement(f"pretrain ({stage.objective})", out):
        best, seconds = _fit(module, datamodule, trainer, checkpoint, out, state)

    def outputs() -> dict[str, Any]:
        _save_weights(out / ENCODER_FILE, module.encoder)
        _save_weights(out / MODEL_FILE, module)
        score = checkpoint.best_model_score
        metrics = {
            "stage": "pretrain",
            "objective": stage.objective,
            "best_val_loss": None if score is None else float(score),
            "best_epoch": _best_epoch(best),
            "epochs": trainer.current_epoch,
            "train_seconds": round(seconds, 1),
            "n_records": {split: len(datamodule.dataset(split)) for split in ("train", "val")},
            "pretrain_store": str(store),
            "tabular_groups": list(stage.tabular_groups),
            "n_tabular_numeric": n_numeric,
            "n_tabular_categorical": len(cardinalities),
        }
        return metrics

    return _publish(trainer, "pretrain", out, outputs)


# ---- supervised stages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SupervisedSpec:
    """What distinguishes the five supervised runs of Table 1 (stage 2, stage 3, three baselines)."""

    name: str
    target: TargetName
    head: HeadConfig
    optim: OptimConfig
    focal_gamma: float
    tabular_groups: tuple[FeatureGroup, ...] | None = None
    tabular_encoder: dict[str, Any] | None = None
    init_encoder: Path | None = None
    freeze_layers: int = 0
    freeze_encoder: bool = False
    encoder_lr_factor: float = 1.0
    config_sections: tuple[str, ...] = ("seed", "encoder", "data", "baseline")
    # Hooks for variants outside Table 1 (ecgkt.train.transfer): build the module from the keyword
    # arguments SupervisedModule would get, and the data module from StoreDataModule's arguments.
    module_factory: Callable[..., SupervisedModule] | None = None
    datamodule_factory: Callable[..., StoreDataModule] | None = None


def run_supervised(
    spec: SupervisedSpec,
    config: RunConfig,
    store: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    extra_callbacks: Sequence[Callback] = (),
) -> StageResult:
    out, state = _start_stage(spec.name, config, out_dir, resume, spec.config_sections)
    if isinstance(state, StageResult):
        return state
    make_datamodule = spec.datamodule_factory or StoreDataModule
    datamodule = make_datamodule(
        store, config.data, seed=config.seed, target=spec.target, tabular_groups=spec.tabular_groups
    )
    n_numeric, cardinalities = datamodule.tabular_shape
    make_module = spec.module_factory or SupervisedModule
    module = make_module(
        encoder=config.encoder.model_dump(),
        head=spec.head.model_dump(),
        n_labels=datamodule.n_labels,
        optim=spec.optim.model_dump(),
        tabular_encoder=spec.tabular_encoder,
        n_numeric=n_numeric,
        categorical_cardinalities=cardinalities,
        focal_gamma=spec.focal_gamma,
        freeze_layers=spec.freeze_layers,
        freeze_encoder=spec.freeze_encoder,
        encoder_lr_factor=spec.encoder_lr_factor,
        label_names=datamodule.label_names,
    )
    if spec.init_encoder is not None:
        load_encoder_weights(module.encoder, spec.init_encoder)
    _maybe_compile(config, module.encoder)
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / CONFIG_FILE)
    trainer, checkpoint = build_trainer(
        config, out, spec.optim, monitor="val_macro_auroc", mode="max", extra_callbacks=extra_callbacks
    )
    with _stage_announcement(spec.name, out):
        best, seconds = _fit(module, datamodule, trainer, checkpoint, out, state)

    def outputs() -> dict[str, Any]:
        _save_weights(out / ENCODER_FILE, module.encoder)
        _save_weights(out / MODEL_FILE, module.net)
        if isinstance(module.net, EcgClassifier):
            _save_weights(out / HEAD_FILE, module.net.head)
        metrics = _score_splits(module, datamodule, config, out)
        metrics.update(
            {
                "stage": spec.name,
                "target": spec.target,
                "tabular_groups": list(spec.tabular_groups or []),
                "init_encoder": None if spec.init_encoder is None else str(spec.init_encoder),
                "freeze_layers": spec.freeze_layers,
                "freeze_encoder": spec.freeze_encoder,
                "encoder_lr_factor": spec.encoder_lr_factor,
                "best_epoch": _best_epoch(best),
                "epochs": trainer.current_epoch,
                "train_seconds": round(seconds, 1),
            }
        )
        return metrics

    return _publish(trainer, spec.name, out, outputs)


def evaluation_device(config: RunConfig) -> torch.device:
    wants_gpu = config.trainer.accelerator in {"gpu", "cuda", "auto"}
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def _score_splits(
    module: SupervisedModule, datamodule: StoreDataModule, config: RunConfig, out: Path
) -> dict[str, Any]:
    device = evaluation_device(config)
    scores: dict[str, Score] = {}
    targets_by_split = {}
    titles = datamodule.store.manifest.diagnosis_titles
    for split in ("val", "test"):
        split_name: Split = split
        probs, targets = predict_split(module, datamodule.eval_dataloader(split_name), device)
        save_predictions(out / f"predictions_{split}.npz", probs, targets, datamodule.label_names)
        scores[split] = score_predictions(
            targets,
            probs,
            datamodule.label_names,
            n_resamples=config.evaluation.bootstrap_resamples,
            confidence=config.evaluation.confidence,
            seed=config.seed,
        )
        targets_by_split[split] = targets
    write_per_label_csv(out / "per_label_auroc.csv", datamodule.label_names, targets_by_split["test"], scores, titles)
    return {
        "labels": datamodule.label_names,
        "val": scores["val"].as_dict(),
        "test": scores["test"].as_dict(),
        "n_records": {split: len(datamodule.dataset(split)) for split in ("train", "val", "test")},
    }


def finetune_spec(config: RunConfig, pretrained_encoder: Path | None) -> SupervisedSpec:
    """Stage 2: diagnosis head on the (pretrained) encoder, early layers frozen."""
    stage = config.finetune
    return SupervisedSpec(
        name="finetune",
        target="diagnoses",
        head=stage.head,
        optim=stage.optim,
        focal_gamma=stage.focal_gamma,
        init_encoder=pretrained_encoder,
        freeze_layers=stage.freeze_layers,
        encoder_lr_factor=stage.encoder_lr_factor,
        config_sections=(*PRETRAIN_SECTIONS, "finetune"),
    )


def labs_spec(config: RunConfig, encoder: Path) -> SupervisedSpec:
    """Stage 3: lab-abnormality head on the stage-2 encoder (frozen, or finetuned at a low lr)."""
    stage = config.labs
    frozen = stage.encoder == "frozen"
    return SupervisedSpec(
        name="labs",
        target="labs",
        head=stage.head,
        optim=stage.optim,
        focal_gamma=stage.focal_gamma,
        init_encoder=encoder,
        freeze_layers=0 if frozen else config.finetune.freeze_layers,
        freeze_encoder=frozen,
        encoder_lr_factor=stage.encoder_lr_factor,
        config_sections=(*PRETRAIN_SECTIONS, "finetune", "labs"),
    )


def baseline_spec(config: RunConfig, kind: BaselineKind) -> SupervisedSpec:
    """signal: ECG → diagnoses; mm-labs: ECG + routine → lab labels; mm-diag: ECG + all tabular → diagnoses."""
    stage = config.baseline
    common: dict[str, Any] = {"head": stage.head, "optim": stage.optim, "focal_gamma": stage.focal_gamma}
    tabular = stage.tabular_encoder.model_dump()
    if kind == "signal":
        return SupervisedSpec(name="baseline-signal", target="diagnoses", **common)
    if kind == "mm-labs":
        return SupervisedSpec(
            name="baseline-mm-labs", target="labs", tabular_groups=("routine",), tabular_encoder=tabular, **common
        )
    if kind == "mm-diag":
        return SupervisedSpec(
            name="baseline-mm-diag",
            target="diagnoses",
            tabular_groups=("routine", "lab"),
            tabular_encoder=tabular,
            **common,
        )
    raise StageError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def run_finetune(
    config: RunConfig,
    store: str | Path,
    out_dir: str | Path,
    *,
    pretrained_encoder: Path | None,
    resume: bool = False,
    extra_callbacks: Sequence[Callback] = (),
) -> StageResult:
    return run_supervised(
        finetune_spec(config, pretrained_encoder),
        config,
        store,
        out_dir,
        resume=resume,
        extra_callbacks=extra_callbacks,
    )


def run_labs(
    config: RunConfig,
    store: str | Path,
    out_dir: str | Path,
    *,
    encoder: Path,
    resume: bool = False,
    extra_callbacks: Sequence[Callback] = (),
) -> StageResult:
    return run_supervised(
        labs_spec(config, encoder), config, store, out_dir, resume=resume, extra_callbacks=extra_callbacks
    )


def run_baseline(
    kind: BaselineKind,
    config: RunConfig,
    store: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    extra_callbacks: Sequence[Callback] = (),
) -> StageResult:
    return run_supervised(
        baseline_spec(config, kind), config, store, out_dir, resume=resume, extra_callbacks=extra_callbacks
    )
