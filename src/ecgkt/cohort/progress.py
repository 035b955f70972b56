"""Rich progress display for the build: one line per step, a live bar for the long ones.

Disabled (a no-op) in tests and benchmarks, so the pipeline code is the same in both cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BuildProgress:
    """`with BuildProgress(enabled) as p:` then `p.step(...)` / `p.counter(...)`; timings are kept."""

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.timings: dict[str, float] = {}
        self._progress = (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            if enabled
            else None
        )

    def __enter__(self) -> BuildProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def warn(self, message: str) -> None:
        """A warning shown as it happens (also kept in build_report.json by the caller)."""
        if self.enabled:
            self.console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        """A timed step; yields `advance(n)` for steps that can count their work."""
        started = time.perf_counter()
        task = self._progress.add_task(description, total=total) if self._progress is not None else None

        def advance(amount: float) -> None:
            if self._progress is not None and task is not None:
                self._progress.advance(task, amount)

        try:
            yield advance
        finally:
            elapsed = time.perf_counter() - started
            self.timings[description] = self.timings.get(description, 0.0) + elapsed
            if self._progress is not None and task is not None and total is None:
                done = self._progress.tasks[task].completed or 1  # open-ended step: show it as complete
                self._progress.update(task, total=done, completed=done)
