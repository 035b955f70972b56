"""Service settings: every limit in one validated object, readable from the environment.

Why the environment: `uvicorn --workers N` starts each worker by importing an app factory, so the
only way to hand the CLI's options to the workers is through environment variables. The same
names let a container deployment configure the service without a command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecgkt.errors import UserError

Backend = Literal["torch", "onnx"]
ENV_PREFIX = "ECGKT_SERVE_"


class SettingsError(UserError, ValueError):
    """An impossible or unreadable service setting (names the setting)."""


class ServeSettings(BaseModel):
    """Limits and resources of one service process.

    - `max_upload_mb`: request bodies above this get 413 before anything is parsed.
    - `inference_timeout_s`: a request whose parsing + inference takes longer gets 504. The worker
      thread cannot be killed; it finishes in the background and still counts against `max_pending`.
    - `inference_threads`: worker threads that parse uploads and run the model (the event loop
      never does CPU work). `torch_threads` is torch's intra-op pool per call (onnxruntime's too).
    - `max_pending`: requests accepted for inference at once (running + queued); more get 503.
    - `max_files`: files in one multipart upload (a WFDB pair plus an optional sidecar needs 3).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_upload_mb: float = Field(default=20.0, gt=0, le=1024)
    inference_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    inference_threads: int = Field(default=2, ge=1, le=64)
    torch_threads: int = Field(default=1, ge=1, le=256)
    max_pending: int = Field(default=16, ge=1, le=10_000)
    max_files: int = Field(default=4, ge=2, le=16)
    onnx_path: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_env(self) -> dict[str, str]:
        """Environment variables that make `from_env` rebuild exactly these settings."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                env[ENV_PREFIX + name.upper()] = str(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Settings from `ECGKT_SERVE_<NAME>` variables; unset ones keep their defaults."""
        environ = os.environ if environ is None else environ
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            setting = ENV_PREFIX + str(first["loc"][0]).upper() if first["loc"] else "settings"
            raise SettingsError(f"{setting}: {first['msg']}") from None


def configure_logging(level: str) -> None:
    """One line per request on stderr (the service logs ids, sizes, kinds and latencies only).

    Lives here, not in the CLI module, so the app factory (`app.app_from_env`) and `ecgkt serve`
    share it without importing each other.
    """
    logger = logging.getLogger("ecgkt.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
