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

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ecgkt.atomic_files import replacing, write_text_atomically
from ecgkt.evaluate.metrics import _nanmean_rows, _sorted_labels
from ecgkt.train.evaluation import load_predictions, write_json

__all__ = [
    "ReplicatePredictions",
    "RunScores",
    "ScoredRun",
    "aggregate",
    "best_arm",
    "load_ceiling",
    "plan_digest",
    "pool_differences",
    "pooled_paired_difference",
    "resample_counts",
    "resolves",
    "score_run",
    "verdict",
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

CACHE_DIR = "report_cache"
RESOLUTION = 0.01  # the bar: an interval no wider than ±0.01 resolves the question


def _macro_weighted(
    targets: NDArray[np.float32], scores: NDArray[np.float32], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    labels = [label for label in _sorted_labels(targets.astype(np.float64), scores.astype(np.float64)) if label]
    if not labels:
        return np.full(weights.shape[0], np.nan)
    return _nanmean_rows(np.stack([label.auroc(weights) for label in labels], axis=1))


def resample_counts(n_records: int, replicate: int, n_resamples: int, seed: int) -> NDArray[np.float64]:
    """(n_resamples, n_records) bootstrap multiplicities of one replicate's test records.

    Seeded by (seed, replicate) alone, so every arm of a replicate is scored on the same draws: the
    difference of two arms' draws is then a paired bootstrap, and each run's draws can be computed
    once, cached, and paired with any other arm later (the report after each unit stays cheap)."""
    rng = np.random.default_rng([seed, replicate])
    return np.stack(
        [np.bincount(rng.integers(0, n_records, n_records), minlength=n_records) for _ in range(n_resamples)]
    ).astype(np.float64)


@dataclass(frozen=True)
class ScoredRun:
    """One run's macro AUROC on its test records (`point`) and on every bootstrap draw (`draws`)."""

    point: float
    draws: NDArray[np.float64]
    targets_digest: str


def score_run(targets: NDArray[np.float32], probs: NDArray[np.float32], counts: NDArray[np.float64]) -> ScoredRun:
    unit = np.ones((1, targets.shape[0]))
    digest = hashlib.sha256(np.ascontiguousarray(targets, dtype=np.float32).tobytes()).hexdigest()
    return ScoredRun(float(_macro_weighted(targets, probs, unit)[0]), _macro_weighted(targets, probs, counts), digest)


def pool_differences(pairs: Sequence[tuple[ScoredRun, ScoredRun]], *, confidence: float = 0.95) -> dict[str, Any]:
    """Pooled Δ = mean_r [a_r − b_r] of paired runs (same replicate, same draws), with the percentile
    interval of the pooled bootstrap draws and, from two replicates on, the t interval over Δ_r."""
    if not pairs:
        raise ValueError("no replicate to pool")
    for a, b in pairs:
        if a.targets_digest != b.targets_digest or a.draws.shape != b.draws.shape:
            raise ValueError("two runs of a pair were scored on different test records or draws")
    deltas = [a.point - b.point for a, b in pairs]
    draws = np.mean([a.draws - b.draws for a, b in pairs], axis=0)
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
        "n_resamples": int(draws.size),
    }
    if len(deltas) >= 2:
        from scipy import stats

        sd = float(np.std(deltas, ddof=1))
        half = float(stats.t.ppf(1.0 - tail, len(deltas) - 1)) * sd / math.sqrt(len(deltas))
        result.update(sd_across_replicates=sd, t_ci_low=mean - half, t_ci_high=mean + half)
    return result


def pooled_paired_difference(
    replicates: Sequence[ReplicatePredictions], *, n_resamples: int, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """Pooled Δ = mean_r [macro(a_r) − macro(b_r)] with a paired, replicate-stratified bootstrap CI
    and an across-replicate t interval (module docstring)."""
    pairs = []
    for r, (targets, a, b) in enumerate(replicates):
        counts = resample_counts(targets.shape[0], r, n_resamples, seed)
        pairs.append((score_run(targets, a, counts), score_run(targets, b, counts)))
    return pool_differences(pairs, confidence=confidence)


def widest_interval(pooled: Mapping[str, Any]) -> tuple[float, float]:
    """The wider of the two intervals (records; seeds when there are ≥ 2 replicates): conclusions use it."""
    low, high = pooled["ci_low"], pooled["ci_high"]
    if "t_ci_low" in pooled:
        low, high = min(low, pooled["t_ci_low"]), max(high, pooled["t_ci_high"])
    return float(low), float(high)


def verdict(pooled: Mapping[str, Any], resolution: float = RESOLUTION) -> str:
    """One word for a pooled Δ, from the wider interval: 'better' / 'worse' (it excludes 0),
    'equivalent' (it lies within ±resolution), else 'unresolved'."""
    low, high = widest_interval(pooled)
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    if -resolution <= low and high <= resolution:
        return "equivalent"
    return "unresolved"


def resolves(pooled: Mapping[str, Any], resolution: float = RESOLUTION) -> bool:
    """Is the wider interval narrow enough (half-width ≤ resolution) to resolve a ±resolution effect?"""
    low, high = widest_interval(pooled)
    return (high - low) / 2.0 <= resolution


Ceiling = float | dict[int, float]  # one number, or one per replicate (matched to the study's test folds)


def plan_digest(plan: Mapping[str, Any]) -> str:
    """What a per-replicate ceiling is matched to: the study's primary labels, replicates and store size."""
    key = [plan["primary_labels"], plan["replicates"], plan["store_n_records"]]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def load_ceiling(path: Path, key: str, plan: Mapping[str, Any] | None = None) -> Ceiling:
    """The number at dotted `key` in the JSON file `path` (e.g. the realism benchmark's ceilings), or
    a mapping replicate → number there (a ceiling measured on each replicate's own test records, e.g.
    benchmarks/transfer_ceiling.py). A file that records the `study_plan_digest` it was measured on
    is refused for any other plan: per-replicate numbers of another study would be silently wrong."""
    from ecgkt.train.transfer.errors import StudyError

    if not path.is_file():
        raise StudyError(f"{path}: ceilings file not found")
    try:
        root: Any = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise StudyError(f"{path}: not valid JSON ({error})") from None
    matched = isinstance(root, Mapping) and "study_plan_digest" in root
    if plan is not None and matched and root["study_plan_digest"] != plan_digest(plan):
        raise StudyError(f"{path}: measured on another study plan (labels, replicates or store differ)")
    node = root
    available = ", ".join(_numeric_keys(root)[:30])
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise StudyError(f"{path}: no value at '{key}' (--ceiling-key); numeric entries: {available}")
        node = node[part]
    if isinstance(node, Mapping) and "macro_auroc" in node:
        node = node["macro_auroc"]
    if (
        isinstance(node, Mapping)
        and node
        and all(str(k).isdigit() and isinstance(v, int | float) and not isinstance(v, bool) for k, v in node.items())
    ):
        return {int(k): float(v) for k, v in node.items()}
    if not isinstance(node, int | float) or isinstance(node, bool):
        raise StudyError(f"{path}: '{key}' is not a number (nor one number per replicate)")
    return float(node)


def _ceiling_over(ceiling: Ceiling, replicates: Sequence[int]) -> float | None:
    """The ceiling on `replicates`: the number itself, or the mean of the per-replicate numbers
    (None when a replicate has none: a gap must be measured on the same replicates as the arm)."""
    if isinstance(ceiling, float):
        return ceiling
    if not replicates or any(r not in ceiling for r in replicates):
        return None
    return float(np.mean([ceiling[r] for r in replicates]))


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


class RunScores:
    """Each finished run scored once (point + bootstrap draws), cached in OUT/report_cache/<unit>.npz.

    A unit's predictions never change once its unit.json exists; the cache entry also records the
    predictions file's size and mtime, the primary labels and the bootstrap settings, and is
    recomputed when any of them differs."""

    def __init__(self, out: Path, labels: Sequence[str], n_resamples: int, seed: int) -> None:
        self.folder = out / CACHE_DIR
        self.labels = list(labels)
        self.n_resamples, self.seed = n_resamples, seed
        self.memory: dict[str, ScoredRun] = {}

    def _stamp(self, record: Mapping[str, Any]) -> str:
        stat = Path(record["predictions_test"]).stat()
        key = [self.labels, self.n_resamples, self.seed, stat.st_size, stat.st_mtime_ns, record["replicate"]]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()

    def __call__(self, record: Mapping[str, Any]) -> ScoredRun:
        unit = str(record["unit"])
        if unit in self.memory:
            return self.memory[unit]
        stamp, file = self._stamp(record), self.folder / f"{unit}.npz"
        scored: ScoredRun | None = None
        if file.is_file():
            try:
                with np.load(file) as cached:
                    if str(cached["stamp"]) == stamp:
                        scored = ScoredRun(float(cached["point"]), cached["draws"], str(cached["digest"]))
            except (OSError, ValueError, KeyError):
                scored = None  # unreadable cache entry: recompute
        if scored is None:
            targets, probs = _primary_view(record["predictions_test"], self.labels)
            counts = resample_counts(targets.shape[0], int(record["replicate"]), self.n_resamples, self.seed)
            scored = score_run(targets, probs, counts)
            with replacing(file, suffix=".npz") as temporary:
                np.savez(temporary, stamp=stamp, point=scored.point, draws=scored.draws, digest=scored.targets_digest)
        self.memory[unit] = scored
        return scored


ROUTE_EXCLUDED = ("signal", "multimodal")  # the reference, and the model that needs tabular data at inference


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
    ceiling: Ceiling | None = None
    if config.get("ceilings"):
        ceiling = load_ceiling(Path(config["ceilings"]), config.get("ceiling_key", ""), plan)
    score = RunScores(out, labels, int(config["bootstrap_resamples"]), int(config["base_seed"]))
    cells: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for fraction in sorted({float(f) for f in config["fractions"]}):
        signal = by_cell.get(("signal", fraction), {})
        multimodal = by_cell.get(("multimodal", fraction), {})
        fraction_cells: dict[str, dict[str, Any]] = {}
        for arm in config["arms"]:
            runs = by_cell.get((arm, fraction), {})
            macros = {r: score(record).point for r, record in runs.items()}
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
            paired = sorted(set(runs) & set(signal))
            if arm != "signal" and paired:
                try:
                    cell["vs_signal"] = pool_differences([(score(runs[r]), score(signal[r])) for r in paired])
                except ValueError as error:
                    raise ValueError(f"{arm} at fraction {fraction:g}: {error}") from None
                cell["vs_signal"]["replicates"] = paired
                common = sorted(set(paired) & set(multimodal))
                if common and arm != "multimodal":
                    arm_mean = np.mean([macros[r] for r in common])
                    sig = np.mean([score(signal[r]).point for r in common])
                    mm = np.mean([score(multimodal[r]).point for r in common])
                    cell["gap_closed_multimodal"] = float((arm_mean - sig) / (mm - sig)) if mm != sig else None
                reachable = _ceiling_over(ceiling, paired) if ceiling is not None else None
                if reachable is not None and arm != "multimodal":
                    sig_all = np.mean([score(signal[r]).point for r in paired])
                    arm_all = np.mean([macros[r] for r in paired])
                    cell["gap_closed_ceiling"] = float((arm_all - sig_all) / (reachable - sig_all))
            cells.append(cell)
            fraction_cells[arm] = cell
        routes.append(_route_comparison(fraction, fraction_cells, by_cell, score))
    return {
        "plan": {k: v for k, v in plan.items() if k != "replicates"},
        "replicates": plan["replicates"],
        "n_primary_labels": len(labels),
        "ecg_only_ceiling": ceiling if not isinstance(ceiling, dict) else float(np.mean(list(ceiling.values()))),
        "ecg_only_ceiling_per_replicate": ceiling if isinstance(ceiling, dict) else None,
        "cells": cells,
        "routes": routes,
        "pretraining": pretrain,
        "units_done": len(units),
        "wall_seconds_total": round(sum(r["wall_seconds"] for r in units), 1),
    }


def best_arm(cells: Mapping[str, Mapping[str, Any]], candidates: Sequence[str]) -> str:
    """The route that is at least as good as every other one, paired on the replicates both have
    finished (mean of Δ_a,r − Δ_b,r over shared r); ties, or no such route, go to the largest pooled Δ.

    Arms finish replicates at different times, so pooled means over different replicates are not
    comparable (whichever drew the easier folds would win), and ranking on the replicates *all*
    arms share would throw away most of the data once one arm lags behind."""
    per_arm = {
        arm: dict(zip(cells[arm]["vs_signal"]["replicates"], cells[arm]["vs_signal"]["per_replicate"], strict=True))
        for arm in candidates
    }

    def ahead(a: str, b: str) -> bool:
        shared = set(per_arm[a]) & set(per_arm[b])
        return not shared or float(np.mean([per_arm[a][r] - per_arm[b][r] for r in shared])) >= 0.0

    unbeaten = [a for a in candidates if all(ahead(a, b) for b in candidates if b != a)]
    return max(unbeaten or list(candidates), key=lambda arm: cells[arm]["vs_signal"]["delta"])


def _route_comparison(
    fraction: float,
    cells: Mapping[str, Mapping[str, Any]],
    by_cell: Mapping[tuple[str, float], Mapping[int, Mapping[str, Any]]],
    score: RunScores,
) -> dict[str, Any]:
    """Which ECG-only route is best at this fraction: the one with the largest pooled Δ vs
    signal-only, and its paired difference to every other route on the replicates both finished."""
    candidates = [arm for arm, cell in cells.items() if arm not in ROUTE_EXCLUDED and cell.get("vs_signal")]
    result: dict[str, Any] = {"fraction": fraction, "best": None, "versus": {}}
    if not candidates:
        return result
    best = best_arm(cells, candidates)
    result["best"] = best
    best_runs = by_cell[(best, fraction)]
    for other in candidates:
        if other == best:
            continue
        other_runs = by_cell[(other, fraction)]
        common = sorted(set(best_runs) & set(other_runs))
        if common:
            result["versus"][other] = pool_differences([(score(best_runs[r]), score(other_runs[r])) for r in common])
    return result


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _fmt_seconds(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.0f}"


VERDICT_WORDS = {
    "better": "better",
    "worse": "worse",
    "equivalent": "no difference beyond ±0.01",
    "unresolved": "not resolved",
}


def _records_only(pooled: Mapping[str, Any]) -> dict[str, Any]:
    """The pooled result with only the records interval (the issue's CI): drops the seeds interval."""
    return {k: v for k, v in pooled.items() if k not in ("t_ci_low", "t_ci_high")}


def _seeds_ci(pooled: Mapping[str, Any]) -> str:
    if "t_ci_low" not in pooled:
        return "–"
    return f"[{_fmt(pooled['t_ci_low'], True)}, {_fmt(pooled['t_ci_high'], True)}]"


def _records_ci(pooled: Mapping[str, Any]) -> str:
    return f"[{_fmt(pooled['ci_low'], True)}, {_fmt(pooled['ci_high'], True)}]"


def render_answers(result: Mapping[str, Any], paper_arm: str = "je-barlow") -> list[str]:
    """The study's questions answered from the numbers below them, by fixed rules (see the text):
    verdicts from the records interval (the issue's CI) and from the wider of the two intervals."""
    lines = [
        "## Answers",
        "",
        "Rules (written when 16 of the 120 units had finished, before the rest; the ±0.01 bar is the issue's): "
        "'better' / 'worse' when the interval excludes 0, 'no difference beyond ±0.01' when it lies within "
        "±0.01, else 'not resolved'; an interval resolves ±0.01 when its half-width is ≤ 0.01. Each verdict is "
        "given twice: from the records interval (the issue's CI: paired bootstrap over test records, combined "
        "over replicates) and from the wider of that and the seeds interval (t over the per-replicate Δ, which "
        "also carries training-seed variation; from 2 replicates on). With one replicate the seed-to-seed "
        "variation is not measured, so a verdict from it is provisional.",
        "",
        "### Does joint-embedding pretraining (Barlow Twins, the paper) beat signal-only?",
        "",
        "| labelled | Δ macro AUROC | CI (records) | CI (seeds) | reps | verdict (records) | verdict (wider) "
        "| resolves ±0.01 (records / wider) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cells = {(c["arm"], c["fraction"]): c for c in result["cells"]}
    for route in result.get("routes", []):
        paper = (cells.get((paper_arm, route["fraction"])) or {}).get("vs_signal")
        if not paper:
            lines.append(f"| {route['fraction']:.0%} | – | – | – | 0 | – | – | – |")
            continue
        records = _records_only(paper)
        lines.append(
            f"| {route['fraction']:.0%} | {_fmt(paper['delta'], True)} | {_records_ci(paper)} | {_seeds_ci(paper)} "
            f"| {paper['n_replicates']} | {VERDICT_WORDS[verdict(records)]} | {VERDICT_WORDS[verdict(paper)]} "
            f"| {'yes' if resolves(records) else 'no'} / {'yes' if resolves(paper) else 'no'} |"
        )
    lines += [
        "",
        "### Which transfer route is best?",
        "",
        "Best = the ECG-only route that no other route beats, each pair compared on the replicates both have "
        "finished (ties or a cycle: the largest pooled Δ vs signal-only); runner-up = the route closest to it, "
        "paired on the replicates both finished.",
        "",
        "| labelled | best route | runner-up | best − runner-up | CI (records) | CI (seeds) | reps "
        "| verdict (records) | verdict (wider) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for route in result.get("routes", []):
        best = route.get("best")
        versus = route.get("versus") or {}
        if not best or not versus:
            lines.append(f"| {route['fraction']:.0%} | {ARM_TITLES.get(best, best) if best else '–'} | – | – | – | – "
                         "| – | – | – |")  # fmt: skip
            continue
        runner_up = min(versus, key=lambda arm: versus[arm]["delta"])
        pooled = versus[runner_up]
        lines.append(
            f"| {route['fraction']:.0%} | {ARM_TITLES.get(best, best)} | {ARM_TITLES.get(runner_up, runner_up)} "
            f"| {_fmt(pooled['delta'], True)} | {_records_ci(pooled)} | {_seeds_ci(pooled)} | {pooled['n_replicates']} "
            f"| {VERDICT_WORDS[verdict(_records_only(pooled))]} | {VERDICT_WORDS[verdict(pooled)]} |"
        )
    lines += ["", "### Every route against the best at each fraction (paired, same replicates)", ""]
    lines += [
        "| labelled | best route | other route | best − other | CI (records) | CI (seeds) | reps | verdict (wider) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for route in result.get("routes", []):
        for other, pooled in sorted((route.get("versus") or {}).items(), key=lambda item: item[1]["delta"]):
            lines.append(
                f"| {route['fraction']:.0%} | {ARM_TITLES.get(route['best'], route['best'])} "
                f"| {ARM_TITLES.get(other, other)} | {_fmt(pooled['delta'], True)} "
                f"| {_records_ci(pooled)} | {_seeds_ci(pooled)} "
                f"| {pooled['n_replicates']} | {VERDICT_WORDS[verdict(pooled)]} |"
            )
    lines.append("")
    return lines


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
        per = result.get("ecg_only_ceiling_per_replicate")
        detail = (
            " (mean of one ceiling per replicate, each on that replicate's test records and the primary labels: "
            + ", ".join(f"r{r} {v:.3f}" for r, v in sorted(per.items(), key=lambda kv: int(kv[0])))
            + "; a gap is measured against the mean over the arm's own replicates)"
            if per
            else ""
        )
        lines += [f"ECG-only oracle ceiling (from `{config.get('ceilings')}`): {ceiling:.3f}{detail}.", ""]
    lines += render_answers(result)
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
