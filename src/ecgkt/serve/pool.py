"""Bounded inference: a thread pool with admission control (503) and a deadline (504)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ecgkt.serve.uploads import UploadError

__all__ = ["InferencePool"]

T = TypeVar("T")


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
