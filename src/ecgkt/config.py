"""Run configuration for training: one pydantic model, three presets, YAML in and out.

A run is fully described by a `RunConfig`: the encoder architecture, how data is windowed and
batched, the Trainer hardware settings (CPU / GPU / DDP / bf16 are Trainer arguments, never our own
code), and one section per training stage. Every stage writes the resolved config next to its
outputs, so a result can always be traced back to the exact settings that produced it.

Presets:
- `paper`: the paper's backbone (d_model 512, d_state 8, 4 layers, batch 32, 40 epochs, AdamW
  lr 1e-3, wd 1e-3) for a GPU on real MIMIC-IV.
- `cpu`: a small model that runs the full Table 1 (pretraining + 5 supervised runs) in minutes on
  2 CPU cores on a synthetic cohort of 1–2k patients (the demo).
- `smoke`: seconds, for tests.

`extra="forbid"` everywhere: a misspelt YAML key is an error naming the key, not a silently ignored
setting. Impossible values (negative lr, more frozen layers than the encoder has) are rejected here,
before any data is read.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecgkt.atomic_files import write_text_atomically
from ecgkt.errors import UserError, describe_validation_error
from ecgkt.models.config import EcgEncoderConfig, HeadConfig, ProjectorConfig, TabularEncoderConfig

PresetName = Literal["paper", "cpu", "smoke"]
PRESETS: tuple[PresetName, ...] = ("paper", "cpu", "smoke")
ObjectiveChoice = Literal["barlow_twins", "vicreg", "infonce"]
AblationObjective = Literal["none", "barlow_twins", "vicreg", "infonce"]
TabularGroup = Literal["routine", "lab"]
ALL_TABULAR_GROUPS: tuple[TabularGroup, ...] = ("routine", "lab")
ABLATION_OBJECTIVES: tuple[AblationObjective, ...] = ("none", "barlow_twins", "vicreg", "infonce")


class ConfigError(UserError, ValueError):
    """A config that cannot be used: unreadable YAML, unknown keys, impossible values."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """How records become batches: random 2.5 s crops for training, 4 windows for evaluation."""

    window_samples: int = Field(default=250, gt=0, description="crop length in samples (2.5 s at 100 Hz)")
    n_eval_windows: int = Field(default=4, gt=0, description="non-overlapping windows averaged in evaluation")
    batch_size: int = Field(default=32, gt=1, description="> 1: BatchNorm and the joint-embedding losses need it")
    eval_batch_size: int = Field(default=128, gt=0)
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes (0 = main process)")
    observed_mask: bool = Field(default=True, description="append an observed-mask column per numeric feature")


class OptimConfig(_Strict):
    """AdamW with an optional cosine schedule; the S4 dt/A parameters get `ssm_lr` and no decay."""

    max_epochs: int = Field(default=40, ge=1)
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(default=1e-3, ge=0.0)
    ssm_lr: float | None = Field(default=1e-3, gt=0.0, le=1.0, description="lr of S4 dt/A; None = same as lr")
    scheduler: Literal["none", "cosine"] = "cosine"
    gradient_clip: float | None = Field(default=1.0, gt=0.0)


class TrainerConfig(_Strict):
    """Passed straight to `lightning.Trainer`: this is how CPU / GPU / DDP / bf16 are chosen.

    `compile` lives here, with the other execution settings, because it changes speed, not results
    (the first-step loss matches eager within 1e-4, tests/train/test_compile.py): like them it may
    differ when a run is resumed. Off by default: on 2 CPU cores a compiled encoder trained SLOWER
    than the eager one after 40–60 s of compiling (src/ecgkt/train/README.md has the figures).
    """

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | Literal["auto"] = "auto"
    strategy: str = Field(default="auto", description='e.g. "ddp" for multi-GPU / multi-node')
    num_nodes: int = Field(default=1, ge=1)
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch.set_num_threads on CPU; None = torch default"
    )
    deterministic: bool = False
    compile: bool = Field(
        default=False,
        description="torch.compile the ECG encoder (in place, dynamic=False); skipped with a warning where unsupported",
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        default="default", description="torch.compile mode when compile is true"
    )
    progress_bar: bool = True
    log_every_n_steps: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _devices_positive(self) -> TrainerConfig:
        if isinstance(self.devices, int) and self.devices < 1:
            raise ValueError(f"devices must be >= 1 or 'auto', got {self.devices}")
        return self


class PretrainConfig(_Strict):
    """Stage 1: joint embedding of (ECG crop, tabular row) pairs; no labels are read."""

    objective: ObjectiveChoice = "barlow_twins"
    barlow_lambda: float = Field(default=0.0051, ge=0.0, description="Barlow Twins off-diagonal weight λ")
    vicreg_sim_coeff: float = Field(default=25.0, ge=0.0)
    vicreg_std_coeff: float = Field(default=25.0, ge=0.0)
    vicreg_cov_coeff: float = Field(default=1.0, ge=0.0)
    infonce_temperature: float = Field(default=0.1, gt=0.0)
    tabular_groups: list[TabularGroup] = Field(default_factory=lambda: list(ALL_TABULAR_GROUPS), min_length=1)
    tabular_encoder: TabularEncoderConfig = Field(default_factory=lambda: TabularEncoderConfig.model_validate({}))
    projector: ProjectorConfig = Field(default_factory=lambda: ProjectorConfig.model_validate({}))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig())
    pool: str | None = Field(
        default=None,
        description="a pretraining pool store (`ecgkt build --pretrain-pool`): pretrain on its (ECG, tabular) "
        "pairs instead of the labelled store's training records; the labelled store's validation and test "
        "patients are kept out (ecgkt.train.transfer.splits.pool_for_store)",
    )

    def objective_kwargs(self) -> dict[str, float]:
        """Keyword arguments for `ecgkt.objectives.build_objective` for the chosen objective."""
        if self.objective == "barlow_twins":
            return {"lambda_offdiag": self.barlow_lambda}
        if self.objective == "vicreg":
            return {
                "sim_coeff": self.vicreg_sim_coeff,
                "std_coeff": self.vicreg_std_coeff,
                "cov_coeff": self.vicreg_cov_coeff,
            }
        return {"temperature": self.infonce_temperature}


class FinetuneConfig(_Strict):
    """Stage 2: diagnosis head Ψy on the pretrained encoder, early layers frozen, lower encoder lr."""

    freeze_layers: int = Field(default=2, ge=0, description="freeze the input projection + this many S4 blocks")
    encoder_lr_factor: float = Field(default=0.1, gt=0.0, le=1.0, description="encoder lr = head lr × factor")
    focal_gamma: float = Field(default=0.0, ge=0.0, description="0 = plain masked BCE; > 0 = focal BCE")
    head: HeadConfig = Field(default_factory=lambda: HeadConfig.model_validate({}))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig())


class LabsConfig(_Strict):
    """Stage 3: lab-abnormality head Ψm on the SAME encoder as the diagnosis head.

    `encoder="frozen"` trains only the head, so the diagnosis head keeps exactly the encoder it was
    trained with; `"finetune"` also adapts the unfrozen encoder layers at a low lr, after which the
    diagnosis head is re-evaluated on the changed encoder (docs/training.md has the measurement).
    """

    encoder: Literal["frozen", "finetune"] = "frozen"
    encoder_lr_factor: float = Field(default=0.1, gt=0.0, le=1.0)
    focal_gamma: float = Field(default=0.0, ge=0.0)
    head: HeadConfig = Field(default_factory=lambda: HeadConfig.model_validate({}))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig())


class BaselineConfig(_Strict):
    """The three Table-1 baselines: signal-only, multimodal lab prediction, multimodal classification."""

    tabular_encoder: TabularEncoderConfig = Field(default_factory=lambda: TabularEncoderConfig.model_validate({}))
    head: HeadConfig = Field(default_factory=lambda: HeadConfig.model_validate({}))
    focal_gamma: float = Field(default=0.0, ge=0.0)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig())


class EvaluationConfig(_Strict):
    bootstrap_resamples: int = Field(default=1000, ge=10)
    paired_resamples: int = Field(default=200, ge=10, description="paired bootstrap of row differences")
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)


class AblationConfig(_Strict):
    objectives: list[AblationObjective] = Field(default_factory=lambda: list(ABLATION_OBJECTIVES), min_length=1)
    freeze_layers: list[int] = Field(default_factory=lambda: [0, 2, 4], min_length=1)


class RunConfig(_Strict):
    """Everything one training run (or the whole benchmark) needs besides the store and output folder."""

    preset: PresetName = "paper"
    seed: int = Field(default=0, ge=0)
    encoder: EcgEncoderConfig = Field(default_factory=lambda: EcgEncoderConfig.model_validate({}))
    data: DataConfig = Field(default_factory=lambda: DataConfig())
    trainer: TrainerConfig = Field(default_factory=lambda: TrainerConfig())
    pretrain: PretrainConfig = Field(default_factory=lambda: PretrainConfig())
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig())
    labs: LabsConfig = Field(default_factory=lambda: LabsConfig())
    baseline: BaselineConfig = Field(default_factory=lambda: BaselineConfig())
    evaluation: EvaluationConfig = Field(default_factory=lambda: EvaluationConfig())
    ablation: AblationConfig = Field(default_factory=lambda: AblationConfig())

    @model_validator(mode="after")
    def _freezing_fits_encoder(self) -> RunConfig:
        n_layers = self.encoder.n_layers
        if self.finetune.freeze_layers > n_layers:
            raise ValueError(
                f"finetune.freeze_layers={self.finetune.freeze_layers} but the encoder has only "
                f"{n_layers} layers (encoder.n_layers)"
            )
        too_many = [k for k in self.ablation.freeze_layers if k < 0 or k > n_layers]
        if too_many:
            raise ValueError(f"ablation.freeze_layers {too_many} outside 0..{n_layers} (encoder.n_layers={n_layers})")
        return self


# ---- presets ---------------------------------------------------------------------------------------


_SMOKE_OPTIM: dict[str, Any] = {"max_epochs": 2, "lr": 3e-3, "scheduler": "none"}

# Each preset holds ONLY its differences from the class defaults above (which are the paper's
# backbone and optimiser: d_model 512, d_state 8, 4 layers, batch 32, 40 epochs, AdamW lr 1e-3,
# wd 1e-3); tests/test_config.py checks that no preset repeats a default.
PRESET_OVERRIDES: dict[PresetName, dict[str, Any]] = {
    "paper": {"data": {"num_workers": 4}},
    # Sized by measurement: one training step (batch 64, 250 samples) of this encoder costs ~0.4
    # CPU-seconds, so Table 1 on ~3.5k ECGs (the demo's 1500 patients) takes ~15 CPU-minutes.
    "cpu": {
        "encoder": {"d_model": 64, "dropout": 0.1},
        "data": {"batch_size": 64, "eval_batch_size": 256},
        "trainer": {"accelerator": "cpu", "devices": 1, "cpu_threads": 2, "log_every_n_steps": 20},
        "pretrain": {
            "tabular_encoder": {"hidden": [128, 128]},
            "projector": {"hidden": 256, "out_dim": 256},
            "optim": {"max_epochs": 10, "lr": 2e-3},
        },
        "finetune": {"head": {"hidden": [128]}, "optim": {"max_epochs": 8, "lr": 2e-3}},
        "labs": {"head": {"hidden": [128]}, "optim": {"max_epochs": 6, "lr": 2e-3}},
        "baseline": {
            "tabular_encoder": {"hidden": [128, 128]},
            "head": {"hidden": [128]},
            "optim": {"max_epochs": 8, "lr": 2e-3},
        },
        "evaluation": {"bootstrap_resamples": 500},
    },
    "smoke": {
        "encoder": {"d_model": 16, "d_state": 4, "n_layers": 2, "dropout": 0.1},
        "data": {"batch_size": 8, "eval_batch_size": 32},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "cpu_threads": 1,
            "progress_bar": False,
            "log_every_n_steps": 1,
        },
        "pretrain": {
            "tabular_encoder": {"hidden": [16], "embedding_dim": 4},
            "projector": {"hidden": 16, "out_dim": 16},
            "optim": _SMOKE_OPTIM,
        },
        "finetune": {"freeze_layers": 1, "head": {"hidden": [16]}, "optim": _SMOKE_OPTIM},
        "labs": {"head": {"hidden": [16]}, "optim": _SMOKE_OPTIM},
        "baseline": {
            "tabular_encoder": {"hidden": [16], "embedding_dim": 4},
            "head": {"hidden": [16]},
            "optim": _SMOKE_OPTIM,
        },
        "evaluation": {"bootstrap_resamples": 20, "paired_resamples": 20},
        "ablation": {"objectives": ["none", "barlow_twins"], "freeze_layers": [0, 2]},
    },
}


def preset_dict(name: str) -> dict[str, Any]:
    """The raw override dictionary of a preset (validated only when merged into a RunConfig)."""
    for known in PRESETS:
        if known == name:
            return {"preset": known, **copy.deepcopy(PRESET_OVERRIDES[known])}
    raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def preset(name: str) -> RunConfig:
    return _validate(preset_dict(name), source=f"preset {name!r}")


# ---- reading and writing ---------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _validate(raw: Mapping[str, Any], source: str) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid config: {describe_validation_error(error)}") from None


def load_config(
    preset_name: str | None = None,
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Resolve a config: preset (from the argument, else the YAML's `preset:` key, else `paper`),
    then the YAML file's keys, then `overrides`, each deep-merged over the previous."""
    from_file: dict[str, Any] = {}
    source = f"preset {preset_name!r}" if preset_name else "config"
    if path is not None:
        file = Path(path)
        source = str(file)
        if not file.is_file():
            raise ConfigError(f"{file}: config file not found")
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"{file}: not valid YAML: {error}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of config sections, got {type(loaded).__name__}")
        from_file = loaded
    name = preset_name or from_file.get("preset") or "paper"
    if not isinstance(name, str):
        raise ConfigError(f"{source}: 'preset' must be one of {', '.join(PRESETS)}, got {name!r}")
    raw = _deep_merge(preset_dict(name), from_file)
    raw["preset"] = name
    if overrides:
        raw = _deep_merge(raw, overrides)
    return _validate(raw, source)


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def write_config(config: RunConfig, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config as YAML atomically (temp file + rename)."""
    return write_text_atomically(path, config_to_yaml(config))
