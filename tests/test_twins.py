"""The synthetic twins: real on-disk layouts, determinism, and classes worth learning."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tarfile
import zipfile
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from ast_repro.datasets.audioset import SEGMENT_CSVS, read_segments
from ast_repro.datasets.esc50 import ESC10_CATEGORIES, ESC50_CATEGORIES, META_COLUMNS
from ast_repro.datasets.speechcommands import SPEECHCOMMANDS_WORDS
from ast_repro.datasets.synth import EspeakMissingError, make_esc50_twin
from ast_repro.datasets.synth.esc50 import esc50_twin_rows
from ast_repro.datasets.synth.sources import NUM_CLASSES, render, sound_class
from ast_repro.datasets.synth.speechcommands import (
    make_speechcommands_twin,
    speaker_id,
    split_speakers,
)
from tests import twin_cache
from tests.twin_cache import needs_espeak

# ESC-50 ---------------------------------------------------------------------------------


def test_esc50_twin_has_the_real_archive_layout():
    with zipfile.ZipFile(twin_cache.esc50_twin()) as zf:
        names = zf.namelist()
        assert all(name.startswith("ESC-50-master/") for name in names)
        meta = list(csv.reader(io.StringIO(zf.read("ESC-50-master/meta/esc50.csv").decode())))
        header, rows = tuple(meta[0]), meta[1:]
        assert header == META_COLUMNS
        assert len(rows) == 50 and [r[0] for r in rows] == sorted(r[0] for r in rows)
        assert sorted(int(r[2]) for r in rows) == list(range(50))
        assert Counter(int(r[1]) for r in rows) == {1: 10, 2: 10, 3: 10, 4: 10, 5: 10}
        for filename, fold, target, category, esc10, src_file, take in rows:
            assert filename == f"{fold}-{src_file}-{take}-{target}.wav"
            assert category == ESC50_CATEGORIES[int(target)]
            assert esc10 == str(category in ESC10_CATEGORIES)
            info = sf.info(io.BytesIO(zf.read(f"ESC-50-master/audio/{filename}")))
            assert (info.samplerate, info.frames, info.channels) == (44_100, 220_500, 1)
            assert info.subtype == "PCM_16"
        audio = [n for n in names if n.startswith("ESC-50-master/audio/") and n.endswith(".wav")]
        assert len(audio) == 50


def test_esc50_twin_is_deterministic(tmp_path):
    again = make_esc50_twin(tmp_path, seed=0, clips_per_class=1)
    digest = hashlib.sha256(again.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(twin_cache.esc50_twin().read_bytes()).hexdigest()
    assert esc50_twin_rows(1, seed=1) != esc50_twin_rows(1, seed=0)


def test_esc50_size_presets_give_equal_folds():
    rows = esc50_twin_rows(5, seed=3)  # the smoke size: 250 clips
    assert len(rows) == 250
    assert Counter(r["fold"] for r in rows) == {str(k): 50 for k in range(1, 6)}
    per_class_folds = {t: {r["fold"] for r in rows if r["target"] == str(t)} for t in range(50)}
    assert all(len(folds) == 5 for folds in per_class_folds.values())


def _summary_features(waveform: np.ndarray) -> np.ndarray:
    """Mean, spread and flux of 40 linear-band log energies (25 ms frames, 10 ms hop)."""
    frames = np.lib.stride_tricks.sliding_window_view(waveform, 400)[::160] * np.hanning(400)
    power = np.abs(np.fft.rfft(frames, 512)) ** 2  # (T, 257)
    bands = np.log(power[:, 1:241].reshape(len(frames), 40, 6).sum(-1) + 1e-10)  # (T, 40)
    flux = np.abs(np.diff(bands, axis=0)).mean(0)
    return np.concatenate([bands.mean(0), bands.std(0), flux])


def test_sound_classes_are_learnable_but_vary_within_a_class():
    clips_per_class = 4
    features, targets = [], []
    for k in range(NUM_CLASSES):
        for i in range(clips_per_class):
            wave = render(
                sound_class(k), np.random.default_rng([k, i]), sample_rate=16_000, duration_s=3.0
            )
            features.append(_summary_features(wave))
            targets.append(k)
    x = np.array(features)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    y = np.array(targets)
    hits = 0
    for i in range(len(x)):  # leave-one-out nearest class centroid
        rest = np.arange(len(x)) != i
        centroids = np.stack([x[rest & (y == k)].mean(0) for k in range(NUM_CLASSES)])
        hits += int(np.argmin(((centroids - x[i]) ** 2).sum(1)) == y[i])
    # Crude summary statistics reach ~30 % (chance 2 %): learnable, far from trivial.
    assert hits / len(x) > 0.15
    # Within a class the pitch varies: the dominant frequency of 6 clips is not one value.
    peaks = []
    for i in range(6):
        wave = render(
            sound_class(0), np.random.default_rng([99, i]), sample_rate=16_000, duration_s=1.0
        )
        peaks.append(np.argmax(np.abs(np.fft.rfft(wave))))
    assert len(set(peaks)) > 3


# Speech Commands ------------------------------------------------------------------------


@needs_espeak
def test_speechcommands_twin_has_the_real_archive_layout():
    with tarfile.open(twin_cache.speechcommands_twin()) as tar:
        members = {m.name: m for m in tar.getmembers()}
        top = {name.split("/")[0] for name in members}
        assert top == {
            *SPEECHCOMMANDS_WORDS,
            "_background_noise_",
            "LICENSE",
            "README.md",
            "validation_list.txt",
            "testing_list.txt",
        }
        noise = sorted(n for n in members if n.startswith("_background_noise_/"))
        assert [n.split("/")[1] for n in noise] == sorted(
            [
                "README.md",
                "doing_the_dishes.wav",
                "dude_miaowing.wav",
                "exercise_bike.wav",
                "pink_noise.wav",
                "running_tap.wav",
                "white_noise.wav",
            ]
        )
        clips = sorted(n for n in members if n.split("/")[0] in SPEECHCOMMANDS_WORDS)
        assert len(clips) == 35 * twin_cache.SC_SPEAKERS
        for name in clips:
            assert re.fullmatch(r"[a-z]+/[0-9a-f]{8}_nohash_0\.wav", name), name
        for name in clips[:: len(clips) // 20]:  # a spread sample of the clips
            data, rate = sf.read(io.BytesIO(tar.extractfile(members[name]).read()))
            assert rate == 16_000 and data.shape == (16_000,)
            assert 0.01 < np.sqrt(np.mean(data**2)) and np.abs(data).max() <= 1.0
        lists = {
            split: tar.extractfile(members[f"{split}_list.txt"]).read().decode().split()
            for split in ("validation", "testing")
        }
    speakers = {split: {n.split("/")[1][:8] for n in names} for split, names in lists.items()}
    train = {n.split("/")[1][:8] for n in clips} - speakers["validation"] - speakers["testing"]
    assert len(speakers["validation"]) == 1 and len(speakers["testing"]) == 1
    assert len(train) == 8 and not speakers["validation"] & speakers["testing"]
    assert all(len(names) == 35 for names in lists.values())
    assert all(set(names) <= set(clips) for names in lists.values())


def test_speaker_split_ranks_by_the_real_sha1_hash():
    speakers = [speaker_id(7, i) for i in range(40)]
    valid, test = split_speakers(speakers)
    # Independent computation of the real set's hash percentage ordering.
    value = {s: int(hashlib.sha1(s.encode()).hexdigest(), 16) % (2**27) for s in speakers}
    ranked = sorted(speakers, key=value.get)
    assert (len(valid), len(test)) == (4, 4)  # 9.4 % and 10.4 % of 40, rounded
    assert valid == set(ranked[:4]) and test == set(ranked[4:8])


@needs_espeak
def test_speechcommands_twin_is_deterministic(tmp_path):
    first = make_speechcommands_twin(tmp_path / "a", seed=5, num_speakers=3)
    second = make_speechcommands_twin(tmp_path / "b", seed=5, num_speakers=3)
    assert first.read_bytes() == second.read_bytes()


def test_missing_espeak_says_how_to_install(tmp_path):
    with pytest.raises(EspeakMissingError) as info:
        make_speechcommands_twin(tmp_path, espeak="espeak-ng-not-installed-here")
    assert "apt-get install espeak-ng" in str(info.value)
    assert "conda install -c conda-forge espeak-ng" in str(info.value)
    assert not any(tmp_path.iterdir())


# AudioSet -------------------------------------------------------------------------------

_ROW = re.compile(r'[A-Za-z0-9_-]{11}, \d+\.000, \d+\.000, "/m/twin\d\d(,/m/twin\d\d){1,2}"')


def test_audioset_twin_csvs_follow_the_official_formats():
    twin = twin_cache.audioset_twin()
    label_lines = (twin / "csv" / "class_labels_indices.csv").read_text().splitlines()
    assert label_lines[0] == "index,mid,display_name"
    assert len(label_lines) == 1 + twin_cache.AS_CLASSES
    for i, line in enumerate(label_lines[1:]):
        assert re.fullmatch(rf'{i},/m/twin{i:02d},"[^"]+"', line), line
    all_ids = []
    for split, name in SEGMENT_CSVS.items():
        lines = (twin / "csv" / name).read_text().splitlines()
        assert lines[0].startswith("# Segments csv created")
        assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
        rows = lines[3:]
        assert all(_ROW.fullmatch(row) for row in rows)
        segments = read_segments(twin / "csv" / name)
        positives = sum(len(s.labels) for s in segments)
        assert lines[1].startswith(f"# num_ytids={len(rows)}, num_segs={len(rows)}, ")
        assert lines[1].endswith(f"num_positive_labels={positives}")
        assert all(s.end - s.start == 10.0 for s in segments)
        if split != "unbalanced_train":  # every class is the main source equally often
            mains = Counter(s.labels[0] for s in segments)
            assert set(mains.values()) == {twin_cache.AS_CLIPS_PER_CLASS}
        all_ids += [s.ytid for s in segments]
    assert len(all_ids) == len(set(all_ids))
    audio = {p.stem: p for p in (twin / "audio").glob("*.wav")}
    assert set(audio) <= set(all_ids) and len(audio) >= 0.8 * len(all_ids)
    for path in list(audio.values())[:5]:
        info = sf.info(path)
        assert (info.samplerate, info.frames, info.channels) == (16_000, 160_000, 1)
