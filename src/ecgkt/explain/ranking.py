"""Ranking metrics for explanations: does a method rank the true lab drivers of a diagnosis first?

Pure NumPy, no model: `scores` (N, P) for one diagnosis over N records and a boolean relevance mask
(P,) of that diagnosis's true drivers. Ties are broken at random (seeded) so a method that gives
every lab the same score scores at chance, not by label order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

K_VALUES: tuple[int, ...] = (1, 3, 5)


def rankings(scores: NDArray[np.floating], rng: np.random.Generator) -> NDArray[np.int64]:
    """(N, P) scores → (N, P) lab indices from best to worst, random tie-breaking."""
    values = np.asarray(scores, dtype=np.float64)
    tie_break = rng.random(values.shape)
    # lexsort sorts by the last key first: primary = −score, secondary = random.
    return np.lexsort((tie_break, -values), axis=-1).astype(np.int64)


def precision_at_k(ranked: NDArray[np.int64], relevant: NDArray[np.bool_], k: int) -> NDArray[np.float64]:
    """(N,) fraction of the top-k labs that are true drivers."""
    top = ranked[:, :k]
    return relevant[top].mean(axis=1).astype(np.float64)


def average_precision(ranked: NDArray[np.int64], relevant: NDArray[np.bool_]) -> NDArray[np.float64]:
    """(N,) mean over the true drivers of the precision at the rank where each is found."""
    hits = relevant[ranked].astype(np.float64)  # (N, P) 1 where the rank holds a driver
    n_relevant = hits.sum(axis=1)
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, (precision_at_rank * hits).sum(axis=1) / n_relevant, np.nan)


def ranking_metrics(
    scores: NDArray[np.floating], relevant: NDArray[np.bool_], rng: np.random.Generator
) -> dict[str, float]:
    """Mean precision@k (k in K_VALUES) and mean average precision over the N records."""
    ranked = rankings(scores, rng)
    metrics = {f"p@{k}": float(precision_at_k(ranked, relevant, k).mean()) for k in K_VALUES}
    metrics["map"] = float(np.nanmean(average_precision(ranked, relevant)))
    return metrics
