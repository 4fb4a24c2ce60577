"""Reading audio files into float waveforms (original `src/dataloader.py`).

The original reads with `torchaudio.load` (float32 in [-1, 1]) and uses the first channel.
We read with soundfile, which gives the same float32 scale, and resample with torchaudio
when a file is not at the model's 16 kHz (the original expects pre-resampled files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from ast_repro.errors import AstReproError
from ast_repro.features import FRAME_LENGTH_MS, frame_geometry

# AST models are trained on 16 kHz audio (original `src/dataloader.py`, `egs/esc50/prep_esc50.py`,
# `egs/speechcommands/prep_sc.py`).
TARGET_SAMPLE_RATE = 16_000

ChannelPolicy = Literal["first", "mean"]


class AudioError(AstReproError, ValueError):
    """An audio file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str | None = None) -> None:
        # A single argument is a whole message: that is how torch.utils.data re-raises an
        # error of a DataLoader worker in the main process.
        super().__init__(str(path) if problem is None else f"{path}: {problem}")
        self.path = None if problem is None else Path(path)
        self.problem = str(path) if problem is None else problem


def read_audio_info(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """Header of an audio file without decoding it.

    Returns:
        (sample_rate in Hz, number of frames per channel, number of channels).

    Raises:
        AudioError: missing or unreadable file.
    """
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def load_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int | None = TARGET_SAMPLE_RATE,
    channels: ChannelPolicy = "first",
) -> torch.Tensor:
    """Load one audio file as a mono float32 waveform.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, ...).
        sample_rate: resample to this rate in Hz; None keeps the file's own rate.
        channels: "first" takes channel 0, as the original does; "mean" averages channels.

    Returns:
        (N,) float32 samples in [-1, 1].

    Raises:
        AudioError: the file is missing, unreadable, empty, shorter than one 25 ms frame
            (after resampling), or holds NaN/inf samples.
    """
    if channels not in ("first", "mean"):
        raise ValueError(f"channels must be 'first' or 'mean', not {channels!r}")
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "the file holds no samples")
    mono = data[:, 0] if channels == "first" else data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(path, "the file holds NaN or infinite samples")
    waveform = torch.from_numpy(np.ascontiguousarray(mono))
    if sample_rate is not None and file_rate != sample_rate:
        waveform = AF.resample(waveform, orig_freq=int(file_rate), new_freq=sample_rate)
    rate = sample_rate or file_rate
    # One Kaldi frame (25 ms); a shorter clip has no frame at all.
    window = frame_geometry(int(rate))[0]
    if waveform.numel() < window:
        raise AudioError(
            path,
            f"{waveform.numel()} samples at {rate} Hz is shorter than one "
            f"{FRAME_LENGTH_MS:g} ms frame ({window} samples)",
        )
    return waveform
