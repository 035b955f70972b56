"""`ecgkt demo`: synthetic cohort → cohort store → Table 1 (cpu preset), printed beside the paper.

The README's main command. It needs no credentialed data and runs on a laptop CPU (target: under
20 minutes on 2 cores with the default cohort size). Each step writes its output folder atomically
and is skipped when that folder is already complete, so an interrupted demo resumes:
    OUT/cohort/      the synthetic MIMIC-IV folders (`ecgkt synth`)
    OUT/store/       the dataset store (`ecgkt build`)
    OUT/pool/        with `--pretrain-pool`: the pretraining pool (`ecgkt build --pretrain-pool`)
    OUT/benchmark/   every training stage, table1.md/json, plots, per-label CSVs, the model bundle
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

DEFAULT_PATIENTS = 1500


def run_demo(
    out: Path,
    patients: int = DEFAULT_PATIENTS,
    seed: int = 0,
    workers: int = 2,
    preset: str = "cpu",
    build_overrides: dict[str, Any] | None = None,
    pretrain_pool: bool = False,
    config_file: Path | None = None,
) -> Path:
    """Run (or resume) the three demo steps; returns the benchmark folder.

    `pretrain_pool` pretrains the joint embedding on every ECG with tabular data (the pool export),
    not only the labelled records: the route of the transfer study (docs/transfer-study.md).
    `config_file` is a YAML of RunConfig keys over the preset (e.g. the study's
    `benchmarks/results/transfer_route.yaml`).
    `preset` and `build_overrides` (BuildConfig fields) exist for tests that need a tinier run.
    """
    from rich.console import Console

    from ecgkt.config import ConfigError, load_config
    from ecgkt.store import MANIFEST_FILE
    from ecgkt.train.table1 import print_table, run_benchmark

    console = Console()
    if patients < 20:
        raise ConfigError(f"--patients {patients}: the demo needs at least 20 patients to fill 20 folds")
    cohort, store, bench, pool = out / "cohort", out / "store", out / "benchmark", out / "pool"
    overrides: dict[str, Any] = {"seed": seed}
    if pretrain_pool:
        overrides["pretrain"] = {"pool": str(pool.resolve())}
    config = load_config(preset, config_file, overrides=overrides)  # validate before the long steps
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    if cohort.is_dir():
        console.print(f"[dim]cohort exists, skipping synthesis: {cohort}[/]")
    else:
        from ecgkt.synth.cohort import generate_cohort

        console.print(f"[bold cyan]▶ synthetic cohort[/] ({patients} patients) → {cohort}")
        generate_cohort(cohort, n_patients=patients, seed=seed, workers=workers)
    timings["synth"] = time.perf_counter() - started

    started = time.perf_counter()
    if (store / MANIFEST_FILE).is_file():
        console.print(f"[dim]store exists, skipping build: {store}[/]")
    else:
        from ecgkt.cohort.config import BuildConfig
        from ecgkt.cohort.pipeline import build_store
        from ecgkt.mimic.layout import MimicFolders

        console.print(f"[bold cyan]▶ cohort store[/] → {store}")
        build_config = BuildConfig(seed=seed, workers=workers, **(build_overrides or {}))
        build_store(MimicFolders.from_synthetic_root(cohort), store, build_config, progress=True)
    if pretrain_pool:
        from ecgkt.cohort.pretrain_pool import POOL_FILE

        if (pool / POOL_FILE).is_file():
            console.print(f"[dim]pretraining pool exists, skipping its build: {pool}[/]")
        else:
            from ecgkt.cohort.config import BuildConfig
            from ecgkt.cohort.pretrain_pool import build_pretrain_pool
            from ecgkt.mimic.layout import MimicFolders

            console.print(f"[bold cyan]▶ pretraining pool[/] → {pool}")
            build_config = BuildConfig(seed=seed, workers=workers, **(build_overrides or {}))
            build_pretrain_pool(
                MimicFolders.from_synthetic_root(cohort), pool, build_config, labelled_store=store, overwrite=True
            )
    timings["build"] = time.perf_counter() - started

    started = time.perf_counter()
    # the cohort is synthetic: Table 1 also shows what an ECG-only model could reach on its test fold
    table = run_benchmark(config, store, bench, resume=True, ceiling_cohort=cohort)
    timings["benchmark"] = time.perf_counter() - started

    release = None
    if (bench / "bundle").is_dir():  # a calibrated bundle with its explanation chosen on validation
        from ecgkt.explain.bundle_calibration import calibrate_for_release, report_commands

        started = time.perf_counter()
        release = calibrate_for_release(bench / "bundle", store, cohort / "ground_truth", seed=seed)
        timings["calibration"] = time.perf_counter() - started

    print_table(console, table, title=f"Table 1 on the synthetic cohort ({patients} patients) vs the paper")
    console.print(
        "[dim]The paper's numbers are on real MIMIC-IV-ECG (ED cohort, ~400k ECGs); ours are on a small "
        "synthetic cohort, so compare the ordering of the rows, not the values.[/]"
    )
    console.print(
        "Time: "
        + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in timings.items())
        + f" — outputs in {bench} (table1.md, plots/, bundle/)"
    )
    if release is not None:
        console.print(f"Bundle calibrated; explanation shown: {release.default_method} ({release.default_kind})")
        console.print("Report on one ECG of the test fold:", highlight=False)
        for command in report_commands(bench / "bundle", store, cohort):
            console.print(f"  {command}", highlight=False, soft_wrap=True)
    return bench


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo"), "--out", help="Folder for cohort, store and benchmark."),
        patients: int = typer.Option(DEFAULT_PATIENTS, "--patients", help="Synthetic patients to generate."),
        seed: int = typer.Option(0, "--seed", help="One seed for cohort, folds and training."),
        workers: int = typer.Option(2, "--workers", help="Worker processes for synthesis and build."),
        pretrain_pool: bool = typer.Option(
            False,
            "--pretrain-pool",
            help="Also build the pretraining pool and pretrain the joint embedding on all its (ECG, tabular) "
            "pairs (the transfer study's route), not only on the labelled records.",
        ),
        config: Path | None = typer.Option(
            None,
            "--config",
            help="YAML of training config keys over the cpu preset, e.g. benchmarks/results/transfer_route.yaml.",
        ),
    ) -> None:
        """Synthetic cohort → build → benchmark (cpu preset) → Table 1 beside the paper's numbers."""
        run_demo(
            out, patients=patients, seed=seed, workers=workers, pretrain_pool=pretrain_pool, config_file=config
        )
