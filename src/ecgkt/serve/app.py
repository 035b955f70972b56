"""The prediction service: FastAPI app with the JSON API, the upload page and its safety limits.

Endpoints
- `POST /v1/predict`  an ECG upload (multipart: WFDB .hea + .dat, DICOM, .npy [+ sidecar .json], .npz,
  .json; or a JSON body) → the same `PredictionResult` JSON as `ecgkt predict`.
- `POST /v1/report`   the same upload → an HTML fragment (tracing, diagnoses, supporting labs).
- `GET /v1/model`     labels, validation AUROCs, calibration state, versions, backend.
- `GET /healthz`      liveness and which backend serves.
- `GET /`             the upload page (plain HTML + JS from `static/`, no build step, no CDN).

Why it is shaped this way
- The model is loaded once in `create_app` and shared: the torch model is only read at inference
  and onnxruntime sessions accept concurrent `run` calls, so request threads need no lock.
- The event loop never parses or computes: reading the upload's bytes is async, everything else
  (content checks, readers, preprocessing, the model, report rendering) runs in a bounded thread
  pool with a timeout (504) and a cap on accepted work (503), so one slow or hostile upload cannot
  stall health checks or other requests.
- Logs carry only a request id, method, path, status, body size, upload kind and latency: file
  names, WFDB header comments and DICOM attributes can hold patient identifiers and are never logged.

Modules: `app` (this: routes, the service object, the app factory), `schema` (OpenAPI response
models and request body), `guard` (request id, body limit, access log, error body), `pool` (bounded
inference), `uploads` (hostile-byte checks), `settings` (limits, logging set-up).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from numpy.typing import NDArray
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecgkt import __version__
from ecgkt.errors import UserError
from ecgkt.serve.guard import RequestGuard, error_response
from ecgkt.serve.pool import CANCEL_CHUNK_WINDOWS, InferencePool, check_deadline
from ecgkt.serve.schema import (
    ERROR_RESPONSES,
    JSON_ERROR_RESPONSES,
    UPLOAD_REQUEST_BODY,
    HealthResponse,
    LabelInfo,
    ModelInfo,
)
from ecgkt.serve.settings import Backend, ServeSettings
from ecgkt.serve.uploads import (
    ParsedUpload,
    UploadedFile,
    UploadError,
    parse_files,
    parse_json_document,
    parse_options,
    sanitise_filename,
)

__all__ = ["EcgService", "ReceivedUpload", "app_from_env", "create_app", "parse_upload", "receive_upload"]

logger = logging.getLogger("ecgkt.serve")
STATIC_DIR = Path(__file__).parent / "static"

# ---- the upload as received (bytes only; parsing happens in the pool) -----------------------


@dataclass(frozen=True)
class ReceivedUpload:
    """Bytes read off the request by the event loop: a JSON body, or multipart files + fields."""

    json_body: bytes | None
    files: tuple[UploadedFile, ...]
    fields: dict[str, str]

    @property
    def n_bytes(self) -> int:
        if self.json_body is not None:
            return len(self.json_body)
        return sum(len(upload.data) for upload in self.files)


async def receive_upload(request: Request, settings: ServeSettings) -> ReceivedUpload:
    """Read the request body by content type; refuse anything that is neither JSON nor multipart."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        return ReceivedUpload(json_body=await request.body(), files=(), fields={})
    if media_type != "multipart/form-data":
        raise UploadError(
            415,
            "unsupported_media_type",
            f"content type {media_type or '(none)'!r} is not accepted; send multipart/form-data with the "
            "ECG file(s) or an application/json body",
        )
    try:
        form = await request.form(max_files=settings.max_files, max_fields=8, max_part_size=64 * 1024)
    except StarletteHTTPException as error:
        kind = "too_many_files" if "files" in str(error.detail).lower() else "malformed_request"
        raise UploadError(400, kind, f"unreadable multipart upload: {error.detail}") from None
    try:
        files: list[UploadedFile] = []
        fields: dict[str, str] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in fields:
                    raise UploadError(400, "malformed_request", f"form field {key[:40]!r} given twice")
                fields[key] = value
            else:
                files.append(UploadedFile(sanitise_filename(value.filename), await value.read()))
    finally:
        await form.close()
    return ReceivedUpload(json_body=None, files=tuple(files), fields=fields)


def parse_upload(upload: ReceivedUpload) -> ParsedUpload:
    """Content checks and reading (runs in the worker pool: it is CPU work on untrusted bytes)."""
    if upload.json_body is not None:
        if not upload.json_body.strip():
            raise UploadError(422, "invalid_json", "request body is empty; expected a JSON ECG document")
        return ParsedUpload("json", parse_json_document(upload.json_body, "request body"))
    return parse_files(upload.files, parse_options(upload.fields))


