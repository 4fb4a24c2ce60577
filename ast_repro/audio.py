"""Reading audio files into float waveforms (original `src/dataloader.py`).

The original reads with `torchaudio.load` (float32 in [-1, 1]) and uses the first channel.
We read with soundfile, which gives the same float32 scale, and resample with torchaudio
when a file is not at the model's 16 kHz (the original expects pre-resampled files). What a
clip must satisfy is decided in `ast_repro.checks`.
"""

from __future__ import annotations

import os

import torch
import torchaudio.functional as AF

from ast_repro.checks import (
    AudioError,
    ChannelPolicy,
    decode,
    header_problems,
    read_header,
    sample_problems,
)

__all__ = ["TARGET_SAMPLE_RATE", "AudioError", "ChannelPolicy", "load_audio", "read_audio_info"]

# AST models are trained on 16 kHz audio (original `src/dataloader.py`, `egs/esc50/prep_esc50.py`,
# `egs/speechcommands/prep_sc.py`).
TARGET_SAMPLE_RATE = 16_000


def read_audio_info(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """Header of an audio file without decoding it.

    Returns:
        (sample_rate in Hz, number of frames per channel, number of channels).

    Raises:
        AudioError: missing or unreadable file.
    """
    header = read_header(path)
    return header.sample_rate, header.frames, header.channels


def load_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int | None = TARGET_SAMPLE_RATE,
    channels: ChannelPolicy = "first",
) -> torch.Tensor:
    """Load one audio file as a mono float32 waveform, refused on the rules of
    `ast_repro.checks` (the ones `ast-repro validate-data` reports).

    Args:
        path: any format libsndfile reads (wav, flac, ogg, ...).
        sample_rate: resample to this rate in Hz; None keeps the file's own rate.
        channels: "first" takes channel 0, as the original does; "mean" averages channels.

    Returns:
        (N,) float32 samples in [-1, 1] (float files up to `checks.MAX_FLOAT_PEAK`).

    Raises:
        AudioError: the file is missing, unreadable, empty, truncated, shorter than one
            25 ms frame (after resampling), holds NaN/inf samples or float samples far
            outside [-1, 1].
    """
    if channels not in ("first", "mean"):
        raise ValueError(f"channels must be 'first' or 'mean', not {channels!r}")
    header = read_header(path)
    rate = sample_rate or header.sample_rate
    for problem in header_problems(header, sample_rate=rate):
        raise AudioError(path, problem.detail)
    mono = decode(path, channels)  # (N,) at the file's rate
    for problem in sample_problems(mono, header):
        raise AudioError(path, problem.detail)
    waveform = torch.from_numpy(mono)
    if rate != header.sample_rate:
        waveform = AF.resample(waveform, orig_freq=header.sample_rate, new_freq=rate)
    return waveform
