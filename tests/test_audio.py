"""Audio loading: scale, channel policy, resampling, the clip rules of `ast_repro.checks`,
and errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from ast_repro.audio import AudioError, load_audio, read_audio_info
from ast_repro.checks import check_clip, read_header, resampled_length
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


def test_truncated_files_and_integer_samples_stored_as_floats_are_refused(write_wav, rng) -> None:
    whole = write_wav("whole.wav", 0.1 * rng.standard_normal(16000), subtype="PCM_16")
    cut = whole.with_name("cut.wav")
    cut.write_bytes(whole.read_bytes()[: 44 + 8000])  # libsndfile reads 4000 of 16000
    header = read_header(cut)
    assert (header.frames, header.promised_frames) == (4000, 16000)
    assert read_header(whole).promised_frames is None
    with pytest.raises(AudioError, match=r"cut\.wav: the header promises 16000 samples but"):
        load_audio(cut)
    int16 = (8000 * rng.standard_normal(8000)).astype(np.float32)
    loud = write_wav("loud.wav", int16, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"loud\.wav: float samples reach .* outside \[-1, 1\]"):
        load_audio(loud)
    # a float file a little over full scale is used as it is
    hot = write_wav("hot.wav", np.full(800, 1.5, dtype=np.float32), subtype="FLOAT")
    assert load_audio(hot).max().item() == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("frames", "rate"),
    [(399, 16000), (1099, 44100), (1102, 44100), (199, 8000), (200, 8000), (551, 22050)],
)
def test_the_header_check_predicts_the_resampled_length(write_wav, frames, rate) -> None:
    # validate-data decides "too short" from the header; load_audio from the samples
    path = write_wav(f"n{frames}_{rate}.wav", np.full(frames, 0.1, np.float32), rate)
    expected = AF.resample(torch.zeros(frames), orig_freq=rate, new_freq=16000).numel()
    assert resampled_length(frames, rate, 16000) == expected
    refused = check_clip(path, sample_rate=16000).problems
    assert bool(refused) == (expected < 400)
    if refused:
        assert refused[0].kind == "too short"
        with pytest.raises(AudioError, match="shorter than one 25 ms frame"):
            load_audio(path)
    else:
        assert load_audio(path).numel() == expected
