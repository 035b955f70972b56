"""The transfer study's user error (its own module so the runner and the report share it without a circle)."""

from __future__ import annotations

from ecgkt.errors import UserError

__all__ = ["StudyError"]


class StudyError(UserError):
    """A study that cannot run as asked: a changed plan in an existing folder, a missing input."""
