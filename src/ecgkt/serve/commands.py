"""CLI: `ecgkt serve BUNDLE` — the prediction service under uvicorn (heavy imports stay inside)."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgkt.cli_errors import cli_error


def serve(
    bundle: Path = typer.Argument(..., help="Model bundle folder to serve.", show_default=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes it on the network)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes (each loads the model)."),
    backend: str = typer.Option("torch", "--backend", help="torch | onnx (onnxruntime)."),
    onnx: Path | None = typer.Option(
        None, "--onnx", help="ONNX file for --backend onnx (default: export the bundle at start-up)."
    ),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Larger request bodies get HTTP 413."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds per request for parsing + inference (504)."),
    threads: int = typer.Option(2, "--threads", min=1, help="Inference threads per worker."),
    torch_threads: int = typer.Option(1, "--torch-threads", min=1, help="Intra-op threads per inference call."),
    max_pending: int = typer.Option(16, "--max-pending", min=1, help="Requests accepted at once per worker (503)."),
    expect_sha256: str | None = typer.Option(
        None, "--expect-sha256", help="Refuse to start unless the bundle's digest (`ecgkt bundle-hash`) is this."
    ),
) -> None:
    """Serve POST /v1/predict, POST /v1/report, GET /v1/model, GET /healthz and the upload page at /."""
    import os
    import tempfile

    import uvicorn
    from pydantic import ValidationError
    from rich.console import Console

    from ecgkt.bundle import BundleError, read_manifest
    from ecgkt.export.onnx import OnnxExportError
    from ecgkt.serve.settings import ServeSettings, SettingsError, configure_logging

    console = Console(stderr=True)

    if backend not in ("torch", "onnx"):
        raise cli_error(f"--backend must be torch or onnx, got {backend!r}")
    if onnx is not None and backend != "onnx":
        raise cli_error("--onnx is only used with --backend onnx")
    if onnx is not None and not onnx.is_file():
        raise cli_error(f"{onnx}: no such ONNX file")
    scratch: tempfile.TemporaryDirectory[str] | None = None
    try:
        read_manifest(bundle)
        if expect_sha256 is not None:
            from ecgkt.bundle_integrity import verify_digest

            verify_digest(bundle, expect_sha256, BundleError)
        if backend == "onnx" and onnx is None and workers > 1:
            # Export once here rather than once per worker process.
            from ecgkt.export.onnx import export_onnx

            scratch = tempfile.TemporaryDirectory(prefix="ecgkt-serve-onnx-")
            onnx = export_onnx(bundle, Path(scratch.name) / "model.onnx").onnx_path
        try:
            settings = ServeSettings(
                max_upload_mb=max_upload_mb,
                inference_timeout_s=timeout,
                inference_threads=threads,
                torch_threads=torch_threads,
                max_pending=max_pending,
                onnx_path=onnx,
            )
        except ValidationError as error:
            first = error.errors()[0]
            option = {"inference_timeout_s": "timeout", "inference_threads": "threads"}.get(
                str(first["loc"][0]), str(first["loc"][0])
            )
            raise cli_error(f"--{option.replace('_', '-')} ({first['loc'][0]}): {first['msg']}") from None
        configure_logging(settings.log_level)
        if workers == 1:
            from ecgkt.serve.app import create_app

            with console.status("loading the model…"):
                app = create_app(bundle, "onnx" if backend == "onnx" else "torch", settings)
            uvicorn.run(app, host=host, port=port, access_log=False, log_level=settings.log_level)
        else:
            os.environ.update(settings.to_env())
            os.environ["ECGKT_SERVE_BUNDLE"] = str(bundle.resolve())
            os.environ["ECGKT_SERVE_BACKEND"] = backend
            uvicorn.run(
                "ecgkt.serve.app:app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                access_log=False,
                log_level=settings.log_level,
            )
    except (BundleError, OnnxExportError, SettingsError, ValueError) as error:
        raise cli_error(error) from None
    finally:
        if scratch is not None:
            scratch.cleanup()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
