"""The front end against its references: torchaudio's Kaldi fbank and transformers' extractor."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torchaudio.compliance import kaldi

from ast_repro.features import (
    AUDIOSET_STATS,
    ESC50_STATS,
    SPEECHCOMMANDS_STATS,
    NormStats,
    frame_geometry,
    kaldi_fbank,
    normalize,
    num_frames,
    pad_or_crop,
    reference_fbank,
)

# The tolerance on log-mel values; we measure ~1e-6 because the arithmetic mirrors
# torchaudio's step by step.
FBANK_ATOL = 1e-4


def torchaudio_fbank(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The original's fbank arguments, called directly (no global mean removal)."""
    return kaldi.fbank(
        waveform[None],
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )


def signals(num_samples: int, sample_rate: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / sample_rate
    walk = torch.randn(num_samples, generator=gen).cumsum(0)
    return {
        "noise": (torch.rand(num_samples, generator=gen) * 2 - 1) * 0.3,
        "tone": 0.5 * torch.sin(2 * torch.pi * 440 * t)
        + 1e-3 * torch.randn(num_samples, generator=gen),
        "brown": 0.8 * walk / walk.abs().max(),
        "offset": 0.2 + 0.1 * torch.randn(num_samples, generator=gen),
    }


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100])
@pytest.mark.parametrize("seconds", [0.025, 0.0251, 1.0, 10.0])
def test_fbank_matches_torchaudio(sample_rate: int, seconds: float) -> None:
    num_samples = max(int(round(seconds * sample_rate)), frame_geometry(sample_rate)[0])
    for name, waveform in signals(num_samples, sample_rate, seed=num_samples).items():
        ours = kaldi_fbank(waveform, sample_rate)
        ref = torchaudio_fbank(waveform, sample_rate)
        assert ours.shape == ref.shape == (num_frames(num_samples, sample_rate), 128)
        err = (ours - ref).abs().max().item()
        assert err <= FBANK_ATOL, f"{name} at {sample_rate} Hz, {num_samples} samples: {err}"


def test_shortest_clip_is_400_samples_at_16k() -> None:
    waveform = signals(400, 16000, seed=0)["noise"]
    assert kaldi_fbank(waveform, 16000).shape == (1, 128)
    with pytest.raises(ValueError, match="shorter than one 25 ms frame"):
        kaldi_fbank(waveform[:399], 16000)


def test_batched_equals_per_clip() -> None:
    gen = torch.Generator().manual_seed(3)
    batch = (torch.rand(5, 16000, generator=gen) * 2 - 1) * 0.5
    batched = kaldi_fbank(batch, 16000)
    assert batched.shape == (5, 98, 128)
    for i in range(5):
        torch.testing.assert_close(batched[i], kaldi_fbank(batch[i], 16000), rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_samples", [16000, 16123, 401])
def test_batch_view_equals_per_clip(num_samples: int) -> None:
    # Lengths that are, and are not, a whole number of 10 ms shifts, and a non-contiguous
    # batch: the batch is read as one strided signal, and no frame may leak between clips.
    gen = torch.Generator().manual_seed(num_samples)
    wide = (torch.rand(4, 2 * num_samples, generator=gen) * 2 - 1) * 0.5
    batch = wide[:, ::2]
    assert not batch.is_contiguous()
    batched = kaldi_fbank(batch, 16000)
    assert batched.shape == (4, num_frames(num_samples, 16000), 128)
    for i in range(4):
        clip = batch[i].contiguous()
        # Up to the FFT the numbers are identical; the mel product's summation order may
        # depend on how many rows the BLAS kernel sees, hence 1e-6 rather than 0.
        torch.testing.assert_close(batched[i], kaldi_fbank(clip, 16000), rtol=0, atol=1e-6)
        assert (batched[i] - torchaudio_fbank(clip, 16000)).abs().max().item() <= FBANK_ATOL


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100])
def test_mel_bands_equal_the_dense_projection(sample_rate: int) -> None:
    import ast_repro.features as features

    _, _, n_fft = frame_geometry(sample_rate)
    cpu = torch.device("cpu")
    dense = features._mel_matrix(sample_rate, n_fft, 128, cpu, torch.float32)
    bands = features._mel_bands(sample_rate, n_fft, 128, cpu, torch.float32)
    # The bands tile the filters in order, and every non-zero weight lies inside a band.
    assert [b.first for b in bands] == [0] + [b.end for b in bands[:-1]]
    assert bands[-1].end == 128
    rebuilt = torch.zeros_like(dense)
    for b in bands:
        rebuilt[b.low : b.high, b.first : b.end] = b.weights
    torch.testing.assert_close(rebuilt, dense, rtol=0, atol=0)
    # Banding must save most of the multiply-adds, or it is not worth its calls.
    assert sum(b.weights.numel() for b in bands) < 0.3 * dense.numel()
    assert all(b.end - b.first == features.MEL_BAND_FILTERS for b in bands)


@pytest.mark.parametrize("sample_rate", [8000, 16000, 44100])
def test_fft_input_is_torchaudios_bit_for_bit(sample_rate: int) -> None:
    # The claim the parity rests on: up to the FFT the arithmetic is torchaudio's, rounding
    # for rounding (a one-ulp difference here moves the quietest bands by up to 1e-3).
    import ast_repro.features as features

    window, shift, n_fft = frame_geometry(sample_rate)
    for name, waveform in signals(sample_rate, sample_rate, seed=7).items():
        frames = waveform.unfold(0, window, shift)
        work = features._Workspace(
            frames.shape[0],
            features._hann(window, frames.device, frames.dtype),
            features._mel_bands(sample_rate, n_fft, 128, frames.device, frames.dtype),
            n_fft,
        )
        features._window_frames(frames, work)
        reference, _ = kaldi._get_window(
            waveform, n_fft, window, shift, "hanning", 0.42, True, True, 1.0, 0.0,
            True, features.PREEMPHASIS,
        )  # fmt: skip
        assert torch.equal(work.padded, reference), f"{name} at {sample_rate} Hz"


