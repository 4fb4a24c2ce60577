"""What a prepared dataset holds: clips per split and class, durations, sample rates.

Notebook 00 shows these summaries so a user can check a download (or a twin) at a glance.
Only file headers are read, so summarizing a large split is fast.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass

from ast_repro.audio import read_audio_info
from ast_repro.datafiles import Clip, DatafileError, read_datafile, read_label_csv

# The real datasets' split sizes (original `egs/esc50/prep_esc50.py`,
# `egs/speechcommands/prep_sc.py`), for comparison.
REAL_SPLIT_SIZES: dict[str, dict[str, int]] = {
    "speechcommands": {"train": 84_843, "valid": 9_981, "eval": 11_005},
    "esc50": {"train": 1_600, "eval": 400},  # per fold
}


@dataclass(frozen=True)
class SplitSummary:
    """One datafile's contents."""

    num_clips: int
    clips_per_class: dict[str, int]  # display name -> clips carrying that label
    labels_per_clip: float
    seconds_min: float
    seconds_median: float
    seconds_max: float
    sample_rates: dict[int, int]  # Hz -> clips


def summarize_split(
    datafile: str | os.PathLike[str], label_csv: str | os.PathLike[str]
) -> SplitSummary:
    """Count clips, labels, durations and sample rates of one datafile (headers only)."""
    labels = read_label_csv(label_csv)
    clips = read_datafile(datafile)
    if not clips:
        raise DatafileError(f"{datafile}: no clips")
    per_class: Counter[str] = Counter()
    rates: Counter[int] = Counter()
    seconds = []
    for clip in clips:
        for mid in clip.labels:
            per_class[labels.name_of(mid)] += 1
        rate, frames, _ = read_audio_info(clip.wav)
        rates[rate] += 1
        seconds.append(frames / rate)
    return SplitSummary(
        num_clips=len(clips),
        clips_per_class={name: per_class[name] for name in labels.names},
        labels_per_clip=sum(len(c.labels) for c in clips) / len(clips),
        seconds_min=min(seconds),
        seconds_median=statistics.median(seconds),
        seconds_max=max(seconds),
        sample_rates=dict(sorted(rates.items())),
    )


def split_fractions(sizes: dict[str, int]) -> dict[str, float]:
    """Each split's share of all clips."""
    total = sum(sizes.values())
    return {split: count / total for split, count in sizes.items()}


def first_clip_per_class(clips: list[Clip], count: int) -> list[Clip]:
    """The first clip of each of the first `count` distinct (first) labels, in datafile order."""
    shown: dict[str, Clip] = {}
    for clip in clips:
        if clip.labels and clip.labels[0] not in shown:
            shown[clip.labels[0]] = clip
            if len(shown) == count:
                break
    return list(shown.values())
