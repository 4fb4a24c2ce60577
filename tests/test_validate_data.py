"""`ast-repro validate-data`: every kind of bad entry is found, a clean datafile passes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ast_repro.cli import main
from ast_repro.datafiles import LabelMap, write_datafile, write_label_csv
from ast_repro.datasets import validate


@pytest.fixture
def dataset(tmp_path, rng):
    """A datafile with one entry per problem kind, and the label csv beside it."""
    folder = tmp_path / "datafiles"
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a", "b", "c"):
        sf.write(audio / f"{name}.wav", 0.1 * rng.standard_normal(8000), 16_000, subtype="PCM_16")
    sf.write(audio / "rate8k.wav", 0.1 * rng.standard_normal(4000), 8_000, subtype="PCM_16")
    sf.write(audio / "empty.wav", np.zeros(0), 16_000, subtype="PCM_16")
    (audio / "garbage.wav").write_bytes(b"this is not audio at all")
    write_label_csv(folder / "x_class_labels_indices.csv", LabelMap(("/m/a", "/m/b"), ("A", "B")))
    entries = [
        {"wav": "../audio/a.wav", "labels": "/m/a"},  # 0 ok
        {"wav": "../audio/b.wav", "labels": "/m/a,/m/b"},  # 1 ok
        {"wav": "../audio/rate8k.wav", "labels": "/m/a"},  # 2 sample rate
        {"wav": "../audio/empty.wav", "labels": "/m/b"},  # 3 zero length
        {"wav": "../audio/garbage.wav", "labels": "/m/b"},  # 4 unreadable
        {"wav": "../audio/absent.wav", "labels": "/m/a"},  # 5 missing file
        {"wav": str(audio / "a.wav"), "labels": "/m/a"},  # 6 duplicate of 0
        {"wav": "../audio/c.wav", "labels": "/m/zzz"},  # 7 unknown label
    ]
    write_datafile(folder / "bad.json", entries)
    write_datafile(folder / "good.json", entries[:2])
    return folder


def test_every_problem_kind_is_reported_at_its_entry(dataset):
    report = validate.validate_datafile(dataset / "bad.json")
    found = sorted((p.index, p.kind) for p in report.problems)
    assert found == [
        (2, "sample rate"),
        (3, "zero length"),
        (4, "unreadable"),
        (5, "missing file"),
        (6, "duplicate"),
        (7, "unknown label"),
    ]
    assert report.label_csv == dataset / "x_class_labels_indices.csv"
    assert not report.ok and report.num_clips == 8
    duplicate = next(p for p in report.problems if p.kind == "duplicate")
    assert "entry 0" in duplicate.detail
    # Seconds of readable audio: 0.5 (a) + 0.5 (b) + 0.5 (rate8k) + 0.5 (duplicate) + 0.5 (c).
    assert report.total_seconds == pytest.approx(2.5)


def test_sample_rate_requirement_is_configurable(dataset):
    report = validate.validate_datafile(dataset / "good.json", sample_rate=8_000)
    assert [(p.index, p.kind) for p in report.problems] == [(0, "sample rate"), (1, "sample rate")]


def _run(argv):
    return main(["validate-data", *argv])


def test_command_exit_status_and_summary(dataset, capsys):
    assert _run([str(dataset / "good.json")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    assert _run([str(dataset / "bad.json"), "--max-listed", "2"]) == 1
    out = capsys.readouterr().out
    assert "clips:     8 (2 ok, 6 with problems)" in out
    assert "... and 4 more" in out
    assert "missing file: 1" in out and "PROBLEMS FOUND" in out
    (dataset / "broken.json").write_text("{not json")
    assert _run([str(dataset / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert "broken.json: not valid json" in err and len(err.splitlines()) == 1


def test_decode_finds_audio_the_header_hides(dataset, tmp_path):
    # NaN samples pass the header check; only decoding reveals them.
    sf.write(
        tmp_path / "audio/nan.wav", np.full(8000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT"
    )
    write_datafile(dataset / "nan.json", [{"wav": "../audio/nan.wav", "labels": "/m/a"}])
    assert validate.validate_datafile(dataset / "nan.json").ok
    report = validate.validate_datafile(dataset / "nan.json", decode=True)
    assert [p.kind for p in report.problems] == ["undecodable"]
    assert "NaN" in report.problems[0].detail


def test_explicit_label_csv_and_missing_one(dataset):
    other = dataset.parent / "other.csv"
    write_label_csv(other, LabelMap(("/m/zzz",), ("Z",)))
    report = validate.validate_datafile(dataset / "good.json", label_csv=other)
    assert [p.kind for p in report.problems] == ["unknown label", "unknown label"]
    (dataset / "x_class_labels_indices.csv").unlink()
    report = validate.validate_datafile(dataset / "good.json")
    assert report.label_csv is None and report.ok
    assert "labels not checked" in report.summary()
