"""Audio loading: scale, channel policy, resampling, and errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from ast_repro.audio import AudioError, load_audio, read_audio_info
from tests.conftest import tone


def test_float_scale_and_first_channel(write_wav, rng) -> None:
    left, right = tone(0.5, 16000, 440, rng), tone(0.5, 16000, 880, rng)
    path = write_wav("stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    first = load_audio(path)
    assert first.dtype == torch.float32 and first.shape == (8000,)
    np.testing.assert_allclose(first.numpy(), left, atol=0)
    mean = load_audio(path, channels="mean")
    np.testing.assert_allclose(mean.numpy(), (left + right) / 2, atol=1e-7)
    assert read_audio_info(path) == (16000, 8000, 2)


def test_pcm16_is_scaled_to_unit_range(write_wav) -> None:
    samples = np.array([0.0, 0.5, -0.5, 0.999] * 200, dtype=np.float32)
    waveform = load_audio(write_wav("pcm.wav", samples, subtype="PCM_16"))
    np.testing.assert_allclose(waveform.numpy(), samples, atol=1 / 32768)


def test_resamples_to_16k_like_torchaudio(write_wav, rng) -> None:
    samples = tone(1.0, 44100, 1000, rng)
    waveform = load_audio(write_wav("esc.wav", samples, 44100, subtype="FLOAT"))
    expected = AF.resample(torch.from_numpy(samples), orig_freq=44100, new_freq=16000)
    assert waveform.shape == (16000,)
    torch.testing.assert_close(waveform, expected)
    kept = load_audio(write_wav("keep.wav", samples, 44100, subtype="FLOAT"), sample_rate=None)
    assert kept.shape == (44100,)


def test_errors_name_the_file_and_problem(write_wav, tmp_path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match=r"garbage\.wav: unreadable audio"):
        load_audio(garbage)
    empty = write_wav("empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match=r"empty\.wav: the file holds no samples"):
        load_audio(empty)
    short = write_wav("short.wav", np.zeros(399, dtype=np.float32))
    with pytest.raises(AudioError, match=r"short\.wav: 399 samples .* shorter than one 25 ms"):
        load_audio(short)
    bad = np.zeros(800, dtype=np.float32)
    bad[10] = np.nan
    nan_file = write_wav("nan.wav", bad, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: the file holds NaN"):
        load_audio(nan_file)
    with pytest.raises(ValueError, match="channels"):
        load_audio(short, channels="left")
