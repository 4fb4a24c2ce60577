"""Evaluation metrics: per-class AP and ROC AUC, mAP, mAUC, d' and accuracy.

Implements the original `calculate_stats` / `d_prime` (original `src/traintest.py`): per class,
AP is scikit-learn's `average_precision_score` and AUC is `roc_auc_score`; mAP and mAUC are
their means over classes; d' = sqrt(2) * Phi^-1(mAUC) is computed from the *mean* AUC; accuracy
compares the argmax of the predictions with the argmax of the targets. The paper reports mAP
for AudioSet (section 3.1) and accuracy for ESC-50 and Speech Commands (section 3.2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from ast_repro.errors import AstReproError

# d' of a Gaussian equal-variance detector with area under the ROC curve A is sqrt(2)*Phi^-1(A)
# (original `src/utilities/stats.py`, `d_prime`).
D_PRIME_SCALE = math.sqrt(2.0)


class MetricsError(AstReproError, ValueError):
    """Predictions and targets cannot be scored; the message says why."""


def d_prime(auc: float) -> float:
    """Sensitivity index d' from an area under the ROC curve.

    Args:
        auc: area under the ROC curve in [0, 1].

    Returns:
        sqrt(2) * Phi^-1(auc); +-inf at auc 1 or 0, nan for nan input.
    """
    return float(D_PRIME_SCALE * norm.ppf(auc))


def _check_inputs(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if probs.ndim != 2 or targets.ndim != 2:
        raise MetricsError(
            f"probs and targets must be (N, C) arrays, got shapes {probs.shape} and {targets.shape}"
        )
    if probs.shape != targets.shape:
        raise MetricsError(f"probs {probs.shape} and targets {targets.shape} differ in shape")
    if probs.shape[0] == 0:
        raise MetricsError("no samples to score (N = 0)")
    if not np.all(np.isfinite(probs)):
        raise MetricsError("probs contain nan or inf")
    if not np.all((targets == 0.0) | (targets == 1.0)):
        raise MetricsError("targets must be 0/1 (evaluation labels are never mixed)")
    return probs, targets


def compute_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Score predictions against multi-hot (AudioSet) or one-hot (ESC-50, SC) targets.

    Args:
        probs: (N, C) scores, e.g. sigmoid probabilities.
        targets: (N, C) 0/1 targets.

    Returns:
        A JSON-ready dict: `mAP`, `mAUC`, `d_prime`, `accuracy` (floats; nan where no class
        is defined), `AP` and `AUC` (per-class lists, None where undefined),
        `num_classes`, `num_skipped_ap` and `num_skipped_auc` (classes left out of the means).
    """
    probs, targets = _check_inputs(probs, targets)
    positives = targets == 1.0
    num_classes = probs.shape[1]
    ap: list[float | None] = [None] * num_classes
    auc: list[float | None] = [None] * num_classes
    # NOTE: the original scores every class; a class with no positive (or no negative) in the
    # targets makes scikit-learn raise or return nan there, which crashes or poisons the mean.
    # Such classes are left out of mAP/mAUC here and counted in num_skipped_ap/_auc.
    for k in range(num_classes):
        n_pos = int(positives[:, k].sum())
        if n_pos > 0:
            ap[k] = float(average_precision_score(positives[:, k], probs[:, k]))
        if 0 < n_pos < probs.shape[0]:
            auc[k] = float(roc_auc_score(positives[:, k], probs[:, k]))
    ap_defined = [v for v in ap if v is not None]
    auc_defined = [v for v in auc if v is not None]
    mean_ap = float(np.mean(ap_defined)) if ap_defined else math.nan
    mean_auc = float(np.mean(auc_defined)) if auc_defined else math.nan
    accuracy = float(np.mean(np.argmax(probs, axis=1) == np.argmax(targets, axis=1)))
    return {
        "mAP": mean_ap,
        "mAUC": mean_auc,
        "d_prime": d_prime(mean_auc),
        "accuracy": accuracy,
        "AP": ap,
        "AUC": auc,
        "num_classes": num_classes,
        "num_skipped_ap": num_classes - len(ap_defined),
        "num_skipped_auc": num_classes - len(auc_defined),
    }


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics of a `compute_metrics` result (for logs and tables)."""
    return {key: metrics[key] for key in ("mAP", "mAUC", "d_prime", "accuracy")}
