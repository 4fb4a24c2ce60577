"""Resynthesis from log-mel features: the features of the sound come back close to the input."""

from __future__ import annotations

import math

import pytest
import torch

from ast_repro.features import SPEECHCOMMANDS_STATS, kaldi_fbank, mel_filters, normalize
from ast_repro.resynthesis import fbank_to_waveform

SR = 16_000


def _chirp() -> torch.Tensor:
    """A chirp with a slow swell over a little noise, one second."""
    t = torch.arange(SR) / SR
    chirp = 0.4 * torch.sin(2 * math.pi * (300 + 1500 * t) * t) * (0.5 + 0.5 * torch.sin(6 * t))
    return chirp + 0.01 * torch.randn(SR, generator=torch.Generator().manual_seed(0))


def test_mel_filters_are_those_of_kaldi_fbank() -> None:
    filters = mel_filters(SR, 64)
    assert filters.shape == (257, 64) and (filters >= 0).all()
    assert torch.all(filters.sum(dim=0) > 0) and not filters[-1].any()  # Nyquist weight 0
    t = torch.arange(SR) / SR
    for hz in (500, 1000, 4000):
        tone = 0.5 * torch.sin(2 * math.pi * hz * t)
        fft_bin = round(hz / (SR / 512))  # 512-point FFT
        loudest = int(kaldi_fbank(tone, SR, 64).mean(dim=0).argmax())
        assert int(filters[fft_bin].argmax()) == loudest


def test_resynthesized_features_match_the_input() -> None:
    fbank = kaldi_fbank(_chirp(), SR)  # (98, 128)
    waveform = fbank_to_waveform(fbank, SR)
    assert waveform.shape == (97 * 160 + 400,)
    again = kaldi_fbank(waveform, SR)
    assert again.shape == fbank.shape
    inner = slice(5, -5)  # Griffin-Lim is least accurate at the edges
    assert (again - fbank)[inner].abs().mean() < 0.5  # natural-log units
    assert torch.corrcoef(torch.stack([again.flatten(), fbank.flatten()]))[0, 1] > 0.95
    assert torch.equal(fbank_to_waveform(fbank, SR), waveform)  # deterministic
    # normalized features give the same sound with their statistics
    normalized = normalize(fbank.clone(), SPEECHCOMMANDS_STATS)
    torch.testing.assert_close(fbank_to_waveform(normalized, SR, norm=SPEECHCOMMANDS_STATS),
                               waveform, rtol=0, atol=2e-3)  # fmt: skip


def test_masked_cells_come_back_at_the_mask_value() -> None:
    fbank = kaldi_fbank(_chirp(), SR)
    masked = fbank.clone()
    masked[30:50] = 0.0  # a time mask sets the un-normalized log-mel to 0.0
    masked[:, 90:110] = 0.0  # a frequency mask
    again = kaldi_fbank(fbank_to_waveform(masked, SR), SR)
    assert again[33:47].mean().item() == pytest.approx(0.0, abs=1.0)
    assert again[:, 93:107].mean().item() == pytest.approx(0.0, abs=1.0)
    assert fbank[33:47, :85].mean() < -2.0  # far below the mask value before


def test_resynthesis_rejects_a_batch() -> None:
    with pytest.raises(ValueError, match="must be"):
        fbank_to_waveform(torch.zeros(2, 10, 128))
