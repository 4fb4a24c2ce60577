"""Balanced sampling of AudioSet full (paper section 3.1, "balanced sampling").

The original writes one weight per training clip with `egs/audioset/gen_weight_file.py` and
draws each epoch's clips with `WeightedRandomSampler` (`src/run.py`). Dataset preparation
writes the weight file beside the datafile (`ast_repro.datasets.audioset`); training reads it,
or computes the same weights, and splits the draw over DDP ranks with
`DistributedWeightedSampler` (`ast_repro.build`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from ast_repro.datafiles import Clip, DatafileError, LabelMap, clip_label_indices
from ast_repro.fileio import atomic_write_text
from ast_repro.seeding import derive_seed

# gen_weight_file.py: label_weight[c] = 1000 / (label_count[c] + 0.01).
LABEL_WEIGHT_NUMERATOR = 1000.0
LABEL_COUNT_SMOOTHING = 0.01
# gen_weight_file.py writes `<train json without .json>_weight.csv` beside the datafile.
WEIGHT_FILE_SUFFIX = "_weight.csv"


def balanced_weights(clips: Sequence[Clip], labels: LabelMap) -> np.ndarray:
    """Sample weights for balanced sampling, as `egs/audioset/gen_weight_file.py`.

    Args:
        clips: the training datafile's clips.
        labels: the dataset's classes.

    Returns:
        (N,) float64: the sum over a clip's labels of 1000 / (label count + 0.01).

    Raises:
        DatafileError: a clip has a label id that `labels` lacks.
    """
    indices = clip_label_indices(clips, labels)
    counts = np.zeros(labels.num_classes)
    for clip_indices in indices:
        for k in clip_indices:
            counts[k] += 1
    label_weight = LABEL_WEIGHT_NUMERATOR / (counts + LABEL_COUNT_SMOOTHING)
    return np.array([label_weight[clip_indices].sum() for clip_indices in indices])


def weight_file_path(datafile: str | os.PathLike[str]) -> Path:
    """Where the original keeps a datafile's weights: `train.json` -> `train_weight.csv`."""
    datafile = Path(datafile)
    return datafile.with_name(datafile.stem + WEIGHT_FILE_SUFFIX)


def write_weight_file(path: str | os.PathLike[str], weights: np.ndarray) -> None:
    """Write one weight per line (the original's `np.savetxt` layout), atomically."""
    lines = "".join(f"{float(w):.18e}\n" for w in np.asarray(weights, dtype=np.float64))
    atomic_write_text(path, lines)


def read_weight_file(path: str | os.PathLike[str], *, num_clips: int | None = None) -> np.ndarray:
    """Read sample weights, one per line.

    Args:
        path: the weight csv.
        num_clips: the datafile's clip count; a different count means a stale file.

    Returns:
        (N,) float64 weights.

    Raises:
        DatafileError: the file is missing, not one number per line, has a negative,
            non-finite or only zero weights, or holds another count than `num_clips`.
    """
    path = Path(path)
    if not path.is_file():
        raise DatafileError(
            f"{path}: weight file not found; create it with balanced_weights() and "
            "write_weight_file() from the training datafile"
        )
    try:
        weights = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise DatafileError(f"{path}: not a column of numbers ({exc})") from None
    if weights.ndim != 1 or weights.size == 0:
        raise DatafileError(f"{path}: expected one weight per line")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise DatafileError(f"{path}: weights must be finite, non-negative, not all zero")
    if num_clips is not None and weights.size != num_clips:
        raise DatafileError(
            f"{path}: {weights.size} weights for {num_clips} clips; the file is stale, "
            "regenerate it for this datafile"
        )
    return weights


class DistributedWeightedSampler(Sampler[int]):
    """`WeightedRandomSampler` split over DDP ranks.

    Every epoch, the full index list is the draw of a single-process
    `WeightedRandomSampler(weights, num_samples, replacement, generator)` whose generator is
    seeded with `derive_seed(seed, epoch)`; it is padded by wrapping to a multiple of
    `num_replicas`, and rank r takes positions r, r + num_replicas, ...

    Raises:
        ValueError: weights are not 1-D and non-negative, `num_samples` is not positive (or
            exceeds the weights without replacement), or `rank` is outside the replicas.
    """

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        num_samples: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        replacement: bool = True,
    ) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if self.weights.ndim != 1 or not bool((self.weights >= 0).all()):
            raise ValueError("weights must be a 1-D sequence of non-negative numbers")
        self.num_samples = len(self.weights) if num_samples is None else num_samples
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {self.num_samples}")
        if not replacement and self.num_samples > len(self.weights):
            raise ValueError("without replacement num_samples cannot exceed len(weights)")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, num_replicas={num_replicas})")
        self.num_replicas, self.rank = num_replicas, rank
        self.seed, self.replacement, self.epoch = seed, replacement, 0
        self.per_replica = math.ceil(self.num_samples / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draw `__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_replica

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        indices = torch.multinomial(
            self.weights, self.num_samples, self.replacement, generator=generator
        )
        total = self.per_replica * self.num_replicas
        if total > self.num_samples:
            repeats = math.ceil(total / self.num_samples)
            indices = indices.repeat(repeats)[:total]
        return iter(indices[self.rank : total : self.num_replicas].tolist())
