"""Tests of ast_repro.augment: the augmentations against independent computations and
torchaudio's masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from scipy import stats

from ast_repro.augment import (
    ROLL_HIGH,
    ROLL_LOW,
    apply_noise_and_roll,
    mask_interval,
    mix_labels,
    mixup_waveforms,
    noise_and_roll,
    sample_lambda,
    spec_augment,
)
from ast_repro.features import NormStats
from ast_repro.frontend import FrontEndConfig
from ast_repro.seeding import derive_seed, make_generator


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


def test_derive_seed_is_deterministic_and_separates_keys() -> None:
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    seeds = {derive_seed(0, epoch, index) for epoch in range(5) for index in range(200)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**63 for s in seeds)
