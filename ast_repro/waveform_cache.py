"""Waveform cache: decode a datafile's clips once into one memory-mapped float32 array.

The original data loader decodes every wav on every epoch (`src/dataloader.py`,
`torchaudio.load` in `AudiosetDataset.__getitem__`). Repeated experiments on the same split
(the notebooks' ablations, the ensembles) re-read tens of thousands of small files; here they
are decoded and resampled once, stored end to end in `<name>.f32`, with an `(N, 2)` int64
index of (offset, length) in `<name>.index.npy` and a json manifest recording the datafile's
path, mtime and size and the sample rate. The cache is rebuilt when the manifest no longer
matches. Changes to the audio files themselves (with an untouched datafile) are not detected.
Training builds it (`ast_repro.build`, `waveform_cache=True`) and the datasets of
`ast_repro.data` read from it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ast_repro.audio import TARGET_SAMPLE_RATE, load_audio
from ast_repro.checks import check_datafile
from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_open, atomic_write_json

CACHE_FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".cache.json"


class CacheError(AstReproError, ValueError):
    """A cache is missing, incomplete or inconsistent; the message names the file."""


def _names(datafile: Path, cache_dir: Path, sample_rate: int) -> dict[str, Path]:
    # The path hash keeps caches of same-named datafiles from different roots apart.
    digest = hashlib.sha1(str(datafile.resolve()).encode()).hexdigest()[:8]
    stem = f"{datafile.stem}-{sample_rate}-{digest}"
    return {
        "manifest": cache_dir / f"{stem}{MANIFEST_SUFFIX}",
        "data": cache_dir / f"{stem}.f32",
        "index": cache_dir / f"{stem}.index.npy",
    }


def _fingerprint(datafile: Path, sample_rate: int) -> dict[str, Any]:
    stat = datafile.stat()
    return {
        "version": CACHE_FORMAT_VERSION,
        "datafile": str(datafile.resolve()),
        "datafile_mtime_ns": stat.st_mtime_ns,
        "datafile_size": stat.st_size,
        "sample_rate": sample_rate,
    }


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _matches(manifest: dict[str, Any] | None, fingerprint: dict[str, Any]) -> bool:
    return manifest is not None and all(manifest.get(k) == v for k, v in fingerprint.items())


def build_cache(
    datafile: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    sample_rate: int = TARGET_SAMPLE_RATE,
    progress: bool = True,
) -> Path:
    """Decode every clip of a datafile into a memory-mapped cache, unless a valid one exists.

    Args:
        datafile: AST json datafile.
        cache_dir: folder for the cache files (created if needed).
        sample_rate: clips are resampled to this rate in Hz (as `load_audio` does).
        progress: show a progress bar while decoding.

    Returns:
        Path of the cache's manifest json; pass it to `open_cache`.

    Raises:
        DatafileError: the datafile cannot be read, lists no clips or has an entry without labels.
        AudioError: a clip cannot be decoded (the message names it).
    """
    datafile, cache_dir = Path(datafile), Path(cache_dir)
    names = _names(datafile, cache_dir, sample_rate)
    fingerprint = _fingerprint(datafile, sample_rate)
    if _matches(_read_manifest(names["manifest"]), fingerprint):
        try:
            open_cache(names["manifest"])
            return names["manifest"]
        except CacheError:
            pass  # damaged files: rebuild below
    names["manifest"].unlink(missing_ok=True)  # never leave a manifest over partial files
    clips = check_datafile(datafile)  # the rules every command applies (ast_repro.checks)
    index = np.zeros((len(clips), 2), dtype=np.int64)  # (N, 2): offset, length in samples
    offset = 0
    with atomic_open(names["data"], "wb") as handle:
        for i, clip in enumerate(
            tqdm(clips, desc=f"caching {datafile.name}", disable=not progress, leave=False)
        ):
            waveform = load_audio(clip.wav, sample_rate=sample_rate).numpy()  # (N_i,)
            handle.write(np.ascontiguousarray(waveform, dtype=np.float32).tobytes())
            index[i] = (offset, waveform.shape[0])
            offset += waveform.shape[0]
    with atomic_open(names["index"], "wb") as handle:
        np.save(handle, index)
    fingerprint.update(
        num_clips=len(clips),
        total_samples=offset,
        data=names["data"].name,
        index=names["index"].name,
    )
    atomic_write_json(names["manifest"], fingerprint)
    return names["manifest"]


class WaveformCache:
    """Read-only view of a built cache; `cache[i]` is clip i as float32 (n_i,), no copy."""

    def __init__(self, manifest_path: str | os.PathLike[str]) -> None:
        self.manifest_path = Path(manifest_path)
        manifest = _read_manifest(self.manifest_path)
        if manifest is None:
            raise CacheError(
                f"{self.manifest_path}: cache manifest missing or unreadable; run build_cache first"
            )
        self.manifest = manifest
        self.sample_rate = int(manifest["sample_rate"])
        folder = self.manifest_path.parent
        self._data_path = folder / manifest["data"]
        index_path = folder / manifest["index"]
        try:
            self.index = np.load(index_path)
        except (FileNotFoundError, ValueError) as exc:
            raise CacheError(f"{index_path}: cache index unreadable ({exc})") from None
        total = int(manifest["total_samples"])
        expected_bytes = total * np.dtype(np.float32).itemsize
        actual = self._data_path.stat().st_size if self._data_path.exists() else -1
        if actual != expected_bytes or self.index.shape != (manifest["num_clips"], 2):
            raise CacheError(
                f"{self._data_path}: cache data does not match its manifest "
                f"({actual} bytes, expected {expected_bytes}); rebuild it"
            )
        self._data: np.ndarray | None = None

    def _array(self) -> np.ndarray:
        if self._data is None:
            if int(self.manifest["total_samples"]) == 0:
                self._data = np.zeros(0, dtype=np.float32)
            else:
                self._data = np.memmap(self._data_path, dtype=np.float32, mode="r")
        return self._data

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip {i} out of range for a cache of {len(self)} clips")
        offset, length = (int(v) for v in self.index[i])
        return self._array()[offset : offset + length].view(np.ndarray)

    def __getstate__(self) -> dict[str, Any]:
        # Data-loader workers re-open the memory map instead of receiving a copy of it.
        state = dict(self.__dict__)
        state["_data"] = None
        return state


def open_cache(path: str | os.PathLike[str]) -> WaveformCache:
    """Open a cache built by `build_cache` (the manifest path it returned).

    Raises:
        CacheError: the manifest, index or data file is missing or inconsistent.
    """
    return WaveformCache(path)


def cache_is_current(
    manifest_path: str | os.PathLike[str],
    datafile: str | os.PathLike[str],
    *,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> bool:
    """Whether a cache's manifest still matches the datafile (path, mtime, size, rate)."""
    return _matches(_read_manifest(Path(manifest_path)), _fingerprint(Path(datafile), sample_rate))
