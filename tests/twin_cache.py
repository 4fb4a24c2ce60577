"""Tiny synthetic twins built once per test process and shared by the dataset tests.

The archives are treated as read-only by the tests (preparation copies or downloads them),
so building each one once keeps the dataset tests fast on two CPU cores.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

from ast_repro.datasets.registry import RECORD_NAME, KnownFile, read_record
from ast_repro.datasets.synth import make_audioset_twin, make_esc50_twin, make_speechcommands_twin

# The Speech Commands twin is spoken by espeak-ng, a system package pip cannot install.
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng); Speech Commands twin skipped",
)

_ROOT = Path(tempfile.mkdtemp(prefix="ast-repro-twins-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

# ESC-50: 1 clip per class = 50 clips, 10 per fold.
ESC50_CLIPS_PER_CLASS = 1
# Speech Commands: 10 speakers x 1 take = 350 clips, split 8 / 1 / 1 speakers.
SC_SPEAKERS = 10
# AudioSet: 4 classes, 2 clips per class in balanced and eval, unbalanced 2x balanced.
AS_CLASSES = 4
AS_CLIPS_PER_CLASS = 2


@functools.cache
def esc50_twin(seed: int = 0) -> Path:
    """Path of a 50-clip ESC-50 twin zip."""
    return make_esc50_twin(
        _ROOT / f"esc50-{seed}", seed=seed, clips_per_class=ESC50_CLIPS_PER_CLASS
    )


@functools.cache
def speechcommands_twin(seed: int = 0) -> Path:
    """Path of a 350-clip Speech Commands twin tar.gz (needs espeak-ng)."""
    return make_speechcommands_twin(_ROOT / f"sc-{seed}", seed=seed, num_speakers=SC_SPEAKERS)


@functools.cache
def audioset_twin(seed: int = 0) -> Path:
    """Folder of a 4-class AudioSet twin (csv/ and audio/)."""
    return make_audioset_twin(
        _ROOT / f"as-{seed}",
        seed=seed,
        num_classes=AS_CLASSES,
        clips_per_class=AS_CLIPS_PER_CLASS,
    )


def checksums(twin: Path) -> dict[str, KnownFile]:
    """A twin's own registry entries, written at generation beside its archive (or folder)."""
    return read_record((twin if twin.is_dir() else twin.parent) / RECORD_NAME)
