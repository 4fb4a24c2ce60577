"""Waveform cache: equal to decoding each file, memory-mapped, rebuilt when stale."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from ast_repro.audio import load_audio
from ast_repro.datafiles import write_datafile
from ast_repro.waveform_cache import CacheError, build_cache, cache_is_current, open_cache


@pytest.fixture
def datafile(tmp_path, rng):
    audio = tmp_path / "audio"
    audio.mkdir()
    lengths = (16_000, 4_000, 24_321)
    for i, n in enumerate(lengths):
        sf.write(audio / f"{i}.wav", 0.3 * rng.standard_normal(n), 16_000, subtype="PCM_16")
    # A 44.1 kHz clip (resampled) and a stereo float clip (first channel).
    sf.write(audio / "hi.wav", 0.2 * rng.standard_normal(44_100), 44_100, subtype="PCM_16")
    sf.write(audio / "st.wav", 0.2 * rng.standard_normal((8000, 2)), 16_000, subtype="FLOAT")
    names = ["0", "1", "2", "hi", "st"]
    path = tmp_path / "data" / "train.json"
    write_datafile(path, [{"wav": f"../audio/{n}.wav", "labels": "/m/a"} for n in names])
    return path


def test_cached_clips_equal_load_audio(datafile, tmp_path):
    manifest = build_cache(datafile, tmp_path / "cache", progress=False)
    cache = open_cache(manifest)
    assert len(cache) == 5 and cache.sample_rate == 16_000
    for i, name in enumerate(["0", "1", "2", "hi", "st"]):
        expected = load_audio(datafile.parent.parent / "audio" / f"{name}.wav").numpy()
        assert cache[i].dtype == np.float32
        np.testing.assert_array_equal(cache[i], expected)
    assert cache[3].shape == (16_000,)  # 1 s at 44.1 kHz, resampled
    np.testing.assert_array_equal(cache[-1], cache[4])
    with pytest.raises(IndexError):
        cache[5]


def test_items_are_views_of_one_memory_map(datafile, tmp_path):
    cache = open_cache(build_cache(datafile, tmp_path / "cache", progress=False))
    first, second = cache[0], cache[1]
    assert isinstance(cache._array(), np.memmap)
    assert np.shares_memory(first, cache._array()) and np.shares_memory(second, cache._array())
    assert not first.flags.writeable
    data_file = tmp_path / "cache" / cache.manifest["data"]
    assert data_file.stat().st_size == 4 * int(cache.index[:, 1].sum())


def test_cache_is_reused_then_rebuilt_when_the_datafile_changes(datafile, tmp_path):
    manifest = build_cache(datafile, tmp_path / "cache", progress=False)
    data_path = manifest.parent / open_cache(manifest).manifest["data"]
    inode = data_path.stat().st_ino
    assert build_cache(datafile, tmp_path / "cache", progress=False) == manifest
    assert data_path.stat().st_ino == inode  # not rewritten
    write_datafile(datafile, [{"wav": "../audio/1.wav", "labels": "/m/b"}])
    stat = datafile.stat()
    os.utime(datafile, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not cache_is_current(manifest, datafile)
    rebuilt = open_cache(build_cache(datafile, tmp_path / "cache", progress=False))
    assert len(rebuilt) == 1 and rebuilt[0].shape == (4_000,)
    assert cache_is_current(manifest, datafile)


def test_damaged_cache_is_detected_and_rebuilt(datafile, tmp_path):
    manifest = build_cache(datafile, tmp_path / "cache", progress=False)
    data_path = manifest.parent / open_cache(manifest).manifest["data"]
    with open(data_path, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(CacheError, match="does not match its manifest"):
        open_cache(manifest)
    cache = open_cache(build_cache(datafile, tmp_path / "cache", progress=False))
    assert len(cache) == 5 and cache[2].shape == (24_321,)
    with pytest.raises(CacheError, match="run build_cache first"):
        open_cache(tmp_path / "cache" / "nothing.cache.json")


def test_pickling_reopens_the_map_instead_of_copying_it(datafile, tmp_path):
    cache = open_cache(build_cache(datafile, tmp_path / "cache", progress=False))
    cache[0]  # open the map
    blob = pickle.dumps(cache)
    assert len(blob) < 10_000  # the ~400 KB of samples are not inside
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone[2], cache[2])
