"""Tests of ast_repro.data: datasets on small real wav files."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from ast_repro.audio import load_audio
from ast_repro.data import (
    AudioDataset,
    WaveformDataset,
    make_dataset,
    samples_for_frames,
    target_matrix,
)
from ast_repro.datafiles import (
    Clip,
    DatafileError,
    LabelMap,
    read_datafile,
    write_datafile,
    write_label_csv,
)
from ast_repro.features import ESC50_STATS, normalize, num_frames, pad_or_crop, reference_fbank
from ast_repro.frontend import BatchFrontEnd, FrontEndConfig
from ast_repro.seeding import make_generator

SR = 16_000
TARGET = 64  # frames: 0.65 s; the clips below are shorter and longer than that
LENGTHS = [4_000, 8_000, 12_000, 6_000, 11_000]  # 0.25 s .. 0.75 s
LABELS = ["a", "b", "a,c", "c", "b"]


@pytest.fixture
def dataset_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    entries = []
    for i, (n, labels) in enumerate(zip(LENGTHS, LABELS, strict=True)):
        t = np.arange(n) / SR
        x = 0.3 * np.sin(2 * np.pi * (300 + 250 * i) * t) + 0.02 * rng.standard_normal(n)
        sf.write(_wav(tmp_path, i), x, SR)
        entries.append({"wav": f"audio/clip{i}.wav", "labels": labels})
    datafile = tmp_path / "train.json"
    write_datafile(datafile, entries)
    label_csv = tmp_path / "labels.csv"
    write_label_csv(label_csv, LabelMap(mids=("a", "b", "c"), names=("A", "B", "C")))
    return datafile, label_csv


def _wav(root: Path, i: int) -> Path:
    (root / "audio").mkdir(exist_ok=True)
    return root / "audio" / f"clip{i}.wav"


def _frontend(**overrides) -> FrontEndConfig:
    settings = dict(target_length=TARGET, norm=ESC50_STATS, num_mel_bins=32)
    settings.update(overrides)
    return FrontEndConfig(**settings)


def _dataset(
    files: tuple[Path, Path],
    *,
    training: bool = False,
    seed: int = 0,
    waveform_cache: str | None = None,
    **frontend,
) -> AudioDataset:
    return AudioDataset(
        datafile=files[0],
        label_csv=files[1],
        frontend=_frontend(**frontend),
        training=training,
        seed=seed,
        waveform_cache=waveform_cache,
    )


def test_eval_items_equal_the_torchaudio_recipe(dataset_files) -> None:
    dataset = _dataset(dataset_files)
    assert len(dataset) == 5 and dataset.num_classes == 3
    for index in range(5):
        fbank, labels = dataset[index]
        wav = load_audio(dataset_files[0].parent / "audio" / f"clip{index}.wav")
        expected = normalize(pad_or_crop(reference_fbank(wav, SR, 32), TARGET), ESC50_STATS)
        assert fbank.shape == (TARGET, 32) and fbank.dtype == torch.float32
        torch.testing.assert_close(fbank, expected, rtol=0, atol=1e-4)
        expected_labels = torch.zeros(3)
        expected_labels[["abc".index(m) for m in LABELS[index].split(",")]] = 1.0
        assert torch.equal(labels, expected_labels)


def test_training_items_are_seeded_by_seed_epoch_index(dataset_files) -> None:
    settings = dict(training=True, mixup=1.0, freqm=8, timem=12, seed=3)
    dataset = _dataset(dataset_files, **settings)
    first = [dataset[i] for i in range(5)]
    resumed = _dataset(dataset_files, **settings)  # a fresh object, as after a restart
    for i in range(5):
        assert torch.equal(resumed[i][0], first[i][0])
        assert torch.equal(resumed[i][1], first[i][1])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][0], first[0][0])
    plain = _dataset(dataset_files)
    for i, (fbank, labels) in enumerate(first):
        # every sample was mixed with the partner its (seed, epoch, index) draw names
        draws = dataset.frontend.draw(make_generator(3, 0, i), batch_size=1, num_partners=5)
        partner, lam = int(draws.partner[0]), float(draws.lam[0])
        expected = lam * plain[i][1] + (1 - lam) * plain[partner][1]
        torch.testing.assert_close(labels, expected, rtol=0, atol=1e-6)
        assert labels.max() <= 1.0
        assert not torch.equal(fbank, plain[i][0])
    assert any(bool(((labels > 0) & (labels < 1)).any()) for _, labels in first)


def test_dataloader_workers_reproduce_the_single_process_batches(dataset_files) -> None:
    dataset = _dataset(dataset_files, training=True, mixup=0.5, freqm=8, timem=12, noise=True)
    dataset.set_epoch(2)
    inline = list(DataLoader(dataset, batch_size=5, num_workers=0))
    worker = list(DataLoader(dataset, batch_size=5, num_workers=1))
    assert torch.equal(inline[0][0], worker[0][0])
    assert torch.equal(inline[0][1], worker[0][1])


def test_waveform_dataset_feeds_the_batch_front_end(dataset_files) -> None:
    waves = WaveformDataset(
        datafile=dataset_files[0], label_csv=dataset_files[1], frontend=_frontend()
    )
    assert waves.max_samples == samples_for_frames(TARGET, SR) == 400 + 63 * 160
    assert num_frames(waves.max_samples, SR) == TARGET
    assert num_frames(waves.max_samples - 1, SR) == TARGET - 1
    waveform, length, labels = waves[2]
    assert waveform.shape == (waves.max_samples,)
    assert length == min(LENGTHS[2], waves.max_samples)  # 12000 > 10480: cut
    waveform, length, _ = waves[0]
    assert length == 4_000 and torch.all(waveform[4_000:] == 0)
    batch = next(iter(DataLoader(waves, batch_size=5)))
    fbank, targets = BatchFrontEnd(_frontend())(*batch)
    per_clip = _dataset(dataset_files)
    for i in range(5):
        torch.testing.assert_close(fbank[i], per_clip[i][0], rtol=0, atol=2e-5)
        assert torch.equal(targets[i], per_clip[i][1])


def test_make_dataset_builds_every_path_from_one_config(dataset_files) -> None:
    datafile, label_csv = dataset_files
    evaluation = make_dataset(_frontend(), datafile, label_csv)
    assert isinstance(evaluation, AudioDataset) and not evaluation.training
    reference = _dataset(dataset_files)
    augmented = dict(mixup=1.0, freqm=8, timem=12)
    training = make_dataset(_frontend(**augmented), datafile, label_csv, training=True, seed=3)
    expected = _dataset(dataset_files, training=True, seed=3, **augmented)
    for i in range(len(LENGTHS)):
        assert torch.equal(evaluation[i][0], reference[i][0])
        assert torch.equal(evaluation[i][1], reference[i][1])
        assert torch.equal(training[i][0], expected[i][0])
        assert torch.equal(training[i][1], expected[i][1])
        # an item is the front end applied with that item's own draws
        assert torch.equal(training.item(i, training.draw(i))[0], training[i][0])
        assert not torch.equal(training[i][0], evaluation[i][0])
    assert evaluation.draw(0) is None
    batched = make_dataset(_frontend(batched=True), datafile, label_csv, training=True)
    assert isinstance(batched, WaveformDataset)
    assert batched.max_samples == samples_for_frames(TARGET, SR)
    waveform, length, labels = batched[1]
    assert waveform.shape == (batched.max_samples,) and length == LENGTHS[1]
    assert torch.equal(labels, reference[1][1])


def test_make_dataset_from_clips_for_prediction_and_norm_stats(dataset_files) -> None:
    datafile, label_csv = dataset_files
    clips = read_datafile(datafile)
    labels = LabelMap(mids=("a", "b", "c"), names=("A", "B", "C"))
    reference = _dataset(dataset_files)
    # prediction: audio files without labels, scored against the checkpoint's label set
    unlabelled = make_dataset(_frontend(), [Clip(c.wav, ()) for c in clips], labels)
    # norm statistics: no label csv (the clips' own ids) and no normalization
    raw = make_dataset(_frontend(norm=None), datafile)
    assert raw.labels.mids == ("a", "b", "c")  # in order of first appearance
    for i in range(len(LENGTHS)):
        fbank, targets = unlabelled[i]
        assert torch.equal(fbank, reference[i][0])
        assert torch.equal(targets, torch.zeros(3))
        raw_fbank, raw_targets = raw[i]
        assert torch.equal(normalize(raw_fbank, ESC50_STATS), reference[i][0])
        assert torch.equal(raw_targets, reference[i][1])
    with pytest.raises(ValueError, match="waveform cache belongs to a datafile"):
        make_dataset(_frontend(), clips, labels, waveform_cache="cache-dir")
    with pytest.raises(DatafileError, match="clip list is empty"):
        make_dataset(_frontend(), [], labels)


def test_waveform_cache_is_used_when_given(dataset_files, monkeypatch) -> None:
    arrays = [np.full(n, 0.01 * (i + 1), dtype=np.float32) for i, n in enumerate(LENGTHS)]
    arrays = [a + np.sin(np.arange(a.size, dtype=np.float32)) * 0.1 for a in arrays]
    module = types.ModuleType("ast_repro.waveform_cache")
    module.open_cache = lambda path: arrays if path == "cache-dir" else arrays[:2]
    monkeypatch.setitem(sys.modules, "ast_repro.waveform_cache", module)
    waves = WaveformDataset(
        datafile=dataset_files[0],
        label_csv=dataset_files[1],
        frontend=_frontend(),
        waveform_cache="cache-dir",
    )
    waveform, length, _ = waves[1]
    assert length == LENGTHS[1]
    np.testing.assert_array_equal(waveform[:length].numpy(), arrays[1])
    stale = WaveformDataset(
        datafile=dataset_files[0],
        label_csv=dataset_files[1],
        frontend=_frontend(),
        waveform_cache="other",
    )
    with pytest.raises(DatafileError, match="holds 2 clips"):
        stale[0]


def test_real_waveform_cache_gives_the_same_items(dataset_files, tmp_path) -> None:
    from ast_repro.waveform_cache import build_cache

    manifest = build_cache(dataset_files[0], tmp_path / "cache", progress=False)
    training = dict(training=True, freqm=8, timem=16, mixup=0.5, seed=3)
    plain, cached = (
        _dataset(dataset_files, **training),
        _dataset(dataset_files, waveform_cache=str(manifest), **training),
    )
    for dataset in (plain, cached):
        dataset.set_epoch(2)
    for i in range(len(LENGTHS)):
        (x, y), (x_cached, y_cached) = plain[i], cached[i]
        assert torch.equal(y, y_cached)
        torch.testing.assert_close(x_cached, x, rtol=0, atol=1e-6)


def test_unknown_label_names_the_datafile(dataset_files, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    write_datafile(bad, [{"wav": "audio/clip0.wav", "labels": "a,zzz"}])
    with pytest.raises(DatafileError, match=r"bad\.json: entry 0 .*zzz"):
        AudioDataset(datafile=bad, label_csv=dataset_files[1], frontend=_frontend())


def test_target_matrix_multi_hot(dataset_files) -> None:
    clips = read_datafile(dataset_files[0])
    labels = LabelMap(mids=("a", "b", "c"), names=("A", "B", "C"))
    expected = torch.tensor(
        [[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0]], dtype=torch.float32
    )
    assert torch.equal(target_matrix(clips, labels), expected)
