"""Norm stats: the pooled figure is exact; the original's figure is the mean of batch stats."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from ast_repro.audio import load_audio
from ast_repro.augment import mixup_waveforms, sample_lambda, spec_augment
from ast_repro.cli import main
from ast_repro.data import make_dataset
from ast_repro.datafiles import read_datafile, write_datafile
from ast_repro.features import ESC50_STATS, kaldi_fbank, normalize, pad_or_crop
from ast_repro.frontend import FrontEndConfig
from ast_repro.normstats import PooledStats, compute_norm_stats, iter_features
from tests.conftest import tone


@pytest.fixture
def datafile(write_wav, rng, tmp_path):
    entries = []
    for i, (seconds, freq) in enumerate(
        [(1.0, 300), (0.5, 700), (0.8, 1500), (1.0, 90), (0.3, 5000)]
    ):
        path = write_wav(f"clip{i}.wav", tone(seconds, 16000, freq, rng) * (0.2 + 0.15 * i))
        entries.append({"wav": path.name, "labels": "/m/x"})
    write_datafile(tmp_path / "train.json", entries)
    return tmp_path / "train.json"


def features(datafile, target_length: int) -> list[torch.Tensor]:
    paths = [e["wav"] for e in json.loads(datafile.read_text())["data"]]
    out = []
    for p in paths:
        waveform = load_audio(datafile.parent / p)
        out.append(pad_or_crop(kaldi_fbank(waveform - waveform.mean(), 16000), target_length))
    return out


def test_pooled_stats_merge_is_exact() -> None:
    gen = np.random.default_rng(0)
    chunks = [gen.normal(-5, 4, size=n) for n in (1, 7, 1000, 33)]
    stats = PooledStats()
    for chunk in chunks:
        stats.update(torch.from_numpy(chunk))
    everything = np.concatenate(chunks)
    assert stats.count == everything.size
    assert stats.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert stats.std == pytest.approx(everything.std(ddof=1), rel=1e-12)


def test_both_estimates_against_direct_computation(datafile) -> None:
    report = compute_norm_stats(datafile, target_length=100, batch_size=2, progress=False)
    feats = features(datafile, 100)
    everything = torch.stack(feats).double()
    assert report.num_clips == 5 and report.original_batches == 3  # 2 + 2 + 1, last partial
    assert report.pooled_mean == pytest.approx(everything.mean().item(), rel=1e-9)
    assert report.pooled_std == pytest.approx(everything.std().item(), rel=1e-9)
    batches = [torch.stack(feats[i : i + 2]).double() for i in (0, 2, 4)]
    assert report.original_mean == pytest.approx(np.mean([b.mean().item() for b in batches]))
    assert report.original_std == pytest.approx(np.mean([b.std().item() for b in batches]))
    # Different clip counts per batch make the two estimates differ.
    assert report.original_mean != pytest.approx(report.pooled_mean, rel=1e-6)


def test_padding_is_part_of_the_statistics(datafile) -> None:
    short = compute_norm_stats(datafile, target_length=20, progress=False)
    long = compute_norm_stats(datafile, target_length=400, progress=False)
    assert long.pooled_mean > short.pooled_mean  # zero padding pulls a negative mean up


def test_cli_writes_a_report(datafile, tmp_path, capsys) -> None:
    out = tmp_path / "stats.json"
    code = main(["norm-stats", str(datafile), "--target-length", "100", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "pooled (exact)" in printed and "published audioset" in printed
    report = json.loads(out.read_text())
    assert report["num_clips"] == 5 and report["augmented"] is False


def test_empty_datafile_is_an_error(tmp_path) -> None:
    write_datafile(tmp_path / "empty.json", [])
    with pytest.raises(ValueError, match="empty.json: no clips"):
        compute_norm_stats(tmp_path / "empty.json", target_length=10, progress=False)


def test_original_augmentation_is_seeded_and_changes_the_statistics(datafile) -> None:
    kwargs = dict(target_length=100, batch_size=2, progress=False, freqm=24, timem=30, mixup=0.5)
    first = compute_norm_stats(datafile, seed=1, **kwargs)
    again = compute_norm_stats(datafile, seed=1, **kwargs)
    other = compute_norm_stats(datafile, seed=2, **kwargs)
    plain = compute_norm_stats(datafile, target_length=100, batch_size=2, progress=False)
    assert first == again and first.augmented
    assert first.pooled_mean != other.pooled_mean
    # Masks write zeros over negative log-mel values, so augmentation raises the mean.
    assert first.pooled_mean > plain.pooled_mean


def test_published_constants_match_the_reference_file() -> None:
    from ast_repro.features import PUBLISHED_STATS
    from ast_repro.results import repo_root

    reference = json.loads((repo_root() / "results" / "paper_reference.json").read_text())
    for name, stats in PUBLISHED_STATS.items():
        assert reference["norm_stats"][name] == {"mean": stats.mean, "std": stats.std}


def test_features_are_the_training_front_end_without_normalization(datafile) -> None:
    evaluation = make_dataset(FrontEndConfig(target_length=100, norm=ESC50_STATS), datafile)
    features = list(iter_features(datafile, target_length=100, limit=4))
    assert len(features) == 4
    for index, fbank in enumerate(features):
        assert torch.equal(normalize(fbank, ESC50_STATS), evaluation[index][0])


def test_augmented_features_keep_the_original_draw_stream(datafile) -> None:
    """The augmented features equal the stream the stored statistics were computed with."""
    clips = read_datafile(datafile)[:4]
    chooser, generator = random.Random(3), torch.Generator().manual_seed(3)
    expected, mixed = [], 0
    for clip in clips:
        waveform = load_audio(clip.wav)
        if chooser.random() < 0.5:
            mixed += 1
            partner = load_audio(clips[chooser.randint(0, len(clips) - 1)].wav)
            waveform = mixup_waveforms(waveform, partner, sample_lambda(generator).item())
        else:
            waveform = waveform - waveform.mean()
        fbank = pad_or_crop(kaldi_fbank(waveform, 16000), 100)
        expected.append(spec_augment(fbank, freqm=24, timem=30, generator=generator))
    got = list(
        iter_features(datafile, target_length=100, freqm=24, timem=30, mixup=0.5, seed=3, limit=4)
    )
    assert len(got) == 4 and 0 < mixed < 4  # seed 3 mixes three of the four clips
    for fbank, reference in zip(got, expected, strict=True):
        assert torch.equal(fbank, reference)
    plain = iter_features(datafile, target_length=100, limit=4)
    assert all(not torch.equal(a, b) for a, b in zip(got, plain, strict=True))
