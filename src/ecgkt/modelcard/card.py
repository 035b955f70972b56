"""Build a model card from what a bundle records about itself, never from what we hope it is.

Sections follow "Model Cards for Model Reporting" (Mitchell et al., FAT* 2019): model details,
intended use, training data and cohort, evaluation (Table 1 when `ecgkt benchmark` wrote it next to
the bundle), calibration, per-label validation AUROC, and limits. Every number comes from
`bundle.json` (or the benchmark's `table1.md/json` beside the bundle); a missing item is stated as
missing. HTML is the same Markdown rendered by markdown-it (tables enabled), HTML-escaped input.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ecgkt.bundle import BundleManifest, read_manifest

__all__ = ["model_card_html", "model_card_markdown"]

INTENDED_USE = (
    "Research on transferring laboratory and diagnostic knowledge into an ECG-only model (ecgkt, "
    "after Alcaraz & Strodthoff). Input: one resting 12-lead ECG (≥ 2.5 s). Output: probabilities of "
    "ICD-10-CM discharge diagnoses and of abnormal lab values near the ECG, with lab-grounded explanations."
)
LIMITS = [
    "Not a medical device; outputs are not diagnoses and must not drive care without clinician review.",
    "Trained on the cohort named below; a bundle trained on the synthetic cohort says nothing about real "
    "patients — its numbers show the software works, not clinical performance.",
    "MDS-ED labels come from emergency-department stays (MIMIC-IV, one US centre): discharge codes and "
    "lab abnormalities within ±60 min of the ECG; other settings, populations and devices are untested.",
    "Lab-abnormality labels with fewer than 10 positives/negatives in validation or test are dropped; "
    "rare conditions are therefore absent, not predicted negative.",
    "ECG measurements (intervals, axes) come from ecgkt.measure, validated only against synthetic truth "
    "(benchmarks/results/measurements.md).",
]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _auroc_table(title: str, aurocs: dict[str, float | None], titles: dict[str, str], limit: int = 15) -> list[str]:
    known = sorted(((k, v) for k, v in aurocs.items() if v is not None and math.isfinite(v)), key=lambda kv: -kv[1])
    lines = [f"### {title}", ""]
    if not known:
        return [*lines, "No validation AUROC recorded in the bundle.", ""]
    shown = known if len(known) <= 2 * limit else known[:limit] + known[-limit:]
    lines += ["| label | description | validation AUROC |", "| --- | --- | --- |"]
    lines += [f"| {k} | {titles.get(k, '')} | {v:.3f} |" for k, v in shown]
    if len(shown) < len(known):
        lines.append(f"\n({len(known) - len(shown)} labels between the {limit} best and {limit} worst not shown.)")
    return [*lines, ""]


def _table1(bundle: Path) -> tuple[list[str], dict[str, Any] | None]:
    folder = bundle.resolve().parent
    md, js = folder / "table1.md", folder / "table1.json"
    cohort: dict[str, Any] | None = None
    if js.is_file():
        try:
            data = json.loads(js.read_text())
            cohort = data.get("cohort") if isinstance(data, dict) else None
        except json.JSONDecodeError:
            cohort = None
    if md.is_file():
        body = md.read_text(encoding="utf-8").strip().splitlines()
        body = [("#" + line if line.startswith("#") else line) for line in body]  # nest its headings
        return ["## Evaluation (Table 1 of the run that produced this bundle)", "", *body, ""], cohort
    return ["## Evaluation", "", "No `table1.md` next to the bundle (it was not produced by `ecgkt benchmark`, "
            "or was moved); see the per-label validation AUROC below.", ""], cohort


def model_card_markdown(bundle: Path) -> str:
    """The model card of `bundle` as Markdown (raises BundleError for a missing or invalid bundle)."""
    manifest: BundleManifest = read_manifest(bundle)
    training = manifest.training
    evaluation, cohort = _table1(bundle)
    pre = manifest.preprocessing
    lines = [
        f"# Model card: {bundle.resolve().name}",
        "",
        "## Model details",
        "",
        f"- ecgkt version that built it: {manifest.ecgkt_version}; bundle format {manifest.format_version}; "
        f"created {manifest.created_utc}",
        f"- Architecture: ECG encoder {manifest.encoder.model_dump()} with a diagnosis head "
        f"({len(manifest.diagnosis_labels)} labels) and a lab-abnormality head ({len(manifest.lab_labels)} labels)",
        f"- Training: preset {_fmt(training.get('preset'))}, seed {_fmt(training.get('seed'))}, pretraining "
        f"objective {_fmt(training.get('objective'))}, epochs {_fmt(training.get('epochs'))}",
        f"- Input: {len(pre.leads)} leads ({', '.join(pre.leads)}), resampled to {pre.sampling_rate_hz:g} Hz, "
        f"clipped to ±{pre.clip_mv:g} mV, {pre.n_windows} windows of {pre.window_samples} samples averaged",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Training data and cohort",
        "",
        f"- Store: {_fmt(training.get('store'))} ({_fmt(training.get('store_n_records'))} records)",
        f"- Sources: {_fmt(training.get('store_sources'))}",
    ]
    if cohort:
        lines += [f"- Split (records): train {_fmt(cohort.get('n_train'))}, validation {_fmt(cohort.get('n_val'))}, "
                  f"test {_fmt(cohort.get('n_test'))}",
                  f"- Build parameters: {_fmt(cohort.get('build_parameters'))}"]
    lines += [
        "- Protocol: MDS-ED on MIMIC-IV-ECG (ED stays, ECG within 90 min of arrival); lab labels by the "
        "CardioLab rule (value outside the median MIMIC reference range within ±60 min); 20 subject-grouped "
        "folds, 0–17 train, 18 validation, 19 test.",
        "",
        *evaluation,
        f"- Validation macro AUROC: diagnoses {_fmt(training.get('validation_macro_auroc_diagnosis'))}, labs "
        f"{_fmt(training.get('validation_macro_auroc_lab'))}; test macro AUROC: diagnoses "
        f"{_fmt(training.get('test_macro_auroc_diagnosis'))}, labs {_fmt(training.get('test_macro_auroc_lab'))}",
        "",
        "## Calibration",
        "",
    ]
    if manifest.temperature_diagnosis is None and manifest.thresholds_diagnosis is None:
        lines.append("Not calibrated: probabilities are raw sigmoid outputs and every decision threshold is 0.5 "
                     "(run `ecgkt calibrate`).")
    else:
        lines.append(f"- Temperature scaling: diagnoses T = {_fmt(manifest.temperature_diagnosis)}, labs "
                     f"T = {_fmt(manifest.temperature_lab)} (fitted on the validation fold)")
        n_thr = len(manifest.thresholds_diagnosis or {}) + len(manifest.thresholds_lab or {})
        lines.append(f"- Per-label decision thresholds: {n_thr} set on the validation fold")
    lines += ["", "## Per-label validation AUROC", ""]
    lines += _auroc_table("Diagnoses", manifest.validation_auroc_diagnosis, manifest.diagnosis_titles)
    lines += _auroc_table("Lab abnormalities", manifest.validation_auroc_lab, {})
    lines += ["## Limits", "", *[f"- {item}" for item in LIMITS], ""]
    return "\n".join(lines)


def model_card_html(bundle: Path) -> str:
    """The same card as a standalone HTML page."""
    from markdown_it import MarkdownIt

    text = model_card_markdown(bundle)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    title = html.escape(f"Model card: {bundle.resolve().name}")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;line-height:1.45}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")
