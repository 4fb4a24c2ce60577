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
        (3, "zero length"),
        (4, "unreadable"),
        (5, "missing file"),
        (7, "unknown label"),
    ]
    # what the commands accept is a note: an 8 kHz clip is resampled, a duplicate is read twice
    assert sorted((n.index, n.kind) for n in report.notes) == [(2, "resampled"), (6, "duplicate")]
    assert report.label_csv == dataset / "x_class_labels_indices.csv"
    assert not report.ok and report.num_clips == 8
    duplicate = next(p for p in report.notes if p.kind == "duplicate")
    assert "entry 0" in duplicate.detail
    # Seconds of readable audio: 0.5 (a) + 0.5 (b) + 0.5 (rate8k) + 0.5 (duplicate) + 0.5 (c).
    assert report.total_seconds == pytest.approx(2.5)


def test_sample_rate_is_the_one_clips_are_resampled_to(dataset):
    report = validate.validate_datafile(dataset / "good.json", sample_rate=8_000)
    assert report.ok
    assert [(n.index, n.kind) for n in report.notes] == [(0, "resampled"), (1, "resampled")]
    assert "16000 Hz, resampled to 8000 Hz" in report.notes[0].detail


def _run(argv):
    return main(["validate-data", *argv])


def test_command_exit_status_and_summary(dataset, capsys):
    assert _run([str(dataset / "good.json")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    assert _run([str(dataset / "bad.json"), "--max-listed", "2"]) == 1
    out = capsys.readouterr().out
    assert "clips:     8 (4 ok, 4 with problems)" in out
    assert "... and 2 more" in out
    assert "missing file: 1" in out and "PROBLEMS FOUND" in out
    assert "note: resampled: 1 (e.g. entry 2: 8000 Hz, resampled to 16000 Hz)" in out
    write_datafile(dataset / "none.json", [])
    assert _run([str(dataset / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "none.json: no clips" in err and len(err.splitlines()) == 1
    (dataset / "broken.json").write_text("{not json")
    assert _run([str(dataset / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert "broken.json: not valid json" in err and len(err.splitlines()) == 1


def test_float_files_are_decoded_and_decode_finds_damaged_compressed_audio(dataset, tmp_path, rng):
    # NaN samples pass a header check; float files are decoded even without --decode.
    sf.write(
        tmp_path / "audio/nan.wav", np.full(8000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT"
    )
    write_datafile(dataset / "nan.json", [{"wav": "../audio/nan.wav", "labels": "/m/a"}])
    report = validate.validate_datafile(dataset / "nan.json")
    assert [p.kind for p in report.problems] == ["not finite"]
    assert "NaN" in report.problems[0].detail
    # A FLAC cut in half keeps a sound header; only decoding it finds the damage.
    sf.write(tmp_path / "audio/whole.flac", 0.1 * rng.standard_normal(16000), 16_000)
    data = (tmp_path / "audio/whole.flac").read_bytes()
    (tmp_path / "audio/cut.flac").write_bytes(data[: len(data) // 2])
    write_datafile(dataset / "cut.json", [{"wav": "../audio/cut.flac", "labels": "/m/a"}])
    assert validate.validate_datafile(dataset / "cut.json").ok
    report = validate.validate_datafile(dataset / "cut.json", decode=True)
    assert [p.kind for p in report.problems] == ["unreadable"]


def test_explicit_label_csv_and_missing_one(dataset):
    other = dataset.parent / "other.csv"
    write_label_csv(other, LabelMap(("/m/zzz",), ("Z",)))
    report = validate.validate_datafile(dataset / "good.json", label_csv=other)
    assert [p.kind for p in report.problems] == ["unknown label", "unknown label"]
    (dataset / "x_class_labels_indices.csv").unlink()
    report = validate.validate_datafile(dataset / "good.json")
    assert report.label_csv is None and report.ok
    assert "labels not checked" in report.summary()


def test_a_label_set_of_another_dataset_is_suspected_by_name(dataset):
    from ast_repro.checks import DatafileError, check_datafile

    other = LabelMap(("/m/zzz",), ("Z",))  # e.g. a model's classes
    hint = "1 more entries; the labels checked against are 1 classes: is the datafile of another"
    with pytest.raises(DatafileError, match=hint):
        check_datafile(dataset / "good.json", other)
