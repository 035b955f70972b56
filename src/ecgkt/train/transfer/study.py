"""The transfer study: arms × label fractions × replicates, each run a resumable unit.

A *unit* is one training run, identified by (arm, fraction, replicate) — or (pretrain objective,
replicate) for the label-free pretraining that the joint-embedding arms of one replicate share.
Each unit trains in its own stage folder (`OUT/units/<unit>/`, resumable from `last.ckpt` like every
stage) and ends by writing `OUT/units/<unit>/unit.json` atomically: its presence means the unit is
done, and a restarted study skips it. After every unit the report is re-aggregated from the unit
files, so results appear incrementally and a `kill -9` at any moment loses at most the epoch in
progress.

Several worker processes (`workers`) may run at once; a unit is claimed by creating
`OUT/locks/<unit>.lock` exclusively (O_EXCL) with the worker's pid. A lock whose pid is no longer
alive (a killed worker) is taken over. Units wait for their dependencies (pretraining before
fine-tuning, the multimodal teacher before distillation).

Arms (same supervised schedule — epochs, lr, cosine decay, batch — for every arm at a fraction):
    signal       ECG → diagnoses from scratch (the reference every Δ is taken against)
    multimodal   ECG + all tabular → diagnoses (Table 1's multimodal classification; also the teacher)
    je-barlow    JE pretraining (Barlow Twins) → the paper's fine-tuning (first blocks frozen, low lr)
    je-infonce   the same with InfoNCE pretraining
    je-vicreg    the same with VICReg pretraining
    regft        JE (Barlow Twins) encoder, every layer fine-tuned, L2-SP (+ optional feature) penalty
    distill      ECG-only student of the multimodal teacher, on labelled and unlabelled records
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ecgkt.atomic_files import write_text_atomically
from ecgkt.config import ObjectiveChoice, RunConfig, load_config
from ecgkt.store import Store
from ecgkt.train.transfer.errors import StudyError
from ecgkt.train.transfer.splits import (
    ReplicatePlan,
    derive_pool_store,
    derive_store,
    primary_labels,
    replicate_plan,
)

__all__ = [
    "ARMS",
    "StudyConfig",
    "StudyError",
    "Unit",
    "plan_study",
    "route_config",
    "run_study",
    "study_units",
    "write_reports",
]

ArmName = Literal["signal", "multimodal", "je-barlow", "je-infonce", "je-vicreg", "regft", "distill"]
ARMS: tuple[ArmName, ...] = ("signal", "multimodal", "je-barlow", "je-infonce", "je-vicreg", "regft", "distill")
JE_OBJECTIVE: dict[str, ObjectiveChoice] = {
    "je-barlow": "barlow_twins",
    "je-infonce": "infonce",
    "je-vicreg": "vicreg",
}
PLAN_FILE = "study_plan.json"
UNIT_FILE = "unit.json"


# ---- configuration ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BarlowSettings(_Strict):
    """Barlow Twins sized to the batch: the cross-correlation of a width-E projector is estimated
    from B records, so E ≫ B leaves most off-diagonal terms pure noise; λ ≈ 1/E keeps the two terms
    of the loss balanced (the original 8192-wide projector used λ = 0.0051)."""

    width: int = Field(default=128, ge=8, description="projector hidden and output width")
    lambda_offdiag: float | None = Field(default=None, gt=0.0, description="None = 1 / width")

    @property
    def resolved_lambda(self) -> float:
        return self.lambda_offdiag if self.lambda_offdiag is not None else 1.0 / self.width


class RegularisedSettings(_Strict):
    from_arm: Literal["je-barlow", "je-infonce", "je-vicreg"] = "je-barlow"
    l2sp_alpha: float = Field(default=0.01, ge=0.0)
    feature_beta: float = Field(default=0.1, ge=0.0)
    freeze_layers: int = Field(default=0, ge=0)
    encoder_lr_factor: float = Field(default=1.0, gt=0.0, le=1.0)


class DistillSettings(_Strict):
    kd_weight: float = Field(default=1.0, ge=0.0)
    representation_weight: float = Field(default=1.0, ge=0.0)
    temperature: float = Field(default=2.0, gt=0.0)


class StudyConfig(_Strict):
    """Everything the study's result depends on; written to `study_plan.json` before any run."""

    preset: str = "cpu"
    run_config: dict[str, Any] = Field(default_factory=dict, description="RunConfig keys over the preset")
    arms: list[ArmName] = Field(default_factory=lambda: list(ARMS), min_length=1)
    fractions: list[float] = Field(default_factory=lambda: [0.05, 0.2, 1.0], min_length=1)
    replicates: int = Field(default=5, ge=1)
    test_folds: int = Field(default=1, ge=1, description="test folds per replicate (rotated)")
    base_seed: int = Field(default=0, ge=0)
    min_test_positives: int = Field(default=10, ge=1, description="primary labels: positives in every test fold")
    min_supervised_steps: int = Field(
        default=300, ge=0, description="small fractions get more epochs so every run takes >= this many steps"
    )
    barlow: BarlowSettings = Field(default_factory=BarlowSettings)
    regft: RegularisedSettings = Field(default_factory=RegularisedSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    pool: str | None = Field(
        default=None, description="pretraining pool store; None = the replicate's training records"
    )
    bootstrap_resamples: int = Field(default=1000, ge=10)
    ceilings: str | None = Field(default=None, description="JSON with the ECG-only oracle ceiling (issue 14)")
    ceiling_key: str = Field(default="ecg_oracle.diagnoses.macro_auroc", description="dotted key of the ceiling")

    @model_validator(mode="after")
    def _valid(self) -> StudyConfig:
        bad = [f for f in self.fractions if not 0.0 < f <= 1.0]
        if bad:
            raise ValueError(f"label fractions must be in (0, 1], got {bad}")
        if "signal" not in self.arms:
            raise ValueError("the arms must include 'signal': every difference is taken against it")
        if "distill" in self.arms and "multimodal" not in self.arms:
            raise ValueError("the 'distill' arm needs the 'multimodal' arm (its teacher)")
        if "regft" in self.arms and self.regft.from_arm not in self.arms:
            raise ValueError(f"the 'regft' arm starts from '{self.regft.from_arm}', which is not among the arms")
        return self

    def base_run_config(self) -> RunConfig:
        return load_config(self.preset, overrides=self.run_config)


# ---- units -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One training run of the study."""

    kind: Literal["pretrain", "arm"]
    name: str  # arm name, or the JE arm whose pretraining this is
    replicate: int
    fraction: float | None = None
    depends: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        if self.kind == "pretrain":
            return f"pretrain-{self.name.removeprefix('je-')}_r{self.replicate}"
        return f"{self.name}_f{self.fraction:g}_r{self.replicate}"


def pretrain_key(arm: str, replicate: int) -> str:
    return f"pretrain-{arm.removeprefix('je-')}_r{replicate}"


def arm_key(arm: str, fraction: float, replicate: int) -> str:
    return f"{arm}_f{fraction:g}_r{replicate}"


def study_units(config: StudyConfig) -> list[Unit]:
    """All units in the order workers take them: replicate by replicate, pretraining first."""
    units: list[Unit] = []
    je_arms = [a for a in config.arms if a in JE_OBJECTIVE]
    for r in range(config.replicates):
        units += [Unit("pretrain", arm, r) for arm in je_arms]
        for fraction in sorted(config.fractions, reverse=True):
            for arm in config.arms:
                depends: tuple[str, ...] = ()
                if arm in JE_OBJECTIVE:
                    depends = (pretrain_key(arm, r),)
                elif arm == "regft":
                    depends = (pretrain_key(config.regft.from_arm, r),)
                elif arm == "distill":
                    depends = (arm_key("multimodal", fraction, r),)
                units.append(Unit("arm", arm, r, fraction, depends))
    return units


def prioritised(units: list[Unit], priority: Sequence[str] | None) -> list[Unit]:
    """`units` reordered so the arms named earlier in `priority` finish for every replicate first.

    The order is a scheduling choice, not part of the plan: it decides which units exist after a given
    compute budget, never what a unit computes. A unit that others depend on (pretraining, the
    multimodal teacher) ranks with the earliest of its dependents; arms not named come last. Arms
    joined by "+" share a rank, so they advance replicate by replicate together (signal-only and
    its comparator, say)."""
    if not priority:
        return units
    rank = {arm: i for i, group in enumerate(priority) for arm in group.split("+")}
    tier = {u.key: rank.get(u.name, len(rank)) for u in units if u.kind == "arm"}
    for unit in units:  # dependencies are one level deep: pretrain → arm, multimodal → distill
        for dep in unit.depends:
            tier[dep] = min(tier.get(dep, len(rank)), tier[unit.key])
    position = {u.key: i for i, u in enumerate(units)}
    return sorted(units, key=lambda u: (tier.get(u.key, len(rank)), u.replicate, position[u.key]))


# ---- the plan (fixed before the runs) --------------------------------------------------------------


def plan_study(config: StudyConfig, store: Path, out: Path) -> dict[str, Any]:
    """Write `OUT/study_plan.json` (config, replicate folds, primary labels) or check it is unchanged.

    The primary label set (≥ min_test_positives positives in EVERY replicate's test folds) is
    computed here from the store's targets and the plan alone, before any model is trained.
    """
    base = Store.open(store)
    n_folds = base.manifest.folds.n_folds
    plans = [
        replicate_plan(
            n_folds, r, n_replicates=config.replicates, test_folds=config.test_folds, base_seed=config.base_seed
        )
        for r in range(config.replicates)
    ]
    labels = primary_labels(store, plans, config.min_test_positives)
    if not labels:
        raise StudyError(
            f"{store}: no diagnosis label has {config.min_test_positives} positives in every replicate's test "
            "folds; use a larger cohort, fewer replicates or more test folds per replicate"
        )
    plan = {
        "store": str(store.resolve()),
        "store_n_records": base.manifest.n_records,
        "config": config.model_dump(mode="json"),
        "replicates": [p.as_dict() for p in plans],
        "primary_labels": labels,
        "n_diagnosis_labels": len(base.manifest.diagnosis_labels),
    }
    _check_ceiling(plan)
    path = out / PLAN_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        if _experiment(saved) != _experiment(plan):
            changed = sorted(k for k in plan if _experiment(saved).get(k) != _experiment(plan).get(k))
            raise StudyError(
                f"{path}: this folder holds a study with a different plan ({', '.join(changed)} changed); "
                "rerun with the same settings to resume, or choose another --out"
            )
        if saved["config"] != plan["config"]:  # only reporting options changed: keep them
            saved["config"] = plan["config"]
            write_text_atomically(path, json.dumps(saved, indent=2) + "\n")
        return saved
    out.mkdir(parents=True, exist_ok=True)
    plan["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_text_atomically(path, json.dumps(plan, indent=2) + "\n")
    return plan


# Reporting options: they change how finished runs are summarised, not what is trained, so they may
# change between invocations (e.g. the ceilings file appears after the study has started).
REPORT_ONLY = ("ceilings", "ceiling_key", "bootstrap_resamples")


def _check_ceiling(plan: dict[str, Any]) -> None:
    """Refuse an unreadable ceilings file, or one measured on another plan, before any training
    (the report after every unit reads it)."""
    from ecgkt.train.transfer.report import load_ceiling

    config = plan["config"]
    if config.get("ceilings"):
        load_ceiling(Path(config["ceilings"]), config.get("ceiling_key", ""), plan)


def set_report_options(out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Change reporting options (REPORT_ONLY keys) of the plan in `out`, checked, without planning
    or training: e.g. point a running study's report at a ceiling measured after it started. The
    running workers read the plan again for each report, so they pick the change up."""
    unknown = sorted(set(options) - set(REPORT_ONLY))
    if unknown:
        raise StudyError(f"{unknown} are not reporting options ({', '.join(REPORT_ONLY)})")
    path = out / PLAN_FILE
    if not path.is_file():
        raise StudyError(f"{path}: not found; nothing to report")
    plan = json.loads(path.read_text())
    config = StudyConfig.model_validate({**plan["config"], **options}).model_dump(mode="json")
    updated = {**plan, "config": config}
    _check_ceiling(updated)
    if config != plan["config"]:
        write_text_atomically(path, json.dumps(updated, indent=2) + "\n")
    return updated


def _experiment(plan: dict[str, Any]) -> dict[str, Any]:
    """The parts of a plan that decide what is trained (everything but reporting options)."""
    config = {k: v for k, v in plan["config"].items() if k not in REPORT_ONLY}
    return {**{k: v for k, v in plan.items() if k not in {"created_utc", "config"}}, "config": config}


def _replicate_plan(plan: dict[str, Any], r: int) -> ReplicatePlan:
    p = plan["replicates"][r]
    return ReplicatePlan(r, p["seed"], tuple(p["train_folds"]), tuple(p["val_folds"]), tuple(p["test_folds"]))


# ---- locks -----------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_claim(lock: Path) -> bool:
    """Create `lock` exclusively with this pid; take over a lock of a dead process on this host."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                held = {}
            if held.get("host") == owner["host"] and isinstance(held.get("pid"), int) and not _pid_alive(held["pid"]):
                lock.unlink(missing_ok=True)  # its worker was killed: take the unit over
                continue
            # empty: being written right now, or left so by a kill between open and write
            if not held and time.time() - lock.stat().st_mtime > 60:
                lock.unlink(missing_ok=True)
                continue
            return False
        with os.fdopen(fd, "w") as stream:
            stream.write(json.dumps(owner))
        return True
    return False


# ---- running one unit ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyPaths:
    out: Path
    store: Path

    def unit_dir(self, key: str) -> Path:
        return self.out / "units" / key

    def unit_file(self, key: str) -> Path:
        return self.unit_dir(key) / UNIT_FILE

    def derived(self, replicate: int, fraction: float | None) -> Path:
        name = "pool" if fraction is None else f"f{fraction:g}"
        return self.out / "stores" / f"r{replicate}" / name

    def lock(self, key: str) -> Path:
        return self.out / "locks" / f"{key}.lock"


def supervised_epochs(base_epochs: int, n_labelled: int, batch_size: int, min_steps: int) -> int:
    """Epochs of a supervised run: the preset's, or more when too few labelled records would give
    fewer than `min_steps` optimiser steps (the same for every arm at that fraction)."""
    steps_per_epoch = max(1, n_labelled // batch_size)
    return max(base_epochs, math.ceil(min_steps / steps_per_epoch))


def unit_run_config(config: StudyConfig, unit: Unit, seed: int, n_labelled: int | None) -> RunConfig:
    """The RunConfig of a unit: preset + overrides, the replicate's seed, and the shared supervised
    schedule (finetune and baseline optimisers identical; epochs sized for the fraction)."""
    base = config.base_run_config()
    # The worker's thread count (set by run_study / the worker entry) wins over the preset's
    # trainer.cpu_threads, which the stages would otherwise apply with torch.set_num_threads.
    overrides: dict[str, Any] = {"seed": seed, "trainer": {"cpu_threads": _threads(), "progress_bar": False}}
    if unit.kind == "pretrain":
        overrides["pretrain"] = pretrain_overrides(config, unit.name)
    if n_labelled is not None:
        overrides.update(supervised_overrides(config, base, n_labelled))
    return load_config(config.preset, overrides=_merge(config.run_config, overrides))


def pretrain_overrides(config: StudyConfig, arm: str) -> dict[str, Any]:
    """The `pretrain` section of a JE arm: its objective; Barlow Twins also sized to the batch."""
    if arm == "je-barlow":
        return {
            "objective": "barlow_twins",
            "barlow_lambda": config.barlow.resolved_lambda,
            "projector": {"hidden": config.barlow.width, "out_dim": config.barlow.width},
        }
    return {"objective": JE_OBJECTIVE[arm]}


def supervised_overrides(config: StudyConfig, base: RunConfig, n_labelled: int) -> dict[str, Any]:
    """The one supervised schedule of every arm: fine-tuning uses the baseline's optimiser and head,
    with epochs sized for the number of labelled records (`supervised_epochs`)."""
    optim = base.baseline.optim.model_dump()
    optim["max_epochs"] = supervised_epochs(
        optim["max_epochs"], n_labelled, base.data.batch_size, config.min_supervised_steps
    )
    return {"baseline": {"optim": optim}, "finetune": {"optim": optim, "head": base.baseline.head.model_dump()}}


def route_config(config: StudyConfig, arm: str, n_labelled: int) -> dict[str, Any]:
    """RunConfig keys (over `config.preset`) under which `ecgkt benchmark` / `ecgkt demo --config`
    train a JE arm of the study as the study does: its pretraining objective and projector, the shared
    supervised schedule. The pool is a path, so it is given separately (`--pretrain-pool`). Only
    the JE arms map onto the benchmark's stages (regft and distill need their own modules)."""
    if arm not in JE_OBJECTIVE:
        raise StudyError(
            f"arm {arm!r} is not a joint-embedding arm; only {sorted(JE_OBJECTIVE)} map onto the benchmark"
        )
    overrides = {
        "pretrain": pretrain_overrides(config, arm),
        **supervised_overrides(config, config.base_run_config(), n_labelled),
    }
    return _merge(config.run_config, overrides)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_unit(config: StudyConfig, plan: dict[str, Any], paths: StudyPaths, unit: Unit) -> dict[str, Any]:
    """Train one unit (resuming its stage folder) and write its unit.json; return the record."""
    from ecgkt.train.stages import (
        baseline_spec,
        finetune_spec,
        run_pretrain,
        run_supervised,
    )
    from ecgkt.train.transfer.distill import distillation_module_factory, partly_labelled_datamodule_factory
    from ecgkt.train.transfer.regularised import regularised_module_factory

    rp = _replicate_plan(plan, unit.replicate)
    started, cpu_started = time.perf_counter(), time.process_time()
    stage_dir = paths.unit_dir(unit.key) / "stage"
    full_store = derive_store(paths.store, paths.derived(unit.replicate, 1.0), rp, 1.0)
    record: dict[str, Any] = {
        "unit": unit.key,
        "kind": unit.kind,
        "arm": unit.name,
        "replicate": unit.replicate,
        "fraction": unit.fraction,
        "seed": rp.seed,
        "test_folds": list(rp.test_folds),
        "threads": _threads(),
    }
    if unit.kind == "pretrain":
        pretrain_store = full_store
        if config.pool is not None:
            pretrain_store = derive_pool_store(Path(config.pool), paths.store, paths.derived(unit.replicate, None), rp)
        run_config = unit_run_config(config, unit, rp.seed, None)
        result = run_pretrain(run_config, pretrain_store, stage_dir, resume=True)
        record.update(
            pretrain_store=str(pretrain_store),
            encoder=str(result.encoder_path),
            n_pretrain_records=result.metrics.get("n_records"),
            objective=run_config.pretrain.objective,
            barlow_lambda=run_config.pretrain.barlow_lambda,
            projector=run_config.pretrain.projector.model_dump(),
            epochs=result.metrics.get("epochs"),
            train_seconds=result.metrics.get("train_seconds"),
        )
    else:
        assert unit.fraction is not None
        fraction_store = derive_store(paths.store, paths.derived(unit.replicate, unit.fraction), rp, unit.fraction)
        n_labelled = len(Store.open(fraction_store).split_indices("train"))
        # Epochs follow the records a run iterates over: the labelled ones, except for the
        # distillation student, which iterates over every training record (labelled or not).
        n_iterated = len(Store.open(full_store).split_indices("train")) if unit.name == "distill" else n_labelled
        run_config = unit_run_config(config, unit, rp.seed, n_iterated)
        store_for_run = fraction_store
        arm = unit.name
        if arm == "signal":
            spec = baseline_spec(run_config, "signal")
        elif arm == "multimodal":
            spec = baseline_spec(run_config, "mm-diag")
        elif arm in JE_OBJECTIVE:
            encoder = Path(_unit_record(paths, pretrain_key(arm, unit.replicate))["encoder"])
            spec = finetune_spec(run_config, encoder)
        elif arm == "regft":
            encoder = Path(_unit_record(paths, pretrain_key(config.regft.from_arm, unit.replicate))["encoder"])
            spec = replace(
                finetune_spec(run_config, encoder),
                name="regularised-finetune",
                freeze_layers=config.regft.freeze_layers,
                encoder_lr_factor=config.regft.encoder_lr_factor,
                module_factory=regularised_module_factory(
                    encoder, l2sp_alpha=config.regft.l2sp_alpha, feature_beta=config.regft.feature_beta
                ),
            )
        elif arm == "distill":
            teacher_dir = Path(_unit_record(paths, arm_key("multimodal", unit.fraction, unit.replicate))["stage_dir"])
            teacher_spec = baseline_spec(run_config, "mm-diag")
            spec = replace(
                baseline_spec(run_config, "signal"),
                name="distill",
                tabular_groups=teacher_spec.tabular_groups,
                module_factory=distillation_module_factory(
                    teacher_dir / "model.safetensors",
                    teacher_tabular_encoder=run_config.baseline.tabular_encoder,
                    teacher_head=run_config.baseline.head,
                    kd_weight=config.distill.kd_weight,
                    representation_weight=config.distill.representation_weight,
                    temperature=config.distill.temperature,
                ),
                datamodule_factory=partly_labelled_datamodule_factory(fraction_store),
            )
            store_for_run = full_store  # every training record; labels only on the fraction's
        else:  # pragma: no cover - validated by StudyConfig
            raise StudyError(f"unknown arm {arm!r}")
        result = run_supervised(spec, run_config, store_for_run, stage_dir, resume=True)
        record.update(
            n_labelled=n_labelled,
            n_train_records=result.metrics.get("n_records", {}).get("train"),
            epochs=result.metrics.get("epochs"),
            max_epochs=run_config.baseline.optim.max_epochs,
            best_epoch=result.metrics.get("best_epoch"),
            train_seconds=result.metrics.get("train_seconds"),
            predictions_test=str(stage_dir / "predictions_test.npz"),
            predictions_val=str(stage_dir / "predictions_val.npz"),
            test_macro_auroc_all=result.metrics.get("test", {}).get("macro_auroc"),
            val_macro_auroc_all=result.metrics.get("val", {}).get("macro_auroc"),
        )
    record["stage_dir"] = str(stage_dir)
    # Wall time of this attempt (a resumed unit counts only its last attempt) and the CPU time of
    # this process: on a shared machine the CPU seconds are the figure to size a study with.
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    record["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    record["load_average_1min"] = round(os.getloadavg()[0], 2)
    record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    from ecgkt.train.evaluation import write_json

    write_json(paths.unit_file(unit.key), record)
    return record


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _unit_record(paths: StudyPaths, key: str) -> dict[str, Any]:
    file = paths.unit_file(key)
    if not file.exists():
        raise StudyError(f"{file}: the unit this run depends on has not finished")
    loaded: dict[str, Any] = json.loads(file.read_text())
    return loaded


# ---- the worker loop -------------------------------------------------------------------------------


def worker_loop(
    config: StudyConfig,
    plan: dict[str, Any],
    paths: StudyPaths,
    *,
    on_unit_done: Callable[[], None] | None = None,
    poll_seconds: float = 5.0,
    max_units: int | None = None,
    log: Callable[[str], None] = print,
    priority: Sequence[str] | None = None,
) -> int:
    """Take ready, unclaimed units (in `priority` order, see `prioritised`) until none is left;
    return how many this worker ran."""
    units = prioritised(study_units(config), priority)
    ran = 0
    while True:
        pending = [u for u in units if not paths.unit_file(u.key).exists()]
        if not pending:
            return ran
        progressed = False
        for unit in pending:
            if not all(paths.unit_file(dep).exists() for dep in unit.depends):
                continue
            lock = paths.lock(unit.key)
            if not _try_claim(lock):
                continue
            try:
                if paths.unit_file(unit.key).exists():
                    continue
                log(f"[pid {os.getpid()}] unit {unit.key}: start")
                record = run_unit(config, plan, paths, unit)
                log(f"[pid {os.getpid()}] unit {unit.key}: done in {record['wall_seconds']} s")
                ran += 1
                if on_unit_done is not None:
                    try:
                        on_unit_done()
                    except Exception:  # a report failure must not stop the training runs
                        log(traceback.format_exc())
            finally:
                lock.unlink(missing_ok=True)
            progressed = True
            break  # re-read the state: another worker may have finished units meanwhile
        if max_units is not None and ran >= max_units:
            return ran
        if not progressed:
            waiting = [u.key for u in pending if paths.lock(u.key).exists()]
            if not waiting:
                blocked = [u.key for u in pending]
                raise StudyError(f"{paths.out}: units {blocked[:5]} wait for dependencies no worker is running")
            time.sleep(poll_seconds)


def _worker_entry(
    config_json: str, plan_json: str, out: str, store: str, threads: int, results: str | None, priority: list[str]
) -> None:
    import torch

    torch.set_num_threads(threads)
    config = StudyConfig.model_validate_json(config_json)
    plan = json.loads(plan_json)
    paths = StudyPaths(Path(out), Path(store))
    worker_loop(config, plan, paths, on_unit_done=_reporter(config, plan, paths, results), priority=priority)


def _reporter(config: StudyConfig, plan: dict[str, Any], paths: StudyPaths, results: str | None) -> Callable[[], None]:
    def report() -> None:
        write_reports(paths.out, Path(results) if results else None)

    return report


def run_study(
    config: StudyConfig,
    store: Path,
    out: Path,
    *,
    workers: int = 1,
    threads_per_worker: int = 1,
    results_dir: Path | None = None,
    max_units: int | None = None,
    priority: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Plan (or check the plan of) the study in `out`, run every unit that is not done with `workers`
    processes, and write the report. Safe to kill at any time and to rerun with the same arguments
    (`priority` may change between runs: it only orders the units)."""
    unknown = sorted({arm for group in priority or () for arm in group.split("+")} - set(config.arms))
    if unknown:
        raise StudyError(f"--priority names arms that are not in the study: {unknown} (arms: {config.arms})")
    plan = plan_study(config, store, out)
    paths = StudyPaths(out, store)
    for r in range(config.replicates):  # derived stores up front: workers only read them
        rp = _replicate_plan(plan, r)
        for fraction in {1.0, *config.fractions}:
            derive_store(store, paths.derived(r, fraction), rp, fraction)
        if config.pool is not None:
            derive_pool_store(Path(config.pool), store, paths.derived(r, None), rp)
    if workers <= 1:
        import torch

        torch.set_num_threads(threads_per_worker)
        worker_loop(
            config,
            plan,
            paths,
            on_unit_done=_reporter(config, plan, paths, _str(results_dir)),
            max_units=max_units,
            priority=priority,
        )
    else:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(
                target=_worker_entry,
                args=(
                    config.model_dump_json(),
                    json.dumps(plan),
                    str(out),
                    str(store),
                    threads_per_worker,
                    _str(results_dir),
                    list(priority or ()),
                ),
            )
            for _ in range(workers)
        ]
        for process in processes:
            process.start()
            time.sleep(1.0)  # stagger: the first worker claims a unit before the next looks
        for process in processes:
            process.join()
        failed = [p.exitcode for p in processes if p.exitcode != 0]
        if failed:
            raise StudyError(f"{out}: {len(failed)} worker(s) failed (exit codes {failed}); see their output above")
    return write_reports(out, results_dir)


ROUTE_FILE = "transfer_route.yaml"


def write_reports(out: Path, results_dir: Path | None = None) -> dict[str, Any]:
    """The study's report (`report.write_report`) and, once a JE arm has been compared at the
    largest label fraction, `transfer_route.yaml`: the RunConfig keys that make `ecgkt benchmark`
    (or `ecgkt demo --config`) train the best JE route as the study did."""
    import yaml

    from ecgkt.train.transfer.report import best_arm, widest_interval, write_report

    result = write_report(out, results_dir)
    config = StudyConfig.model_validate(result["plan"]["config"])
    top = max(config.fractions)
    cells = {
        c["arm"]: c for c in result["cells"] if c["fraction"] == top and c["arm"] in JE_OBJECTIVE and c.get("vs_signal")
    }
    if not cells:
        return result
    arm = best_arm(cells, list(cells))
    best = cells[arm]
    pooled = best["vs_signal"]
    low, high = widest_interval(pooled)
    route = json.loads(
        json.dumps({"preset": config.preset, **route_config(config, arm, max(best["n_labelled"] or [0]))})
    )
    header = (
        f"# The transfer study's best joint-embedding route at {top:.0%} labels: {best['arm']}, "
        f"Δ macro AUROC vs signal-only {pooled['delta']:+.3f} [{low:+.3f}, {high:+.3f}] over "
        f"{pooled['n_replicates']} replicate(s) (wider 95 % interval; see transfer_study.md); at least as good "
        "as every other JE arm, paired on shared replicates.\n"
        "# Train it: ecgkt benchmark --store STORE --out OUT --config THIS_FILE --pretrain-pool POOL\n"
        "#       or: ecgkt demo --config THIS_FILE --pretrain-pool\n"
        "# Written by the study's report from its plan; do not edit (rerun the report instead).\n"
    )
    text = header + yaml.safe_dump(route, sort_keys=True)
    for folder in [out] + ([results_dir] if results_dir is not None else []):
        write_text_atomically(folder / ROUTE_FILE, text)
    return result


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
