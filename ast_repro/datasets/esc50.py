"""ESC-50: download, verify, resample to 16 kHz, write the 5-fold datafiles (original
`egs/esc50/prep_esc50.py`).

Mirrors `egs/esc50/prep_esc50.py`: the master zip extracts to `ESC-50-master/`, every clip
of `audio/` is resampled from 44.1 kHz to 16 kHz into `audio_16k/`, and for each fold k the
clips of fold k form `esc_eval_data_{k}.json` and the other four folds
`esc_train_data_{k}.json`. Labels are the dummy mids `/m/07rwj00`..`/m/07rwj49` in ESC-50
`target` order.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torchaudio.transforms import Resample
from tqdm import tqdm

from ast_repro.audio import TARGET_SAMPLE_RATE, AudioError, read_audio_info
from ast_repro.datafiles import LabelMap, write_datafile, write_label_csv
from ast_repro.datasets.common import (
    fetch_and_extract,
    read_marker,
    relative_to,
    write_marker,
    write_wav,
)
from ast_repro.datasets.registry import ESC50_ARCHIVE, ESC50_URL, KnownFile
from ast_repro.errors import AstReproError
from ast_repro.layout import DATAFILES_DIR, ESC50_FOLDS, ESC50_LABEL_CSV, esc50_datafiles

ARCHIVE_NAME = ESC50_ARCHIVE
EXTRACTED_DIR = "ESC-50-master"
AUDIO_DIR = "audio"
AUDIO_16K_DIR = "audio_16k"
META_PATH = "meta/esc50.csv"
META_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
# The real dataset: 2000 five-second clips, 40 per class, 8 per class per fold, 44.1 kHz.
ESC50_NUM_CLIPS = 2000
ESC50_NUM_CLASSES = 50
ESC50_SAMPLE_RATE = 44_100
ESC50_MID_PREFIX = "/m/07rwj"
# ESC-50 categories in `target` order (the dataset's meta/esc50.csv).
ESC50_CATEGORIES = tuple(
    "dog rooster pig cow frog cat hen insects sheep crow rain sea_waves crackling_fire "
    "crickets chirping_birds water_drops wind pouring_water toilet_flush thunderstorm "
    "crying_baby sneezing clapping breathing coughing footsteps laughing brushing_teeth "
    "snoring drinking_sipping door_wood_knock mouse_click keyboard_typing "
    "door_wood_creaks can_opening washing_machine vacuum_cleaner clock_alarm clock_tick "
    "glass_breaking helicopter chainsaw siren car_horn engine train church_bells airplane "
    "fireworks hand_saw".split()
)
# The ESC-10 subset flagged in the meta csv's `esc10` column.
ESC10_CATEGORIES = frozenset(
    "dog rooster rain sea_waves crackling_fire crying_baby sneezing clock_tick helicopter "
    "chainsaw".split()
)


class Esc50Error(AstReproError, ValueError):
    """The extracted ESC-50 tree does not have the expected structure."""


@dataclass(frozen=True)
class EscRow:
    """One row of meta/esc50.csv (the columns the recipe uses)."""

    filename: str
    fold: int
    target: int
    category: str


def esc50_mid(target: int) -> str:
    """The dummy label id of an ESC-50 target, e.g. 7 -> "/m/07rwj07"."""
    return f"{ESC50_MID_PREFIX}{target:02d}"


def read_meta(path: str | os.PathLike[str]) -> list[EscRow]:
    """Read meta/esc50.csv.

    Raises:
        Esc50Error: missing file, wrong header or a malformed row (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise Esc50Error(f"{path}: ESC-50 metadata not found")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        if header != META_COLUMNS:
            raise Esc50Error(f"{path}: header {header} is not {META_COLUMNS}")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            try:
                rows.append(EscRow(row[0], int(row[1]), int(row[2]), row[3]))
            except (IndexError, ValueError):
                raise Esc50Error(f"{path}:{line_no}: malformed row {row}") from None
    return rows


def verify_esc50(extracted: Path, *, expected_clips: int | None = None) -> list[EscRow]:
    """Check the structure of an extracted `ESC-50-master/` tree (no checksum exists).

    Checks: the meta csv; 5 folds of equal size; 50 targets 0..49, one category each;
    every listed clip present in `audio/`, readable, 44.1 kHz and non-empty; no unlisted
    clips; and, when given, the total count (2000 for the real dataset).

    Returns:
        The meta rows, in file order.

    Raises:
        Esc50Error: the first problem found, naming the file.
    """
    rows = read_meta(extracted / META_PATH)
    if expected_clips is not None and len(rows) != expected_clips:
        raise Esc50Error(f"{extracted / META_PATH}: {len(rows)} clips, expected {expected_clips}")
    folds = [row.fold for row in rows]
    sizes = {fold: folds.count(fold) for fold in ESC50_FOLDS}
    if set(folds) != set(ESC50_FOLDS) or len(set(sizes.values())) != 1:
        raise Esc50Error(f"{extracted / META_PATH}: folds must be 1..5 of equal size, got {sizes}")
    categories: dict[int, str] = {}
    for row in rows:
        if categories.setdefault(row.target, row.category) != row.category:
            raise Esc50Error(f"{extracted / META_PATH}: target {row.target} has two categories")
    if sorted(categories) != list(range(ESC50_NUM_CLASSES)):
        raise Esc50Error(
            f"{extracted / META_PATH}: targets must be 0..49, got {sorted(categories)}"
        )
    audio = extracted / AUDIO_DIR
    listed = {row.filename for row in rows}
    on_disk = {path.name for path in audio.glob("*.wav")}
    if listed - on_disk:
        raise Esc50Error(
            f"{audio}: {len(listed - on_disk)} listed clips are missing, "
            f"e.g. {sorted(listed - on_disk)[0]}"
        )
    if on_disk - listed:
        raise Esc50Error(f"{audio}: clips not in the metadata, e.g. {sorted(on_disk - listed)[0]}")
    for row in rows:
        try:
            rate, frames, _ = read_audio_info(audio / row.filename)
        except AudioError as exc:
            raise Esc50Error(str(exc)) from None
        if rate != ESC50_SAMPLE_RATE or frames == 0:
            raise Esc50Error(
                f"{audio / row.filename}: {frames} frames at {rate} Hz, "
                f"expected 5 s at {ESC50_SAMPLE_RATE} Hz"
            )
    return rows


def resample_clips(extracted: Path, rows: list[EscRow], *, progress: bool = True) -> Path:
    """Resample every clip to 16 kHz 16-bit wav in `audio_16k/` (clips already there are kept).

    Returns:
        The `audio_16k` folder.
    """
    out_dir = extracted / AUDIO_16K_DIR
    out_dir.mkdir(exist_ok=True)
    # NOTE: the original resamples with `sox in -r 16000 out`; we use torchaudio's
    # windowed-sinc resampler (the same filter as `load_audio`). The two filters differ
    # slightly near the 8 kHz band edge; the size of that difference has not been measured.
    resamplers: dict[int, Resample] = {}  # one filter kernel per source rate, built once
    for row in tqdm(rows, desc="ESC-50 44.1 -> 16 kHz", disable=not progress, leave=False):
        out = out_dir / row.filename
        if out.exists():
            continue  # written atomically, so an existing file is complete
        source = extracted / AUDIO_DIR / row.filename
        samples, rate = sf.read(source, dtype="float32", always_2d=True)  # (N, channels)
        if rate not in resamplers:
            resamplers[rate] = Resample(orig_freq=rate, new_freq=TARGET_SAMPLE_RATE)
        waveform = resamplers[rate](torch.from_numpy(np.ascontiguousarray(samples[:, 0])))
        write_wav(out, waveform.numpy(), TARGET_SAMPLE_RATE)
    return out_dir


def write_esc50_datafiles(root: Path, extracted: Path, rows: list[EscRow]) -> dict[str, Path]:
    """Write the label csv and the train/eval datafiles of the 5 folds.

    Returns:
        {"labels": csv, "train_1": json, "eval_1": json, ..., "eval_5": json}.
    """
    folder = root / DATAFILES_DIR
    categories = {row.target: row.category for row in rows}
    labels = LabelMap(
        mids=tuple(esc50_mid(t) for t in range(ESC50_NUM_CLASSES)),
        names=tuple(categories[t] for t in range(ESC50_NUM_CLASSES)),
    )
    written = {"labels": folder / ESC50_LABEL_CSV}
    write_label_csv(written["labels"], labels)
    audio_16k = extracted / AUDIO_16K_DIR
    for fold in ESC50_FOLDS:
        train_path, eval_path = esc50_datafiles(root, fold)
        train, held_out = [], []
        for row in rows:
            entry = {
                "wav": relative_to(audio_16k / row.filename, folder),
                "labels": esc50_mid(row.target),
            }
            (held_out if row.fold == fold else train).append(entry)
        write_datafile(train_path, train)
        write_datafile(eval_path, held_out)
        written[f"train_{fold}"], written[f"eval_{fold}"] = train_path, eval_path
    return written


def prepare_esc50(
    root: str | os.PathLike[str],
    *,
    url: str = ESC50_URL,
    expected_clips: int | None = None,
    progress: bool = True,
    force: bool = False,
    checksums: Mapping[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> dict[str, Path]:
    """Download (or reuse), verify, extract, resample and write the ESC-50 datafiles.

    Args:
        root: dataset root, e.g. `data/esc50`; the archive goes to `root/downloads/`.
        url: archive URL (the official one by default; http(s) or file://).
        expected_clips: required clip count; default 2000 for the official URL, any
            count for other URLs (mirrors, the offline twin).
        progress: show progress bars.
        force: download and extract again even if a prepared copy exists.
        checksums: registry entries replacing the official ones (a twin's record).
        accept_new_checksum: record a new archive that differs from the first-use record.

    Returns:
        The paths written by `write_esc50_datafiles`.

    Raises:
        ChecksumMismatch: the archive is not the recorded one (nothing is extracted).
    """
    root = Path(root)
    if expected_clips is None and url == ESC50_URL:
        expected_clips = ESC50_NUM_CLIPS
    extracted = root / EXTRACTED_DIR
    fetch_and_extract(
        url,
        root,
        archive_name=ARCHIVE_NAME,
        extracted=extracted,
        target=root,
        is_complete=lambda path: (path / META_PATH).is_file(),
        progress=progress,
        force=force,
        checksums=checksums,
        accept_new_checksum=accept_new_checksum,
    )
    rows = verify_esc50(extracted, expected_clips=expected_clips)
    resample_clips(extracted, rows, progress=progress)
    written = write_esc50_datafiles(root, extracted, rows)
    marker = read_marker(root)
    marker.update(dataset="esc50", source_url=url, num_clips=len(rows))
    write_marker(root, marker)
    return written
