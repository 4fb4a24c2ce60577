"""Tests of ast_repro.frontend: the recipe's draws, the per-clip path, and the batched path
against the per-clip path and torchaudio's reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ast_repro.augment import AugmentationDraws
from ast_repro.features import SPEECHCOMMANDS_STATS, normalize, pad_or_crop
from ast_repro.features import reference_fbank as torchaudio_fbank
from ast_repro.frontend import (
    BatchFrontEnd,
    FrontEndConfig,
    pad_batch,
    per_clip_batch,
    process_sample,
)
from ast_repro.seeding import make_generator

SR = 16_000


def _clip(seed: int, length: int) -> torch.Tensor:
    """A chirp plus noise plus a DC offset, so mean removal matters for mixing."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 + 900 * seed) * t * (1 + t)) + 0.05 * rng.standard_normal(
        length
    )
    return torch.from_numpy((x + 0.1 * (seed + 1)).astype(np.float32))


def _config(**overrides) -> FrontEndConfig:
    settings = dict(
        target_length=80, num_mel_bins=64, norm=SPEECHCOMMANDS_STATS, mixup=1.0, freqm=16, timem=20
    )
    settings.update(overrides)
    return FrontEndConfig(**settings)


def test_draw_properties() -> None:
    config = _config(mixup=0.5, noise=True)
    draws = config.draw(make_generator(6), batch_size=400)
    assert sorted(draws.partner.tolist()) == list(range(400))  # a permutation of the batch
    assert 0.4 < draws.mix.float().mean().item() < 0.6
    assert draws.noise.shape == (400, 80, 64)
    pooled = config.draw(make_generator(6), batch_size=400, num_partners=7)
    assert pooled.partner.min() >= 0 and pooled.partner.max() == 6
    # switching noise off keeps every other draw (common random numbers for ablations)
    quiet = _config(mixup=0.5, noise=False).draw(make_generator(6), batch_size=400)
    assert quiet.noise is None
    for a, b in (
        (quiet.lam, draws.lam),
        (quiet.freq[0], draws.freq[0]),
        (quiet.time[1], draws.time[1]),
    ):
        assert torch.equal(a, b)


def test_batch_front_end_equals_per_sample_path_with_mixup_masks_noise() -> None:
    lengths = [16_000, 9_000, 12_345, 5_000]  # 98, 54, 75, 30 frames vs target 80
    clips = [_clip(i, n) for i, n in enumerate(lengths)]
    labels = torch.eye(4)[[0, 1, 2, 1]]
    width = max(lengths) + 777  # extra zero padding must not matter
    batch = torch.stack([torch.nn.functional.pad(c, (0, width - len(c))) for c in clips])
    config = _config(mixup=0.5, noise=True)
    front = BatchFrontEnd(config)
    for seed in range(3):
        draws = front.draw(make_generator(seed), 4)
        fbank, soft = front(batch, torch.tensor(lengths), labels, draws)
        assert fbank.shape == (4, 80, 64) and soft.shape == (4, 4)
        for i in range(4):
            j = int(draws.partner[i])
            expected_fbank, expected_labels = process_sample(
                config,
                clips[i],
                labels[i],
                draws=draws.select(i),
                partner_waveform=clips[j],
                partner_labels=labels[j],
            )
            torch.testing.assert_close(fbank[i], expected_fbank, rtol=0, atol=2e-5)
            torch.testing.assert_close(soft[i], expected_labels, rtol=0, atol=0)
    assert bool(draws.mix.any()) and not bool(draws.mix.all())


