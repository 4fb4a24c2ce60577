"""The AST front end: Kaldi log-mel filterbanks, pad/crop, normalization (paper section 2.1;
original `src/dataloader.py`).

`kaldi_fbank` computes what the original computes with
`torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True, sample_frequency=sr,
use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)`,
but for a whole batch at once and on any device: frames are one strided view of the batch,
the per-frame steps are broadcast over chunks of frames, and the mel projection is a few
matrix products over the FFT bins each band of filters touches. Because the arithmetic up
to the FFT mirrors torchaudio's step by step, the two agree to ~1e-6 on log-mel values
(tests/test_features.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchaudio.compliance import kaldi

# Kaldi frame settings used by the original (torchaudio defaults unless the original overrides
# them; original `src/dataloader.py`).
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0  # the original passes frame_shift=10
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
HIGH_FREQ_HZ = 0.0  # <= 0 means "relative to Nyquist", as in Kaldi
NUM_MEL_BINS = 128  # hard-coded in the original src/run.py
# VTLN is off (warp factor 1); these are Kaldi's defaults and only satisfy the API.
VTLN_LOW_HZ = 100.0
VTLN_HIGH_HZ = -500.0
# On the CPU, frames are processed in chunks of this many so intermediates stay in cache;
# a GPU takes bigger chunks (only to bound the scratch memory).
CPU_CHUNK_FRAMES = 1024
GPU_CHUNK_FRAMES = 1 << 16
# The CPU mel product runs in bands of this many consecutive filters (see `_mel_bands`).
# MKL's sgemm is fastest when the output width is a multiple of 16, one AVX-512 register of
# float32: on 2 cores, bands of 16 took 0.7x the time of bands cut to minimize multiply-adds.
MEL_BAND_FILTERS = 16
# Kaldi floors mel energies at float32 machine epsilon before the log.
LOG_FLOOR = torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class NormStats:
    """Mean and standard deviation of a dataset's log-mel features."""

    mean: float
    std: float
    source: str = ""


# Published statistics (original `src/get_norm_stats.py`; egs/*/run*.sh of the original code).
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


def mel_filters(sample_rate: int, num_mel_bins: int = NUM_MEL_BINS) -> torch.Tensor:
    """Kaldi's triangular mel filters, as `kaldi_fbank` applies them to the power spectrum.

    Returns:
        (n_fft // 2 + 1, num_mel_bins) float32 weights on the CPU (`frame_geometry`'s n_fft).
    """
    _, _, n_fft = frame_geometry(sample_rate)
    return _mel_matrix(sample_rate, n_fft, num_mel_bins, torch.device("cpu"), torch.float32)


