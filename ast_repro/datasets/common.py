"""Steps shared by the dataset recipes: fetch-and-extract once, write wavs, record provenance.

A prepared root records where its data came from in `prepared.json`; an extraction made
from a different source (say a twin, then the real archive) is redone instead of reused.
Every downloaded file is checked against its registry entry or its first-use record
(`registry.py`) after the download and before it is extracted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ast_repro.datasets.archive import safe_extract
from ast_repro.datasets.download import discard_partial, download
from ast_repro.datasets.registry import (
    Digest,
    KnownFile,
    digest_of,
    expected_entry,
    record_first_use,
    verify,
)
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


def fetch(
    url: str,
    dest: Path,
    *,
    progress: bool,
    force: bool = False,
    checksums: Mapping[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> Path:
    """Download `url` to `dest` unless `dest` already came from that URL; check it either way.

    The URL a file is downloaded from is recorded beside it (`<name>.source`), so a file
    from another source (a twin, then the real archive) is replaced rather than reused.
    A file without a record was placed there by hand, as the offline error suggests, and
    is kept. The file, new or kept, is checked against its registry entry (or the entry of
    `checksums`) where a size or SHA-256 is known, else against the digest recorded at its
    first download in `checksums.json` beside it; a file with neither is recorded now.

    Args:
        url: http(s) or file:// URL.
        dest: where the file is kept.
        progress: show a progress bar.
        force: download again even if `dest` exists.
        checksums: entries replacing the registry's, by file name (a twin's record).
        accept_new_checksum: replace a first-use record the file does not match (an
            upstream update) instead of refusing it; published entries still apply.

    Returns:
        `dest`, checked.

    Raises:
        ChecksumMismatch: the file differs from its entry or record; a new download is not
            kept.
        DownloadError: the download failed.
    """
    path, digest = _fetch_checked(
        url,
        dest,
        progress=progress,
        force=force,
        checksums=checksums,
        accept_new_checksum=accept_new_checksum,
    )
    if digest is not None:
        record_first_use(dest.parent, dest.name, digest, url)
    return path


def _fetch_checked(
    url: str,
    dest: Path,
    *,
    progress: bool,
    force: bool,
    checksums: Mapping[str, KnownFile] | None,
    accept_new_checksum: bool,
) -> tuple[Path, Digest | None]:
    """`fetch` without writing the first-use record; returns the digest to record, if any."""
    record = dest.with_name(dest.name + SOURCE_SUFFIX)
    recorded = record.read_text(encoding="utf-8").strip() if record.is_file() else None
    if force or (recorded is not None and recorded != url):
        dest.unlink(missing_ok=True)
        discard_partial(dest)
    if not dest.exists():
        atomic_write_text(record, url + "\n")
    expected, is_record = expected_entry(dest.name, dest.parent, checksums)
    if is_record and accept_new_checksum:
        expected = None
    seen: list[Digest] = []

    def check(path: Path, fresh: bool) -> None:
        seen.append(digest_of(path))
        if expected is not None:
            verify(seen[-1], expected, dest=dest, url=url, fresh=fresh, recorded=is_record)

    download(url, dest, progress=progress, check=check)
    return dest, seen[-1] if expected is None else None


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
    checksums: Mapping[str, KnownFile] | None = None,
    accept_new_checksum: bool = False,
) -> Path:
    """Download `url` into `root/downloads/archive_name`, check it and extract it into `target`.

    The extraction is reused when `extracted` passes `is_complete` and the root's marker
    names the same URL; otherwise the archive is checked as `fetch` says (nothing is
    extracted from a file that fails), the old extraction is removed and redone. An archive
    without a registry entry or record is recorded once it has been extracted whole.

    Returns:
        `extracted`.

    Raises:
        ChecksumMismatch: the archive differs from its entry or record.
        DownloadError: the download failed.
        ArchiveError: the archive is corrupt or unsafe.
    """
    marker = read_marker(root)
    if not force and marker.get("source_url") == url and is_complete(extracted):
        return extracted
    # NOTE: the original ESC-50 recipe deletes the zip after unzipping; we keep archives in
    # `downloads/` so a later preparation (or a changed recipe) needs no new download.
    archive, digest = _fetch_checked(
        url,
        root / DOWNLOADS_DIR / archive_name,
        progress=progress,
        force=force,
        checksums=checksums,
        accept_new_checksum=accept_new_checksum,
    )
    if extracted.exists():
        shutil.rmtree(extracted)
    (root / MARKER_NAME).unlink(missing_ok=True)
    safe_extract(archive, target)
    if digest is not None:
        record_first_use(archive.parent, archive.name, digest, url)
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
