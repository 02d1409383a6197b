"""Detector metrics: ROC AUC, false-positive rate at a threshold, and a per-face-size table."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from pipelines.spot.data import SIZE_BUCKETS


def roc_auc(labels: NDArray[np.integer], scores: NDArray[np.floating]) -> float:
    """Area under the ROC curve (Mann-Whitney statistic, ties counted half). NaN if one class is missing."""
    y = np.asarray(labels).astype(bool)
    x = np.asarray(scores, np.float64)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_x, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def false_positive_rate(labels: NDArray[np.integer], scores: NDArray[np.floating], threshold: float = 0.5) -> float:
    """Share of real faces (label 0) scored at or above the threshold."""
    y = np.asarray(labels).astype(bool)
    real = np.asarray(scores)[~y]
    return float(np.mean(real >= threshold)) if real.size else float("nan")


def true_positive_rate(labels: NDArray[np.integer], scores: NDArray[np.floating], threshold: float = 0.5) -> float:
    y = np.asarray(labels).astype(bool)
    fake = np.asarray(scores)[y]
    return float(np.mean(fake >= threshold)) if fake.size else float("nan")


def report(
    title: str, labels: NDArray[np.integer], scores: NDArray[np.floating], sizes: NDArray[np.floating]
) -> dict[str, object]:
    """AUC, FPR and TPR at 0.5, overall and per face-size bucket (as a dict, for printing or JSON)."""
    rows = []
    for lo, hi in SIZE_BUCKETS:
        m = (sizes >= lo) & (sizes < hi)
        rows.append(
            {
                "sizes": f"{lo}-{hi}px" if hi < 100_000 else f">={lo}px",
                "n": int(m.sum()),
                "auc": roc_auc(labels[m], scores[m]),
                "fpr": false_positive_rate(labels[m], scores[m]),
                "tpr": true_positive_rate(labels[m], scores[m]),
            }
        )
    big = sizes >= 200
    return {
        "set": title,
        "n": len(labels),
        "auc": roc_auc(labels, scores),
        "auc_200px_plus": roc_auc(labels[big], scores[big]),
        "fpr": false_positive_rate(labels, scores),
        "tpr": true_positive_rate(labels, scores),
        "by_size": rows,
    }


def format_report(rep: dict[str, object]) -> str:
    """Plain-text table of a `report`."""
    lines = [
        f"== {rep['set']} (n={rep['n']}): AUC {rep['auc']:.3f}  AUC(faces>=200px) {rep['auc_200px_plus']:.3f}  "
        f"FPR@0.5 {rep['fpr']:.3f}  TPR@0.5 {rep['tpr']:.3f}"
    ]
    extras = {
        k: v
        for k, v in rep.items()
        if isinstance(v, float | int) and k not in ("n", "auc", "auc_200px_plus", "fpr", "tpr")
    }
    if extras:
        lines.append("   " + "  ".join(f"{k} {v:.3f}" for k, v in extras.items()))
    for row in rep["by_size"]:  # type: ignore[attr-defined]
        lines.append(
            f"   {row['sizes']:>12}  n={row['n']:4d}  AUC {row['auc']:.3f}  FPR {row['fpr']:.3f}  TPR {row['tpr']:.3f}"
        )
    return "\n".join(lines)
