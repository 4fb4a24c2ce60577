"""Procedural sound classes for the ESC-50 and AudioSet twins (DESIGN.md, "Offline twins").

The real ESC-50 and AudioSet audio cannot be fetched offline, so the twins need classes that a
spectrogram model must actually learn to tell apart. A class is a point in a small design
space, and each clip is drawn at random inside that class's ranges:

- timbre (5): harmonic (all partials), hollow (odd partials), bell (inharmonic FM),
  noise band (narrow-band noise), clicks (resonant click train);
- pattern (5): steady, hits (percussive, repeated), tremolo (fast AM), sweeps (rising
  glides), bursts (a few swelling events);
- register (2): low or high pitch / centre frequency.

5 x 5 x 2 = 50 classes. Within a class the pitch, rates, number of partials, envelope
times, onset, level and the coloured background noise all vary from clip to clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

TIMBRES = ("harmonic", "hollow", "bell", "noise band", "clicks")
PATTERNS = ("steady", "hits", "tremolo", "sweeps", "bursts")
REGISTERS = ("low", "high")
NUM_CLASSES = len(TIMBRES) * len(PATTERNS) * len(REGISTERS)

# Pitch (tones) or centre frequency (noise bands, clicks) ranges in Hz, drawn log-uniformly;
# the high register stays well under the 8 kHz Nyquist limit of 16 kHz audio.
_TONE_RANGE_HZ = {"low": (110.0, 330.0), "high": (660.0, 1760.0)}
_BAND_RANGE_HZ = {"low": (300.0, 900.0), "high": (2500.0, 5000.0)}
# Peak level of a finished clip, drawn uniformly (full scale is 1.0).
_PEAK_RANGE = (0.25, 0.9)
# Background noise level below the clip's RMS, in dB, drawn uniformly.
_SNR_RANGE_DB = (18.0, 35.0)


@dataclass(frozen=True)
class SoundClass:
    """One synthetic sound class: a (timbre, pattern, register) triple."""

    timbre: str
    pattern: str
    register: str

    @property
    def description(self) -> str:
        return f"{self.timbre.capitalize()} {self.pattern}, {self.register}"


def sound_class(index: int) -> SoundClass:
    """The class with this index in 0..49 (timbre-major, then pattern, then register)."""
    if not 0 <= index < NUM_CLASSES:
        raise ValueError(f"sound class index must be in 0..{NUM_CLASSES - 1}, got {index}")
    timbre, rest = divmod(index, len(PATTERNS) * len(REGISTERS))
    pattern, register = divmod(rest, len(REGISTERS))
    return SoundClass(TIMBRES[timbre], PATTERNS[pattern], REGISTERS[register])


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _phase(freq_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    return 2.0 * np.pi * np.cumsum(freq_hz) / sample_rate


def _lowpass_noise(rng: np.random.Generator, n: int, cutoff_hz: float, sr: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum *= np.exp(-0.5 * (freqs / cutoff_hz) ** 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.std(noise) + 1e-12)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.shape[0], dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= freqs ** (exponent / 2.0)
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _events(rng: np.random.Generator, duration: float, rate_hz: float) -> np.ndarray:
    """Event onsets in seconds, roughly `rate_hz` per second with jitter."""
    period = 1.0 / rate_hz
    start = rng.uniform(0.0, period)
    onsets = np.arange(start, duration - 0.05, period)
    return np.clip(onsets + rng.uniform(-0.15, 0.15, onsets.shape) * period, 0.0, duration)


def _pattern(
    pattern: str, rng: np.random.Generator, t: np.ndarray, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """(envelope, pitch multiplier), both shaped like `t`."""
    pitch = np.ones_like(t)
    if pattern in ("steady", "tremolo"):
        onset = rng.uniform(0.0, 0.15 * duration)
        offset = duration - rng.uniform(0.0, 0.15 * duration)
        attack, release = rng.uniform(0.02, 0.3), rng.uniform(0.1, 0.5)
        envelope = np.clip((t - onset) / attack, 0, 1) * np.clip((offset - t) / release, 0, 1)
        pitch = 1.0 + 0.006 * np.sin(2 * np.pi * rng.uniform(4.0, 6.0) * t)
        if pattern == "tremolo":
            envelope = envelope * np.sin(np.pi * rng.uniform(6.0, 12.0) * t) ** 2
        return envelope, pitch
    envelope = np.zeros_like(t)
    if pattern == "hits":
        decay = rng.uniform(0.04, 0.15)
        for onset in _events(rng, duration, rng.uniform(1.0, 2.5)):
            after = t - onset
            envelope += np.where(after >= 0, np.exp(-np.maximum(after, 0) / decay), 0.0)
        return np.minimum(envelope, 1.0), pitch
    if pattern == "sweeps":
        length = rng.uniform(0.5, 1.1)
        octaves = rng.uniform(0.7, 1.5)
        for onset in _events(rng, duration, 1.0 / (length + rng.uniform(0.1, 0.4))):
            inside = (t >= onset) & (t < onset + length)
            progress = (t[inside] - onset) / length
            envelope[inside] = np.sin(np.pi * progress) ** 0.5
            pitch[inside] = 2.0 ** (octaves * progress)
        return envelope, pitch
    if pattern == "bursts":
        count = int(rng.integers(2, 5))
        slots = np.sort(rng.choice(count * 2, size=count, replace=False))
        slot_length = duration / (count * 2)
        for slot in slots:
            length = rng.uniform(0.5, 0.95) * slot_length * 1.6
            onset = slot * slot_length
            inside = (t >= onset) & (t < onset + length)
            progress = (t[inside] - onset) / length
            envelope[inside] = np.sin(np.pi * progress) ** 2
            pitch[inside] = 2.0 ** (-0.25 * progress)
        return envelope, pitch
    raise ValueError(f"unknown pattern {pattern!r}")


def _timbre(
    timbre: str,
    rng: np.random.Generator,
    freq: np.ndarray,
    envelope: np.ndarray,
    sample_rate: int,
) -> np.ndarray:
    nyquist_margin = 0.45 * sample_rate
    if timbre in ("harmonic", "hollow"):
        phase = _phase(freq, sample_rate)
        num_partials = int(rng.integers(6, 14))
        tilt = rng.uniform(0.8, 1.6) if timbre == "harmonic" else rng.uniform(1.4, 2.2)
        ks = range(1, 2 * num_partials, 2) if timbre == "hollow" else range(1, num_partials + 1)
        out = np.zeros_like(freq)
        for k in ks:
            if k * freq.max() < nyquist_margin:
                out += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**tilt
        return out
    if timbre == "bell":
        ratio = rng.uniform(1.3, 3.7)
        index = rng.uniform(1.5, 4.0) * (0.3 + 0.7 * envelope)
        modulator = np.sin(_phase(freq * ratio, sample_rate))
        return np.sin(_phase(freq, sample_rate) + index * modulator)
    if timbre == "noise band":
        bandwidth = rng.uniform(0.08, 0.25) * float(np.median(freq))
        noise = _lowpass_noise(rng, freq.shape[0], bandwidth, sample_rate)
        return noise * np.cos(_phase(freq, sample_rate))
    if timbre == "clicks":
        rate = rng.uniform(12.0, 40.0)
        period = max(1, int(sample_rate / rate))
        impulses = np.zeros_like(freq)
        impulses[rng.integers(0, period) :: period] = 1.0
        decay = np.exp(-1.0 / (rng.uniform(0.004, 0.012) * sample_rate))
        click_envelope = lfilter([1.0], [1.0, -decay], impulses)
        return click_envelope * np.sin(_phase(freq, sample_rate))
    raise ValueError(f"unknown timbre {timbre!r}")


def render(
    sound: SoundClass,
    rng: np.random.Generator,
    *,
    sample_rate: int,
    duration_s: float,
    background: bool = True,
) -> np.ndarray:
    """One random clip of a sound class.

    Args:
        sound: the class to draw from.
        rng: source of all randomness (the clip is a pure function of its state).
        sample_rate: Hz.
        duration_s: clip length in seconds.
        background: add coloured background noise at a random SNR.

    Returns:
        (N,) float32 waveform, N = round(duration_s * sample_rate), peak in [0.25, 0.9].
    """
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    envelope, pitch = _pattern(sound.pattern, rng, t, duration_s)
    ranges = _BAND_RANGE_HZ if sound.timbre in ("noise band", "clicks") else _TONE_RANGE_HZ
    base = _log_uniform(rng, *ranges[sound.register])
    signal = _timbre(sound.timbre, rng, base * pitch, envelope, sample_rate) * envelope
    rms = float(np.sqrt(np.mean(signal**2))) + 1e-12
    if background:
        snr_db = rng.uniform(*_SNR_RANGE_DB)
        noise = coloured_noise(rng, n, rng.uniform(0.0, 2.0))
        signal = signal + noise * rms * 10 ** (-snr_db / 20)
    signal = signal / (np.max(np.abs(signal)) + 1e-12) * rng.uniform(*_PEAK_RANGE)
    return signal.astype(np.float32)
