"""AudioSet twin: 10 s multi-label mixtures with csvs in the official formats.

Writes `csv/` (class_labels_indices.csv and the balanced, eval and unbalanced segment csvs,
formatted like the files at AUDIOSET_CSV_URL) and `audio/<YTID>.wav` (10 s, 16 kHz, 16-bit
mono), the layout a user who fetched clips by YouTube id has. Each clip mixes 2 or 3
procedural sources (`sources.py`) and carries their labels. Balanced and eval list every
class as the main source of the same number of clips; the unbalanced set draws main
classes from a skewed distribution, so its sampler weights differ. A few listed clips get
no audio, like videos that have disappeared from YouTube.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ast_repro.audio import TARGET_SAMPLE_RATE
from ast_repro.datasets.audioset import AUDIO_DIR, CSV_DIR, SEGMENT_CSVS
from ast_repro.datasets.common import write_wav
from ast_repro.datasets.registry import RECORD_NAME, write_twin_record
from ast_repro.datasets.synth.sources import NUM_CLASSES, coloured_noise, render, sound_class
from ast_repro.fileio import atomic_write_text
from ast_repro.layout import AUDIOSET_LABEL_CSV

CLIP_SECONDS = 10.0  # AudioSet segments are 10 s
# (classes, clips per class in balanced and in eval, unbalanced size as a multiple of
# balanced). The real set: 527 classes, >= 59 clips per class, unbalanced ~92x balanced.
SIZES = {"smoke": (10, 4, 2), "small": (20, 20, 3), "medium": (50, 60, 5)}
MISSING_FRACTION = 0.05  # share of listed segments left without audio
MAX_EXTRA_SOURCES = 2  # each clip: its main class plus 1..2 others
SNR_RANGE_DB = (20.0, 35.0)
PEAK_RANGE = (0.3, 0.9)
_YTID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
_YTID_LENGTH = 11


def twin_mid(k: int) -> str:
    """Label id of twin class k."""
    return f"/m/twin{k:02d}"


def _ytids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        ytid = "".join(rng.choice(_YTID_ALPHABET, size=_YTID_LENGTH))
        if ytid not in seen:
            seen.add(ytid)
            ids.append(ytid)
    return ids


def _label_sets(rng: np.random.Generator, mains: np.ndarray, num_classes: int) -> list[list[int]]:
    sets = []
    for main in mains:
        others = [k for k in range(num_classes) if k != main]
        extra = rng.choice(others, size=int(rng.integers(1, MAX_EXTRA_SOURCES + 1)), replace=False)
        sets.append([int(main), *sorted(int(k) for k in extra)])
    return sets


def _segments_csv(rows: list[tuple[str, float, list[int]]]) -> str:
    positives = sum(len(classes) for _, _, classes in rows)
    used = len({k for _, _, classes in rows for k in classes})
    lines = [
        "# Segments csv created by ast-repro (synthetic AudioSet twin)",
        f"# num_ytids={len(rows)}, num_segs={len(rows)}, num_unique_labels={used}, "
        f"num_positive_labels={positives}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    for ytid, start, classes in rows:
        mids = ",".join(twin_mid(k) for k in classes)
        lines.append(f'{ytid}, {start:.3f}, {start + CLIP_SECONDS:.3f}, "{mids}"')
    return "\n".join(lines) + "\n"


def _mixture(rng: np.random.Generator, sources: list[int]) -> np.ndarray:
    mix = np.zeros(int(CLIP_SECONDS * TARGET_SAMPLE_RATE))
    for source in sources:
        wave = render(
            sound_class(source),
            rng,
            sample_rate=TARGET_SAMPLE_RATE,
            duration_s=CLIP_SECONDS,
            background=False,
        )
        mix += rng.uniform(0.5, 1.0) * wave
    rms = np.sqrt(np.mean(mix**2)) + 1e-12
    noise = coloured_noise(rng, mix.shape[0], rng.uniform(0.0, 2.0))
    mix += noise * rms * 10 ** (-rng.uniform(*SNR_RANGE_DB) / 20)
    return mix / (np.abs(mix).max() + 1e-12) * rng.uniform(*PEAK_RANGE)


def make_audioset_twin(
    out_dir: str | os.PathLike[str],
    *,
    size: str = "smoke",
    seed: int = 0,
    num_classes: int | None = None,
    clips_per_class: int | None = None,
) -> Path:
    """Write a synthetic AudioSet: `out_dir/csv/*.csv` and `out_dir/audio/<YTID>.wav`.

    The csvs' sizes and SHA-256 go to `out_dir/checksums.json`, the twin's own registry
    entries, which their download is checked against.

    Args:
        out_dir: output folder.
        size: "smoke" (10 classes, 4 clips per class), "small" (20, 20) or "medium" (50, 60).
        seed: fixes classes' clips, labels, YouTube ids and which clips are missing.
        num_classes: overrides the size's class count (at most 50).
        clips_per_class: overrides the size's balanced/eval clips per class.

    Returns:
        `out_dir`.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    k, per_class, multiple = SIZES[size]
    k = num_classes if num_classes is not None else k
    per_class = clips_per_class if clips_per_class is not None else per_class
    if not 2 <= k <= NUM_CLASSES:
        raise ValueError(f"num_classes must be in 2..{NUM_CLASSES}, got {k}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 3])
    # Spread the twin's classes over the 50 sound classes so they differ as much as possible.
    source_of = np.linspace(0, NUM_CLASSES - 1, k).round().astype(int)
    lines = ["index,mid,display_name"]
    lines += [
        f'{i},{twin_mid(i)},"{sound_class(int(s)).description}"' for i, s in enumerate(source_of)
    ]
    atomic_write_text(out_dir / CSV_DIR / AUDIOSET_LABEL_CSV, "\n".join(lines) + "\n")
    skew = 1.0 / np.arange(1, k + 1)
    mains = {
        "balanced_train": np.repeat(np.arange(k), per_class),
        "eval": np.repeat(np.arange(k), per_class),
        "unbalanced_train": rng.choice(k, size=k * per_class * multiple, p=skew / skew.sum()),
    }
    ytids = iter(_ytids(rng, sum(len(m) for m in mains.values())))
    for split, main in mains.items():
        label_sets = _label_sets(rng, rng.permutation(main), k)
        rows = [(next(ytids), float(rng.integers(0, 30)), classes) for classes in label_sets]
        atomic_write_text(out_dir / CSV_DIR / SEGMENT_CSVS[split], _segments_csv(rows))
        missing = rng.random(len(rows)) < MISSING_FRACTION
        for (ytid, _, classes), absent in zip(rows, missing, strict=True):
            clip_rng = np.random.default_rng([seed, 4, *(ord(c) for c in ytid)])
            if not absent:
                mix = _mixture(clip_rng, [int(source_of[c]) for c in classes])
                write_wav(out_dir / AUDIO_DIR / f"{ytid}.wav", mix, TARGET_SAMPLE_RATE)
    csvs = [out_dir / CSV_DIR / name for name in (AUDIOSET_LABEL_CSV, *SEGMENT_CSVS.values())]
    origin = f"synthetic AudioSet twin, seed {seed}, generated with it"
    write_twin_record(csvs, out_dir / RECORD_NAME, origin)
    return out_dir
