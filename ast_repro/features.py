"""The AST front end: Kaldi log-mel filterbanks, pad/crop, normalization (paper section 2.1;
original_ast.md sections 1.3, 1.5 and 1.7).

`kaldi_fbank` computes what the original computes with
`torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True, sample_frequency=sr,
use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)`,
but for a whole batch at once and on any device: frames are a strided view, the per-frame
steps are broadcast over (B, T), and the mel projection is one matrix product. Because the
arithmetic mirrors torchaudio's step by step, the two agree to ~1e-6 on log-mel values
(tests/test_features.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchaudio.compliance import kaldi

# Kaldi frame settings used by the original (torchaudio defaults unless the original overrides
# them; original_ast.md section 1.3).
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0  # the original passes frame_shift=10
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
HIGH_FREQ_HZ = 0.0  # <= 0 means "relative to Nyquist", as in Kaldi
NUM_MEL_BINS = 128  # hard-coded in the original src/run.py
# VTLN is off (warp factor 1); these are Kaldi's defaults and only satisfy the API.
VTLN_LOW_HZ = 100.0
VTLN_HIGH_HZ = -500.0
# On the CPU, frames are processed in chunks of this many so intermediates stay in cache.
CPU_CHUNK_FRAMES = 1024
# Kaldi floors mel energies at float32 machine epsilon before the log.
LOG_FLOOR = torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class NormStats:
    """Mean and standard deviation of a dataset's log-mel features."""

    mean: float
    std: float
    source: str = ""


# Published statistics (original_ast.md section 3; egs/*/run*.sh of the original code).
AUDIOSET_STATS = NormStats(-4.2677393, 4.5689974, "AST egs/audioset/run.sh")
ESC50_STATS = NormStats(-6.6268077, 5.358466, "AST egs/esc50/run_esc.sh")
SPEECHCOMMANDS_STATS = NormStats(-6.845978, 5.5654526, "AST egs/speechcommands/run_sc.sh")
PUBLISHED_STATS = {
    "audioset": AUDIOSET_STATS,
    "esc50": ESC50_STATS,
    "speechcommands": SPEECHCOMMANDS_STATS,
}


def frame_geometry(sample_rate: int) -> tuple[int, int, int]:
    """Kaldi frame sizes at `sample_rate`.

    Returns:
        (window samples, shift samples, FFT size: the window rounded up to a power of two).
    """
    window = int(sample_rate * FRAME_LENGTH_MS * 0.001)
    shift = int(sample_rate * FRAME_SHIFT_MS * 0.001)
    return window, shift, 1 << (window - 1).bit_length()


def num_frames(num_samples: int, sample_rate: int) -> int:
    """Frames Kaldi produces with snip_edges=True: 1 + (N - window) // shift, or 0."""
    window, shift, _ = frame_geometry(sample_rate)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


