"""Aggregating the transfer study: pooled paired differences to signal-only with 95 % CIs.

For arm a at label fraction f, replicate r contributes Δ_r = macroAUROC_a − macroAUROC_signal on
its own test records (the primary labels only; a different test fold per replicate). The pooled
difference is the mean of Δ_r over the replicates where both runs finished. Two intervals:

- **paired bootstrap over records, combined over replicates**: each draw resamples the test
  records of every replicate (with replacement, within the replicate), scores both models on the
  same draw, and averages the per-replicate differences: the test-sampling uncertainty of the
  pooled Δ. Percentile interval.
- **across replicates**: Student-t interval of the mean of Δ_r (n − 1 degrees of freedom), which
  also carries the seed-to-seed (training) variation. Report both; conclusions use the wider.

"Gap closed" = (arm − signal) / (reference − signal) of the pooled means, with the reference the
multimodal model (as the paper) or the ECG-only oracle ceiling (noise-free ECG parameters +
demographics → diagnoses, from the generator's realism benchmark), which is reachable in principle.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ecgkt.atomic_files import write_text_atomically
from ecgkt.evaluate.metrics import _nanmean_rows, _sorted_labels
from ecgkt.train.evaluation import load_predictions, write_json

__all__ = [
    "ReplicatePredictions",
    "aggregate",
    "load_ceiling",
    "pooled_paired_difference",
    "write_report",
]

ARM_TITLES = {
    "signal": "Signal-only (reference)",
    "multimodal": "Multimodal classification (needs tabular data)",
    "je-barlow": "JE Barlow Twins → fine-tune (paper)",
    "je-infonce": "JE InfoNCE → fine-tune",
    "je-vicreg": "JE VICReg → fine-tune",
    "regft": "JE + regularised fine-tuning (L2-SP)",
    "distill": "Multimodal-teacher distillation",
}
REPORT_NAME = "transfer_study"


ReplicatePredictions = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]  # targets, a, b


def _macro_weighted(
    targets: NDArray[np.float32], scores: NDArray[np.float32], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    labels = [label for label in _sorted_labels(targets.astype(np.float64), scores.astype(np.float64)) if label]
    if not labels:
        return np.full(weights.shape[0], np.nan)
    return _nanmean_rows(np.stack([label.auroc(weights) for label in labels], axis=1))


def pooled_paired_difference(
    replicates: Sequence[ReplicatePredictions], *, n_resamples: int, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """Pooled Δ = mean_r [macro(a_r) − macro(b_r)] with a paired, replicate-stratified bootstrap CI
    and an across-replicate t interval (module docstring)."""
    if not replicates:
        raise ValueError("no replicate to pool")
    rng = np.random.default_rng(seed)
    deltas, draws = [], np.zeros(n_resamples)
    for targets, a, b in replicates:
        n = targets.shape[0]
        unit = np.ones((1, n))
        deltas.append(float(_macro_weighted(targets, a, unit)[0] - _macro_weighted(targets, b, unit)[0]))
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)]).astype(
            np.float64
        )
        draws += _macro_weighted(targets, a, counts) - _macro_weighted(targets, b, counts)
    draws /= len(replicates)
    finite = draws[np.isfinite(draws)]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail]) if finite.size else (math.nan, math.nan)
    mean = float(np.mean(deltas))
    result: dict[str, Any] = {
        "delta": mean,
        "ci_low": float(low),
        "ci_high": float(high),
        "per_replicate": deltas,
        "n_replicates": len(deltas),
        "n_resamples": n_resamples,
    }
    if len(deltas) >= 2:
        from scipy import stats

        sd = float(np.std(deltas, ddof=1))
        half = float(stats.t.ppf(1.0 - tail, len(deltas) - 1)) * sd / math.sqrt(len(deltas))
        result.update(sd_across_replicates=sd, t_ci_low=mean - half, t_ci_high=mean + half)
    return result


def load_ceiling(path: Path, key: str) -> float:
    """A number at dotted `key` in the JSON file `path` (e.g. the realism benchmark's ceilings)."""
    from ecgkt.train.transfer.errors import StudyError

    if not path.is_file():
        raise StudyError(f"{path}: ceilings file not found")
    try:
        node: Any = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not valid JSON ({error})") from None
    available = ", ".join(_numeric_keys(node)[:30])
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise StudyError(f"{path}: no value at '{key}' (--ceiling-key); numeric entries: {available}")
        node = node[part]
    if isinstance(node, Mapping) and "macro_auroc" in node:
        node = node["macro_auroc"]
    if not isinstance(node, int | float):
        raise StudyError(f"{path}: '{key}' is not a number")
    return float(node)


def _numeric_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, Mapping):
        keys: list[str] = []
        for k, v in node.items():
            keys += _numeric_keys(v, f"{prefix}{k}.")
        return keys
    return [prefix.rstrip(".")] if isinstance(node, int | float) and not isinstance(node, bool) else []


