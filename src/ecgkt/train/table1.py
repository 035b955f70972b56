"""Table 1 of the paper from one config: the four rows, scored on the test fold with bootstrap CIs.

Rows (inference / training data requirements as in the paper, ● required, ○ not):
    Supervised Signal-Only      diagnoses        inference ○○○  training ○○●
    Multimodal Lab Prediction   labs             inference ●○○  training ●●○
    Multimodal Classification   diagnoses        inference ●●○  training ●●●
    JE + Reconstruction         diagnoses + labs inference ○○○  training ●●●
(columns: routine data, lab values, diagnoses.)

The JE row is scored with the *assembled* ECG-only model — one encoder, both heads — exactly as it
is shipped in `OUT/bundle/`, so the table describes the deployable artefact. Every stage lives in its
own subfolder and is skipped when finished, so a killed benchmark resumes where it stopped.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load_file

from ecgkt.atomic_files import write_text_atomically
from ecgkt.bundle import BundleManifest, BundlePreprocessing, EcgOnlyModel, save_bundle
from ecgkt.config import RunConfig, config_to_yaml, write_config
from ecgkt.store import FeatureGroup, Store
from ecgkt.train.data import DataError, StoreDataModule, TargetName
from ecgkt.train.evaluation import (
    Score,
    load_predictions,
    paired_bootstrap_difference,
    save_predictions,
    score_predictions,
    write_json,
    write_per_label_csv,
)
from ecgkt.train.plots import plot_learning_curves, plot_roc
from ecgkt.train.stages import (
    BASELINES,
    ENCODER_FILE,
    HEAD_FILE,
    StageError,
    StageResult,
    baseline_spec,
    evaluation_device,
    read_history,
    run_baseline,
    run_finetune,
    run_labs,
    run_pretrain,
)

Task = Literal["diagnoses", "labs"]
FILLED, EMPTY = "●", "○"

PAPER_TABLE1: dict[str, dict[str, float | None]] = {
    "signal": {"diagnoses": 0.768, "labs": None},
    "mm-labs": {"diagnoses": None, "labs": 0.762},
    "mm-diag": {"diagnoses": 0.826, "labs": None},
    "je": {"diagnoses": 0.795, "labs": 0.701},
}


@dataclass(frozen=True)
class RowSpec:
    key: str
    model: str
    tasks: tuple[Task, ...]
    inference: tuple[bool, bool, bool]  # routine, lab, diagnoses
    training: tuple[bool, bool, bool]


ROWS: tuple[RowSpec, ...] = (
    RowSpec("signal", "Supervised Signal-Only", ("diagnoses",), (False, False, False), (False, False, True)),
    RowSpec("mm-labs", "Multimodal Lab Prediction", ("labs",), (True, False, False), (True, True, False)),
    RowSpec("mm-diag", "Multimodal Classification", ("diagnoses",), (True, True, False), (True, True, True)),
    RowSpec("je", "JE + Reconstruction", ("diagnoses", "labs"), (False, False, False), (True, True, True)),
)


@dataclass
class Table1:
    rows: list[dict[str, Any]]
    cohort: dict[str, Any]
    settings: dict[str, Any]
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    ceiling: dict[str, Any] | None = None  # the ECG-only oracle ceiling on this split (synthetic cohorts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "settings": self.settings,
            "rows": self.rows,
            "comparisons": self.comparisons,
            "stages": self.stages,
            "ecg_only_ceiling": self.ceiling,
            "gap_closed": gap_closed(self),
        }


def _diagnoses_macro(table: Table1, key: str) -> float | None:
    row = next((r for r in table.rows if r["key"] == key), None)
    score = row["diagnoses"] if row is not None else None
    return float(score["macro_auroc"]) if score and score.get("macro_auroc") is not None else None


def gap_closed(table: Table1) -> dict[str, float | None] | None:
    """JE − signal-only on the diagnoses and the share of two gaps it closes: to the multimodal model
    (the paper's measure, 0.47 there; that model reads tabular data no ECG-only model sees) and to the
    ECG-only oracle ceiling (reachable in principle; measured only on synthetic cohorts)."""
    signal, je, multimodal = (_diagnoses_macro(table, k) for k in ("signal", "je", "mm-diag"))
    if signal is None or je is None:
        return None
    ceiling = table.ceiling["macro_auroc"] if table.ceiling else None
    return {
        "je_minus_signal": je - signal,
        "of_multimodal_gap": (je - signal) / (multimodal - signal) if multimodal not in (None, signal) else None,
        "ecg_only_ceiling": ceiling,
        "of_ceiling_gap": (je - signal) / (ceiling - signal) if ceiling is not None and ceiling != signal else None,
    }


def gap_lines(table: Table1) -> list[str]:
    """Table 1's gap-closed sentence(s), for the Markdown file and the console."""
    gaps = gap_closed(table)
    if gaps is None:
        return []
    share = gaps["of_multimodal_gap"]
    lines = [
        f"Gap closed by JE (diagnoses): JE − signal-only {gaps['je_minus_signal']:+.3f}; "
        + (f"share of the gap to the multimodal model {share:.2f} (paper 0.47)" if share is not None else "")
        + "."
    ]
    if gaps["of_ceiling_gap"] is not None and table.ceiling is not None:
        lines.append(
            f"ECG-only oracle ceiling on these test records and labels: {gaps['ecg_only_ceiling']:.3f} "
            f"({table.ceiling.get('features', 'noise-free ECG parameters')}, gradient boosting on the training "
            f"split); share of the gap to it closed by JE: {gaps['of_ceiling_gap']:.2f}."
        )
    return lines


# (name, task, (row a, prediction file of a), (row b, file of b)): a − b on the same test records
COMPARISONS: tuple[tuple[str, Task, tuple[str, str], tuple[str, str]], ...] = (
    (
        "JE + Reconstruction − Signal-Only",
        "diagnoses",
        ("je", "je/predictions_diagnoses_test.npz"),
        ("signal", "baseline-signal/predictions_test.npz"),
    ),
    (
        "Multimodal Classification − JE + Reconstruction",
        "diagnoses",
        ("mm-diag", "baseline-mm-diag/predictions_test.npz"),
        ("je", "je/predictions_diagnoses_test.npz"),
    ),
    (
        "Multimodal Lab Prediction − JE + Reconstruction",
        "labs",
        ("mm-labs", "baseline-mm-labs/predictions_test.npz"),
        ("je", "je/predictions_labs_test.npz"),
    ),
)


def paired_comparisons(config: RunConfig, out: Path, rows: Sequence[str] = tuple(PAPER_TABLE1)) -> list[dict[str, Any]]:
    """Differences between rows on the same test records with paired bootstrap CIs (rows both trained)."""
    results = []
    for name, task, (row_a, file_a), (row_b, file_b) in COMPARISONS:
        if row_a in rows and row_b in rows:
            difference = compare_predictions(config, out / file_a, out / file_b)
            results.append({"comparison": name, "task": task, **difference})
    return results


def compare_predictions(config: RunConfig, file_a: Path, file_b: Path) -> dict[str, Any]:
    """Macro AUROC of the predictions in `file_a` minus those in `file_b`, paired bootstrap CI; both
    must be on the same test records and labels (else a StageError naming both files)."""
    probs_a, targets_a, labels_a = load_predictions(file_a)
    probs_b, targets_b, labels_b = load_predictions(file_b)
    if labels_a != labels_b or not np.array_equal(targets_a, targets_b, equal_nan=True):
        raise StageError(f"{file_a} and {file_b}: predictions are not on the same test records")
    difference = paired_bootstrap_difference(
        targets_a,
        probs_a,
        probs_b,
        n_resamples=config.evaluation.paired_resamples,
        confidence=config.evaluation.confidence,
        seed=config.seed,
    )
    return difference.as_dict()


def is_global_zero() -> bool:
    """True outside distributed runs and on global rank 0 (Lightning sets the rank from the launcher's env)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0)) == 0


# ---- the JE model ----------------------------------------------------------------------------------


def assemble_je_model(config: RunConfig, finetune: StageResult, labs: StageResult) -> EcgOnlyModel:
    """One encoder (as left by stage 3; identical to stage 2's when stage 3 froze it) + both heads."""
    n_diag = len(finetune.metrics["labels"])
    n_lab = len(labs.metrics["labels"])
    model = EcgOnlyModel(config.encoder, n_diag, n_lab, config.finetune.head, config.labs.head)
    for part, path in (
        (model.encoder, labs.out_dir / ENCODER_FILE),
        (model.diagnosis_head, finetune.out_dir / HEAD_FILE),
        (model.lab_head, labs.out_dir / HEAD_FILE),
    ):
        if not path.exists():
            raise StageError(f"{path}: missing; the stage that writes it did not finish")
        part.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


@torch.no_grad()
def predict_with_model(
    model: EcgOnlyModel, datamodule: StoreDataModule, split: Literal["val", "test"], task: Task, device: torch.device
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    model.eval().to(device)
    probabilities, targets = [], []
    for batch in datamodule.eval_dataloader(split):
        diag, lab = model.predict_windows(batch["x"].to(device))
        probabilities.append((diag if task == "diagnoses" else lab).cpu().numpy().astype(np.float32))
        targets.append(batch["y"].numpy().astype(np.float32))
    return np.concatenate(probabilities), np.concatenate(targets)


def _score(config: RunConfig, targets: NDArray[np.float32], probs: NDArray[np.float32], labels: Sequence[str]) -> Score:
    return score_predictions(
        targets,
        probs,
        labels,
        n_resamples=config.evaluation.bootstrap_resamples,
        confidence=config.evaluation.confidence,
        seed=config.seed,
    )


def evaluate_je(config: RunConfig, store: Path, model: EcgOnlyModel, out_dir: Path) -> dict[Task, dict[str, Score]]:
    """Score the assembled model on val and test for both tasks; write predictions + per-label CSVs."""
    device = evaluation_device(config)
    results: dict[Task, dict[str, Score]] = {}
    titles = Store.open(store).manifest.diagnosis_titles
    for task in ("diagnoses", "labs"):
        target: TargetName = task
        datamodule = StoreDataModule(store, config.data, seed=config.seed, target=target)
        scores: dict[str, Score] = {}
        test_targets = None
        for split in ("val", "test"):
            probs, targets = predict_with_model(model, datamodule, split, task, device)
            save_predictions(out_dir / f"predictions_{task}_{split}.npz", probs, targets, datamodule.label_names)
            scores[split] = _score(config, targets, probs, datamodule.label_names)
            if split == "test":
                test_targets = targets
        assert test_targets is not None
        write_per_label_csv(
            out_dir / f"per_label_auroc_{task}.csv", datamodule.label_names, test_targets, scores, titles
        )
        results[task] = scores
    return results


def build_manifest(
    config: RunConfig, store: Path, je: dict[Task, dict[str, Score]], stages: dict[str, StageResult]
) -> BundleManifest:
    manifest = Store.open(store).manifest
    pre = manifest.preprocessing
    return BundleManifest(
        encoder=config.encoder,
        diagnosis_head=config.finetune.head,
        lab_head=config.labs.head,
        diagnosis_labels=list(stages["finetune"].metrics["labels"]),
        diagnosis_titles={
            k: v for k, v in manifest.diagnosis_titles.items() if k in stages["finetune"].metrics["labels"]
        },
        lab_labels=list(stages["labs"].metrics["labels"]),
        lab_reference_ranges=dict(manifest.lab_reference_ranges),
        preprocessing=BundlePreprocessing(
            sampling_rate_hz=pre.sampling_rate_hz,
            leads=list(pre.leads) or BundlePreprocessing().leads,
            record_seconds=pre.num_samples / pre.sampling_rate_hz,
            window_samples=config.data.window_samples,
            n_windows=config.data.n_eval_windows,
            clip_mv=pre.clip_mv,
        ),
        validation_auroc_diagnosis=je["diagnoses"]["val"].per_label,
        validation_auroc_lab=je["labs"]["val"].per_label,
        training={
            "preset": config.preset,
            "seed": config.seed,
            "objective": config.pretrain.objective,
            "freeze_layers": config.finetune.freeze_layers,
            "labs_encoder": config.labs.encoder,
            "store": str(store),
            "store_n_records": manifest.n_records,
            "store_sources": dict(manifest.sources),
            "validation_macro_auroc_diagnosis": je["diagnoses"]["val"].macro,
            "validation_macro_auroc_lab": je["labs"]["val"].macro,
            "test_macro_auroc_diagnosis": je["diagnoses"]["test"].macro,
            "test_macro_auroc_lab": je["labs"]["test"].macro,
            "epochs": {name: result.metrics.get("epochs") for name, result in stages.items()},
        },
    )


# ---- the whole table -------------------------------------------------------------------------------

# The trainings behind each row (the JE row needs all three stages of the method).
ROW_STAGES: dict[str, tuple[str, ...]] = {
    "signal": ("baseline-signal",),
    "mm-labs": ("baseline-mm-labs",),
    "mm-diag": ("baseline-mm-diag",),
    "je": ("pretrain", "finetune", "labs"),
}


def _stage_data(config: RunConfig) -> dict[str, tuple[TargetName | None, tuple[FeatureGroup, ...] | None]]:
    """What each training reads from the store: its target and its tabular feature groups."""
    needs: dict[str, tuple[TargetName | None, tuple[FeatureGroup, ...] | None]] = {
        "pretrain": (None, tuple(config.pretrain.tabular_groups)),
        "finetune": ("diagnoses", None),
        "labs": ("labs", None),
    }
    for kind in BASELINES:
        spec = baseline_spec(config, kind)
        needs[spec.name] = (spec.target, tuple(spec.tabular_groups) if spec.tabular_groups else None)
    return needs


def preflight(config: RunConfig, store: Path) -> dict[str, str | None]:
    """Row key → why it cannot be trained on this store (None: it can), checked before any training.

    Opens the store's splits exactly as each training will (labels present, usable records in every
    fold, at least one batch of training records, tabular features), which takes seconds, so a
    store without lab labels is found before an hour of pretraining rather than after it.
    """
    problems: dict[tuple[TargetName | None, tuple[FeatureGroup, ...] | None], str | None] = {}
    stage_problem: dict[str, str | None] = {}
    for stage, need in _stage_data(config).items():
        if need not in problems:
            target, groups = need
            try:
                datamodule = StoreDataModule(store, config.data, seed=config.seed, target=target, tabular_groups=groups)
                datamodule.setup()
                datamodule.dataset("test")
                problems[need] = None
            except DataError as error:
                problems[need] = str(error)
        stage_problem[stage] = problems[need]
    return {
        key: next((f"{stage}: {stage_problem[stage]}" for stage in stages if stage_problem[stage]), None)
        for key, stages in ROW_STAGES.items()
    }


def run_stages(
    config: RunConfig, store: Path, out: Path, resume: bool, rows: Sequence[str] = tuple(ROW_STAGES)
) -> dict[str, StageResult]:
    """The trainings behind the given Table 1 rows, each in its own folder (finished ones reused on resume)."""
    stages: dict[str, StageResult] = {}
    if "je" in rows:
        stages["pretrain"] = run_pretrain(config, store, out / "pretrain", resume=resume)
        stages["finetune"] = run_finetune(
            config, store, out / "finetune", pretrained_encoder=stages["pretrain"].encoder_path, resume=resume
        )
        stages["labs"] = run_labs(config, store, out / "labs", encoder=stages["finetune"].encoder_path, resume=resume)
    for kind in BASELINES:
        if kind in rows:
            stages[f"baseline-{kind}"] = run_baseline(kind, config, store, out / f"baseline-{kind}", resume=resume)
    return stages


def _requirement(flags: tuple[bool, bool, bool]) -> dict[str, bool]:
    return dict(zip(("routine", "lab", "diagnoses"), flags, strict=True))


NOT_AVAILABLE = "not available"


def _cell(score: dict[str, Any] | None, unavailable: str | None = None) -> str:
    if unavailable:
        return NOT_AVAILABLE
    if not score or score.get("macro_auroc") is None:
        return "-"
    low, high = score.get("ci_low"), score.get("ci_high")
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{score['macro_auroc']:.3f}{ci}"


def _paper_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_markdown(table: Table1) -> str:
    cohort, settings = table.cohort, table.settings
    lines = [
        "# Table 1 — ecgkt reproduction",
        "",
        f"Store: `{cohort['store']}` — {cohort['n_records']} ECGs "
        f"(train {cohort['n_train']}, val {cohort['n_val']}, test {cohort['n_test']}), "
        f"{cohort['n_diagnosis_labels']} diagnosis labels, {cohort['n_lab_labels']} lab-abnormality labels.",
        f"Preset `{settings['preset']}`, seed {settings['seed']}, objective `{settings['objective']}`, "
        f"frozen encoder layers in stage 2: {settings['freeze_layers']}, stage-3 encoder: {settings['labs_encoder']}, "
        + (
            f"pretrained on the pool `{settings['pretrain_pool']}`."
            if settings.get("pretrain_pool")
            else "pretrained on the store's training records."
        ),
        f"Test-fold macro AUROC with {settings['confidence']:.0%} bootstrap CI "
        f"({settings['bootstrap_resamples']} resamples of test records). ● required, ○ not required.",
        "",
        "| Model | Diagnoses | Lab | Inf. Routine | Inf. Lab | Inf. Diagnoses | Train Routine | Train Lab "
        "| Train Diagnoses | Paper Diagnoses | Paper Lab |",
        "|---|---|---|:-:|:-:|:-:|:-:|:-:|:-:|---|---|",
    ]
    for row in table.rows:
        inf = [FILLED if row["inference"][k] else EMPTY for k in ("routine", "lab", "diagnoses")]
        tr = [FILLED if row["training"][k] else EMPTY for k in ("routine", "lab", "diagnoses")]
        lines.append(
            f"| {row['model']} | {_cell(row['diagnoses'], row.get('unavailable'))} "
            f"| {_cell(row['labs'], row.get('unavailable'))} | "
            + " | ".join(inf + tr)
            + f" | {_paper_cell(row['paper']['diagnoses'])} | {_paper_cell(row['paper']['labs'])} |"
        )
    missing = [row for row in table.rows if row.get("unavailable")]
    if missing:
        lines += ["", "Rows not available on this store (they could not be trained):", ""]
        lines += [f"- {row['model']}: {row['unavailable']}" for row in missing]
    if table.comparisons:
        lines += [
            "",
            f"Paired differences on the same test records ({settings['confidence']:.0%} paired bootstrap CI, "
            f"{table.comparisons[0]['n_resamples']} resamples):",
            "",
            "| Comparison | Task | Δ macro AUROC | CI |",
            "|---|---|---|---|",
        ]
        for item in table.comparisons:
            ci = (
                f"[{item['ci_low']:+.3f}, {item['ci_high']:+.3f}]"
                if item["ci_low"] is not None and item["ci_high"] is not None
                else "-"
            )
            delta = "-" if item["delta"] is None else f"{item['delta']:+.3f}"
            lines.append(f"| {item['comparison']} | {item['task']} | {delta} | {ci} |")
    gaps = gap_lines(table)
    if gaps:
        lines += ["", *gaps]
    lines.append("")
    return "\n".join(lines)


def console_table(table: Table1, title: str = "Table 1 (test fold, macro AUROC [95% CI])") -> Any:
    """A Rich table of the four rows with the paper's numbers beside ours."""
    from rich.table import Table

    view = Table(title=title)
    view.add_column("Model", no_wrap=True)
    for column in ("Diagnoses", "paper", "Lab", "paper", "Inference needs", "Training needs"):
        view.add_column(column)

    def needs(flags: dict[str, bool]) -> str:
        return " ".join(FILLED if flags[k] else EMPTY for k in ("routine", "lab", "diagnoses"))

    for row in table.rows:
        view.add_row(
            row["model"],
            _cell(row["diagnoses"], row.get("unavailable")),
            _paper_cell(row["paper"]["diagnoses"]),
            _cell(row["labs"], row.get("unavailable")),
            _paper_cell(row["paper"]["labs"]),
            needs(row["inference"]),
            needs(row["training"]),
        )
    notes = [f"{row['model']} {NOT_AVAILABLE}: {row['unavailable']}" for row in table.rows if row.get("unavailable")]
    view.caption = "\n".join(["needs: routine lab diagnoses (● required, ○ not)", *notes])
    return view


def print_table(console: Any, table: Table1, title: str = "Table 1 (test fold, macro AUROC [95% CI])") -> None:
    """Table 1 on `console`: the Rich table on a terminal; the Markdown table otherwise (a log, CI),
    whose lines are never cut to the console width, so the numbers survive in the log."""
    if console.is_terminal:
        console.print(console_table(table, title=title))
        for line in gap_lines(table):
            console.print(line, highlight=False)
    else:
        console.print(f"{title}\n\n" + render_markdown(table), soft_wrap=True, highlight=False, markup=False)


def run_benchmark(
    config: RunConfig,
    store: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = True,
    ceiling_cohort: Path | None = None,
) -> Table1:
    """Run (or resume) every stage, score the four rows, write table1.md/json, CSVs, plots and the bundle.

    The store is checked first (`preflight`): a row that cannot be trained on it is reported in the
    table as not available, with the reason, and the other rows are still trained; when no row can
    be trained the benchmark stops before any training. `ceiling_cohort`: the synthetic cohort the
    store was built from; Table 1 then also reports the ECG-only oracle ceiling on the same test
    records and labels (`ecgkt.evaluate.ceiling`) and the share of the gap to it that JE closes.
    """
    store_path, out = Path(store), Path(out_dir)
    if ceiling_cohort is not None:  # its ground truth is checked before any training
        from ecgkt.evaluate.ceiling import oracle_features

        oracle_features(Store.open(store_path), ceiling_cohort)
    if config.pretrain.pool is not None:  # an explicit option: a bad pool is an error, not a missing row
        from ecgkt.train.transfer.splits import SplitError, check_pool

        try:
            check_pool(Path(config.pretrain.pool), store_path)
        except SplitError as error:
            raise StageError(str(error)) from None
    unavailable = preflight(config, store_path)
    trainable = [key for key, reason in unavailable.items() if reason is None]
    if not trainable:
        reasons = "; ".join(f"{key}: {reason}" for key, reason in unavailable.items())
        raise StageError(f"{store_path}: no Table 1 row can be trained on this store ({reasons})")
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / "config.yaml")
    stages = run_stages(config, store_path, out, resume, rows=trainable)
    if not is_global_zero():  # under DDP the other ranks only join the trainings
        return Table1(rows=[], cohort={}, settings=_settings(config), stages={})

    je_dir = out / "je"
    je: dict[Task, dict[str, Score]] | None = None
    if "je" in trainable:
        model = assemble_je_model(config, stages["finetune"], stages["labs"])
        je = evaluate_je(config, store_path, model, je_dir)
        manifest = build_manifest(config, store_path, je, stages)
        save_bundle(out / "bundle", model, manifest, config_yaml=config_to_yaml(config), overwrite=True)

    per_label = out / "per_label"
    per_label.mkdir(exist_ok=True)
    sources = {
        ("signal", "diagnoses"): out / "baseline-signal" / "per_label_auroc.csv",
        ("mm-labs", "labs"): out / "baseline-mm-labs" / "per_label_auroc.csv",
        ("mm-diag", "diagnoses"): out / "baseline-mm-diag" / "per_label_auroc.csv",
        ("je", "diagnoses"): je_dir / "per_label_auroc_diagnoses.csv",
        ("je", "labs"): je_dir / "per_label_auroc_labs.csv",
    }
    for (key, task), source in sources.items():
        if key in trainable:
            shutil.copyfile(source, per_label / f"{key}_{task}.csv")

    rows: list[dict[str, Any]] = []
    for spec in ROWS:
        scores: dict[str, dict[str, Any] | None] = {"diagnoses": None, "labs": None}
        for task in spec.tasks if spec.key in trainable else ():
            if spec.key == "je":
                assert je is not None
                scores[task] = je[task]["test"].as_dict()
            else:
                scores[task] = stages[f"baseline-{spec.key}"].metrics["test"]
        row = {
            "key": spec.key,
            "model": spec.model,
            "diagnoses": scores["diagnoses"],
            "labs": scores["labs"],
            "inference": _requirement(spec.inference),
            "training": _requirement(spec.training),
            "paper": PAPER_TABLE1[spec.key],
        }
        if unavailable[spec.key]:
            row["unavailable"] = unavailable[spec.key]
        rows.append(row)
    _write_plots(out, stages, je_dir if je is not None else None)
    table = Table1(
        comparisons=paired_comparisons(config, out, trainable),
        rows=rows,
        cohort=_cohort_summary(store_path, stages),
        settings=_settings(config),
        stages={
            name: {k: v for k, v in result.metrics.items() if k not in {"labels"}} for name, result in stages.items()
        },
    )
    if ceiling_cohort is not None:
        from ecgkt.evaluate.ceiling import store_ceiling_cached

        table.ceiling = store_ceiling_cached(store_path, ceiling_cohort, out / "ecg_only_ceiling.json")
    write_json(out / "table1.json", table.as_dict())
    write_text_atomically(out / "table1.md", render_markdown(table))
    return table


def _cohort_summary(store: Path, stages: dict[str, StageResult]) -> dict[str, Any]:
    manifest = Store.open(store).manifest
    diagnosis_stage = stages.get("baseline-signal") or stages.get("baseline-mm-diag") or stages.get("finetune")
    n = diagnosis_stage.metrics.get("n_records", {}) if diagnosis_stage is not None else {}
    lab_stage = stages.get("baseline-mm-labs")
    return {
        "store": str(store),
        "n_records": manifest.n_records,
        "n_train": n.get("train"),
        "n_val": n.get("val"),
        "n_test": n.get("test"),
        "n_diagnosis_labels": len(manifest.diagnosis_labels),
        "n_lab_labels": len(manifest.lab_labels),
        "n_lab_label_test_records": lab_stage.metrics.get("n_records", {}).get("test") if lab_stage else None,
        "build_parameters": manifest.build_parameters,
    }


def _settings(config: RunConfig) -> dict[str, Any]:
    return {
        "preset": config.preset,
        "seed": config.seed,
        "objective": config.pretrain.objective,
        "pretrain_pool": config.pretrain.pool,
        "freeze_layers": config.finetune.freeze_layers,
        "labs_encoder": config.labs.encoder,
        "bootstrap_resamples": config.evaluation.bootstrap_resamples,
        "confidence": config.evaluation.confidence,
        "encoder": config.encoder.model_dump(),
    }


def _write_plots(out: Path, stages: dict[str, StageResult], je_dir: Path | None) -> None:
    """ROC curves of the rows that were trained, and every stage's learning curves."""
    plots = out / "plots"

    def stage_curve(key: str) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
        probs, targets, _ = load_predictions(stages[key].out_dir / "predictions_test.npz")
        return targets, probs, float(stages[key].metrics["test"]["macro_auroc"] or np.nan)

    def je_curve(task: Task) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
        assert je_dir is not None
        probs, targets, _ = load_predictions(je_dir / f"predictions_{task}_test.npz")
        return targets, probs, _macro(targets, probs)

    diag_curves = {
        name: stage_curve(key)
        for name, key in (("Signal-only", "baseline-signal"), ("Multimodal classification", "baseline-mm-diag"))
        if key in stages
    }
    lab_curves = {"Multimodal lab prediction": stage_curve("baseline-mm-labs")} if "baseline-mm-labs" in stages else {}
    if je_dir is not None:
        diag_curves["JE + Reconstruction"] = je_curve("diagnoses")
        lab_curves["JE + Reconstruction"] = je_curve("labs")
    if diag_curves:
        plot_roc(plots / "roc_diagnoses.png", "Diagnoses (test fold)", diag_curves)
    if lab_curves:
        plot_roc(plots / "roc_labs.png", "Lab abnormalities (test fold)", lab_curves)
    plot_learning_curves(plots / "learning_curves.png", {name: read_history(r.out_dir) for name, r in stages.items()})


def _macro(targets: NDArray[np.float32], probs: NDArray[np.float32]) -> float:
    from ecgkt.evaluate.metrics import masked_macro_auroc

    return float(masked_macro_auroc(targets, probs))