@functools.lru_cache(maxsize=32)
def _mel_matrix(
    sample_rate: int, n_fft: int, num_mel_bins: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a (n_fft // 2 + 1, num_mel_bins) projection.

    Built by torchaudio's own `get_mel_banks`, in float32 as the reference builds it: the
    lowest mel bands hold a single FFT bin with tiny weights, and filters rebuilt in float64
    move those bands' log energies by up to 1e-3.
    """
    banks, _ = kaldi.get_mel_banks(
        num_mel_bins,
        n_fft,
        float(sample_rate),
        LOW_FREQ_HZ,
        HIGH_FREQ_HZ,
        VTLN_LOW_HZ,
        VTLN_HIGH_HZ,
        1.0,
    )  # (num_mel_bins, n_fft // 2)
    banks = F.pad(banks, (0, 1))  # the Nyquist bin has weight 0, as in Kaldi
    return banks.T.contiguous().to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _hann(window: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Kaldi's "hanning" is the symmetric Hann window. NOTE: the paper says "Hamming"; the
    # original code (and therefore every released checkpoint) uses Hann.
    return torch.hann_window(window, periodic=False, device=device, dtype=dtype)


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: int,
    num_mel_bins: int = NUM_MEL_BINS,
) -> torch.Tensor:
    """Log-mel filterbank features, numerically the original AST recipe.

    Hann window of 25 ms, 10 ms shift, pre-emphasis 0.97, per-frame DC removal, 2^k-point
    FFT power spectrum, Kaldi mel filters from 20 Hz to Nyquist, natural log floored at
    float32 epsilon; no dither and no energy term.

    Args:
        waveform: (N,) or (B, N) float samples in [-1, 1] (not int16-scaled), any device.
        sample_rate: sampling rate of `waveform` in Hz.
        num_mel_bins: number of mel filters F.

    Returns:
        (T, F) or (B, T, F) log-mel energies in `waveform`'s dtype and device, with
        T = 1 + (N - window) // shift.
    """
    if waveform.dim() not in (1, 2):
        raise ValueError(f"waveform must be (N,) or (B, N), got shape {tuple(waveform.shape)}")
    if not waveform.is_floating_point():
        raise TypeError("waveform must be a float tensor in [-1, 1]")
    window, shift, n_fft = frame_geometry(sample_rate)
    if waveform.shape[-1] < window:
        raise ValueError(
            f"{waveform.shape[-1]} samples is shorter than one {FRAME_LENGTH_MS:g} ms frame "
            f"({window} samples at {sample_rate} Hz)"
        )
    batched = waveform.dim() == 2
    frames = (waveform if batched else waveform[None]).unfold(-1, window, shift)  # (B, T, W)
    B, T, W = frames.shape
    frames = frames.reshape(B * T, W)  # still a view: clips are contiguous rows
    # On the CPU, chunks keep the intermediates in cache; a GPU takes the batch in one go.
    chunk = CPU_CHUNK_FRAMES if frames.device.type == "cpu" else B * T
    mel_matrix = _mel_matrix(sample_rate, n_fft, num_mel_bins, frames.device, frames.dtype)
    window_fn = _hann(W, frames.device, frames.dtype)
    log_mel = torch.empty(B * T, num_mel_bins, device=frames.device, dtype=frames.dtype)
    # Frames are written into the first W columns of a zeroed (M, n_fft) buffer: the FFT's
    # zero padding then costs nothing, and an already-padded input takes the FFT's fast path.
    padded = torch.zeros(min(chunk, B * T), n_fft, device=frames.device, dtype=frames.dtype)
    for start in range(0, B * T, chunk):
        rows = frames[start : start + chunk]
        out = log_mel[start : start + chunk]
        _frames_to_log_mel(rows, padded[: rows.shape[0]], window_fn, mel_matrix, out=out)
    log_mel = log_mel.view(B, T, num_mel_bins)
    return log_mel if batched else log_mel[0]


def _frames_to_log_mel(
    frames: torch.Tensor,
    padded: torch.Tensor,
    window_fn: torch.Tensor,
    mel_matrix: torch.Tensor,
    *,
    out: torch.Tensor,
) -> None:
    """(M, W) raw frames -> (M, F) log-mel energies, written into `out`.

    The arithmetic follows torchaudio's Kaldi fbank operation by operation, so the FFT sees
    the same float32 numbers. That matters: bands below ~100 Hz hold a single FFT bin whose
    energy the pre-emphasis has cut by ~30 dB, and a one-ulp change in the frame samples moves
    their log energy by up to 1e-3. Speed comes from batching, chunking for cache, building
    the window and filters once, and skipping the reference's unused energy and copies.

    Args:
        frames: (M, W) frames (a strided view of the waveform is fine).
        padded: (M, n_fft) buffer whose columns W: are zero; columns :W are overwritten.
        window_fn: (W,) Hann window.
        mel_matrix: (n_fft // 2 + 1, F) mel projection.
        out: (M, F) destination.
    """
    width = frames.shape[-1]
    frames = frames - frames.mean(dim=-1, keepdim=True)  # remove_dc_offset, (M, W)
    emphasized = padded[:, :width]
    # Pre-emphasis; Kaldi's edge rule uses the first sample as its own predecessor.
    torch.mul(frames[:, :-1], PREEMPHASIS, out=emphasized[:, 1:])
    torch.sub(frames[:, 1:], emphasized[:, 1:], out=emphasized[:, 1:])
    torch.mul(frames[:, :1], PREEMPHASIS, out=emphasized[:, :1])
    torch.sub(frames[:, :1], emphasized[:, :1], out=emphasized[:, :1])
    emphasized.mul_(window_fn)
    spectrum = torch.fft.rfft(padded)  # (M, n_fft // 2 + 1)
    power = spectrum.real.square().add_(spectrum.imag.square())
    torch.matmul(power, mel_matrix, out=out)
    out.clamp_min_(LOG_FLOOR).log_()


def pad_or_crop(fbank: torch.Tensor, target_length: int) -> torch.Tensor:
    """Zero-pad or truncate the time axis at the end, as the original (section 1.5).

    Args:
        fbank: (..., T, F) log-mel features.
        target_length: frames wanted (1024 AudioSet, 512 ESC-50, 128 Speech Commands).

    Returns:
        (..., target_length, F). Padding uses 0.0 on the un-normalized scale, so padded
        frames become -mean / (2 std) after `normalize`, as in the original.
    """
    frames = fbank.shape[-2]
    if frames >= target_length:
        return fbank[..., :target_length, :]
    return F.pad(fbank, (0, 0, 0, target_length - frames))


def normalize(fbank: torch.Tensor, stats: NormStats) -> torch.Tensor:
    """(x - mean) / (2 std): the original's normalization to mean 0, std 0.5 (section 1.7)."""
    return (fbank - stats.mean) / (2.0 * stats.std)


def reference_fbank(
    waveform: torch.Tensor,
    sample_rate: int,
    num_mel_bins: int = NUM_MEL_BINS,
    *,
    subtract_mean: bool = True,
) -> torch.Tensor:
    """The original's call to torchaudio's Kaldi fbank for one clip: the parity reference.

    Args:
        waveform: (N,) float samples in [-1, 1].
        subtract_mean: remove the waveform's global mean first, as the original's dataset
            does (Kaldi's per-frame DC removal makes it matter only in the last bits).

    Returns:
        (T, F) log-mel features.
    """
    if subtract_mean:
        waveform = waveform - waveform.mean()
    return kaldi.fbank(
        waveform[None],
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_shift=FRAME_SHIFT_MS,
    )
