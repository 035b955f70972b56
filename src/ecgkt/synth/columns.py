"""Small helpers that turn NumPy arrays into correctly typed Polars columns."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl
from numpy.typing import NDArray


def strings(values: NDArray[np.object_] | Iterable[object]) -> pl.Series:
    """An object array of str / None as a nullable String column (never Polars' Object dtype)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return pl.Series([None if v is None else str(v) for v in items], dtype=pl.String)


def with_nulls(values: NDArray[np.object_], null: NDArray[np.bool_]) -> NDArray[np.object_]:
    """A copy of `values` (object array) with None where `null` is True."""
    out = np.asarray(values, dtype=object).copy()
    out[np.asarray(null, dtype=bool)] = None
    return out


def nullable_ids(values: NDArray[np.int64], missing: int = -1) -> pl.Series:
    """Integer ids with `missing` turned into nulls (e.g. hadm_id of a stay that was not admitted)."""
    return pl.Series(values, dtype=pl.Int64).replace(missing, None)
