"""Tests of ast_repro.augment: per-sample functions against independent computations and
torchaudio's masking, and the batched front end against the per-sample path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from scipy import stats

from ast_repro.augment import (
    ROLL_HIGH,
    ROLL_LOW,
    AugmentationDraws,
    BatchFrontEnd,
    FrontEndConfig,
    apply_noise_and_roll,
    mask_interval,
    mix_labels,
    mixup_waveforms,
    noise_and_roll,
    process_sample,
    sample_lambda,
    spec_augment,
)
from ast_repro.features import SPEECHCOMMANDS_STATS, NormStats, normalize, pad_or_crop
from ast_repro.features import reference_fbank as torchaudio_fbank
from ast_repro.seeding import derive_seed, make_generator

SR = 16_000


def _clip(seed: int, length: int) -> torch.Tensor:
    """A chirp plus noise plus a DC offset, so mean removal matters for mixing."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 + 900 * seed) * t * (1 + t)) + 0.05 * rng.standard_normal(
        length
    )
    return torch.from_numpy((x + 0.1 * (seed + 1)).astype(np.float32))


def test_mixup_waveforms_matches_hand_computation_for_pad_and_truncate() -> None:
    w1 = torch.tensor([1.0, 2.0, 3.0, 6.0])
    short = torch.tensor([4.0, 0.0])
    long = torch.tensor([1.0, 1.0, 1.0, 5.0, 100.0])
    lam = 0.25
    for partner in (short, long):
        a = w1.double().numpy() - w1.double().numpy().mean()
        b = partner.double().numpy() - partner.double().numpy().mean()
        b = np.pad(b, (0, max(0, 4 - len(b))))[:4]
        mixed = lam * a + (1 - lam) * b
        expected = mixed - mixed.mean()
        got = mixup_waveforms(w1, partner, lam)
        assert got.shape == (4,)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    # short partner [4, 0] centers to [2, -2] and is then zero-padded: the pad is 0, not -mean
    a = np.array([-2.0, -1.0, 0.0, 3.0])
    mixed = 0.25 * a + 0.75 * np.array([2.0, -2.0, 0.0, 0.0])
    np.testing.assert_allclose(
        mixup_waveforms(w1, short, 0.25).numpy(), mixed - mixed.mean(), atol=1e-6
    )


def test_mix_labels_soft_multi_hot_and_shared_class_exactly_one() -> None:
    y1 = torch.tensor([1.0, 1.0, 0.0, 0.0])
    y2 = torch.tensor([0.0, 1.0, 1.0, 0.0])
    lams = sample_lambda(make_generator(0), 5000)
    for lam in lams:
        mixed = mix_labels(y1, y2, lam)
        assert mixed[1].item() == 1.0  # a class in both clips
        assert mixed[0].item() == pytest.approx(lam.item(), abs=1e-7)
        assert mixed[2].item() == pytest.approx(1 - lam.item(), abs=1e-7)
        assert mixed[3].item() == 0.0


def test_sample_lambda_is_beta_10_10_and_seeded() -> None:
    lam = sample_lambda(make_generator(1), 20_000).double().numpy()
    assert lam.shape == (20_000,)
    assert np.all((lam > 0) & (lam < 1))
    assert stats.kstest(lam, stats.beta(10, 10).cdf).pvalue > 1e-3
    # a wrong shape parameter is rejected by the same test (the test can fail)
    assert stats.kstest(lam, stats.beta(5, 5).cdf).pvalue < 1e-6
    again = sample_lambda(make_generator(1), 20_000).double().numpy()
    np.testing.assert_array_equal(lam, again)


def test_mask_interval_hand_case_and_bounds() -> None:
    start, end = mask_interval(
        torch.tensor([0.5, 0.0, 0.999]), torch.tensor([0.5, 0.999, 0.0]), size=100, mask_param=10
    )
    # value = 5, min_value = 0.5 * 95 = 47.5 -> [47, 52); value 0 -> empty; value 9.99 -> width 9
    assert start.tolist() == [47, 99, 0]
    assert (end - start).tolist() == [5, 0, 9]
    u = torch.rand(4, 10_000, generator=make_generator(2))
    start, end = mask_interval(u[0], u[1], size=128, mask_param=48)
    width = end - start
    assert width.min() >= 0 and width.max() == 47  # floor(U * 48) reaches 47, never 48
    assert start.min() >= 0 and end.max() <= 128


@pytest.mark.parametrize("freqm, timem", [(48, 192), (24, 96), (48, 48)])
def test_spec_augment_equals_torchaudio_masking_with_same_draws(freqm: int, timem: int) -> None:
    fbank = torch.randn(200, 128, generator=make_generator(3)) - 5.0  # (T, F)
    masked_somewhere = 0
    for seed in range(25):
        torch.manual_seed(seed)  # torchaudio draws from the global generator
        x = fbank.T[None]  # (1, F, T), the original's layout
        x = torchaudio.transforms.FrequencyMasking(freqm)(x)
        expected = torchaudio.transforms.TimeMasking(timem)(x)[0].T
        got = spec_augment(fbank, freqm=freqm, timem=timem, generator=make_generator_raw(seed))
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        masked_somewhere += int((got == 0.0).any())
    assert masked_somewhere > 20


def make_generator_raw(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_noise_and_roll_equals_roll_of_noisy_features() -> None:
    fbank = torch.randn(3, 50, 8, generator=make_generator(4))
    noise = torch.rand(3, 50, 8, generator=make_generator(5))
    amplitude = torch.tensor([0.0, 0.5, 0.99])
    shift = torch.tensor([-10, 0, 9])
    got = apply_noise_and_roll(fbank, noise, amplitude, shift)
    for b in range(3):
        noisy = fbank[b] + noise[b] * amplitude[b] / 10
        torch.testing.assert_close(got[b], torch.roll(noisy, int(shift[b]), dims=0))
    # standalone draws: non-negative noise of amplitude < 0.1, shift in {-10..9}
    single = torch.zeros(40, 8)
    shifts = set()
    for seed in range(200):
        out = noise_and_roll(single, make_generator(seed))
        assert 0.0 <= out.min() and out.max() < 0.1
        draws = FrontEndConfig(target_length=40, num_mel_bins=8, norm=NormStats(0, 1), noise=True)
        shifts.update(draws.draw(make_generator(seed), batch_size=4).shift.tolist())
    assert shifts == set(range(ROLL_LOW, ROLL_HIGH))


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


def test_derive_seed_is_deterministic_and_separates_keys() -> None:
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    seeds = {derive_seed(0, epoch, index) for epoch in range(5) for index in range(200)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**63 for s in seeds)
