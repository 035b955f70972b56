"""The request guard: pure ASGI middleware for request ids, the body-size limit and the access log.

Logs carry only a request id, method, path, status, body size, upload kind and latency: file names,
WFDB header comments and DICOM attributes can hold patient identifiers and are never logged.
"""

from __future__ import annotations

import logging
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecgkt.serve.schema import ErrorResponse
from ecgkt.serve.uploads import UploadError

__all__ = ["SECURITY_HEADERS", "RequestGuard", "error_response", "send_error"]

logger = logging.getLogger("ecgkt.serve")

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
                await send_error(send_with_id, UploadError(413, "upload_too_large", _too_large(limit)))
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


async def send_error(send: Send, error: UploadError) -> None:
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


def error_response(error: UploadError) -> JSONResponse:
    return JSONResponse(
        ErrorResponse(error=error.kind, detail=error.detail).model_dump(), status_code=error.status_code
    )
