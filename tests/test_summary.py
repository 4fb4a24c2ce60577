"""Dataset summaries read headers only and count what the datafile holds."""

from __future__ import annotations

import numpy as np
import pytest

from ast_repro.datafiles import Clip, LabelMap, write_datafile, write_label_csv
from ast_repro.datasets.summary import first_clip_per_class, split_fractions, summarize_split


def test_summarize_split_counts_labels_durations_and_rates(write_wav, tmp_path) -> None:
    write_wav("a.wav", np.zeros(16000, dtype=np.float32), 16000)
    write_wav("b.wav", np.zeros(8000, dtype=np.float32), 16000)
    write_wav("c.wav", np.zeros(44100 * 2, dtype=np.float32), 44100)
    entries = [
        {"wav": "a.wav", "labels": "/m/x"},
        {"wav": "b.wav", "labels": "/m/x,/m/y"},
        {"wav": "c.wav", "labels": "/m/y"},
    ]
    write_datafile(tmp_path / "train.json", entries)
    write_label_csv(tmp_path / "labels.csv", LabelMap(("/m/x", "/m/y", "/m/z"), ("X", "Y", "Z")))
    s = summarize_split(tmp_path / "train.json", tmp_path / "labels.csv")
    assert s.num_clips == 3 and s.clips_per_class == {"X": 2, "Y": 2, "Z": 0}
    assert s.labels_per_clip == pytest.approx(4 / 3)
    assert (s.seconds_min, s.seconds_median, s.seconds_max) == (0.5, 1.0, 2.0)
    assert s.sample_rates == {16000: 2, 44100: 1}
    assert split_fractions({"train": 3, "eval": 1}) == {"train": 0.75, "eval": 0.25}


def test_first_clip_per_class_keeps_datafile_order(tmp_path) -> None:
    clips = [Clip(wav=tmp_path / f"{i}.wav", labels=(mid,)) for i, mid in enumerate("aabcab")]
    assert [c.wav.stem for c in first_clip_per_class(clips, 2)] == ["0", "2"]
    assert [c.wav.stem for c in first_clip_per_class(clips, 9)] == ["0", "2", "3"]
