"""Datasets stage: real downloaders, offline synthetic twins and AST datafiles.

Sections 2.3-2.5 of the original recipes (ESC-50, Speech Commands V2, AudioSet), plus a
waveform cache and a datafile validator. `prepared_paths(name, root)` is what training code
needs: the train/valid/eval datafiles and the label csv of a prepared dataset.
"""

from ast_repro.datasets.audioset import prepare_audioset
from ast_repro.datasets.cache import WaveformCache, build_cache, open_cache
from ast_repro.datasets.cli import fetch
from ast_repro.datasets.esc50 import prepare_esc50
from ast_repro.datasets.layout import DATASET_NAMES, default_root, prepared_paths
from ast_repro.datasets.speechcommands import prepare_speechcommands
from ast_repro.datasets.validate import validate_datafile
from ast_repro.sampling import read_weight_file

__all__ = [
    "DATASET_NAMES",
    "WaveformCache",
    "build_cache",
    "default_root",
    "fetch",
    "open_cache",
    "prepare_audioset",
    "prepare_esc50",
    "prepare_speechcommands",
    "prepared_paths",
    "read_weight_file",
    "validate_datafile",
]
