"""AST json datafiles and label csvs: round trips and errors that name the file."""

from __future__ import annotations

import json

import pytest

from ast_repro.datafiles import (
    Clip,
    DatafileError,
    LabelMap,
    label_indices,
    read_datafile,
    read_label_csv,
    write_datafile,
    write_label_csv,
)


def test_round_trip_and_relative_paths(tmp_path) -> None:
    path = tmp_path / "sub" / "train.json"
    write_datafile(path, [{"wav": "a.wav", "labels": ["/m/1", "/m/2"], "video_id": "x"}])
    raw = json.loads(path.read_text())
    assert raw == {"data": [{"wav": "a.wav", "labels": "/m/1,/m/2", "video_id": "x"}]}
    (clip,) = read_datafile(path)
    assert clip == Clip(wav=tmp_path / "sub" / "a.wav", labels=("/m/1", "/m/2"))
    write_datafile(tmp_path / "abs.json", [Clip(wav=tmp_path / "b.wav", labels=("/m/3",))])
    assert read_datafile(tmp_path / "abs.json")[0].wav == tmp_path / "b.wav"


def test_label_csv_round_trip_with_commas(tmp_path) -> None:
    labels = LabelMap(mids=("/m/a", "/m/b", "/m/c"), names=("Speech", "Dog, barking", "Cat"))
    write_label_csv(tmp_path / "labels.csv", labels)
    text = (tmp_path / "labels.csv").read_text()
    assert text.splitlines()[0] == "index,mid,display_name"
    assert '1,/m/b,"Dog, barking"' in text
    back = read_label_csv(tmp_path / "labels.csv")
    assert back == labels and back.num_classes == 3
    assert back.index("/m/c") == 2 and back.name_of("/m/b") == "Dog, barking"
    clip = Clip(wav=tmp_path / "x.wav", labels=("/m/c", "/m/a"))
    assert label_indices(clip, back) == [2, 0]
    with pytest.raises(KeyError, match="/m/zzz"):
        back.index("/m/zzz")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not valid json"),
        ('{"items": []}', 'expected an object {"data"'),
        ('{"data": [{"wav": "a.wav"}]}', "entry 0 needs the keys"),
    ],
)
def test_bad_datafiles(tmp_path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatafileError, match="bad.json") as info:
        read_datafile(path)
    assert problem in str(info.value)
    with pytest.raises(DatafileError, match="datafile not found"):
        read_datafile(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("idx,mid,name\n0,/m/a,A\n", "the header must be"),
        ("index,mid,display_name\n1,/m/a,A\n", "index 1 out of order"),
        ("index,mid,display_name\n0,/m/a,A\n1,/m/a,B\n", "duplicate label id"),
        ("index,mid,display_name\n0,/m/a\n", "expected 3 columns"),
        ("index,mid,display_name\n", "no classes"),
    ],
)
def test_bad_label_csvs(tmp_path, content: str, problem: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(DatafileError, match="labels.csv") as info:
        read_label_csv(path)
    assert problem in str(info.value)
