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
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecgkt import __version__
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

logger = logging.getLogger("ecgkt.serve")
STATIC_DIR = Path(__file__).parent / "static"
T = TypeVar("T")

# ---- response models (they make the OpenAPI schema precise) ---------------------------------


class ErrorResponse(BaseModel):
    """Every refusal: a stable machine-readable `error` kind and a human `detail` naming the file."""

    error: str
    detail: str


class HealthResponse(BaseModel):
    status: str
    backend: Backend
    model_loaded: bool
    ecgkt_version: str


class LabelInfo(BaseModel):
    label: str
    title: str | None = None
    validation_auroc: float | None = None
    threshold: float | None = None


class ModelInfo(BaseModel):
    """What a client needs to interpret predictions: labels, validation metrics, calibration, versions."""

    ecgkt_version: str
    bundle_ecgkt_version: str
    bundle_format_version: int
    bundle_created_utc: str
    backend: Backend
    diagnoses: list[LabelInfo]
    labs: list[LabelInfo]
    validation_macro_auroc_diagnosis: float | None
    validation_macro_auroc_lab: float | None
    calibrated: bool
    preprocessing: dict[str, Any]
    training: dict[str, Any]
    limits: dict[str, float]


_ERROR_DESCRIPTIONS: tuple[tuple[int, str], ...] = (
    (400, "Malformed request or unexpected combination of files"),
    (413, "Upload larger than the configured limit"),
    (415, "Unsupported content type or unrecognised file"),
    (422, "The upload was recognised but is not a usable ECG (the detail says why)"),
    (503, "Too many requests in progress"),
    (504, "Parsing and inference did not finish within the timeout"),
)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description} for code, description in _ERROR_DESCRIPTIONS
}
# For routes whose success response is HTML, FastAPI would list a `model` under text/html: errors are
# JSON whatever the route returns, so they reference the schema explicitly.
JSON_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for code, description in _ERROR_DESCRIPTIONS
}

UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "One ECG: a WFDB .hea with its .dat, a DICOM, a .npy (with an "
                        "optional sidecar .json), a .npz, or a .json document as for the JSON body.",
                    },
                    "sampling_rate_hz": {"type": "number", "exclusiveMinimum": 0},
                    "leads": {"type": "string", "description": "Lead names, comma-separated or a JSON list."},
                    "units": {"type": "string", "enum": ["auto", "mV", "uV"]},
                    "missing_leads": {"type": "string", "enum": ["error", "zero"]},
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["signal", "sampling_rate_hz"],
                "additionalProperties": False,
                "properties": {
                    "signal": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": ["number", "null"]}},
                        "description": "leads × samples (or samples × leads), physical units; null = missing",
                    },
                    "sampling_rate_hz": {"type": "number", "exclusiveMinimum": 0},
                    "leads": {"type": "array", "items": {"type": "string"}},
                    "units": {"type": "string", "enum": ["auto", "mV", "uV"]},
                    "missing_leads": {"type": "string", "enum": ["error", "zero"]},
                },
            },
            "example": {
                "signal": [[0.0] * 4] * 12,
                "sampling_rate_hz": 500,
                "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
                "units": "mV",
            },
        },
    },
}


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


# ---- bounded inference pool -----------------------------------------------------------------


class InferencePool:
    """A thread pool with admission control (503 beyond `max_pending`) and a deadline (504).

    A timed-out job keeps its thread until it finishes (Python threads cannot be killed), and keeps
    counting as pending until then, so repeated slow uploads cannot pile up unbounded work.
    """

    def __init__(self, threads: int, max_pending: int, timeout_s: float) -> None:
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._max_pending = max_pending
        self._timeout_s = timeout_s
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def _release(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._pending >= self._max_pending:
                raise UploadError(503, "server_busy", f"{self._pending} requests are in progress; retry in a moment")
            self._pending += 1
        try:
            future = self._running_executor().submit(job)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except TimeoutError:
            raise UploadError(
                504, "inference_timeout", f"parsing and inference took longer than {self._timeout_s:g} s"
            ) from None

    def _running_executor(self) -> ThreadPoolExecutor:
        """The executor, (re)started on first use: an app's lifespan may end and start again."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="ecgkt-infer")
            return self._executor

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


# ---- middleware: request id, body limit, privacy-preserving access log ------------------------


# The page runs only its own script; the report's SVG uses inline style attributes: 'unsafe-inline' styles.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
)


class RequestGuard:
    """Pure ASGI middleware: request id, body size limit (413) and one access-log line per request.

    The limit is enforced twice: a declared Content-Length above it is refused before the body is
    read, and a streamed (chunked) body is counted as it arrives and refused once it crosses it.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500}
        received = {"bytes": 0}
        limit = self.max_body_bytes

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > limit:
                    raise UploadError(413, "upload_too_large", _too_large(limit))
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                received["bytes"] = declared
                await _send_error(send_with_id, UploadError(413, "upload_too_large", _too_large(limit)))
                return
            await self.app(scope, counting_receive, send_with_id)
        finally:
            logger.info(
                "request_id=%s method=%s path=%s status=%d bytes=%d kind=%s latency_ms=%.1f",
                request_id,
                scope.get("method", "-"),
                scope.get("path", "-"),
                status["code"],
                received["bytes"],
                state.get("upload_kind", "-"),
                1000 * (time.perf_counter() - started),
            )


