"""The real preparation code on the twins, served from a loopback HTTP server."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from ast_repro.cli import main
from ast_repro.datafiles import read_datafile, read_label_csv
from ast_repro.datasets import fetch, prepared_paths, read_weight_file
from ast_repro.datasets.archive import ArchiveError
from ast_repro.datasets.audioset import AudioSetError, prepare_audioset, read_segments
from ast_repro.datasets.esc50 import ESC50_CATEGORIES, Esc50Error, prepare_esc50
from ast_repro.datasets.speechcommands import (
    SPEECHCOMMANDS_SPLIT_SIZES,
    SPEECHCOMMANDS_WORDS,
    SpeechCommandsError,
    prepare_speechcommands,
)
from ast_repro.layout import SPEECHCOMMANDS_LABEL_ORDER
from tests import twin_cache
from tests.loopback import ServerConfig, serve
from tests.twin_cache import needs_espeak

# Tolerance of a 16-bit round trip: libsndfile writes with a 32767 scale and reads with a
# 32768 one, so a sample can move by a little more than one step of 1/32768.
INT16_TOLERANCE = 2 / 32768


def _served(tmp_path: Path, archive: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(archive, folder / archive.name)
    return folder


# ESC-50 ---------------------------------------------------------------------------------


def test_esc50_twin_prepares_like_the_original_recipe(tmp_path):
    config = ServerConfig(_served(tmp_path, twin_cache.esc50_twin()))
    root = tmp_path / "esc50"
    with serve(config) as base:
        written = prepare_esc50(root, url=base + "ESC-50-master.zip", progress=False)
    labels = read_label_csv(written["labels"])
    assert labels.mids == tuple(f"/m/07rwj{k:02d}" for k in range(50))
    assert labels.names == ESC50_CATEGORIES
    held_out = []
    for fold in range(1, 6):
        paths = prepared_paths("esc50", root, fold=fold)
        train, evaluation = read_datafile(paths["train"]), read_datafile(paths["eval"])
        assert (len(train), len(evaluation)) == (40, 10)  # 4:1 like the real 1600:400
        assert all(clip.wav.name.startswith(f"{fold}-") for clip in evaluation)
        assert not any(clip.wav.name.startswith(f"{fold}-") for clip in train)
        for clip in train + evaluation:  # the label is the target in the file name
            target = int(re.search(r"-(\d+)\.wav$", clip.wav.name).group(1))
            assert clip.labels == (f"/m/07rwj{target:02d}",)
        held_out += [clip.wav.name for clip in evaluation]
    assert len(set(held_out)) == 50  # every clip is held out exactly once
    raw = json.loads(paths["eval"].read_text())["data"][0]
    assert raw["wav"].startswith("../ESC-50-master/audio_16k/")  # relative, portable
    # Resampled audio: 5 s at 16 kHz, equal to torchaudio's resampler up to 16-bit rounding.
    clip = read_datafile(paths["eval"])[0]
    resampled, rate = sf.read(clip.wav, dtype="float32")
    original, original_rate = sf.read(root / "ESC-50-master/audio" / clip.wav.name, dtype="float32")
    assert (rate, original_rate, resampled.shape) == (16_000, 44_100, (80_000,))
    reference = AF.resample(torch.from_numpy(original), 44_100, 16_000).numpy()
    assert np.abs(resampled - reference).max() <= INT16_TOLERANCE
    assert config.requests == [("ESC-50-master.zip", None)]


def test_esc50_prepare_reuses_a_prepared_root(tmp_path):
    archive = twin_cache.esc50_twin()
    root = tmp_path / "esc50"
    prepare_esc50(root, url=archive.as_uri(), progress=False)
    marker = (root / "ESC-50-master/audio_16k").stat().st_mtime_ns
    (root / "downloads" / archive.name).unlink()  # a rerun must not need the archive again
    prepare_esc50(root, url=archive.as_uri(), progress=False)
    assert (root / "ESC-50-master/audio_16k").stat().st_mtime_ns == marker


def test_a_new_source_replaces_the_old_download_and_a_hand_placed_file_is_used(tmp_path):
    archive = twin_cache.esc50_twin()
    root = tmp_path / "esc50"
    prepare_esc50(root, url=archive.as_uri(), progress=False)
    config = ServerConfig(_served(tmp_path, archive))
    with serve(config) as base:
        prepare_esc50(root, url=base + archive.name, progress=False)
    assert config.requests == [(archive.name, None)]
    assert json.loads((root / "prepared.json").read_text())["source_url"] == base + archive.name
    # Offline: the file placed by hand where the error message says is used as it is.
    by_hand = tmp_path / "by_hand"
    (by_hand / "downloads").mkdir(parents=True)
    shutil.copyfile(archive, by_hand / "downloads" / archive.name)
    written = prepare_esc50(by_hand, url="http://127.0.0.1:9/master.zip", progress=False)
    assert len(read_datafile(written["eval_3"])) == 10


def test_esc50_real_count_is_enforced(tmp_path):
    with pytest.raises(Esc50Error, match="50 clips, expected 2000"):
        prepare_esc50(
            tmp_path, url=twin_cache.esc50_twin().as_uri(), expected_clips=2000, progress=False
        )


def test_corrupted_esc50_archive_is_reported(tmp_path):
    archive = twin_cache.esc50_twin()
    config = ServerConfig(_served(tmp_path, archive), corrupt={archive.name})
    root = tmp_path / "esc50"
    with serve(config) as base, pytest.raises(ArchiveError, match="corrupt"):
        prepare_esc50(root, url=base + archive.name, progress=False)
    assert not (root / "ESC-50-master").exists()


def test_esc50_download_resumes_through_prepare(tmp_path):
    archive = twin_cache.esc50_twin()
    config = ServerConfig(_served(tmp_path, archive), cut_once={archive.name: 1_000_000})
    with serve(config) as base:
        prepare_esc50(tmp_path / "esc50", url=base + archive.name, progress=False)
    assert config.requests == [(archive.name, None), (archive.name, "bytes=1000000-")]
    assert len(read_datafile(prepared_paths("esc50", tmp_path / "esc50")["eval"])) == 10


# Speech Commands ------------------------------------------------------------------------


@needs_espeak
def test_speechcommands_twin_prepares_the_standard_split(tmp_path):
    archive = twin_cache.speechcommands_twin()
    root = tmp_path / "sc"
    with serve(ServerConfig(_served(tmp_path, archive))) as base:
        paths = prepare_speechcommands(
            root, url=base + archive.name, progress=False, checksums=twin_cache.checksums(archive)
        )
    labels = read_label_csv(paths["labels"])
    # the original csv's order, which the released checkpoints' outputs follow
    assert labels.names == SPEECHCOMMANDS_LABEL_ORDER
    assert labels.names[:4] == ("backward", "follow", "five", "bed")
    assert sorted(labels.names) == list(SPEECHCOMMANDS_WORDS)
    assert labels.mids == tuple(f"/m/spcmd{k:02d}" for k in range(35))
    splits = {name: read_datafile(paths[name]) for name in ("train", "valid", "eval")}
    # 8 / 1 / 1 speakers of 35 words: close to the real 80.2 % / 9.4 % / 10.4 %.
    assert {k: len(v) for k, v in splits.items()} == {"train": 280, "valid": 35, "eval": 35}
    speakers = {k: {c.wav.name[:8] for c in v} for k, v in splits.items()}
    assert not (speakers["train"] & speakers["valid"] or speakers["train"] & speakers["eval"])
    for clips in splits.values():
        for clip in clips:
            assert clip.labels == (labels.mids[labels.names.index(clip.wav.parent.name)],)
            assert clip.wav.is_file()
    listed = (root / "speech_commands_v0.02/testing_list.txt").read_text().split()
    assert [f"{c.wav.parent.name}/{c.wav.name}" for c in splits["eval"]] == listed
    assert Counter(c.labels[0] for c in splits["train"]) == {m: 8 for m in labels.mids}


@needs_espeak
def test_speechcommands_real_sizes_are_enforced(tmp_path):
    archive = twin_cache.speechcommands_twin()
    with pytest.raises(SpeechCommandsError, match=str(SPEECHCOMMANDS_SPLIT_SIZES[0])):
        prepare_speechcommands(
            tmp_path,
            url=archive.as_uri(),
            strict_sizes=True,
            progress=False,
            checksums=twin_cache.checksums(archive),
        )


# AudioSet -------------------------------------------------------------------------------


def _independent_weights(label_lists, mids):
    counts = {mid: 0 for mid in mids}
    for labels in label_lists:
        for mid in labels:
            counts[mid] += 1
    return np.array([sum(1000.0 / (counts[m] + 0.01) for m in labels) for labels in label_lists])


def test_audioset_twin_prepares_datafiles_weights_and_missing_lists(tmp_path):
    twin = twin_cache.audioset_twin()
    root = tmp_path / "audioset"
    shutil.copytree(twin / "audio", root / "audio")  # the user's clips, inside the root
    config = ServerConfig(twin / "csv")
    with serve(config) as base:
        written = prepare_audioset(root, base_url=base, progress=False)
    assert {path for path, _ in config.requests} == {
        "balanced_train_segments.csv",
        "eval_segments.csv",
        "unbalanced_train_segments.csv",
        "class_labels_indices.csv",
    }
    labels_csv = written["labels"].read_text()
    assert labels_csv == (twin / "csv/class_labels_indices.csv").read_text()
    mids = read_label_csv(written["labels"]).mids
    have = {p.stem for p in (twin / "audio").glob("*.wav")}
    for split, name in (
        ("balanced_train", "balanced_train_segments.csv"),
        ("eval", "eval_segments.csv"),
    ):
        segments = read_segments(twin / "csv" / name)
        clips = read_datafile(written[split])
        assert [c.wav.stem for c in clips] == [s.ytid for s in segments if s.ytid in have]
        assert [c.labels for c in clips] == [s.labels for s in segments if s.ytid in have]
        missing = written[f"{split}_missing"].read_text().split()
        assert missing == [s.ytid for s in segments if s.ytid not in have]
    paths = prepared_paths("audioset", root)
    train = read_datafile(paths["train"])
    expected = _independent_weights([c.labels for c in train], mids)
    np.testing.assert_allclose(read_weight_file(paths["train_weights"]), expected, rtol=1e-12)
    full = read_datafile(paths["train_full"])
    assert [c.wav for c in full] == [
        c.wav for c in train + read_datafile(written["unbalanced_train"])
    ]
    np.testing.assert_allclose(
        read_weight_file(paths["train_full_weights"]),
        _independent_weights([c.labels for c in full], mids),
        rtol=1e-12,
    )
    assert not json.loads(paths["train"].read_text())["data"][0]["wav"].startswith("/")


def test_audioset_downloader_fills_in_missing_clips(tmp_path):
    twin = twin_cache.audioset_twin()
    store = tmp_path / "store"  # stands in for YouTube
    shutil.copytree(twin / "audio", store)
    fake = tmp_path / "fake_downloader.py"
    fake.write_text(
        "import shutil, sys\n"
        "ytid, start, end, out = sys.argv[1:]\n"
        "assert float(end) - float(start) == 10\n"
        f"shutil.copyfile({str(store)!r} + '/' + ytid + '.wav', out + '.wav')\n"
    )
    audio = tmp_path / "audio"
    command = (sys.executable, str(fake), "{ytid}", "{start}", "{end}", "{out}")
    written = prepare_audioset(
        tmp_path / "as",
        base_url=(twin / "csv").as_uri(),
        audio_dir=audio,
        unbalanced=False,
        downloader=command,
        progress=False,
    )
    segments = read_segments(twin / "csv/eval_segments.csv")
    have = {p.stem for p in store.glob("*.wav")}
    assert [c.wav.stem for c in read_datafile(written["eval"])] == [
        s.ytid for s in segments if s.ytid in have
    ]
    assert written["eval_missing"].read_text().split() == [
        s.ytid for s in segments if s.ytid not in have
    ]
    assert "unbalanced_train" not in written
    with pytest.raises(AudioSetError, match="yt-dlp"):
        prepare_audioset(
            tmp_path / "as2",
            base_url=(twin / "csv").as_uri(),
            audio_dir=tmp_path / "none",
            unbalanced=False,
            downloader=("yt-dlp-absent", "{ytid}"),
            progress=False,
        )
    empty = tmp_path / "as3"
    with pytest.raises(AudioSetError, match="no audio for any listed segment"):
        prepare_audioset(
            empty,
            base_url=(twin / "csv").as_uri(),
            audio_dir=tmp_path / "empty",
            unbalanced=False,
            progress=False,
        )
    assert (empty / "missing_eval.txt").read_text().split() == [s.ytid for s in segments]


# Command line ---------------------------------------------------------------------------


def _cli(argv):
    return main(["data", *argv])


def test_data_command_downloads_then_prepares(tmp_path, capsys):
    archive = twin_cache.esc50_twin()
    root = tmp_path / "esc50"
    with serve(ServerConfig(_served(tmp_path, archive))) as base:
        url = base + archive.name
        assert (
            _cli(
                ["esc50", "--root", str(root), "--url", url, "--step", "download", "--no-progress"]
            )
            == 0
        )
        assert (root / "downloads" / archive.name).read_bytes() == archive.read_bytes()
        assert not (root / "datafiles").exists()
        assert _cli(["esc50", "--root", str(root), "--url", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "eval_5:" in out and str(root) in out
    assert json.loads((root / "prepared.json").read_text())["synthetic"] is False
    # The server is gone: the download fails as a run (exit 3), in one line on stderr.
    assert _cli(["esc50", "--root", str(tmp_path / "x"), "--url", url, "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"ast-repro data: error: could not download {url}")
    assert len(err.splitlines()) == 1


def test_synthetic_data_command_builds_the_twin_once(tmp_path, monkeypatch, capsys):
    from ast_repro.datasets.synth import esc50 as esc50_twin

    monkeypatch.setitem(esc50_twin.CLIPS_PER_CLASS, "smoke", 1)  # a 50-clip "smoke" twin
    root = tmp_path / "esc50"
    assert _cli(["esc50", "--synthetic", "--root", str(root), "--seed", "3", "--no-progress"]) == 0
    archive = root / "twin" / "ESC-50-master.zip"
    built = archive.stat().st_mtime_ns
    marker = json.loads((root / "prepared.json").read_text())
    assert marker["synthetic"] is True and (marker["twin_size"], marker["twin_seed"]) == (
        "smoke",
        3,
    )
    assert marker["source_url"] == archive.resolve().as_uri()
    assert len(read_datafile(prepared_paths("esc50", root, fold=2)["train"])) == 40
    assert _cli(["esc50", "--synthetic", "--root", str(root), "--seed", "3", "--no-progress"]) == 0
    assert archive.stat().st_mtime_ns == built  # same size and seed: reused
    assert "synthetic twin (smoke, seed 3)" in capsys.readouterr().out


def test_data_scripts_call_the_same_command(tmp_path, monkeypatch):
    archive = twin_cache.esc50_twin()
    script = Path(__file__).parent.parent / "data_scripts" / "download.py"
    argv = ["esc50", "--root", str(tmp_path), "--url", archive.as_uri(), "--no-progress"]
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(script), run_name="__main__")
    assert info.value.code == 0
    assert (tmp_path / "downloads" / archive.name).read_bytes() == archive.read_bytes()
    assert not (tmp_path / "datafiles").exists()  # download step only


def test_fetch_is_the_data_command_from_python(tmp_path, capsys):
    archive = twin_cache.esc50_twin()
    root = tmp_path / "esc50"
    with pytest.raises(ValueError, match="unknown step 'everything'"):
        fetch("esc50", root=root, url=archive.as_uri(), step="everything")
    with pytest.raises(ValueError, match="fold must be one of"):
        fetch("esc50", root=root, url=archive.as_uri(), fold=6)
    assert not root.exists()  # refused before any work
    paths = fetch("esc50", root=root, url=archive.as_uri(), step="download")
    assert (root / "downloads" / archive.name).is_file() and not paths["train"].exists()
    paths = fetch("esc50", root=root, url=archive.as_uri(), fold=3)
    assert paths == prepared_paths("esc50", root, fold=3)
    assert len(read_datafile(paths["eval"])) == 10  # fold 3 of the 50-clip twin
    out = capsys.readouterr().out
    assert f"downloaded: {root / 'downloads' / archive.name}" in out
    assert f"prepared esc50 in {root}: train {prepared_paths('esc50', root)['train']}" in out
