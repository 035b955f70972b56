"""The explanation evaluation as a Markdown table (terminal, benchmarks/results) and as JSON."""

from __future__ import annotations

import math
from pathlib import Path

from ecgkt.atomic_files import write_text_atomically
from ecgkt.explain.evaluation import ExplanationEvaluation

METHOD_DESCRIPTIONS: dict[str, str] = {
    "association": "phi(dx, lab) in training fold × lab probability",
    "gradient": "cos(∂diag/∂h_x, ∂lab/∂h_x)",
    "gradient_x_probability": "gradient cosine × lab probability",
    "surrogate": "L1 surrogate: coef × lab probability",
    "surrogate_centered": "L1 surrogate: coef × (lab prob − val mean)",
    "cooccurrence": "baseline: label phi in training fold",
    "probability": "baseline: lab probability (the paper)",
    "random": "baseline: random",
}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def evaluation_markdown(evaluation: ExplanationEvaluation) -> str:
    lines = [
        f"Explanation evaluation on the {evaluation.split} fold: {evaluation.n_records} records, "
        f"{evaluation.n_diagnoses} diagnosis labels, {evaluation.n_labs} lab-abnormality labels "
        f"(bundle {'calibrated' if evaluation.calibrated else 'NOT calibrated: thresholds 0.5'}).",
        "",
    ]
    if evaluation.methods:
        n_eval = len(evaluation.diagnoses_evaluated)
        lines += [
            f"Ground truth: {n_eval} diagnosis labels map to a latent state with lab drivers among the bundle's "
            f"labs ({len(evaluation.skipped_no_state)} map to no state, {len(evaluation.skipped_no_lab_driver)} "
            "to states without lab drivers). Cases: " + evaluation.selection + ".",
            "",
            "| method | what | P@1 | P@3 | P@5 | MAP | diagnoses | cases | ms/record |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for m in sorted(evaluation.methods, key=lambda m: (m.baseline, -_finite(m.mean_average_precision))):
            lines.append(
                f"| {m.method} | {METHOD_DESCRIPTIONS.get(m.method, '')} | {_fmt(m.precision_at.get('1'))} | "
                f"{_fmt(m.precision_at.get('3'))} | {_fmt(m.precision_at.get('5'))} | "
                f"{_fmt(m.mean_average_precision)} | {m.n_diagnoses} | {m.n_cases} | {m.ms_per_record:.3f} |"
            )
        lines.append("")
    else:
        lines += ["No ground truth given (or no diagnosis maps to one): ranking metrics skipped.", ""]
    f = evaluation.fidelity
    lines += [
        "Surrogate fidelity (fitted on the validation fold, measured on the held-out fold):",
        "",
        "| diagnoses | R² mean | R² median | CV R² median (val) | AUROC vs model call | labs used per diagnosis |",
        "|---|---|---|---|---|---|",
        f"| {f.n_diagnoses} | {_fmt(f.r2_mean)} | {_fmt(f.r2_median)} | {_fmt(f.cv_r2_median_validation)} | "
        f"{_fmt(f.call_auroc_mean)} | {f.mean_labs_used:.1f} |",
        "",
    ]
    if evaluation.output_variance_explained:
        shares = ", ".join(f"{100 * v:.1f} %" for v in evaluation.output_variance_explained)
        lines += [
            f"Effective dimension of the model's outputs: the top principal components of all "
            f"{evaluation.n_diagnoses + evaluation.n_labs} standardised output logits carry {shares} "
            "of their variance.",
            "",
        ]
    return "\n".join(lines)


def per_diagnosis_markdown(evaluation: ExplanationEvaluation, methods: tuple[str, ...]) -> str:
    """P@1 per evaluated diagnosis for the chosen methods, with its true drivers."""
    scores = {m.method: m for m in evaluation.methods if m.method in methods}
    header = "| diagnosis | true lab drivers | called positive | " + " | ".join(f"P@1 {m}" for m in scores) + " |"
    lines = [header, "|" + "---|" * (3 + len(scores))]
    for label, drivers in sorted(evaluation.diagnoses_evaluated.items()):
        cells = [_fmt(scores[m].per_diagnosis.get(label, {}).get("p@1"), 2) for m in scores]
        shown = ", ".join(drivers[:4]) + (f" (+{len(drivers) - 4})" if len(drivers) > 4 else "")
        called = evaluation.diagnoses_called_positive.get(label, 0)
        lines.append(f"| {label} | {shown} | {called} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1.0


def write_json(path: Path, evaluation: ExplanationEvaluation) -> Path:
    return write_text_atomically(path, evaluation.model_dump_json(indent=2) + "\n")
