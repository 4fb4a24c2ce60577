"""Offline synthetic twins of ESC-50, Speech Commands V2 and AudioSet (DESIGN.md).

Each twin has its real dataset's on-disk layout and archive format and is generated
deterministically from a seed, so the real download/verify/extract/prepare code runs on it.
"""

from ast_repro.datasets.synth.audioset import make_audioset_twin
from ast_repro.datasets.synth.esc50 import make_esc50_twin
from ast_repro.datasets.synth.speechcommands import EspeakMissingError, make_speechcommands_twin

__all__ = [
    "EspeakMissingError",
    "make_audioset_twin",
    "make_esc50_twin",
    "make_speechcommands_twin",
]
