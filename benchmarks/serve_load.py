"""Load test of `ecgkt serve`: requests/s and p50/p99 latency at concurrency 1 and 8, PyTorch vs onnxruntime.

Why these numbers: a deployer sizing a service needs throughput and tail latency for the real request
(a 10 s, 12-lead, 500 Hz WFDB .hea + .dat upload → POST /v1/predict → JSON with explanations), per
backend, at one client and at several. Absolute times depend on the machine and on whatever else runs
on it, so each result is set against references measured in the same run:
- the engine alone in this process (`Predictor.predict` on the already-read ECG, same backend,
  one thread): service latency / engine latency = the cost of HTTP, multipart, content checks,
  reading WFDB and JSON serialisation;
- `GET /healthz` through the same client: the HTTP floor of this machine;
- onnxruntime against PyTorch, and concurrency 8 against 1 (scaling on 2 cores).

Each configuration runs `ecgkt serve` in its own subprocess (uvicorn, one worker) on 127.0.0.1 and is
driven by one asyncio httpx client in this process; client and server share the machine's 2 cores.
Request loops are bounded in count. Results → benchmarks/results/serve_load.md and .json.

Model: `--bundle` (a trained bundle), or by default a bundle with the `cpu` preset's architecture
(d_model 64, d_state 8, 4 S4 layers, heads [128]), 40 diagnoses and 60 lab labels, random weights,
whose explanation surrogate is fitted on synthetic records so that the default explanation path is
timed (latency does not depend on what the weights learned).

Run: `.venv/bin/python benchmarks/serve_load.py [--bundle DIR] [--requests-c1 60] [--requests-c8 160]`.

`--attack` (issue 18) runs only the torch configuration: 4 normal clients unloaded, then the same 4
beside one malicious client that sends the worst known bodies in a loop (the issue's 80-byte
`sampling_rate_hz: 1e-5` request, 1 MiB of nested brackets, a 5000-digit number), and reports the
normal clients' throughput and p99 against the unloaded run, the malicious requests' statuses,
and the server's peak resident memory (VmHWM). Results are merged into serve_load.json ("attack")
and a section of serve_load.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

RESULTS = Path(__file__).parent / "results"
N_DIAGNOSES = 40
N_LABS = 60


@dataclass(frozen=True)
class ServerConfig:
    name: str
    backend: str
    threads: int
    torch_threads: int


CONFIGS = (
    ServerConfig("torch", "torch", threads=2, torch_threads=1),
    ServerConfig("onnx", "onnx", threads=2, torch_threads=1),
    ServerConfig("torch, 1 request thread × 2 intra-op", "torch", threads=1, torch_threads=2),
)


@dataclass
class LevelResult:
    config: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float


# ---- the model and the request -------------------------------------------------------------------


def build_benchmark_bundle(folder: Path) -> Path:
    """cpu-preset architecture, random weights, surrogate fitted on synthetic records (see docstring)."""

    from _common import random_bundle
    from ecgkt.bundle import load_bundle
    from ecgkt.bundle_runner import torch_runner, window_average
    from ecgkt.config import preset
    from ecgkt.explain.surrogate import fit_surrogate, save_surrogate
    from ecgkt.export.parity import PARITY_ECGS, write_synthetic_wfdb
    from ecgkt.mimic.labs import LAB_ITEMS
    from ecgkt.signals.readers import prepare_windows, read_ecg

    cpu = preset("cpu")
    lab_labels = [f"{lab.name}_{side}" for lab in LAB_ITEMS for side in ("low", "high")][:N_LABS]
    diagnosis_labels = [f"D{index:03d}" for index in range(N_DIAGNOSES)]
    path = random_bundle(
        folder / "bundle",
        encoder=cpu.encoder,
        diagnosis_labels=diagnosis_labels,
        lab_labels=lab_labels,
        head_hidden=[128],
        note="random weights: serving benchmark only",
    )
    run = torch_runner(load_bundle(path).model)
    lab_rows, diag_rows = [], []
    records = folder / "surrogate_records"
    for index in range(40):
        params = PARITY_ECGS[index % len(PARITY_ECGS)]
        header = write_synthetic_wfdb(records, params, record_name=f"r{index}", seed=100 + index)
        diag, lab = run(prepare_windows(read_ecg(header)))
        diag_rows.append(window_average(diag))
        lab_rows.append(window_average(lab))
    surrogate = fit_surrogate(np.stack(lab_rows), np.stack(diag_rows), diagnosis_labels, lab_labels)
    save_surrogate(path, surrogate.model_copy(update={"fitted_on": "40 synthetic benchmark records"}))
    return path


def request_files(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    from ecgkt.export.parity import PARITY_ECGS, write_synthetic_wfdb

    header = write_synthetic_wfdb(folder / "request", PARITY_ECGS[1], record_name="41234567", seed=7)
    dat = header.with_suffix(".dat")
    return [
        ("files", (header.name, header.read_bytes(), "text/plain")),
        ("files", (dat.name, dat.read_bytes(), "application/octet-stream")),
    ]


def engine_latency_ms(bundle: Path, backend: str, header: Path, repeats: int = 30) -> float:
    """Median in-process `Predictor.predict` latency on one thread (the reference for overhead)."""
    import torch

    from ecgkt.bundle import load_bundle
    from ecgkt.export.onnx import OnnxRunner, export_onnx
    from ecgkt.predict.engine import Predictor
    from ecgkt.signals.readers import read_ecg

    torch.set_num_threads(1)
    loaded = load_bundle(bundle)
    runner = None
    if backend == "onnx":
        with tempfile.TemporaryDirectory() as scratch:
            runner = OnnxRunner(export_onnx(bundle, Path(scratch) / "m.onnx").onnx_path, intra_op_threads=1)
    predictor = Predictor(loaded, runner=runner)
    ecg = read_ecg(header)
    for _ in range(5):
        predictor.predict(ecg)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict(ecg)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


# ---- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(bundle: Path, config: ServerConfig, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "ecgkt.cli", "serve", str(bundle), "--port", str(port),
        "--backend", config.backend, "--threads", str(config.threads), "--torch-threads", str(config.torch_threads),
        "--max-pending", "64",
    ]  # fmt: skip
    with log.open("wb") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.25)
    process.kill()
    raise RuntimeError(f"server did not start within 180 s; see {log}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---- the load ------------------------------------------------------------------------------------


async def drive(
    url: str, concurrency: int, n_requests: int, files: list[tuple[str, tuple[str, bytes, str]]] | None
) -> tuple[list[float], int, float]:
    """`n_requests` requests by `concurrency` workers; (latencies s, errors, wall seconds)."""
    latencies: list[float] = []
    errors = 0
    remaining = n_requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await (client.post(url, files=files) if files is not None else client.get(url))
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, errors, wall


def summarise(config: str, concurrency: int, latencies: list[float], errors: int, wall: float) -> LevelResult:
    ms = np.asarray(latencies) * 1000
    return LevelResult(
        config=config,
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(wall, 2),
        requests_per_s=round(len(latencies) / wall, 2),
        p50_ms=round(float(np.percentile(ms, 50)), 1),
        p99_ms=round(float(np.percentile(ms, 99)), 1),
        mean_ms=round(float(ms.mean()), 1),
    )


def measure(bundle: Path, config: ServerConfig, files: list, args: argparse.Namespace, scratch: Path) -> dict:
    port = free_port()
    log = scratch / f"server-{config.backend}-{config.threads}x{config.torch_threads}.log"
    started = time.perf_counter()
    process = start_server(bundle, config, port, log)
    startup_s = time.perf_counter() - started
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(drive(base + "/v1/predict", 2, 10, files))  # warm-up
        health, _, _ = asyncio.run(drive(base + "/healthz", 1, 50, None))
        levels = []
        for concurrency, count in ((1, args.requests_c1), (8, args.requests_c8)):
            latencies, errors, wall = asyncio.run(drive(base + "/v1/predict", concurrency, count, files))
            levels.append(summarise(config.name, concurrency, latencies, errors, wall))
            print(
                f"  {config.name:<40} c={concurrency}: {levels[-1].requests_per_s:6.1f} req/s, "
                f"p50 {levels[-1].p50_ms:6.1f} ms, p99 {levels[-1].p99_ms:6.1f} ms, errors {errors}"
            )
    finally:
        stop_server(process)
    return {
        "config": asdict(config),
        "startup_s": round(startup_s, 1),
        "healthz_p50_ms": round(1000 * statistics.median(health), 2),
        "levels": [asdict(level) for level in levels],
    }


# ---- a malicious client beside normal ones (issue 18) -------------------------------------------

HOSTILE_BODIES: tuple[bytes, ...] = (
    b'{"signal":[[0.0]],"sampling_rate_hz":1e-5,"leads":["I"],"missing_leads":"zero"}',
    b"[" * (1024 * 1024),
    b'{"signal": [[0.0]], "sampling_rate_hz": ' + b"9" * 5000 + b"}",
)
# Documented bound for the server's peak resident memory under the attack run (model + Python + torch
# ~ 400-600 MB here; an unbounded request used to add ~270 MB/s up to 9 GB).
ATTACK_MEMORY_BOUND_MB = 1024


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def attack(url: str, files: list, normal_clients: int, n_requests: int) -> tuple[list[float], int, float, dict]:
    """Normal clients send `n_requests` uploads while one client loops over HOSTILE_BODIES."""
    stop = asyncio.Event()
    statuses: dict[str, int] = {}

    async def malicious() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            index = 0
            while not stop.is_set():
                body = HOSTILE_BODIES[index % len(HOSTILE_BODIES)]
                index += 1
                response = await client.post(url, content=body, headers={"content-type": "application/json"})
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1

    task = asyncio.create_task(malicious())
    try:
        latencies, errors, wall = await drive(url, normal_clients, n_requests, files)
    finally:
        stop.set()
        await task
    return latencies, errors, wall, statuses


def measure_attack(bundle: Path, files: list, n_requests: int, scratch: Path) -> dict:
    config = CONFIGS[0]
    port = free_port()
    process = start_server(bundle, config, port, scratch / "server-attack.log")
    url = f"http://127.0.0.1:{port}/v1/predict"
    try:
        asyncio.run(drive(url, 2, 10, files))  # warm-up
        rss_before = peak_rss_mb(process.pid)
        latencies, errors, wall = asyncio.run(drive(url, 4, n_requests, files))
        unloaded = summarise("4 normal clients", 4, latencies, errors, wall)
        latencies, errors, wall, statuses = asyncio.run(attack(url, files, 4, n_requests))
        loaded = summarise("4 normal clients + 1 malicious", 4, latencies, errors, wall)
        rss_peak = peak_rss_mb(process.pid)
    finally:
        stop_server(process)
    ratio = loaded.requests_per_s / unloaded.requests_per_s
    print(
        f"  attack: unloaded {unloaded.requests_per_s:.1f} req/s, with attacker {loaded.requests_per_s:.1f} "
        f"({100 * ratio:.0f} %), p99 {unloaded.p99_ms:.0f} -> {loaded.p99_ms:.0f} ms, peak RSS {rss_peak:.0f} MB, "
        f"malicious statuses {statuses}"
    )
    return {
        "unloaded": asdict(unloaded),
        "with_attacker": asdict(loaded),
        "throughput_kept": round(ratio, 3),
        "malicious_statuses": statuses,
        "server_peak_rss_mb_after_warmup": round(rss_before, 1),
        "server_peak_rss_mb": round(rss_peak, 1),
        "memory_bound_mb": ATTACK_MEMORY_BOUND_MB,
    }


def write_attack(attack_result: dict, machine: str) -> None:
    json_path = RESULTS / "serve_load.json"
    payload = json.loads(json_path.read_text()) if json_path.is_file() else {}
    payload["attack"] = {"machine": machine, **attack_result}
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    u, a = attack_result["unloaded"], attack_result["with_attacker"]
    section = [
        "<!-- attack -->",
        "## One malicious client beside 4 normal ones (issue 18)",
        "",
        f"Machine: {machine}. torch backend, 2 request threads, 1 intra-op thread, default limits "
        "(20 MiB body, 30 s timeout). The malicious client loops over the issue's 80-byte "
        "`sampling_rate_hz: 1e-5` body, 1 MiB of nested brackets and a 5000-digit number.",
        "",
        "| run | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| 4 normal clients | {u['requests']} | {u['errors']} | {u['requests_per_s']:.1f} | {u['p50_ms']:.1f} | "
        f"{u['p99_ms']:.1f} |",
        f"| 4 normal + 1 malicious | {a['requests']} | {a['errors']} | {a['requests_per_s']:.1f} | {a['p50_ms']:.1f} | "
        f"{a['p99_ms']:.1f} |",
        "",
        f"- normal clients keep **{100 * attack_result['throughput_kept']:.0f} %** of their unloaded throughput "
        "(target >= 80 %);",
        f"- malicious requests answered with statuses {attack_result['malicious_statuses']} (all 4xx, none 5xx);",
        f"- server peak resident memory (VmHWM) {attack_result['server_peak_rss_mb']:.0f} MB "
        f"(after warm-up {attack_result['server_peak_rss_mb_after_warmup']:.0f} MB); documented bound "
        f"{attack_result['memory_bound_mb']} MB. Before issue 18 one such request allocated up to 9 GB.",
        "",
        "Regenerate with `.venv/bin/python benchmarks/serve_load.py --attack`.",
    ]
    md_path = RESULTS / "serve_load.md"
    text = md_path.read_text() if md_path.is_file() else ""
    text = text.split("<!-- attack -->")[0].rstrip() + "\n\n" + "\n".join(section) + "\n"
    md_path.write_text(text)


# ---- report --------------------------------------------------------------------------------------


def write_results(payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_load.json").write_text(json.dumps(payload, indent=2) + "\n")
    runs = payload["runs"]
    engine = payload["engine_ms"]
    by_name = {run["config"]["name"]: run for run in runs}
    lines = [
        "# Service load: `POST /v1/predict` with a 10 s 12-lead WFDB upload",
        "",
        f"Machine: {payload['machine']}. Client (httpx, asyncio) and server (`ecgkt serve`, uvicorn, one worker) "
        "share the same 2 cores; each configuration runs in its own server process.",
        f"Model: {payload['model']}. Request: {payload['request']}.",
        "",
        "| configuration | concurrency | requests | errors | req/s | p50 ms | p99 ms | p50 / engine | c8 req/s ÷ c1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        levels = {level["concurrency"]: level for level in run["levels"]}
        reference = engine[run["config"]["backend"]]
        for concurrency, level in sorted(levels.items()):
            scaling = f"{level['requests_per_s'] / levels[1]['requests_per_s']:.2f}" if concurrency == 8 else ""
            lines.append(
                f"| {run['config']['name']} | {concurrency} | {level['requests']} | {level['errors']} | "
                f"{level['requests_per_s']:.1f} | {level['p50_ms']:.1f} | {level['p99_ms']:.1f} | "
                f"{level['p50_ms'] / reference:.2f} | {scaling} |"
            )
    if "torch" not in by_name or "onnx" not in by_name:
        (RESULTS / "serve_load.md").write_text("\n".join(lines) + "\n")
        return
    torch_run, onnx_run = by_name["torch"], by_name["onnx"]
    lines += [
        "",
        "References measured in the same run:",
        "",
        f"- engine alone, in process, one thread (`Predictor.predict` on an already-read ECG): "
        f"torch {engine['torch']:.1f} ms, onnxruntime {engine['onnx']:.1f} ms "
        f"(onnx ÷ torch = {engine['onnx'] / engine['torch']:.2f});",
        f"- HTTP floor (`GET /healthz`, p50): torch server {torch_run['healthz_p50_ms']:.2f} ms, "
        f"onnx server {onnx_run['healthz_p50_ms']:.2f} ms;",
        f"- server start-up (process start → first healthy answer): torch {torch_run['startup_s']} s, "
        f"onnx {onnx_run['startup_s']} s (includes the export + parity check when no --onnx file is given).",
    ]
    for concurrency in (1, 8):
        t = next(level for level in torch_run["levels"] if level["concurrency"] == concurrency)
        o = next(level for level in onnx_run["levels"] if level["concurrency"] == concurrency)
        lines.append(
            f"- concurrency {concurrency}: onnxruntime ÷ PyTorch throughput = "
            f"{o['requests_per_s'] / t['requests_per_s']:.2f}, p50 latency ratio = {o['p50_ms'] / t['p50_ms']:.2f}."
        )
    lines += [
        "",
        "`p50 / engine` is the service's median latency over the engine's: what HTTP, multipart parsing, the "
        "content checks, the WFDB reader (via a private temp folder) and JSON serialisation add per request "
        "at concurrency 1; at concurrency 8 it also contains queueing. Regenerate with "
        "`.venv/bin/python benchmarks/serve_load.py`.",
    ]
    (RESULTS / "serve_load.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="trained bundle (default: random cpu-preset bundle)")
    parser.add_argument("--requests-c1", type=int, default=60)
    parser.add_argument("--requests-c8", type=int, default=200)
    parser.add_argument(
        "--configs", nargs="*", default=[c.name for c in CONFIGS], help="subset of configurations to run"
    )
    parser.add_argument("--attack", action="store_true", help="only the malicious-client run (issue 18)")
    parser.add_argument("--requests-attack", type=int, default=120)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # sklearn convergence notes while fitting
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ecgkt-serve-load-") as scratch_name:
        scratch = Path(scratch_name)
        bundle = args.bundle or build_benchmark_bundle(scratch)
        files = request_files(scratch)
        if args.attack:
            machine = (
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}, load average at start {load_at_start:.1f} (other jobs share the machine)"
            )
            write_attack(measure_attack(bundle, files, args.requests_attack, scratch), machine)
            print(f"wrote {RESULTS / 'serve_load.md'}")
            return
        header = scratch / "request" / "41234567.hea"
        engine = {backend: engine_latency_ms(bundle, backend, header) for backend in ("torch", "onnx")}
        print(f"engine alone: torch {engine['torch']:.1f} ms, onnx {engine['onnx']:.1f} ms")
        runs = [measure(bundle, config, files, args, scratch) for config in CONFIGS if config.name in args.configs]

    from ecgkt.bundle import read_manifest

    manifest = read_manifest(bundle) if args.bundle else None
    model = (
        f"bundle {args.bundle} ({len(manifest.diagnosis_labels)} diagnoses, {len(manifest.lab_labels)} labs)"
        if manifest is not None
        else f"cpu-preset architecture (d_model 64, 4 S4 layers), {N_DIAGNOSES} diagnoses, {N_LABS} lab labels, "
        "random weights, surrogate explanations"
    )
    write_results(
        {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average at start {load_at_start:.1f}, "
            f"at end {os.getloadavg()[0]:.1f} (other jobs share the machine)",
            "model": model,
            "request": f"WFDB pair, {sum(len(f[1][1]) for f in files) / 1024:.0f} KiB, "
            "12 leads × 5000 samples at 500 Hz",
            "engine_ms": {key: round(value, 2) for key, value in engine.items()},
            "runs": runs,
        }
    )
    print(f"wrote {RESULTS / 'serve_load.md'}")


if __name__ == "__main__":
    main()