def test_chunked_cpu_path_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import ast_repro.features as features

    batch = (torch.rand(3, 48000, generator=torch.Generator().manual_seed(4)) * 2 - 1) * 0.5
    whole = kaldi_fbank(batch, 16000)
    monkeypatch.setattr(features, "CPU_CHUNK_FRAMES", 50)  # 298 frames -> 6 chunks
    torch.testing.assert_close(kaldi_fbank(batch, 16000), whole, rtol=0, atol=0)


def test_gpu_layout_on_cpu_equals_the_cpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a GPU runs (one chunk, one dense mel product), checked where CI can run it.
    import ast_repro.features as features

    batch = (torch.rand(3, 48123, generator=torch.Generator().manual_seed(5)) * 2 - 1) * 0.5
    cpu_path = kaldi_fbank(batch, 16000)
    dense = functools.partial(features._mel_bands, banded=False)
    used: list[int] = []
    monkeypatch.setattr(features, "_mel_bands", lambda *args: used.append(1) or dense(*args[:-1]))
    monkeypatch.setattr(features, "CPU_CHUNK_FRAMES", features.GPU_CHUNK_FRAMES)
    torch.testing.assert_close(kaldi_fbank(batch, 16000), cpu_path, rtol=0, atol=1e-6)
    assert used, "the dense mel product was not used"
    assert len(dense(16000, 512, 128, torch.device("cpu"), torch.float32)) == 1


def test_reference_fbank_is_the_original_call() -> None:
    # The original removes the waveform's mean first; Kaldi's per-frame DC removal makes that
    # redundant up to float32 rounding in the quietest bands.
    waveform = signals(16000, 16000, seed=5)["offset"]
    ours = kaldi_fbank(waveform, 16000)
    assert (ours - reference_fbank(waveform, 16000)).abs().max().item() < 5e-3


def test_fbank_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N,\) or \(B, N\)"):
        kaldi_fbank(torch.zeros(1, 1, 16000), 16000)
    with pytest.raises(TypeError, match="float"):
        kaldi_fbank(torch.zeros(16000, dtype=torch.int16), 16000)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fbank_on_cuda_matches_cpu() -> None:
    batch = (torch.rand(4, 160000, generator=torch.Generator().manual_seed(6)) * 2 - 1) * 0.5
    cpu = kaldi_fbank(batch, 16000)
    gpu = kaldi_fbank(batch.cuda(), 16000).cpu()
    # cuFFT and the CPU FFT round differently; the quietest bands move the most.
    assert (gpu - cpu).abs().max().item() < 5e-3
    assert (gpu - cpu).abs().mean().item() < 1e-5


def test_frame_counts_of_the_recipes() -> None:
    assert num_frames(160_000, 16000) == 998  # AudioSet, 10 s
    assert num_frames(80_000, 16000) == 498  # ESC-50, 5 s
    assert num_frames(16_000, 16000) == 98  # Speech Commands, 1 s
    assert num_frames(399, 16000) == 0
    assert frame_geometry(16000) == (400, 160, 512)
    assert frame_geometry(44100) == (1102, 441, 2048)


def test_pad_or_crop() -> None:
    fbank = torch.randn(2, 98, 128)
    padded = pad_or_crop(fbank, 128)
    assert padded.shape == (2, 128, 128)
    assert torch.equal(padded[:, :98], fbank)
    assert torch.count_nonzero(padded[:, 98:]) == 0
    cropped = pad_or_crop(fbank, 50)
    assert torch.equal(cropped, fbank[:, :50])


def test_normalize_targets_std_half() -> None:
    stats = NormStats(mean=-3.0, std=2.0)
    x = torch.tensor([-3.0, 1.0, -7.0])
    torch.testing.assert_close(normalize(x, stats), torch.tensor([0.0, 1.0, -1.0]))
    # Padded cells (0.0) land at -mean / (2 std): +0.467 for AudioSet (original
    # `src/dataloader.py`).
    for stats, padded in ((AUDIOSET_STATS, 0.467), (ESC50_STATS, 0.618)):
        assert normalize(torch.zeros(1), stats).item() == pytest.approx(padded, abs=5e-4)
    assert normalize(torch.zeros(1), SPEECHCOMMANDS_STATS).item() == pytest.approx(0.615, abs=1e-3)


@pytest.mark.parametrize("seconds", [0.5, 3.0, 10.0, 12.0])
def test_matches_transformers_feature_extractor(seconds: float) -> None:
    transformers = pytest.importorskip("transformers")
    extractor = transformers.ASTFeatureExtractor()  # AudioSet stats, max_length 1024
    rng = np.random.default_rng(int(seconds * 10))
    waveform = (0.3 * rng.standard_normal(int(seconds * 16000))).clip(-1, 1).astype(np.float32)
    theirs = extractor(waveform, sampling_rate=16000, return_tensors="pt")["input_values"][0]
    ours = normalize(
        pad_or_crop(kaldi_fbank(torch.from_numpy(waveform), 16000), 1024), AUDIOSET_STATS
    )
    assert ours.shape == theirs.shape == (1024, 128)
    assert (ours - theirs).abs().max().item() <= 1e-4
