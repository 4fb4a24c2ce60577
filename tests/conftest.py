"""Shared fixtures: small real audio files written with soundfile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    """write_wav(name, samples (N,) or (N, C), sample_rate, subtype="PCM_16") -> path."""

    def _write(
        name: str, samples: np.ndarray, sample_rate: int = 16_000, subtype: str = "PCM_16"
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, sample_rate, subtype=subtype)
        return path

    return _write


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tone(seconds: float, sample_rate: int, freq: float, rng: np.random.Generator) -> np.ndarray:
    """A tone with a little noise, scaled well inside [-1, 1]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )
