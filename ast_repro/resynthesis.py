"""Hearing features: a waveform back from Kaldi log-mel features (notebook 04).

The masks and the Speech Commands noise and roll of the original (`src/dataloader.py`,
`AudiosetDataset.__getitem__`) act on the features, not on the sound, so they have no
waveform of their own. To hear what they do, `fbank_to_waveform` turns features back into
sound: each mel band's energy is spread evenly over the FFT bins its triangular filter
covers, and Griffin-Lim (torchaudio's) finds a phase. The result is an approximation, good
for listening and not used in training; comparing clean and augmented features resynthesized
the same way makes the difference audible.
"""

from __future__ import annotations

import torch
import torchaudio

from ast_repro.features import PREEMPHASIS, NormStats, frame_geometry, mel_filters

GRIFFIN_LIM_ITERATIONS = 32


def fbank_to_waveform(
    fbank: torch.Tensor,
    sample_rate: int = 16_000,
    *,
    norm: NormStats | None = None,
    n_iter: int = GRIFFIN_LIM_ITERATIONS,
) -> torch.Tensor:
    """A waveform whose Kaldi log-mel features approximate `fbank`.

    Args:
        fbank: (T, F) log-mel features, natural log of the mel power (`kaldi_fbank`), or
            normalized features when `norm` is given.
        sample_rate: Hz.
        norm: the statistics `fbank` was normalized with (`ast_repro.features.normalize`);
            None for un-normalized features.
        n_iter: Griffin-Lim iterations (deterministic: the phase starts at zero).

    Returns:
        (N,) float32 with N = (T - 1) * shift + window samples (10 ms frames, 25 ms windows).

    Raises:
        ValueError: `fbank` is not 2-D.
    """
    if fbank.dim() != 2:
        raise ValueError(f"fbank must be (T, F), got shape {tuple(fbank.shape)}")
    log_mel = fbank.detach().float().cpu()
    if norm is not None:
        log_mel = log_mel * (2.0 * norm.std) + norm.mean  # undo `normalize`
    frames, bins = log_mel.shape
    window, shift, n_fft = frame_geometry(sample_rate)
    filters = mel_filters(sample_rate, bins)  # (K, F)
    # mel band power -> power per unit filter weight -> each FFT bin's mean over its bands
    per_weight = log_mel.exp() / filters.sum(dim=0).clamp_min(1e-12)  # (T, F)
    coverage = filters.sum(dim=1)  # (K,): 0 below 20 Hz and at Nyquist
    power = (per_weight @ filters.T) / coverage.clamp_min(1e-12)  # (T, K)
    magnitude = (power * (coverage > 0)).sqrt().T  # (K, T)
    griffin_lim = torchaudio.transforms.GriffinLim(
        n_fft=n_fft, win_length=window, hop_length=shift, power=1.0, n_iter=n_iter,
        rand_init=False,
    )  # fmt: skip
    # Griffin-Lim centres frame t on sample t * shift, Kaldi starts it there: half a window
    # of silence on each side puts the frames where `kaldi_fbank` reads them.
    waveform = torch.nn.functional.pad(griffin_lim(magnitude), (window // 2, window // 2))
    # the features were computed after pre-emphasis; undo it
    return torchaudio.functional.deemphasis(waveform, coeff=PREEMPHASIS)
