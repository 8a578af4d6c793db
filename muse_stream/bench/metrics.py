"""Label-based score metrics (AUC, recall at a fixed FPR, calibration error): the one place for them.

Why one place: benchmarks and tests compare raw and transformed scores with the same definitions,
so a difference in a figure is a difference in the scores, not in the metric code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["expected_calibration_error", "recall_at_fpr", "roc_auc"]


def _scores_labels(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, y


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties count one half."""
    s, y = _scores_labels(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative label")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # Average ranks (1-based) over tie groups.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def recall_at_fpr(scores: npt.ArrayLike, labels: npt.ArrayLike, fpr: float = 0.01) -> float:
    """Recall when alerting on scores above the ``k+1``-th highest negative, ``k = floor(fpr * n_neg)``.

    So at most a fraction ``fpr`` of negatives alert and no tie group straddles the threshold. It
    depends on the order of the scores only: a strictly increasing transform leaves it unchanged.
    """
    s, y = _scores_labels(scores, labels)
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr={fpr} must be in [0, 1]")
    neg = np.sort(s[~y])[::-1]
    pos = s[y]
    if neg.size == 0 or pos.size == 0:
        raise ValueError("recall at FPR needs at least one positive and one negative label")
    allowed = int(np.floor(fpr * neg.size))  # negatives allowed at or above the threshold
    if allowed >= neg.size:
        return 1.0
    cut = neg[allowed]
    return float(np.mean(pos > cut))


def expected_calibration_error(scores: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: sum over bins of weight * |mean score - fraud rate|."""
    s, y = _scores_labels(scores, labels)
    if s.size == 0:
        raise ValueError("ECE needs at least one score")
    bins = np.clip((s * n_bins).astype(np.int64), 0, n_bins - 1)
    sum_score = np.bincount(bins, weights=s, minlength=n_bins)
    sum_label = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    return float(np.abs(sum_score - sum_label).sum() / s.size)