# ---- the service --------------------------------------------------------------------------------


class EcgService:
    """Holds the loaded model, the pool and the report lock; one instance per app."""

    def __init__(self, bundle_path: Path, backend: Backend, settings: ServeSettings) -> None:
        import torch

        from ecgkt.bundle import load_bundle
        from ecgkt.predict.engine import Predictor

        torch.set_num_threads(settings.torch_threads)
        self.settings = settings
        self.backend: Backend = backend
        self.bundle = load_bundle(bundle_path)
        from ecgkt.predict.engine import torch_runner

        runner = self._onnx_runner(bundle_path) if backend == "onnx" else torch_runner(self.bundle.model)
        self.predictor = Predictor(self.bundle, runner=cancellable(runner))
        self.pool = InferencePool(settings.inference_threads, settings.max_pending, settings.inference_timeout_s)
        # matplotlib's rc_context (used when a figure becomes SVG) changes global state: one report at a time.
        self._report_lock = threading.Lock()
        self.model_info = self._describe()

    def _onnx_runner(self, bundle_path: Path) -> Any:
        """onnxruntime on the configured ONNX file, or on a fresh parity-checked export of the bundle.

        onnxruntime holds the model in memory once the session exists, so the exported file is
        deleted right away: nothing is left on disk however the process ends.
        """
        from ecgkt.export.onnx import OnnxRunner, export_onnx

        threads = self.settings.torch_threads
        if self.settings.onnx_path is not None:
            return OnnxRunner(self.settings.onnx_path, intra_op_threads=threads)
        with tempfile.TemporaryDirectory(prefix="ecgkt-serve-onnx-") as scratch:
            report = export_onnx(bundle_path, Path(scratch) / "model.onnx")
            logger.info("exported the bundle to ONNX for serving: max abs diff %.2e", report.max_abs_diff)
            return OnnxRunner(report.onnx_path, intra_op_threads=threads)

    def _describe(self) -> ModelInfo:
        manifest = self.bundle.manifest
        thresholds_diag = manifest.thresholds_diagnosis or {}
        thresholds_lab = manifest.thresholds_lab or {}
        diagnoses = [
            LabelInfo(
                label=code,
                title=manifest.diagnosis_titles.get(code),
                validation_auroc=manifest.validation_auroc_diagnosis.get(code),
                threshold=thresholds_diag.get(code),
            )
            for code in manifest.diagnosis_labels
        ]
        labs = [
            LabelInfo(
                label=label,
                validation_auroc=manifest.validation_auroc_lab.get(label),
                threshold=thresholds_lab.get(label),
            )
            for label in manifest.lab_labels
        ]
        return ModelInfo(
            ecgkt_version=__version__,
            bundle_ecgkt_version=manifest.ecgkt_version,
            bundle_format_version=manifest.format_version,
            bundle_created_utc=manifest.created_utc,
            backend=self.backend,
            diagnoses=diagnoses,
            labs=labs,
            validation_macro_auroc_diagnosis=_macro([d.validation_auroc for d in diagnoses]),
            validation_macro_auroc_lab=_macro([lab.validation_auroc for lab in labs]),
            calibrated=manifest.temperature_diagnosis is not None or manifest.thresholds_diagnosis is not None,
            preprocessing=manifest.preprocessing.model_dump(),
            training=manifest.training,
            limits={
                "max_upload_mb": self.settings.max_upload_mb,
                "inference_timeout_s": self.settings.inference_timeout_s,
                "max_files": self.settings.max_files,
            },
        )

    def predict(self, upload: ReceivedUpload) -> tuple[str, Any]:
        """(upload kind, PredictionResult) — runs in the pool."""
        parsed = parse_upload(upload)
        check_deadline()
        result = self.predictor.predict(parsed.ecg)
        return parsed.kind, result.model_copy(update={"source": parsed.ecg.source})

    def report(self, upload: ReceivedUpload) -> tuple[str, str]:
        """(upload kind, HTML fragment) — runs in the pool."""
        from ecgkt.report.html import render_report_fragment

        parsed = parse_upload(upload)
        check_deadline()
        result = self.predictor.predict(parsed.ecg)
        check_deadline()
        result = result.model_copy(update={"source": parsed.ecg.source})
        with self._report_lock:
            return parsed.kind, render_report_fragment(result, parsed.ecg, self.bundle.manifest)

    def close(self) -> None:
        self.pool.shutdown()


