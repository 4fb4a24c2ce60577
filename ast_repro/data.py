"""Datasets for training and evaluation (original `src/dataloader.py`, `AudiosetDataset`).

- `AudioDataset`: the original's per-clip path; each DataLoader worker loads a clip, mixes it
  with a random partner from the whole dataset and returns its model input
  (`ast_repro.frontend.process_sample`).
- `WaveformDataset`: fixed-length zero-padded waveforms plus lengths for the device path,
  where `ast_repro.frontend.BatchFrontEnd` does mixup, features and masks for a whole batch.
- `make_dataset`: the one way to build either from a `FrontEndConfig`, for training,
  evaluation, norm statistics and prediction.

The samplers (balanced weights, `DistributedWeightedSampler`) are in `ast_repro.sampling`.
Randomness comes only from generators seeded by (seed, epoch, index), so a resumed or
distributed run draws exactly what an uninterrupted single-process run draws.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ast_repro.audio import load_audio
from ast_repro.augment import AugmentationDraws
from ast_repro.checks import check_datafile
from ast_repro.datafiles import Clip, DatafileError, LabelMap, clip_label_indices, read_label_csv
from ast_repro.features import frame_geometry
from ast_repro.frontend import FrontEndConfig, process_sample
from ast_repro.seeding import make_generator


def samples_for_frames(frames: int, sample_rate: int) -> int:
    """Fewest samples that give `frames` Kaldi frames: window + (frames - 1) * shift."""
    window, shift, _ = frame_geometry(sample_rate)
    return window + (frames - 1) * shift


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
        given = label_csv if isinstance(label_csv, LabelMap) else None
        if label_csv is not None and given is None:
            given = read_label_csv(label_csv)
        if isinstance(datafile, (str, os.PathLike)):
            # the rules `ast-repro validate-data` reports (ast_repro.checks)
            self.datafile: Path | None = Path(datafile)
            self.clips = check_datafile(self.datafile, given)
            source = str(self.datafile)
        else:
            if waveform_cache is not None:
                raise ValueError("a waveform cache belongs to a datafile, not to a list of clips")
            self.datafile, self.clips = None, list(datafile)
            source = "clip list"
            if not self.clips:
                raise DatafileError("the clip list is empty")
        if given is None:
            mids = tuple(dict.fromkeys(mid for clip in self.clips for mid in clip.labels))
            given = LabelMap(mids=mids, names=mids)
        self.labels = given
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
            from ast_repro.waveform_cache import open_cache

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
        waveform_cache: a cache of the datafile's decoded clips (`ast_repro.waveform_cache`).

    Returns:
        An `AudioDataset` of (fbank, labels), or for `frontend.batched` a `WaveformDataset` of
        (waveform, length, labels) for `ast_repro.frontend.BatchFrontEnd`.

    Raises:
        DatafileError: the datafile or label csv is missing or malformed, the datafile lists
            no clips, or an entry has no label or one outside the label csv
            (`ast_repro.checks.check_datafile`). A clip is checked when it is loaded
            (`ast_repro.audio.load_audio`).
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