def _primary_view(path: str, labels: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    probs, targets, names = load_predictions(Path(path))
    index = [names.index(name) for name in labels]
    return targets[:, index], probs[:, index]


def aggregate(out: Path) -> dict[str, Any]:
    """Read every finished unit of the study in `out` and compute the pooled results."""
    plan = json.loads((out / "study_plan.json").read_text())
    config = plan["config"]
    labels: list[str] = plan["primary_labels"]
    units = [json.loads(p.read_text()) for p in sorted((out / "units").glob("*/unit.json"))]
    by_cell: dict[tuple[str, float], dict[int, dict[str, Any]]] = defaultdict(dict)
    pretrain: list[dict[str, Any]] = []
    for record in units:
        if record["kind"] == "pretrain":
            pretrain.append(record)
        else:
            by_cell[(record["arm"], float(record["fraction"]))][int(record["replicate"])] = record
    ceiling = None
    if config.get("ceilings"):
        ceiling = load_ceiling(Path(config["ceilings"]), config.get("ceiling_key", ""))
    cells: list[dict[str, Any]] = []
    for fraction in sorted({float(f) for f in config["fractions"]}):
        signal = by_cell.get(("signal", fraction), {})
        multimodal = by_cell.get(("multimodal", fraction), {})
        means: dict[str, float] = {}
        for arm in config["arms"]:
            runs = by_cell.get((arm, fraction), {})
            macros = {}
            for r, record in runs.items():
                targets, probs = _primary_view(record["predictions_test"], labels)
                unit = np.ones((1, targets.shape[0]))
                macros[r] = float(_macro_weighted(targets, probs, unit)[0])
            cell: dict[str, Any] = {
                "arm": arm,
                "fraction": fraction,
                "n_replicates": len(runs),
                "macro_auroc_per_replicate": macros,
                "macro_auroc_mean": float(np.mean(list(macros.values()))) if macros else None,
                "wall_seconds_mean": float(np.mean([r["wall_seconds"] for r in runs.values()])) if runs else None,
                "cpu_seconds_mean": float(np.mean([r.get("cpu_seconds", np.nan) for r in runs.values()]))
                if runs
                else None,
                "epochs": sorted({r.get("max_epochs") for r in runs.values()} - {None}),
                "n_labelled": sorted({r.get("n_labelled") for r in runs.values()} - {None}),
            }
            if macros:
                means[arm] = cell["macro_auroc_mean"]
            paired = sorted(set(runs) & set(signal))
            if arm != "signal" and paired:
                replicates = []
                for r in paired:
                    t_a, p_a = _primary_view(runs[r]["predictions_test"], labels)
                    t_b, p_b = _primary_view(signal[r]["predictions_test"], labels)
                    if not np.array_equal(t_a, t_b, equal_nan=True):
                        raise ValueError(f"replicate {r}: {arm} and signal were scored on different test records")
                    replicates.append((t_a, p_a, p_b))
                cell["vs_signal"] = pooled_paired_difference(
                    replicates, n_resamples=int(config["bootstrap_resamples"]), seed=int(config["base_seed"])
                )
                common = sorted(set(paired) & set(multimodal))
                if common and arm != "multimodal":
                    arm_mean = np.mean([macros[r] for r in common])
                    sig = np.mean([_score(signal[r], labels) for r in common])
                    mm = np.mean([_score(multimodal[r], labels) for r in common])
                    cell["gap_closed_multimodal"] = float((arm_mean - sig) / (mm - sig)) if mm != sig else None
                if ceiling is not None and arm != "multimodal":
                    sig_all = np.mean([_score(signal[r], labels) for r in paired])
                    arm_all = np.mean([macros[r] for r in paired])
                    cell["gap_closed_ceiling"] = float((arm_all - sig_all) / (ceiling - sig_all))
            cells.append(cell)
    return {
        "plan": {k: v for k, v in plan.items() if k != "replicates"},
        "replicates": plan["replicates"],
        "n_primary_labels": len(labels),
        "ecg_only_ceiling": ceiling,
        "cells": cells,
        "pretraining": pretrain,
        "units_done": len(units),
        "wall_seconds_total": round(sum(r["wall_seconds"] for r in units), 1),
    }


def _score(record: dict[str, Any], labels: Sequence[str]) -> float:
    targets, probs = _primary_view(record["predictions_test"], labels)
    return float(_macro_weighted(targets, probs, np.ones((1, targets.shape[0])))[0])


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _fmt_seconds(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.0f}"


def render_markdown(result: dict[str, Any]) -> str:
    plan = result["plan"]
    config = plan["config"]
    lines = [
        "# Transfer study: does tabular knowledge move into the ECG-only encoder?",
        "",
        f"Store `{plan['store']}` ({plan['store_n_records']} ECGs), preset `{config['preset']}`; "
        f"{config['replicates']} replicates (own seed, own rotated test fold); label fractions "
        f"{', '.join(f'{f:g}' for f in config['fractions'])}; primary labels: the {result['n_primary_labels']} of "
        f"{plan['n_diagnosis_labels']} diagnosis labels with ≥ {config['min_test_positives']} positives in every "
        "replicate's test fold (fixed in `study_plan.json` before the runs).",
        f"Units finished: {result['units_done']}; summed wall time {result['wall_seconds_total'] / 3600:.2f} h.",
        "",
        "Δ = macro AUROC(arm) − macro AUROC(signal-only) on the same test records, mean over replicates. "
        "CI (records): paired bootstrap over test records within each replicate, combined over replicates. "
        "CI (seeds): t interval over the per-replicate Δ. Gap closed = Δ / (reference − signal-only).",
        "",
    ]
    ceiling = result.get("ecg_only_ceiling")
    if ceiling is not None:
        lines += [f"ECG-only oracle ceiling (from `{config.get('ceilings')}`): {ceiling:.3f}.", ""]
    for fraction in sorted({c["fraction"] for c in result["cells"]}):
        lines += [
            f"## {fraction:.0%} of the training records labelled",
            "",
            "| arm | reps | macro AUROC | Δ vs signal | CI (records) | CI (seeds) | gap closed (multimodal) "
            "| gap closed (ECG ceiling) | epochs | wall s / run | CPU s / run |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for cell in (c for c in result["cells"] if c["fraction"] == fraction):
            vs = cell.get("vs_signal") or {}
            ci_r = f"[{_fmt(vs.get('ci_low'), True)}, {_fmt(vs.get('ci_high'), True)}]" if vs else "–"
            ci_s = f"[{_fmt(vs.get('t_ci_low'), True)}, {_fmt(vs.get('t_ci_high'), True)}]" if "t_ci_low" in vs else "–"
            wall, cpu = cell.get("wall_seconds_mean"), cell.get("cpu_seconds_mean")
            title = ARM_TITLES.get(cell["arm"], cell["arm"])
            lines.append(
                f"| {title} | {cell['n_replicates']} | {_fmt(cell['macro_auroc_mean'])} "
                f"| {_fmt(vs.get('delta'), True) if vs else '–'} | {ci_r} | {ci_s} "
                f"| {_fmt(cell.get('gap_closed_multimodal'))} | {_fmt(cell.get('gap_closed_ceiling'))} "
                f"| {','.join(str(e) for e in cell['epochs']) or '–'} | {_fmt_seconds(wall)} | {_fmt_seconds(cpu)} |"
            )
        lines.append("")
    lines += ["## Settings", "", "```json", json.dumps(config, indent=2), "```", ""]
    if result["pretraining"]:
        lines += ["Pretraining runs (shared by the fractions of a replicate):", ""]
        lines += ["| unit | objective | λ | projector | pairs | epochs | s |", "|---|---|---|---|---|---|---|"]
        for record in sorted(result["pretraining"], key=lambda r: r["unit"]):
            projector = record.get("projector") or {}
            n = record.get("n_pretrain_records") or {}
            lam = f"{record['barlow_lambda']:.4g}" if record.get("objective") == "barlow_twins" else "–"
            lines.append(
                f"| {record['unit']} | {record.get('objective')} | {lam} "
                f"| {projector.get('hidden')}→{projector.get('out_dim')} | {n.get('train')} | {record.get('epochs')} "
                f"| {record['wall_seconds']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Δ vs signal-only (with the records CI) against the label fraction, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecgkt.atomic_files import replacing

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    arms = [a for a in result["plan"]["config"]["arms"] if a != "signal"]
    for offset, arm in enumerate(arms):
        cells = [c for c in result["cells"] if c["arm"] == arm and c.get("vs_signal")]
        if not cells:
            continue
        x = np.array([c["fraction"] for c in cells]) * (1.0 + 0.03 * (offset - len(arms) / 2))
        y = np.array([c["vs_signal"]["delta"] for c in cells])
        low = y - np.array([c["vs_signal"]["ci_low"] for c in cells])
        high = np.array([c["vs_signal"]["ci_high"] for c in cells]) - y
        axis.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=ARM_TITLES.get(arm, arm))
    axis.axhline(0.0, color="grey", linewidth=1, linestyle=":")
    axis.set_xscale("log")
    axis.set_xlabel("fraction of training records labelled")
    axis.set_ylabel("Δ macro AUROC vs signal-only (primary labels)")
    axis.set_title("Transfer study: pooled paired Δ, 95 % CI over records")
    axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    with replacing(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
    return path


def write_report(out: Path, results_dir: Path | None = None) -> dict[str, Any]:
    """Aggregate and write transfer_study.{json,md,png} into `out` (and `results_dir` if given)."""
    result = aggregate(out)
    markdown = render_markdown(result)
    for folder in [out] + ([results_dir] if results_dir is not None else []):
        write_json(folder / f"{REPORT_NAME}.json", result)
        write_text_atomically(folder / f"{REPORT_NAME}.md", markdown)
        if any(c.get("vs_signal") for c in result["cells"]):
            plot(result, folder / f"{REPORT_NAME}.png")
    return result
