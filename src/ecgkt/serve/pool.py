"""Bounded inference: a thread pool with admission control (503), a deadline (504) and cancellation.

Python threads cannot be killed, so a job is stopped cooperatively: each job runs with its deadline
in a thread-local, and the service calls `check_deadline()` between its stages (after parsing,
between model chunks of `CANCEL_CHUNK_WINDOWS` windows). A job past its deadline raises
`JobCancelledError` at the next check and frees its thread; with the input limits of
`ecgkt.signals.limits` no single stage runs unbounded, so a timed-out request stops within one
stage (one chunk of windows) of its deadline instead of running to completion.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ecgkt.serve.uploads import UploadError

__all__ = ["CANCEL_CHUNK_WINDOWS", "InferencePool", "JobCancelledError", "check_deadline"]

T = TypeVar("T")
CANCEL_CHUNK_WINDOWS = 16
_job = threading.local()


class JobCancelledError(Exception):
    """Raised inside a job that passed its deadline (the client already got its 504)."""


def check_deadline() -> None:
    """Stop the current pool job if its deadline has passed (a no-op outside the pool)."""
    deadline = getattr(_job, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise JobCancelledError


def _with_deadline(job: Callable[[], T], deadline: float) -> Callable[[], T]:
    def run() -> T:
        _job.deadline = deadline
        try:
            check_deadline()  # waited in the queue past the deadline: do not start at all
            return job()
        finally:
            _job.deadline = None

    return run


class InferencePool:
    """A thread pool with admission control (503 beyond `max_pending`) and a deadline (504).

    A timed-out job keeps counting as pending until it has stopped (at its next `check_deadline`),
    so repeated slow uploads cannot pile up unbounded work.
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
            future = self._running_executor().submit(_with_deadline(job, time.monotonic() + self._timeout_s))
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except (TimeoutError, JobCancelledError):  # the job may notice its deadline before the timer fires
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