def test_per_clip_batch_is_process_sample_per_clip_and_matches_the_batch_path() -> None:
    lengths = [16_000, 9_000, 5_000]
    clips = [_clip(i, n) for i, n in enumerate(lengths)]
    labels = torch.eye(3)
    batch, lengths_out = pad_batch(clips)
    assert batch.shape == (3, 16_000) and lengths_out.tolist() == lengths
    assert torch.equal(batch[1, :9_000], clips[1]) and not batch[1, 9_000:].any()
    config = _config(mixup=0.5, noise=True)
    front = BatchFrontEnd(config)
    draws = front.draw(make_generator(4), 3)
    fbank, soft = per_clip_batch(config, clips, labels, draws)
    assert fbank.shape == (3, 80, 64) and soft.shape == (3, 3)
    for i in range(3):
        j = int(draws.partner[i])
        expected, expected_labels = process_sample(config, clips[i], labels[i],
                                                   draws=draws.select(i),
                                                   partner_waveform=clips[j],
                                                   partner_labels=labels[j])  # fmt: skip
        assert torch.equal(fbank[i], expected) and torch.equal(soft[i], expected_labels)
    batched, batched_labels = front(batch, lengths_out, labels, draws)
    torch.testing.assert_close(batched, fbank, rtol=0, atol=2e-5)
    torch.testing.assert_close(batched_labels, soft, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_front_end_on_cuda_equals_cpu_with_the_same_draws() -> None:
    lengths = [16_000, 9_000, 5_000]
    clips = [_clip(i, n) for i, n in enumerate(lengths)]
    batch = torch.stack([torch.nn.functional.pad(c, (0, 16_000 - len(c))) for c in clips])
    labels = torch.eye(3)
    front = BatchFrontEnd(_config(mixup=0.5, noise=True))
    draws = front.draw(make_generator(11), 3)
    cpu_fbank, cpu_labels = front(batch, torch.tensor(lengths), labels, draws)
    cuda_fbank, cuda_labels = front(
        batch.cuda(), torch.tensor(lengths).cuda(), labels.cuda(), draws.to("cuda")
    )
    torch.testing.assert_close(cuda_fbank.cpu(), cpu_fbank, rtol=0, atol=1e-4)
    torch.testing.assert_close(cuda_labels.cpu(), cpu_labels, rtol=0, atol=0)
    on_device = front.draw(make_generator(11, device="cuda"), 3)
    assert on_device.noise.is_cuda and sorted(on_device.partner.tolist()) == [0, 1, 2]


def test_batch_front_end_eval_path_equals_torchaudio_reference() -> None:
    lengths = [16_000, 7_000, 3_000]
    clips = [_clip(i, n) for i, n in enumerate(lengths)]
    batch = torch.stack([torch.nn.functional.pad(c, (0, 20_000 - len(c))) for c in clips])
    config = _config()
    fbank, labels = BatchFrontEnd(config)(batch, torch.tensor(lengths), torch.eye(3))
    assert torch.equal(labels, torch.eye(3))
    for i, clip in enumerate(clips):
        reference = normalize(pad_or_crop(torchaudio_fbank(clip, SR, 64), 80), config.norm)
        torch.testing.assert_close(fbank[i], reference, rtol=0, atol=1e-4)
    # the short clip's padded frames hold -mean / (2 std), as in the original
    pad_value = -config.norm.mean / (2 * config.norm.std)
    torch.testing.assert_close(fbank[2, 20:], torch.full((60, 64), pad_value), rtol=0, atol=1e-6)


def test_batch_front_end_rejects_lengths_outside_the_batch() -> None:
    front = BatchFrontEnd(_config())
    with pytest.raises(ValueError, match="lengths must lie in"):
        front(torch.zeros(2, 1000), torch.tensor([1000, 1001]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="lengths must lie in"):
        front(torch.zeros(2, 1000), torch.tensor([1000, 399]), torch.zeros(2, 3))


def test_process_sample_needs_partner_when_mixing() -> None:
    config = _config(mixup=1.0)
    draws = config.draw(make_generator(0), batch_size=1, num_partners=3)
    assert isinstance(draws, AugmentationDraws) and bool(draws.mix[0])
    with pytest.raises(ValueError, match="partner"):
        process_sample(config, _clip(0, 4000), torch.ones(3), draws=draws)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="mixup"):
        _config(mixup=1.5)
    with pytest.raises(ValueError, match="freqm"):
        _config(freqm=65)
    with pytest.raises(ValueError, match="timem"):
        _config(timem=81)
