"""The error every ECG reader raises: `EcgInputError(source, problem)`, a `UserError`.

Its message starts with the file (or array) name, so a batch run can say which of ten thousand
inputs is bad and why; `kind` is the machine-readable reason the service puts in its error body
(`invalid_ecg` unless a reader knows better, e.g. `invalid_json`, `invalid_npz`).
"""

from __future__ import annotations

from typing import Any

from ecgkt.errors import UserError

__all__ = ["EcgInputError"]


class EcgInputError(UserError, ValueError):
    """An input that cannot be used; the message names the source and the problem.

    Also a `ValueError` so callers written before `UserError` existed keep catching it.
    """

    def __init__(self, source: str, problem: str, kind: str = "invalid_ecg") -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:  # keep picklable across worker processes
        return (type(self), (self.source, self.problem, self.kind))