@functools.lru_cache(maxsize=32)
def _hann(window: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Kaldi's "hanning" is the symmetric Hann window. NOTE: the paper says "Hamming"; the
    # original code (and therefore every released checkpoint) uses Hann.
    return torch.hann_window(window, periodic=False, device=device, dtype=dtype)


@dataclass(frozen=True)
class _MelBand:
    """Filters [first, end) of the mel projection and the FFT bins [low, high) they touch."""

    first: int
    end: int
    low: int
    high: int
    weights: torch.Tensor  # (high - low, end - first)


@functools.lru_cache(maxsize=32)
def _mel_bands(
    sample_rate: int,
    n_fft: int,
    num_mel_bins: int,
    device: torch.device,
    dtype: torch.dtype,
    banded: bool = True,
) -> tuple[_MelBand, ...]:
    """The mel projection cut into bands of `MEL_BAND_FILTERS` consecutive filters, for the CPU.

    Each Kaldi filter covers a few neighbouring FFT bins, so the (bins, filters) matrix is
    ~1.5% non-zero. A band multiplies only the bins its filters touch (13% of the dense
    multiply-adds at 16 kHz). The products summed are the same non-negative terms as in the
    dense product, so the result differs from it only in summation order (relative 2e-7).
    On a GPU one dense product is faster: `banded=False` gives a single band holding the
    whole matrix.
    """
    matrix = _mel_matrix(sample_rate, n_fft, num_mel_bins, device, dtype)
    if not banded:
        return (_MelBand(0, num_mel_bins, 0, matrix.shape[0], matrix),)
    bands = []
    for first in range(0, num_mel_bins, MEL_BAND_FILTERS):
        end = min(first + MEL_BAND_FILTERS, num_mel_bins)
        bins = matrix[:, first:end].ne(0).any(dim=1).nonzero().flatten().tolist()
        low, high = (bins[0], bins[-1] + 1) if bins else (0, 0)
        bands.append(_MelBand(first, end, low, high, matrix[low:high, first:end].contiguous()))
    return tuple(bands)


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
        T = 1 + (N - window) // shift. The batched result may be a strided view (each
        clip's rows are followed by a few unused ones); call `.contiguous()` if needed.
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
    clips = waveform if waveform.dim() == 2 else waveform[None]
    B, N = clips.shape
    T = num_frames(N, sample_rate)
    # Frames come from one strided view of the whole batch, read as a single signal: a clip
    # holding a whole number of shifts makes frame k of the flat signal frame k % slots of
    # clip k // slots. The last slots - T frames of each clip straddle into the next clip;
    # they are computed and dropped. Materializing (B, T, W) frames instead costs 2.5x the
    # waveform's memory traffic, a fifth of the run time. Clips are zero-padded to a whole
    # number of shifts where needed; no kept frame reads the padding.
    slots = -(-N // shift)
    if N != slots * shift:
        clips = F.pad(clips, (0, slots * shift - N))
    clips = clips.contiguous()
    used = (B - 1) * slots + T
    frames = clips.reshape(-1).unfold(0, window, shift)[:used]  # (used, W) view
    device, dtype = frames.device, frames.dtype
    chunk = min(CPU_CHUNK_FRAMES if device.type == "cpu" else GPU_CHUNK_FRAMES, used)
    window_fn = _hann(window, device, dtype)
    bands = _mel_bands(sample_rate, n_fft, num_mel_bins, device, dtype, device.type == "cpu")
    log_mel = torch.empty(B * slots, num_mel_bins, device=device, dtype=dtype)
    work = _Workspace(chunk, window_fn, bands, n_fft)
    for start in range(0, used, chunk):
        stop = min(start + chunk, used)
        if stop - start < chunk:  # the last, shorter chunk
            work = _Workspace(stop - start, window_fn, bands, n_fft)
        _frames_to_log_mel(frames[start:stop], work, out=log_mel[start:stop])
    log_mel = log_mel.view(B, slots, num_mel_bins)[:, :T]
    return log_mel if waveform.dim() == 2 else log_mel[0]


class _Workspace:
    """Scratch buffers for `_frames_to_log_mel` and the views it writes through, for chunks
    of exactly `rows` frames. Reused across chunks: no allocation, and no view built, per
    chunk (at ~1 us each, views alone were 5% of the CPU time)."""

    def __init__(
        self, rows: int, window_fn: torch.Tensor, bands: tuple[_MelBand, ...], n_fft: int
    ) -> None:
        width = window_fn.shape[0]
        like = {"device": window_fn.device, "dtype": window_fn.dtype}
        self.window_fn = window_fn
        self.bands = bands
        self.mean = torch.empty(rows, 1, **like)
        self.one = torch.ones((), **like)
        # Centered frames behind a copy of their first sample, which Kaldi's pre-emphasis
        # uses as the first sample's predecessor.
        centered = torch.empty(rows, width + 1, **like)
        self.centered, self.predecessors = centered[:, 1:], centered[:, :-1]
        self.first, self.first_copy = centered[:, 1], centered[:, 0]
        # The frames go into the first W columns of a zeroed (M, n_fft) buffer: the FFT's
        # zero padding then costs nothing, and a padded input takes the FFT's fast path.
        self.padded = torch.zeros(rows, n_fft, **like)
        self.emphasized = self.padded[:, :width]
        self.power = torch.empty(rows, n_fft // 2 + 1, **like)
        self.band_power = [self.power[:, band.low : band.high] for band in bands]


def _window_frames(frames: torch.Tensor, work: _Workspace) -> None:
    """(M, W) raw frames -> windowed, zero-padded (M, n_fft) frames in `work.padded`.

    Bit for bit what torchaudio's Kaldi fbank feeds its FFT (tests/test_features.py): the
    same float32 operations with the same roundings. That matters: bands below ~100 Hz
    hold a single FFT bin whose energy the pre-emphasis has cut by ~30 dB, and a one-ulp
    change in the frame samples moves their log energy by up to 1e-3.
    """
    torch.mean(frames, dim=-1, keepdim=True, out=work.mean)
    torch.sub(frames, work.mean, out=work.centered)  # remove_dc_offset
    work.first_copy.copy_(work.first)
    # Pre-emphasis x[t] - 0.97 x[t - 1] in one pass, with torchaudio's two roundings:
    # addcmul computes x + (-0.97 * p) * 1, and the product by exactly 1 rounds nothing, so
    # even a kernel that fuses its last multiply and add gives round(x - round(0.97 p)).
    # (`torch.sub(x, p, alpha=0.97)` fuses 0.97 p into the subtraction: one rounding.)
    torch.addcmul(
        work.centered, work.predecessors, work.one, value=-PREEMPHASIS, out=work.emphasized
    )
    work.emphasized.mul_(work.window_fn)


def _frames_to_log_mel(frames: torch.Tensor, work: _Workspace, *, out: torch.Tensor) -> None:
    """(M, W) raw frames -> (M, F) log-mel energies, written into `out`.

    Up to the FFT this is torchaudio's arithmetic (`_window_frames`). After the FFT every
    step sums or scales non-negative numbers, so a different order costs only relative
    rounding (~1e-7 in log energy). Speed comes from batching, chunking for cache, scratch
    buffers and views reused across chunks, building the window and filters once, fusing
    the pre-emphasis, banding the mel product, and skipping the reference's unused energy,
    copies and square root.
    """
    _window_frames(frames, work)
    parts = torch.view_as_real(torch.fft.rfft(work.padded)).square_()  # (M, bins, 2)
    torch.add(parts[..., 0], parts[..., 1], out=work.power)  # |X|^2 without the sqrt
    for band, power in zip(work.bands, work.band_power, strict=True):
        torch.mm(power, band.weights, out=out[:, band.first : band.end])
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
    # Two roundings as in the original; the division reuses the subtraction's new tensor.
    return (fbank - stats.mean).div_(2.0 * stats.std)


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
