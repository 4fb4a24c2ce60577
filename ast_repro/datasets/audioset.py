"""AudioSet: official segment csvs, user-supplied audio, datafiles, sampler weights (section 2.5).

AudioSet audio is not redistributable and the original repository has no preparation
script. This module fetches the official csvs, indexes the clips a user already has (a
folder of files named by YouTube id, `<YTID>.wav` or `Y<YTID>.wav`, any libsndfile format),
optionally runs a downloader the user installed (yt-dlp by default) for missing clips, and
writes AST datafiles plus the balanced-sampler weight file of `egs/audioset/gen_weight_file.py`:
weight per class 1000 / (count + 0.01), weight of a clip = sum over its labels.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ast_repro.datafiles import Clip, LabelMap, read_label_csv, write_datafile
from ast_repro.datasets.common import fetch, read_marker, relative_to, write_marker
from ast_repro.datasets.registry import AUDIOSET_CSV_URL, KnownFile
from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_write_text
from ast_repro.layout import AUDIOSET_LABEL_CSV, DATAFILES_DIR
from ast_repro.sampling import balanced_weights, weight_file_path, write_weight_file

SEGMENT_CSVS = {
    "balanced_train": "balanced_train_segments.csv",
    "eval": "eval_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
}
# A YouTube video id: 11 characters of the URL-safe base64 alphabet. Ids become file
# names in the audio folder, so nothing else (`../x`, `/etc/x`) may pass.
YTID_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}")
CSV_DIR = "csv"
AUDIO_DIR = "audio"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# A downloader command; {ytid}, {start}, {end} and {out} (output path without suffix) are
# filled in per clip. The yt-dlp default cuts the 10 s segment and converts it with ffmpeg
# to 16 kHz mono wav; it needs `pip install yt-dlp` and an ffmpeg on PATH.
YT_DLP_COMMAND = (
    "yt-dlp", "--quiet", "--no-warnings", "--no-playlist", "-f", "bestaudio/best",
    "--download-sections", "*{start}-{end}", "-x", "--audio-format", "wav",
    "--postprocessor-args", "ffmpeg:-ar 16000 -ac 1", "-o", "{out}.%(ext)s",
    "https://www.youtube.com/watch?v={ytid}",
)  # fmt: skip


class AudioSetError(AstReproError, ValueError):
    """An AudioSet csv is malformed or a downloader is unavailable."""


@dataclass(frozen=True)
class Segment:
    """One row of a segment csv: a 10 s excerpt of a YouTube video and its labels."""

    ytid: str
    start: float
    end: float
    labels: tuple[str, ...]


def is_ytid(text: str) -> bool:
    """Whether `text` is a YouTube video id (11 characters of A-Z a-z 0-9 _ -)."""
    return YTID_PATTERN.fullmatch(text) is not None


def _check_row(path: Path, line_no: int, segment: Segment) -> None:
    if not is_ytid(segment.ytid):
        raise AudioSetError(
            f"{path}:{line_no}: {segment.ytid!r} is not a YouTube id (11 characters of "
            "A-Z a-z 0-9 _ -); ids become file names in the audio folder, so the csv is "
            "refused: use the official csv or fix that line"
        )
    if not (math.isfinite(segment.start) and 0 <= segment.start < segment.end < math.inf):
        raise AudioSetError(
            f"{path}:{line_no}: segment times {segment.start:g}-{segment.end:g} s of "
            f"{segment.ytid} are not 0 <= start < end; fix that line"
        )


def read_segments(path: str | os.PathLike[str]) -> list[Segment]:
    """Read an official segment csv (`# ...` comment lines, then `YTID, start, end, "labels"`).

    Raises:
        AudioSetError: missing file, a malformed row, an id that is not a YouTube id
            (`../../x` would name a file outside the audio folder) or times that are not
            0 <= start < end; the file and line are named.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioSetError(f"{path}: segment csv not found")
    segments = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            if not row or row[0].startswith("#"):
                continue
            try:
                ytid, start, end, labels = row
                labels_tuple = tuple(mid.strip() for mid in labels.split(",") if mid.strip())
                segment = Segment(ytid.strip(), float(start), float(end), labels_tuple)
            except ValueError:
                raise AudioSetError(f"{path}:{line_no}: malformed segment row {row}") from None
            _check_row(path, line_no, segment)
            segments.append(segment)
    return segments


