"""Tests of ast_repro.metrics against hand-computed AP, AUC, d' and accuracy."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from ast_repro.metrics import MetricsError, compute_metrics, d_prime, headline

# Five clips, five classes. Per class, by hand (scores sorted high to low):
# class 0: P N P N N -> AP = (1/1 + 2/3) / 2 = 5/6; AUC: 5 of 6 (pos, neg) pairs ordered = 5/6
# class 1: P P N N P -> AP = (1 + 1 + 3/5) / 3 = 13/15; AUC = 4/6
# class 2: 0.9 P, then a tie at 0.5 of one P and one N, then 0.2 N, 0.2 N
#          -> AP = 0.5 * 1 + 0.5 * 2/3 = 5/6; AUC = (3 + 2 + 0.5) / 6 = 5.5/6 (a tie counts 1/2)
# class 3: no positive -> neither AP nor AUC is defined
# class 4: every clip positive -> AP = 1, AUC undefined (no negative)
PROBS = np.array(
    [
        [0.9, 0.2, 0.5, 0.1, 0.3],
        [0.8, 0.6, 0.5, 0.2, 0.2],
        [0.7, 0.4, 0.2, 0.3, 0.9],
        [0.3, 0.5, 0.2, 0.4, 0.4],
        [0.1, 0.1, 0.9, 0.5, 0.6],
    ]
)
TARGETS = np.array(
    [
        [1, 0, 1, 0, 1],
        [0, 1, 0, 0, 1],
        [1, 0, 0, 0, 1],
        [0, 1, 0, 0, 1],
        [0, 1, 1, 0, 1],
    ],
    dtype=float,
)
AP = [5 / 6, 13 / 15, 5 / 6, None, 1.0]
AUC = [5 / 6, 4 / 6, 5.5 / 6, None, None]


def test_per_class_ap_and_auc_match_hand_computation() -> None:
    metrics = compute_metrics(PROBS, TARGETS)
    for got, expected in zip(metrics["AP"], AP, strict=True):
        assert got == (None if expected is None else pytest.approx(expected, abs=1e-12))
    for got, expected in zip(metrics["AUC"], AUC, strict=True):
        assert got == (None if expected is None else pytest.approx(expected, abs=1e-12))
    assert metrics["num_classes"] == 5
    assert metrics["num_skipped_ap"] == 1
    assert metrics["num_skipped_auc"] == 2


def test_means_and_d_prime_use_only_defined_classes() -> None:
    metrics = compute_metrics(PROBS, TARGETS)
    mean_ap = (5 / 6 + 13 / 15 + 5 / 6 + 1.0) / 4
    mean_auc = (5 / 6 + 4 / 6 + 5.5 / 6) / 3
    assert metrics["mAP"] == pytest.approx(mean_ap, abs=1e-12)
    assert metrics["mAUC"] == pytest.approx(mean_auc, abs=1e-12)
    assert metrics["d_prime"] == pytest.approx(
        math.sqrt(2) * NormalDist().inv_cdf(mean_auc), abs=1e-9
    )
    assert set(headline(metrics)) == {"mAP", "mAUC", "d_prime", "accuracy"}


def test_accuracy_is_argmax_agreement() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.9], [0.5, 0.4, 0.1]])
    targets = np.eye(3)[[1, 0, 2, 1]]
    assert compute_metrics(probs, targets)["accuracy"] == pytest.approx(0.75)
    perfect = compute_metrics(targets * 0.8 + 0.1, targets)
    assert perfect["accuracy"] == 1.0 and perfect["mAP"] == 1.0 and perfect["mAUC"] == 1.0
    assert perfect["d_prime"] == math.inf


def test_d_prime_matches_the_original_logs() -> None:
    # original `src/traintest.py`, `egs/audioset/ensemble.py`: AUC 0.9786 -> d' 2.864; 0.980985 ->
    # 2.934; 0.5 -> 0
    assert d_prime(0.9786) == pytest.approx(2.864, abs=1e-3)
    assert d_prime(0.980985) == pytest.approx(2.934, abs=1e-3)
    assert d_prime(0.5) == pytest.approx(0.0, abs=1e-12)


def test_invalid_inputs_raise_clear_errors() -> None:
    with pytest.raises(MetricsError, match="differ in shape"):
        compute_metrics(PROBS, TARGETS[:, :3])
    with pytest.raises(MetricsError, match="0/1"):
        compute_metrics(PROBS, TARGETS * 0.5)
    with pytest.raises(MetricsError, match="nan"):
        compute_metrics(np.where(PROBS > 0.85, np.nan, PROBS), TARGETS)
    with pytest.raises(MetricsError, match=r"\(N, C\)"):
        compute_metrics(PROBS[0], TARGETS[0])
    with pytest.raises(MetricsError, match="N = 0"):
        compute_metrics(PROBS[:0], TARGETS[:0])
