"""Dataset normalization statistics (original `src/get_norm_stats.py`; notebook 01_norm_stats).

AST normalizes log-mel features to mean 0 and std 0.5 with a dataset's mean and std. The
original `src/get_norm_stats.py` estimates them as the *average of per-batch means and
stds* (batches of 1000 clips, the last one partial), with mixup and SpecAugment switched on,
so masked zeros and zero padding are part of the statistics. This module computes that
estimate and, in the same pass, the exact pooled mean and std of every feature value, so
the two can be compared.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from ast_repro.augment import AugmentationDraws, mask_interval, sample_lambda
from ast_repro.checks import check_datafile
from ast_repro.cli import int_at_least
from ast_repro.data import AudioDataset, make_dataset
from ast_repro.features import NUM_MEL_BINS, PUBLISHED_STATS
from ast_repro.frontend import FrontEndConfig

# get_norm_stats.py settings: DataLoader batch 1000; AudioSet training augmentation
# with freqm 24 (sic: the recipe trains with 48), timem 192 and mixup 0.5.
ORIGINAL_BATCH_SIZE = 1000
ORIGINAL_FREQM = 24
ORIGINAL_TIMEM = 192
ORIGINAL_MIXUP = 0.5


class PooledStats:
    """Exact streaming mean and variance over all values seen (Chan et al.'s merge, float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean

    def update(self, values: torch.Tensor) -> None:
        x = values.detach().to(torch.float64).flatten()
        n = x.numel()
        if n == 0:
            return
        batch_mean = x.mean().item()
        batch_m2 = ((x - batch_mean) ** 2).sum().item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Unbiased standard deviation (n - 1), like torch.std."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else float("nan")


@dataclass(frozen=True)
class NormStatsReport:
    """Both estimates for one datafile."""

    datafile: str
    num_clips: int
    target_length: int
    pooled_mean: float
    pooled_std: float
    original_mean: float
    original_std: float
    original_batches: int
    augmented: bool

    def as_dict(self) -> dict:
        return asdict(self)


def iter_features(
    datafile: str | os.PathLike[str],
    *,
    target_length: int,
    num_mel_bins: int = 128,
    freqm: int = 0,
    timem: int = 0,
    mixup: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield each clip's un-normalized (target_length, F) features, augmented when asked.

    The clips go through the training front end (`ast_repro.frontend.process_sample`) with
    normalization off, as `src/get_norm_stats.py` runs the training dataset with
    `skip_norm=True`: mixup on waveforms, fbank, pad/crop, frequency and time mask.

    Args:
        datafile: AST json datafile; mixup partners are drawn from its first `limit` clips.
        target_length, num_mel_bins: the features' (T, F).
        freqm, timem, mixup: training augmentation, off at 0.
        seed: seeds the augmentation draws (`original_draws`).
        limit: use only the first `limit` clips.

    Raises:
        DatafileError: the datafile is malformed, empty or has an entry without labels.
        AudioError: a clip breaks the rules of `ast_repro.checks` (too short, NaN, ...).
    """
    clips = check_datafile(datafile)[:limit]  # the rules of every command (ast_repro.checks)
    frontend = FrontEndConfig(
        target_length=target_length,
        num_mel_bins=num_mel_bins,
        norm=None,
        mixup=mixup,
        freqm=freqm,
        timem=timem,
    )
    dataset = make_dataset(frontend, clips)
    assert isinstance(dataset, AudioDataset)  # not batched: the per-clip path
    for index, draws in enumerate(original_draws(frontend, seed=seed, num_clips=len(clips))):
        yield dataset.item(index, draws)[0]


def original_draws(
    frontend: FrontEndConfig, *, seed: int, num_clips: int
) -> Iterator[AugmentationDraws | None]:
    """Each clip's augmentation draws (B = 1) in datafile order; None when nothing is on.

    One sequential stream, as one pass of the original's DataLoader over the datafile:
    `random.Random(seed)` decides whether a clip is mixed and picks its partner among all
    `num_clips` clips; a torch generator seeded with `seed` gives lambda (only for a mixed
    clip) and then the four mask uniforms (only when a mask is on).
    """
    # Training draws each clip from a generator seeded by (seed, epoch, index)
    # (`AudioDataset.draw`); the statistics keep this stream, with which notebook 01's stored
    # numbers were computed. Every clip's draws have the same distribution either way.
    if not (frontend.mixup or frontend.freqm or frontend.timem):
        yield from itertools.repeat(None, num_clips)
        return
    chooser = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(num_clips):
        mix = bool(frontend.mixup) and chooser.random() < frontend.mixup
        partner = chooser.randint(0, num_clips - 1) if mix else 0
        lam = sample_lambda(generator) if mix else torch.ones(1)
        if frontend.freqm or frontend.timem:
            u = [torch.rand(1, generator=generator) for _ in range(4)]
        else:
            u = [torch.zeros(1)] * 4  # empty masks, no draws
        yield AugmentationDraws(
            mix=torch.tensor([mix]),
            partner=torch.tensor([partner]),
            lam=lam,
            freq=mask_interval(u[0], u[1], size=frontend.num_mel_bins, mask_param=frontend.freqm),
            time=mask_interval(u[2], u[3], size=frontend.target_length, mask_param=frontend.timem),
        )


def compute_norm_stats(
    datafile: str | os.PathLike[str],
    *,
    target_length: int,
    num_mel_bins: int = 128,
    batch_size: int = ORIGINAL_BATCH_SIZE,
    freqm: int = 0,
    timem: int = 0,
    mixup: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
    progress: bool = True,
) -> NormStatsReport:
    """One streaming pass: pooled statistics and the original's batch-average estimate.

    Args:
        datafile: AST json datafile.
        target_length: frames per clip after pad/crop (1024 AudioSet, 512 ESC-50, 128 SC).
        num_mel_bins: F.
        batch_size: clips per batch of the original's estimate (1000 in the original).
        freqm, timem, mixup: training augmentation; the original's estimate uses 24/192/0.5.
        seed: seeds the augmentation draws.
        limit: use only the first `limit` clips.
        progress: show a progress bar.

    Returns:
        A `NormStatsReport`; only per-batch running sums are held in memory.
    """
    pooled = PooledStats()
    batch = PooledStats()
    batch_clips = 0
    batch_means: list[float] = []
    batch_stds: list[float] = []
    features = iter_features(
        datafile,
        target_length=target_length,
        num_mel_bins=num_mel_bins,
        freqm=freqm,
        timem=timem,
        mixup=mixup,
        seed=seed,
        limit=limit,
    )
    num_clips = 0
    # on a terminal only: a bar would add lines to the one-line error of a bad clip in a log
    bar = tqdm(features, desc="norm stats", unit="clip", disable=None if progress else True)
    for fbank in bar:
        pooled.update(fbank)
        batch.update(fbank)
        batch_clips += 1
        num_clips += 1
        if batch_clips == batch_size:
            batch_means.append(batch.mean)
            batch_stds.append(batch.std)
            batch, batch_clips = PooledStats(), 0
    if batch_clips:  # the original keeps the last, partial batch
        batch_means.append(batch.mean)
        batch_stds.append(batch.std)
    return NormStatsReport(
        datafile=str(datafile),
        num_clips=num_clips,
        target_length=target_length,
        pooled_mean=pooled.mean,
        pooled_std=pooled.std,
        original_mean=float(np.mean(batch_means)),
        original_std=float(np.mean(batch_stds)),
        original_batches=len(batch_means),
        augmented=bool(freqm or timem or mixup),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("datafile", help="AST json datafile")
    parser.add_argument(
        "--target-length", type=int_at_least(1), default=1024, help="frames per clip"
    )
    # Kaldi's mel filter bank needs at least 3 bins.
    parser.add_argument("--num-mel-bins", type=int_at_least(3), default=NUM_MEL_BINS)
    parser.add_argument("--batch-size", type=int_at_least(1), default=ORIGINAL_BATCH_SIZE)
    parser.add_argument(
        "--original-augmentation",
        action="store_true",
        help=f"switch on the original's mixup {ORIGINAL_MIXUP}, freqm {ORIGINAL_FREQM}, "
        f"timem {ORIGINAL_TIMEM}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit", type=int_at_least(1), default=None, help="use the first N clips only"
    )
    parser.add_argument("--output", help="also write the report as json here")


def run(args: argparse.Namespace) -> int:
    aug = args.original_augmentation
    report = compute_norm_stats(
        args.datafile,
        target_length=args.target_length,
        num_mel_bins=args.num_mel_bins,
        batch_size=args.batch_size,
        freqm=ORIGINAL_FREQM if aug else 0,
        timem=ORIGINAL_TIMEM if aug else 0,
        mixup=ORIGINAL_MIXUP if aug else 0.0,
        seed=args.seed,
        limit=args.limit,
    )
    print(f"{report.num_clips} clips, {report.target_length} frames each")
    print(f"pooled (exact):           mean {report.pooled_mean:.6f}  std {report.pooled_std:.6f}")
    print(
        f"original (batch average): mean {report.original_mean:.6f}  "
        f"std {report.original_std:.6f}  ({report.original_batches} batches)"
    )
    for name, stats in PUBLISHED_STATS.items():
        print(f"published {name:15s} mean {stats.mean:.6f}  std {stats.std:.6f}")
    if args.output:
        from ast_repro.fileio import atomic_write_json

        atomic_write_json(args.output, report.as_dict())
    return 0
