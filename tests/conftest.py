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


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private results/ folder for runs; weights go to a private folder too, so nothing a
    test trains is written into the checkout's pretrained_models/."""
    monkeypatch.setenv("AST_REPRO_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("AST_REPRO_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    return tmp_path / "results"


@pytest.fixture
def data(tmp_path: Path) -> dict:
    """A tiny prepared dataset (tones in three classes) for training tests."""
    from tests.train_fixtures import tiny_dataset

    return tiny_dataset(tmp_path / "data")
