"""Explanation quality on the synthetic cohort: do the methods rank each diagnosis's true lab drivers first?

Why: issue 5 asks for per-diagnosis explanations grounded in lab abnormalities, chosen by
measurement. The synthetic cohort knows which lab abnormalities each latent state causes
(ground_truth/graph.json), so every method's ranking can be scored (precision@1/3/5, MAP) against
references measured in the same run on the same records: a random ranking (chance level), label
co-occurrence in the training fold, and the paper's explanation (the concurrent lab probabilities).
Fidelity of the surrogate (R² of its logits against the model's, on held-out records) is reported too.

Pipeline (each step skipped when its output exists in --workdir): `ecgkt synth` → `ecgkt build` →
training stages 1–3 with a shortened `cpu` preset (TRAINING_OVERRIDES; the bundle is assembled as
`ecgkt benchmark` does) → `ecgkt calibrate` → the evaluation of `ecgkt explain-eval`.
Or pass an existing --bundle, --store and --ground-truth.

Run: `.venv/bin/python benchmarks/explain_eval.py [--workdir W] [--patients 3000] [--seed 7]`;
writes benchmarks/results/explain_eval.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ECGKT = [sys.executable, "-m", "ecgkt.cli"]
CHOSEN = ("association", "gradient_x_probability", "surrogate", "cooccurrence", "probability", "random")


def _run(args: list[str], log: Path) -> None:
    print("$ ecgkt " + " ".join(args[len(ECGKT) :]), flush=True)
    with log.open("a") as stream:
        subprocess.run(args, check=True, stdout=stream, stderr=subprocess.STDOUT)


# The bundle is trained with the `cpu` preset made smaller and shorter so the whole benchmark fits a
# 2-core machine in well under an hour; explanations are measured on whatever the training reaches
# (its validation AUROC is printed with the results). Baselines are not trained: not needed here.
TRAINING_OVERRIDES: dict[str, object] = {
    "encoder": {"d_model": 32, "n_layers": 2},
    "pretrain": {"optim": {"max_epochs": 2}},
    "finetune": {"optim": {"max_epochs": 8}, "freeze_layers": 1},  # half the blocks, as the preset does
    "labs": {"optim": {"max_epochs": 6}},
    "ablation": {"freeze_layers": [0, 1, 2]},  # only validated against n_layers; unused here
}


# The Table 1 model: the `cpu` preset unchanged (benchmarks/results/table1.md), one thread as there.
TABLE1_OVERRIDES: dict[str, object] = {"trainer": {"cpu_threads": 1}}


def train_bundle(store: Path, run: Path, overrides: dict[str, object] | None = None) -> Path:
    """Stages 1–3 and the assembled ECG-only bundle, exactly as `ecgkt benchmark` assembles it."""
    from ecgkt.bundle import save_bundle
    from ecgkt.config import config_to_yaml, load_config, write_config
    from ecgkt.train.benchmark import assemble_je_model, build_manifest, evaluate_je
    from ecgkt.train.stages import run_finetune, run_labs, run_pretrain

    config = load_config("cpu", overrides=TRAINING_OVERRIDES if overrides is None else overrides)
    run.mkdir(parents=True, exist_ok=True)
    write_config(config, run / "config.yaml")
    stages = {"pretrain": run_pretrain(config, store, run / "pretrain", resume=True)}
    stages["finetune"] = run_finetune(
        config, store, run / "finetune", pretrained_encoder=stages["pretrain"].encoder_path, resume=True
    )
    stages["labs"] = run_labs(config, store, run / "labs", encoder=stages["finetune"].encoder_path, resume=True)
    model = assemble_je_model(config, stages["finetune"], stages["labs"])
    je = evaluate_je(config, store, model, run / "je")
    return save_bundle(
        run / "bundle",
        model,
        build_manifest(config, store, je, stages),
        config_yaml=config_to_yaml(config),
        overwrite=True,
    )


def prepare(workdir: Path, patients: int, seed: int) -> tuple[Path, Path, Path]:
    """Synthetic cohort → store → trained bundle → calibrated bundle (each step skipped when done)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "pipeline.log"
    synth, store, run = workdir / "synth", workdir / "store", workdir / "run"
    if not (synth / "ground_truth" / "graph.json").exists():
        _run([*ECGKT, "synth", "--out", str(synth), "--patients", str(patients), "--seed", str(seed)], log)
    if not (store / "manifest.json").exists():
        _run([*ECGKT, "build", "--synthetic", str(synth), "--out", str(store), "--quiet"], log)
    bundle = run / "bundle"
    if not (bundle / "bundle.json").exists():
        print("training stages 1-3 (cpu preset, shortened) ...", flush=True)
        train_bundle(store, run)
    if not (bundle / "explanation_association.json").exists():
        _run([*ECGKT, "calibrate", str(bundle), str(store)], log)
    return bundle, store, synth / "ground_truth"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ecgkt-explain-eval"))
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--ground-truth", type=Path)
    parser.add_argument("--max-records", type=int, default=2000)
    args = parser.parse_args()

    import torch

    from ecgkt.explain.evaluation import evaluate_explanations
    from ecgkt.explain.report_table import evaluation_markdown, per_diagnosis_markdown

    torch.set_num_threads(2)
    if args.bundle and args.store and args.ground_truth:
        bundle, store, truth = args.bundle, args.store, args.ground_truth
    else:
        bundle, store, truth = prepare(args.workdir, args.patients, args.seed)
    started = time.perf_counter()
    evaluation = evaluate_explanations(bundle, store, truth, split="test", max_records=args.max_records, seed=0)
    seconds = time.perf_counter() - started

    by_name = {m.method: m for m in evaluation.methods}
    random = by_name.get("random")
    ratios = {}
    for name, m in by_name.items():
        if random is not None and random.mean_average_precision > 0:
            ratios[name] = {
                "map_over_random": m.mean_average_precision / random.mean_average_precision,
                "p1_over_random": m.precision_at["1"] / random.precision_at["1"] if random.precision_at["1"] else None,
            }
    manifest = json.loads((Path(bundle) / "bundle.json").read_text())
    training = manifest.get("training", {})
    lines = [
        "# Explanation quality on the synthetic cohort",
        "",
        f"Generated by `benchmarks/explain_eval.py` on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} CPUs, torch {torch.__version__}); evaluation took {seconds:.1f} s.",
        f"Bundle: preset {training.get('preset')!r}, trained on {training.get('store_n_records')} ECGs; "
        f"validation macro AUROC diagnoses {_fmt(training.get('validation_macro_auroc_diagnosis'))}, "
        f"labs {_fmt(training.get('validation_macro_auroc_lab'))}.",
        "",
        evaluation_markdown(evaluation),
        "Ratio to the random baseline measured in the same run (MAP / P@1):",
        "",
        "| method | MAP ÷ random | P@1 ÷ random |",
        "|---|---|---|",
    ]
    for name, ratio in sorted(ratios.items(), key=lambda item: -item[1]["map_over_random"]):
        lines.append(f"| {name} | {_fmt(ratio['map_over_random'])} | {_fmt(ratio['p1_over_random'])} |")
    lines += ["", "P@1 per diagnosis label:", "", per_diagnosis_markdown(evaluation, CHOSEN)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain_eval.md").write_text("\n".join(lines))
    payload = evaluation.model_dump(mode="json")
    payload["ratios_to_random"] = ratios
    payload["seconds"] = seconds
    (RESULTS / "explain_eval.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