def cancellable(runner: Any) -> Any:
    """The model runner, fed in chunks with a deadline check between them (see `serve.pool`)."""

    def run(windows: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        diag, lab = [], []
        for start in range(0, windows.shape[0], CANCEL_CHUNK_WINDOWS):
            check_deadline()
            d, m = runner(windows[start : start + CANCEL_CHUNK_WINDOWS])
            diag.append(d)
            lab.append(m)
        return np.concatenate(diag), np.concatenate(lab)

    return run


def _macro(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and v == v]
    return sum(known) / len(known) if known else None


# ---- the app ------------------------------------------------------------------------------------


def create_app(bundle_path: Path | str, backend: Backend = "torch", settings: ServeSettings | None = None) -> FastAPI:
    """Build the service around a model bundle; the model is loaded here, once (errors surface now)."""
    from ecgkt.predict.engine import PredictionResult

    settings = settings or ServeSettings()
    service = EcgService(Path(bundle_path), backend, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="ecgkt prediction service",
        version=__version__,
        description=(
            "ECG-only diagnosis and lab-abnormality predictions with lab-grounded explanations. "
            "Research software, not a medical device."
        ),
        lifespan=lifespan,
        # Swagger UI / ReDoc load their JavaScript from a CDN: no third-party code is served here.
        # The schema itself is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_upload_bytes)

    @app.exception_handler(UploadError)
    async def _upload_error(_: Request, error: UploadError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(UserError)
    async def _user_error(_: Request, error: UserError) -> JSONResponse:
        # A reader or the engine refused the input after parsing (e.g. non-finite model output).
        kind = getattr(error, "kind", "invalid_input")
        return error_response(UploadError(422, str(kind), str(error)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(error.status_code, "http_error")
        return error_response(UploadError(error.status_code, kind, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(UploadError(422, "invalid_request", f"{where}: {first.get('msg')}"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # Log the type and request id only: the message could quote file content.
        logger.error("request_id=%s unexpected %s", request.state.request_id, type(error).__name__, exc_info=False)
        return error_response(UploadError(500, "internal_error", "unexpected server error; see the server log"))

    @app.get("/healthz", response_model=HealthResponse, tags=["service"])
    async def healthz() -> HealthResponse:
        """Liveness: the model is loaded and the event loop answers."""
        return HealthResponse(status="ok", backend=backend, model_loaded=True, ecgkt_version=__version__)

    @app.get("/v1/model", response_model=ModelInfo, tags=["model"])
    async def model_info() -> ModelInfo:
        """Labels (ICD code + title, lab abnormalities), validation AUROCs, calibration, versions."""
        return service.model_info

    async def _predicted(request: Request) -> Any:
        """One uploaded ECG through the bounded pool: the prediction both predict routes return."""
        upload = await receive_upload(request, settings)
        kind, result = await service.pool.run(lambda: service.predict(upload))
        request.state.upload_kind = kind
        return result

    @app.post(
        "/v1/predict",
        response_model=PredictionResult,
        responses=ERROR_RESPONSES,
        openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
        tags=["predict"],
    )
    async def predict(request: Request) -> Any:
        """Predict diagnoses and lab abnormalities, with supporting labs, for one uploaded ECG."""
        return await _predicted(request)

    @app.post(
        "/v1/predict/fhir",
        response_class=JSONResponse,
        responses={
            200: {
                "description": "FHIR R4 Bundle",
                "content": {"application/fhir+json": {"schema": {"type": "object"}}},
            },
            **ERROR_RESPONSES,
        },
        openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
        tags=["predict"],
    )
    async def predict_fhir(request: Request) -> JSONResponse:
        """The same prediction as a FHIR R4 Bundle: DiagnosticReport + one Observation per finding."""
        from ecgkt.fhir import diagnostic_report_bundle

        result = await _predicted(request)
        return JSONResponse(diagnostic_report_bundle([result]), media_type="application/fhir+json")

    @app.post(
        "/v1/report",
        response_class=HTMLResponse,
        responses=JSON_ERROR_RESPONSES,
        openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
        tags=["predict"],
    )
    async def report(request: Request) -> HTMLResponse:
        """The clinical report for one uploaded ECG as an HTML fragment (what the page shows)."""
        upload = await receive_upload(request, settings)
        kind, fragment = await service.pool.run(lambda: service.report(upload))
        request.state.upload_kind = kind
        return HTMLResponse(fragment)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (one call per worker process); reads ECGKT_SERVE_* variables."""
    import os

    from ecgkt.serve.settings import SettingsError, configure_logging

    bundle = os.environ.get("ECGKT_SERVE_BUNDLE")
    if not bundle:
        raise SettingsError("ECGKT_SERVE_BUNDLE is not set (the model bundle folder to serve)")
    settings = ServeSettings.from_env()
    configure_logging(settings.log_level)
    backend = os.environ.get("ECGKT_SERVE_BACKEND", "torch")
    if backend not in ("torch", "onnx"):
        raise SettingsError(f"ECGKT_SERVE_BACKEND must be torch or onnx, got {backend!r}")
    return create_app(bundle, "onnx" if backend == "onnx" else "torch", settings)