def fetch_csvs(
    root: Path,
    *,
    base_url: str = AUDIOSET_CSV_URL,
    unbalanced: bool = True,
    progress: bool = True,
    checksums: Mapping[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> dict[str, Path]:
    """Download the segment csvs and class_labels_indices.csv into `root/csv/` and check them.

    Args:
        root: dataset root.
        base_url: folder URL of the csvs.
        unbalanced: also fetch the unbalanced csv.
        progress: show progress bars.
        checksums: registry entries replacing the official ones (a twin's record); the
            official csvs have no published digest and are checked against the record
            written at their first download (`root/csv/checksums.json`).
        accept_new_checksum: record csvs that differ from that record (an upstream update).

    Returns:
        {"balanced_train": path, "eval": path, ["unbalanced_train": path,] "labels": path}.

    Raises:
        ChecksumMismatch: a csv differs from its entry or record.
        DownloadError: a download failed.
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    names = dict(SEGMENT_CSVS)
    if not unbalanced:
        del names["unbalanced_train"]
    names["labels"] = AUDIOSET_LABEL_CSV
    return {
        key: fetch(
            base + name,
            root / CSV_DIR / name,
            progress=progress,
            checksums=checksums,
            accept_new_checksum=accept_new_checksum,
        )
        for key, name in names.items()
    }


def index_audio(audio_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Map YouTube id -> audio file for every `<YTID>.<ext>` or `Y<YTID>.<ext>` under a folder."""
    index: dict[str, Path] = {}
    prefixed: dict[str, Path] = {}
    for path in sorted(Path(audio_dir).rglob("*")):
        if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
            index.setdefault(path.stem, path)
            if path.stem.startswith("Y"):
                prefixed.setdefault(path.stem[1:], path)
    for ytid, path in prefixed.items():
        index.setdefault(ytid, path)
    return index


def download_clips(
    segments: list[Segment],
    audio_dir: str | os.PathLike[str],
    *,
    command: tuple[str, ...] = YT_DLP_COMMAND,
    workers: int = 4,
    progress: bool = True,
) -> list[Segment]:
    """Run a user-installed downloader for each segment; returns the segments still missing.

    Raises:
        AudioSetError: the downloader executable is not on PATH (with an install hint), or
            a segment's id is not a YouTube id.
    """
    for segment in segments:
        if not is_ytid(segment.ytid):
            raise AudioSetError(f"{segment.ytid!r} is not a YouTube id; no clip is downloaded")
    if shutil.which(command[0]) is None:
        raise AudioSetError(
            f"{command[0]} not found on PATH: AudioSet audio is not redistributable, so "
            "clips are fetched from YouTube by a downloader you install yourself, e.g. "
            "`pip install yt-dlp` plus ffmpeg; or put clips named <YTID>.wav in the audio folder."
        )
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)

    def fetch(segment: Segment) -> bool:
        out = audio_dir / segment.ytid
        fields = {
            "ytid": segment.ytid,
            "start": f"{segment.start:g}",
            "end": f"{segment.end:g}",
            "out": str(out),
        }
        subprocess.run(
            [part.format(**fields) for part in command], capture_output=True, check=False
        )
        return any(out.with_suffix(suffix).is_file() for suffix in AUDIO_SUFFIXES)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        fetched = list(
            tqdm(
                pool.map(fetch, segments),
                total=len(segments),
                desc="AudioSet clips",
                disable=not progress,
                leave=False,
            )
        )
    return [segment for segment, ok in zip(segments, fetched, strict=True) if not ok]


def _wav_entry(path: Path, folder: Path) -> str:
    """Relative to the datafile folder inside the dataset root, absolute outside it."""
    root = folder.parent.resolve()
    path = path.resolve()
    return relative_to(path, folder.resolve()) if path.is_relative_to(root) else str(path)


def _write_split(
    folder: Path, name: str, found: list[tuple[Segment, Path]], labels: LabelMap, weights: bool
) -> Path:
    datafile = folder / f"{name}_data.json"
    write_datafile(
        datafile,
        [
            {"wav": _wav_entry(path, folder), "labels": list(segment.labels)}
            for segment, path in found
        ],
    )
    if weights:
        clips = [Clip(wav=path, labels=segment.labels) for segment, path in found]
        write_weight_file(weight_file_path(datafile), balanced_weights(clips, labels))
    return datafile


def prepare_audioset(
    root: str | os.PathLike[str],
    *,
    base_url: str = AUDIOSET_CSV_URL,
    audio_dir: str | os.PathLike[str] | None = None,
    unbalanced: bool = True,
    downloader: tuple[str, ...] | None = None,
    progress: bool = True,
    checksums: Mapping[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> dict[str, Path]:
    """Fetch the csvs, find (or download) the audio and write datafiles and weight files.

    Args:
        root: dataset root, e.g. `data/audioset`.
        base_url: folder URL of the official csvs (http(s) or file://).
        audio_dir: folder of clips named by YouTube id; default `root/audio`.
        unbalanced: also fetch the unbalanced csv and, where clips exist, write
            `unbalanced_train_data.json` and `full_train_data.json` (balanced + unbalanced,
            the paper's "full AudioSet") with its weight file.
        downloader: a command template (see YT_DLP_COMMAND) run for missing clips; None
            only indexes what is there.
        progress: show progress bars.
        checksums: registry entries replacing the official ones (a twin's record).
        accept_new_checksum: record csvs that differ from their first-use record.

    Returns:
        Paths written: "labels", "<split>" datafiles, "<split>_weights" weight files and
        "<split>_missing" lists of YouTube ids without audio.

    Raises:
        AudioSetError: a csv row is malformed or names a label, id or time that is not
            valid (file and line named; nothing is downloaded), or no clip has audio.
        ChecksumMismatch: a csv differs from its entry or first-use record.
        DownloadError: a csv download failed.
    """
    root = Path(root)
    audio_dir = Path(audio_dir) if audio_dir is not None else root / AUDIO_DIR
    csvs = fetch_csvs(
        root,
        base_url=base_url,
        unbalanced=unbalanced,
        progress=progress,
        checksums=checksums,
        accept_new_checksum=accept_new_checksum,
    )
    labels = read_label_csv(csvs["labels"])
    known = set(labels.mids)
    folder = root / DATAFILES_DIR
    written = {"labels": folder / AUDIOSET_LABEL_CSV}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(csvs["labels"], written["labels"])
    index = index_audio(audio_dir)
    found_by_split: dict[str, list[tuple[Segment, Path]]] = {}
    counts = {}
    # Every csv is read and checked before any clip is fetched.
    listed = {split: read_segments(csvs[split]) for split in SEGMENT_CSVS if split in csvs}
    for split, segments in listed.items():
        for segment in segments:
            unknown = [mid for mid in segment.labels if mid not in known]
            if unknown:
                raise AudioSetError(
                    f"{csvs[split]}: {segment.ytid} has labels {unknown} "
                    f"that are not in {csvs['labels']}"
                )
    for split, segments in listed.items():
        missing = [segment for segment in segments if segment.ytid not in index]
        if missing and downloader is not None:
            download_clips(missing, audio_dir, command=downloader, progress=progress)
            index = index_audio(audio_dir)
        # NOTE: the paper's balanced-set run trains on PSLA "enhanced" labels
        # (balanced_train_data_type1_2_mean.json); we write the official labels, which the
        # original README says give slightly worse results.
        found = [(s, index[s.ytid]) for s in segments if s.ytid in index]
        missing_ids = [s.ytid for s in segments if s.ytid not in index]
        written[f"{split}_missing"] = root / f"missing_{split}.txt"
        atomic_write_text(written[f"{split}_missing"], "".join(f"{y}\n" for y in missing_ids))
        counts[split] = {"listed": len(segments), "found": len(found), "missing": len(missing_ids)}
        if found:
            found_by_split[split] = found
            written[split] = _write_split(folder, split, found, labels, split != "eval")
            if split != "eval":
                written[f"{split}_weights"] = weight_file_path(written[split])
    if not found_by_split:
        raise AudioSetError(
            f"{audio_dir}: no audio for any listed segment. Put clips named <YTID>.wav there "
            "(or pass audio_dir), or fetch them with a downloader such as yt-dlp; the missing "
            f"YouTube ids are listed in {root}/missing_*.txt"
        )
    if "balanced_train" in found_by_split and "unbalanced_train" in found_by_split:
        full = found_by_split["balanced_train"] + found_by_split["unbalanced_train"]
        written["full_train"] = _write_split(folder, "full_train", full, labels, True)
        written["full_train_weights"] = weight_file_path(written["full_train"])
    marker = read_marker(root)
    marker.update(dataset="audioset", source_url=base_url, audio_dir=str(audio_dir), clips=counts)
    write_marker(root, marker)
    return written
