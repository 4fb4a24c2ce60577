"""Datasets and samplers for training and evaluation (original `src/dataloader.py`,
`egs/audioset/gen_weight_file.py`; original_ast.md sections 1 and 2.5).

- `AudioDataset`: the original's per-clip path; each DataLoader worker loads a clip, mixes it
  with a random partner from the whole dataset and returns its model input
  (`ast_repro.frontend.process_sample`).
- `WaveformDataset`: fixed-length zero-padded waveforms plus lengths for the device path,
  where `ast_repro.frontend.BatchFrontEnd` does mixup, features and masks for a whole batch.
- `make_dataset`: the one way to build either from a `FrontEndConfig`, for training,
  evaluation, norm statistics and prediction.
- `balanced_weights` and the weight file: the balanced sampling of AudioSet full (paper
  section 3.1, "balanced sampling"), with `DistributedWeightedSampler` for DDP.

Randomness comes only from generators seeded by (seed, epoch, index) or (seed, epoch), so a
resumed or distributed run draws exactly what an uninterrupted single-process run draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ast_repro.audio import load_audio
from ast_repro.augment import AugmentationDraws, derive_seed, make_generator
from ast_repro.datafiles import (
    Clip,
    DatafileError,
    LabelMap,
    label_indices,
    read_datafile,
    read_label_csv,
)
from ast_repro.features import frame_geometry
from ast_repro.fileio import atomic_write_text
from ast_repro.frontend import FrontEndConfig, process_sample

# gen_weight_file.py: label_weight[c] = 1000 / (label_count[c] + 0.01) (section 2.5).
LABEL_WEIGHT_NUMERATOR = 1000.0
LABEL_COUNT_SMOOTHING = 0.01
# gen_weight_file.py writes `<train json without .json>_weight.csv` beside the datafile.
WEIGHT_FILE_SUFFIX = "_weight.csv"


def samples_for_frames(frames: int, sample_rate: int) -> int:
    """Fewest samples that give `frames` Kaldi frames: window + (frames - 1) * shift."""
    window, shift, _ = frame_geometry(sample_rate)
    return window + (frames - 1) * shift


def clip_label_indices(
    clips: Sequence[Clip], labels: LabelMap, *, source: str = ""
) -> list[list[int]]:
    """Class indices of every clip (the positions set to 1.0 in its target, section 1.1).

    Raises:
        DatafileError: a clip has a label id that the label csv lacks (names `source`).
    """
    indices = []
    for i, clip in enumerate(clips):
        try:
            indices.append(label_indices(clip, labels))
        except KeyError as exc:
            raise DatafileError(f"{source}: entry {i} ({clip.wav}): {exc.args[0]}") from None
    return indices


def target_matrix(clips: Sequence[Clip], labels: LabelMap, *, source: str = "") -> torch.Tensor:
    """(N, C) float32 multi-hot targets of clips, e.g. for scoring an evaluation set."""
    targets = torch.zeros(len(clips), labels.num_classes)
    for i, clip_indices in enumerate(clip_label_indices(clips, labels, source=source)):
        targets[i, clip_indices] = 1.0
    return targets


# A datafile, or its clips already read (e.g. audio files to label, with no labels).
DatafileOrClips = str | os.PathLike[str] | Sequence[Clip]
# A label csv, its LabelMap, or None for the clips' own label ids in order of appearance.
LabelCsvOrMap = str | os.PathLike[str] | LabelMap | None


class _ClipSource(Dataset):
    """Clips, their targets, and waveforms from audio files or a waveform cache."""

    def __init__(
        self,
        *,
        datafile: DatafileOrClips,
        label_csv: LabelCsvOrMap,
        sample_rate: int,
        waveform_cache: str | None,
    ) -> None:
        if isinstance(datafile, (str, os.PathLike)):
            self.datafile: Path | None = Path(datafile)
            self.clips = read_datafile(self.datafile)
            source, empty = str(self.datafile), f"{self.datafile}: the datafile lists no clips"
        else:
            if waveform_cache is not None:
                raise ValueError("a waveform cache belongs to a datafile, not to a list of clips")
            self.datafile, self.clips = None, list(datafile)
            source, empty = "clip list", "the clip list is empty"
        if not self.clips:
            raise DatafileError(empty)
        if isinstance(label_csv, LabelMap):
            self.labels = label_csv
        elif label_csv is None:
            mids = tuple(dict.fromkeys(mid for clip in self.clips for mid in clip.labels))
            self.labels = LabelMap(mids=mids, names=mids)
        else:
            self.labels = read_label_csv(label_csv)
        # class indices, not an (N, C) matrix: AudioSet full would need 4 GB for that
        self.label_indices = clip_label_indices(self.clips, self.labels, source=source)
        self.sample_rate = sample_rate
        self.waveform_cache = waveform_cache
        self._cache: Any = None

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def num_classes(self) -> int:
        return self.labels.num_classes

    def target(self, index: int) -> torch.Tensor:
        """(C,) float32 multi-hot target of clip `index`."""
        target = torch.zeros(self.labels.num_classes)
        target[self.label_indices[index]] = 1.0
        return target

    def __getstate__(self) -> dict[str, Any]:
        # Each DataLoader worker opens the cache itself (memory maps do not travel well).
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def waveform(self, index: int) -> torch.Tensor:
        """(N,) float32 waveform of clip `index` at `sample_rate`."""
        if self.waveform_cache is None:
            return load_audio(self.clips[index].wav, sample_rate=self.sample_rate)
        if self._cache is None:
            from ast_repro.datasets.cache import open_cache

            cache = open_cache(self.waveform_cache)
            if len(cache) != len(self.clips):
                raise DatafileError(
                    f"{self.waveform_cache}: the waveform cache holds {len(cache)} clips but "
                    f"{self.datafile} lists {len(self.clips)}; rebuild the cache for this datafile"
                )
            self._cache = cache
        return torch.from_numpy(np.array(self._cache[index], dtype=np.float32))


class AudioDataset(_ClipSource):
    """Per-clip model inputs, the original `AudiosetDataset` (`src/dataloader.py`).

    Items are `(fbank (target_length, F) float32, labels (C,) float32)` from
    `ast_repro.frontend.process_sample`. With `training=True` the clip is augmented (mixup,
    masks, noise as `frontend` says) with draws from a generator seeded by
    (seed, epoch, index); call `set_epoch` every epoch.
    """

    def __init__(
        self,
        *,
        datafile: DatafileOrClips,
        label_csv: LabelCsvOrMap,
        frontend: FrontEndConfig,
        training: bool = False,
        seed: int = 0,
        waveform_cache: str | None = None,
    ) -> None:
        super().__init__(
            datafile=datafile,
            label_csv=label_csv,
            sample_rate=frontend.sample_rate,
            waveform_cache=waveform_cache,
        )
        self.frontend = frontend
        self.training = training
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws `__getitem__` makes."""
        self.epoch = epoch

    def draw(self, index: int) -> AugmentationDraws | None:
        """The augmentation of item `index` in this epoch; None when not training."""
        if not self.training:
            return None
        # NOTE: the original draws from the global `random` and `np.random` states (which
        # repeat across DataLoader workers under torch 1.8.1); here every item has its own
        # generator seeded by (seed, epoch, index), independent of workers and resumption.
        generator = make_generator(self.seed, self.epoch, index)
        return self.frontend.draw(generator, batch_size=1, num_partners=len(self))

    def item(
        self, index: int, draws: AugmentationDraws | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip `index` through the front end with the given draws (B = 1) or none.

        A clip the draws mix is mixed with the dataset's clip `draws.partner[0]`.
        """
        partner_waveform = partner_labels = None
        if draws is not None and bool(draws.mix[0]):
            partner = int(draws.partner[0])
            partner_waveform, partner_labels = self.waveform(partner), self.target(partner)
        return process_sample(
            self.frontend,
            self.waveform(index),
            self.target(index),
            draws=draws,
            partner_waveform=partner_waveform,
            partner_labels=partner_labels,
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.item(index, self.draw(index))


class WaveformDataset(_ClipSource):
    """Zero-padded waveforms for the batched device front end.

    Items are `(waveform (max_samples,) float32, length int, labels (C,) float32)` with
    `max_samples = samples_for_frames(target_length)`: every sample that can reach one of the
    `target_length` frames, so the default collate stacks a batch.
    """

    def __init__(
        self,
        *,
        datafile: DatafileOrClips,
        label_csv: LabelCsvOrMap,
        frontend: FrontEndConfig,
        waveform_cache: str | None = None,
    ) -> None:
        super().__init__(
            datafile=datafile,
            label_csv=label_csv,
            sample_rate=frontend.sample_rate,
            waveform_cache=waveform_cache,
        )
        self.max_samples = samples_for_frames(frontend.target_length, frontend.sample_rate)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        # NOTE: a clip longer than max_samples is cut here, before its mean is removed, so its
        # mean is that of the kept part; frames past target_length are cropped either way, and
        # per-frame DC removal makes the global mean nearly a no-op (`_wav2fbank`).
        waveform = self.waveform(index)[: self.max_samples]
        length = int(waveform.shape[0])
        padded = torch.nn.functional.pad(waveform, (0, self.max_samples - length))
        return padded, length, self.target(index)


def make_dataset(
    frontend: FrontEndConfig,
    datafile: DatafileOrClips,
    label_csv: LabelCsvOrMap = None,
    *,
    training: bool = False,
    seed: int = 0,
    waveform_cache: str | None = None,
) -> AudioDataset | WaveformDataset:
    """The dataset that feeds `frontend`: training, evaluation, norm statistics, prediction.

    Args:
        frontend: the recipe; `frontend.batched` selects the path.
        datafile: an AST json datafile, or a list of clips (no waveform cache then).
        label_csv: the label csv or its `LabelMap`; None uses the clips' own label ids.
        training: augment per clip with draws seeded by (seed, epoch, index). The batched
            path ignores it: `BatchFrontEnd` augments whole batches on the device.
        seed: the run's seed.
        waveform_cache: a cache of the datafile's decoded clips (`ast_repro.datasets.cache`).

    Returns:
        An `AudioDataset` of (fbank, labels), or for `frontend.batched` a `WaveformDataset` of
        (waveform, length, labels) for `ast_repro.frontend.BatchFrontEnd`.

    Raises:
        DatafileError: the datafile or label csv is missing or malformed, or lists no clips.
    """
    if frontend.batched:
        return WaveformDataset(
            datafile=datafile,
            label_csv=label_csv,
            frontend=frontend,
            waveform_cache=waveform_cache,
        )
    return AudioDataset(
        datafile=datafile,
        label_csv=label_csv,
        frontend=frontend,
        training=training,
        seed=seed,
        waveform_cache=waveform_cache,
    )


def balanced_weights(clips: Sequence[Clip], labels: LabelMap) -> np.ndarray:
    """Sample weights for balanced sampling, as `gen_weight_file.py` (section 2.5).

    Returns:
        (N,) float64: the sum over a clip's labels of 1000 / (label count + 0.01).
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