def _too_large(limit: int) -> str:
    return f"upload exceeds the limit of {limit / 1024 / 1024:g} MiB"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, error: UploadError) -> None:
    body = ErrorResponse(error=error.kind, detail=error.detail).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error_response(error: UploadError) -> JSONResponse:
    return JSONResponse(
        ErrorResponse(error=error.kind, detail=error.detail).model_dump(), status_code=error.status_code
    )


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
        runner = None
        if backend == "onnx":
            runner = self._onnx_runner(bundle_path)
        self.predictor = Predictor(self.bundle, runner=runner)
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
        result = self.predictor.predict(parsed.ecg)
        return parsed.kind, result.model_copy(update={"source": parsed.ecg.source})

    def report(self, upload: ReceivedUpload) -> tuple[str, str]:
        """(upload kind, HTML fragment) — runs in the pool."""
        from ecgkt.report.html import render_report_fragment

        parsed = parse_upload(upload)
        result = self.predictor.predict(parsed.ecg)
        result = result.model_copy(update={"source": parsed.ecg.source})
        with self._report_lock:
            return parsed.kind, render_report_fragment(result, parsed.ecg, self.bundle.manifest)

    def close(self) -> None:
        self.pool.shutdown()


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
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(error.status_code, "http_error")
        return _error_response(UploadError(error.status_code, kind, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error_response(UploadError(422, "invalid_request", f"{where}: {first.get('msg')}"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # Log the type and request id only: the message could quote file content.
        logger.error("request_id=%s unexpected %s", request.state.request_id, type(error).__name__, exc_info=False)
        return _error_response(UploadError(500, "internal_error", "unexpected server error; see the server log"))

    @app.get("/healthz", response_model=HealthResponse, tags=["service"])
    async def healthz() -> HealthResponse:
        """Liveness: the model is loaded and the event loop answers."""
        return HealthResponse(status="ok", backend=backend, model_loaded=True, ecgkt_version=__version__)

    @app.get("/v1/model", response_model=ModelInfo, tags=["model"])
    async def model_info() -> ModelInfo:
        """Labels (ICD code + title, lab abnormalities), validation AUROCs, calibration, versions."""
        return service.model_info

    @app.post(
        "/v1/predict",
        response_model=PredictionResult,
        responses=ERROR_RESPONSES,
        openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
        tags=["predict"],
    )
    async def predict(request: Request) -> Any:
        """Predict diagnoses and lab abnormalities, with supporting labs, for one uploaded ECG."""
        upload = await receive_upload(request, settings)
        kind, result = await service.pool.run(lambda: service.predict(upload))
        request.state.upload_kind = kind
        return result

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

        upload = await receive_upload(request, settings)
        kind, result = await service.pool.run(lambda: service.predict(upload))
        request.state.upload_kind = kind
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

    from ecgkt.serve.settings import SettingsError

    bundle = os.environ.get("ECGKT_SERVE_BUNDLE")
    if not bundle:
        raise SettingsError("ECGKT_SERVE_BUNDLE is not set (the model bundle folder to serve)")
    from ecgkt.serve.commands import configure_logging

    settings = ServeSettings.from_env()
    configure_logging(settings.log_level)
    backend = os.environ.get("ECGKT_SERVE_BACKEND", "torch")
    if backend not in ("torch", "onnx"):
        raise SettingsError(f"ECGKT_SERVE_BACKEND must be torch or onnx, got {backend!r}")
    return create_app(bundle, "onnx" if backend == "onnx" else "torch", settings)
