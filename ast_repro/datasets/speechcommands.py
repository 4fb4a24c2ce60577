"""Speech Commands V2: download, verify, split, write datafiles (original
`egs/speechcommands/prep_sc.py`).

Mirrors `egs/speechcommands/prep_sc.py`: the v0.02 tar.gz is extracted into
`speech_commands_v0.02/`; validation and test clips are the ones named in
`validation_list.txt` and `testing_list.txt`, and every other `<word>/<clip>.wav` outside
`_background_noise_` is a training clip. On the real set this gives 84,843 / 9,981 /
11,005 clips. The audio is already 16 kHz, so nothing is resampled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ast_repro.datafiles import write_datafile, write_label_csv
from ast_repro.datasets.common import fetch_and_extract, read_marker, relative_to, write_marker
from ast_repro.datasets.registry import SPEECHCOMMANDS_ARCHIVE, SPEECHCOMMANDS_URL, KnownFile
from ast_repro.errors import AstReproError
from ast_repro.layout import DATAFILES_DIR, prepared_paths, speechcommands_labels

ARCHIVE_NAME = SPEECHCOMMANDS_ARCHIVE
EXTRACTED_DIR = "speech_commands_v0.02"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
BACKGROUND_NOISE_DIR = "_background_noise_"
# Standard V2 split sizes (train, validation, test), section 2.4.
SPEECHCOMMANDS_SPLIT_SIZES = (84_843, 9_981, 11_005)
# The 35 words of Speech Commands V2, sorted: the folders of the archive.
SPEECHCOMMANDS_WORDS = tuple(
    "backward bed bird cat dog down eight five follow forward four go happy house learn "
    "left marvin nine no off on one right seven sheila six stop three tree two up visual "
    "wow yes zero".split()
)


class SpeechCommandsError(AstReproError, ValueError):
    """The extracted Speech Commands tree does not have the expected structure."""


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise SpeechCommandsError(f"{path}: split list not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_clips(extracted: Path) -> dict[str, list[str]]:
    """The standard split of an extracted tree, as `<word>/<clip>.wav` relative paths.

    Returns:
        {"train": sorted, "valid": validation_list order, "eval": testing_list order}.

    Raises:
        SpeechCommandsError: missing split list or background-noise folder, word folders
            other than the 35 V2 words, or a listed clip that does not exist.
    """
    valid = _read_list(extracted / VALIDATION_LIST)
    test = _read_list(extracted / TESTING_LIST)
    if not (extracted / BACKGROUND_NOISE_DIR).is_dir():
        raise SpeechCommandsError(f"{extracted / BACKGROUND_NOISE_DIR}: folder not found")
    words = sorted(
        entry.name
        for entry in extracted.iterdir()
        if entry.is_dir() and not entry.name.startswith((".", "_"))
    )
    if tuple(words) != SPEECHCOMMANDS_WORDS:
        raise SpeechCommandsError(
            f"{extracted}: word folders {words} are not the 35 Speech Commands V2 words"
        )
    everything = sorted(
        f"{word}/{clip.name}" for word in words for clip in (extracted / word).glob("*.wav")
    )
    present = set(everything)
    for list_name, listed in ((VALIDATION_LIST, valid), (TESTING_LIST, test)):
        missing = [clip for clip in listed if clip not in present]
        if missing:
            raise SpeechCommandsError(
                f"{extracted / list_name}: {len(missing)} listed clips are missing, "
                f"e.g. {missing[0]}"
            )
    overlap = set(valid) & set(test)
    if overlap:
        raise SpeechCommandsError(f"{extracted}: clips in both split lists, e.g. {min(overlap)}")
    held_out = set(valid) | set(test)
    train = [clip for clip in everything if clip not in held_out]
    return {"train": train, "valid": valid, "eval": test}


def write_speechcommands_datafiles(
    root: Path, extracted: Path, splits: dict[str, list[str]]
) -> dict[str, Path]:
    """Write the label csv and the train/valid/eval datafiles (labels from the folder name).

    Returns:
        prepared_paths("speechcommands", root).
    """
    labels = speechcommands_labels()
    paths = prepared_paths("speechcommands", root)
    folder = root / DATAFILES_DIR
    write_label_csv(paths["labels"], labels)
    mid_of = dict(zip(labels.names, labels.mids, strict=True))
    for split, clips in splits.items():
        entries = [
            {"wav": relative_to(extracted / clip, folder), "labels": mid_of[clip.split("/")[0]]}
            for clip in clips
        ]
        write_datafile(paths[split], entries)
    return paths


def prepare_speechcommands(
    root: str | os.PathLike[str],
    *,
    url: str = SPEECHCOMMANDS_URL,
    strict_sizes: bool | None = None,
    progress: bool = True,
    force: bool = False,
    checksums: Mapping[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> dict[str, Path]:
    """Download (or reuse), check, extract, split and write the Speech Commands datafiles.

    Args:
        root: dataset root, e.g. `data/speechcommands`; the archive goes to `root/downloads/`.
        url: archive URL (the official one by default; http(s) or file://).
        strict_sizes: require the real split sizes 84,843 / 9,981 / 11,005; default True
            for the official URL only.
        progress: show a download progress bar.
        force: download and extract again even if a prepared copy exists.
        checksums: registry entries replacing the official ones (a twin's record); by
            default the archive must have the published size and SHA-256, from any URL.
        accept_new_checksum: record a new archive that differs from a first-use record.

    Returns:
        prepared_paths("speechcommands", root).

    Raises:
        ChecksumMismatch: the archive is not the expected one (nothing is extracted).
    """
    root = Path(root)
    if strict_sizes is None:
        strict_sizes = url == SPEECHCOMMANDS_URL
    extracted = root / EXTRACTED_DIR
    fetch_and_extract(
        url,
        root,
        archive_name=ARCHIVE_NAME,
        extracted=extracted,
        target=extracted,
        is_complete=lambda path: (path / TESTING_LIST).is_file(),
        progress=progress,
        force=force,
        checksums=checksums,
        accept_new_checksum=accept_new_checksum,
    )
    splits = split_clips(extracted)
    sizes = tuple(len(splits[name]) for name in ("train", "valid", "eval"))
    if strict_sizes and sizes != SPEECHCOMMANDS_SPLIT_SIZES:
        raise SpeechCommandsError(
            f"{extracted}: split sizes {sizes} differ from the real V2 split "
            f"{SPEECHCOMMANDS_SPLIT_SIZES}"
        )
    paths = write_speechcommands_datafiles(root, extracted, splits)
    marker = read_marker(root)
    marker.update(
        dataset="speechcommands",
        source_url=url,
        split_sizes=dict(zip(("train", "valid", "eval"), sizes, strict=True)),
    )
    write_marker(root, marker)
    return paths
