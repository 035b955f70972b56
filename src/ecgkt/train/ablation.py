"""Ablations of the JE + Reconstruction model on one cohort: pretraining objective and frozen layers.

Variants (each scored like Table 1's JE row: the assembled one-encoder model on the test fold):
- objective ∈ {none, barlow_twins, vicreg, infonce} with the configured number of frozen layers;
  "none" = no stage 1: the encoder is the supervised signal-only baseline's (trained from scratch,
  nothing frozen — freezing randomly initialised layers would measure nothing useful), and the lab
  head is stage 3 on that encoder;
- frozen layers k ∈ ablation.freeze_layers with Barlow Twins pretraining.

Folder names match the benchmark's (`pretrain`, `finetune`, `labs`, `baseline-signal` for the
configured objective / freezing), so running the ablation into a benchmark's output folder reuses
the runs the benchmark already finished; the other variants go to `ablation/…`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgkt.atomic_files import write_text_atomically
from ecgkt.config import RunConfig
from ecgkt.train.evaluation import write_json
from ecgkt.train.stages import run_baseline, run_finetune, run_labs, run_pretrain
from ecgkt.train.table1 import assemble_je_model, compare_predictions, evaluate_je, is_global_zero


@dataclass(frozen=True)
class Variant:
    objective: str
    freeze_layers: int

    @property
    def label(self) -> str:
        if self.objective == "none":
            return "no pretraining"
        return f"{self.objective}, {self.freeze_layers} frozen"


def variants(config: RunConfig) -> list[Variant]:
    chosen: list[Variant] = []
    for objective in config.ablation.objectives:
        freeze = 0 if objective == "none" else config.finetune.freeze_layers
        chosen.append(Variant(objective, freeze))
    for k in config.ablation.freeze_layers:
        chosen.append(Variant("barlow_twins", k))
    unique: list[Variant] = []
    for variant in chosen:
        if variant not in unique:
            unique.append(variant)
    return unique


def _variant_config(config: RunConfig, variant: Variant) -> RunConfig:
    data = config.model_dump()
    if variant.objective != "none":
        data["pretrain"]["objective"] = variant.objective
    data["finetune"]["freeze_layers"] = variant.freeze_layers
    return RunConfig.model_validate(data)


def _folders(config: RunConfig, out: Path, variant: Variant) -> dict[str, Path]:
    """Benchmark folder names for the configured variant, `ablation/…` for the others."""
    if variant.objective == "none":
        return {"finetune": out / "baseline-signal", "labs": out / "ablation" / "labs-none"}
    is_default_objective = variant.objective == config.pretrain.objective
    is_default_freeze = variant.freeze_layers == config.finetune.freeze_layers
    pretrain = out / "pretrain" if is_default_objective else out / "ablation" / f"pretrain-{variant.objective}"
    if is_default_objective and is_default_freeze:
        return {"pretrain": pretrain, "finetune": out / "finetune", "labs": out / "labs"}
    tag = f"{variant.objective}-freeze{variant.freeze_layers}"
    return {
        "pretrain": pretrain,
        "finetune": out / "ablation" / f"finetune-{tag}",
        "labs": out / "ablation" / f"labs-{tag}",
    }


def run_variant(config: RunConfig, store: Path, out: Path, variant: Variant, resume: bool) -> dict[str, Any]:
    folders = _folders(config, out, variant)
    cfg = _variant_config(config, variant)
    if variant.objective == "none":
        finetune = run_baseline("signal", config, store, folders["finetune"], resume=resume)
    else:
        pretrain = run_pretrain(cfg, store, folders["pretrain"], resume=resume)
        finetune = run_finetune(
            cfg, store, folders["finetune"], pretrained_encoder=pretrain.encoder_path, resume=resume
        )
    labs = run_labs(cfg, store, folders["labs"], encoder=finetune.encoder_path, resume=resume)
    if not is_global_zero():
        return {}
    model = assemble_je_model(cfg, finetune, labs)
    scores = evaluate_je(cfg, store, model, folders["labs"] / "je")
    return {
        "variant": variant.label,
        "objective": variant.objective,
        "freeze_layers": variant.freeze_layers,
        "diagnoses": scores["diagnoses"]["test"].as_dict(),
        "labs": scores["labs"]["test"].as_dict(),
        "val_diagnoses": scores["diagnoses"]["val"].macro,
        "val_labs": scores["labs"]["val"].macro,
        "folders": {name: str(path) for name, path in folders.items()},
    }


def add_paired_deltas(rows: list[dict[str, Any]], config: RunConfig) -> None:
    """Each variant minus "no pretraining" on the same test records, with a paired bootstrap CI."""
    reference = next((row for row in rows if row["objective"] == "none"), None)
    if reference is None:
        return
    for task in ("diagnoses", "labs"):
        file = f"predictions_{task}_test.npz"
        reference_file = Path(reference["folders"]["labs"]) / "je" / file
        for row in rows:
            variant_file = Path(row["folders"]["labs"]) / "je" / file
            row[f"{task}_vs_none"] = compare_predictions(config, variant_file, reference_file)


def _delta(item: dict[str, Any] | None) -> str:
    if not item or item.get("delta") is None:
        return "-"
    if item["delta"] == 0 and item["ci_low"] == 0 and item["ci_high"] == 0:
        return "(reference)"
    return f"{item['delta']:+.3f} [{item['ci_low']:+.3f}, {item['ci_high']:+.3f}]"


def _cell(score: dict[str, Any]) -> str:
    if score.get("macro_auroc") is None:
        return "-"
    return f"{score['macro_auroc']:.3f} [{score['ci_low']:.3f}, {score['ci_high']:.3f}]"


def render_markdown(rows: list[dict[str, Any]], config: RunConfig, store: Path) -> str:
    lines = [
        "# Ablation — JE + Reconstruction",
        "",
        f"Store `{store}`, preset `{config.preset}`, seed {config.seed}; test-fold macro AUROC of the assembled "
        f"ECG-only model (one encoder, both heads) with {config.evaluation.confidence:.0%} bootstrap CI "
        f"({config.evaluation.bootstrap_resamples} resamples). Stage-3 encoder: {config.labs.encoder}.",
        "",
        "| Variant | Pretraining | Frozen layers | Diagnoses | Δ vs none (paired) | Lab | Δ vs none (paired) "
        "| Val diagnoses | Val lab |",
        "|---|---|:-:|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['objective']} | {row['freeze_layers']} | {_cell(row['diagnoses'])} | "
            f"{_delta(row.get('diagnoses_vs_none'))} | {_cell(row['labs'])} | {_delta(row.get('labs_vs_none'))} | "
            f"{row['val_diagnoses']:.3f} | {row['val_labs']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def run_ablation(
    config: RunConfig, store: str | Path, out_dir: str | Path, *, resume: bool = True
) -> list[dict[str, Any]]:
    store_path, out = Path(store), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [run_variant(config, store_path, out, variant, resume) for variant in variants(config)]
    if not is_global_zero():
        return rows
    add_paired_deltas(rows, config)
    write_json(out / "ablation.json", {"store": str(store_path), "preset": config.preset, "rows": rows})
    write_text_atomically(out / "ablation.md", render_markdown(rows, config, store_path))
    return rows
