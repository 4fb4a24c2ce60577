"""Steps shared by the dataset recipes: fetch-and-extract once, write wavs, record provenance.

A prepared root records where its data came from in `prepared.json`; an extraction made
from a different source (say a twin, then the real archive) is redone instead of reused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ast_repro.datasets.archive import safe_extract
from ast_repro.datasets.download import download, part_path
from ast_repro.fileio import atomic_open, atomic_write_json, atomic_write_text

DOWNLOADS_DIR = "downloads"
MARKER_NAME = "prepared.json"
SOURCE_SUFFIX = ".source"
# 16-bit PCM is what the real datasets ship and what the original sox step writes.
WAV_SUBTYPE = "PCM_16"
# Largest float that round-trips to int16 without wrapping.
_INT16_MAX = 32767 / 32768


def read_marker(root: Path) -> dict[str, Any]:
    """The provenance record of a prepared root, or {} when there is none."""
    try:
        return json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_marker(root: Path, record: dict[str, Any]) -> None:
    """Write the provenance record of a prepared root atomically."""
    atomic_write_json(root / MARKER_NAME, record)


def fetch(url: str, dest: Path, *, progress: bool, force: bool = False) -> Path:
    """Download `url` to `dest` unless `dest` already came from that URL.

    The URL a file is downloaded from is recorded beside it (`<name>.source`), so a file
    from another source (a twin, then the real archive) is replaced rather than reused.
    A file without a record was placed there by hand, as the offline error suggests, and
    is kept.
    """
    record = dest.with_name(dest.name + SOURCE_SUFFIX)
    recorded = record.read_text(encoding="utf-8").strip() if record.is_file() else None
    if force or (recorded is not None and recorded != url):
        dest.unlink(missing_ok=True)
        part_path(dest).unlink(missing_ok=True)
    if not dest.exists():
        atomic_write_text(record, url + "\n")
    return download(url, dest, progress=progress)


def fetch_and_extract(
    url: str,
    root: Path,
    *,
    archive_name: str,
    extracted: Path,
    target: Path,
    is_complete: Callable[[Path], bool],
    progress: bool,
    force: bool,
) -> Path:
    """Download `url` into `root/downloads/archive_name` and extract it into `target`.

    The extraction is reused when `extracted` passes `is_complete` and the root's marker
    names the same URL; otherwise the old extraction is removed and redone.

    Returns:
        `extracted`.
    """
    marker = read_marker(root)
    if not force and marker.get("source_url") == url and is_complete(extracted):
        return extracted
    # NOTE: the original ESC-50 recipe deletes the zip after unzipping; we keep archives in
    # `downloads/` so a later preparation (or a changed recipe) needs no new download.
    archive = fetch(url, root / DOWNLOADS_DIR / archive_name, progress=progress, force=force)
    if extracted.exists():
        shutil.rmtree(extracted)
    (root / MARKER_NAME).unlink(missing_ok=True)
    safe_extract(archive, target)
    return extracted


def write_wav(path: str | os.PathLike[str], waveform: np.ndarray, sample_rate: int) -> None:
    """Write a mono float waveform as 16-bit PCM wav, atomically, clipping to [-1, 1).

    Args:
        path: destination .wav.
        waveform: (N,) float samples in [-1, 1].
        sample_rate: Hz.
    """
    samples = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, _INT16_MAX)
    with atomic_open(path, "wb") as handle:
        sf.write(handle, samples, sample_rate, format="WAV", subtype=WAV_SUBTYPE)


def relative_to(path: Path, start: Path) -> str:
    """`path` relative to folder `start`, with forward slashes (datafiles stay portable)."""
    # NOTE: the original datafiles hold paths relative to the working directory (ESC-50,
    # `./data/...`) or absolute ones (Speech Commands); ours are relative to the datafile's
    # folder (how `read_datafile` resolves them), so a prepared root can be moved whole.
    return Path(os.path.relpath(path, start)).as_posix()
