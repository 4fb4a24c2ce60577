"""Datasets stage: real downloaders, offline synthetic twins and AST datafiles.

The original recipes' data preparation (`egs/esc50/prep_esc50.py`,
`egs/speechcommands/prep_sc.py`, AudioSet's datafiles and `egs/audioset/gen_weight_file.py`),
plus a datafile validator. Training imports nothing from this package: it reads what
preparation writes at the paths of `ast_repro.layout` (`prepared_paths(name, root)`: the
train/valid/eval datafiles, the label csv and AudioSet's sampler weights).
"""

from ast_repro.datasets.audioset import prepare_audioset
from ast_repro.datasets.cli import fetch
from ast_repro.datasets.esc50 import prepare_esc50
from ast_repro.datasets.speechcommands import prepare_speechcommands
from ast_repro.datasets.validate import validate_datafile
from ast_repro.layout import DATASET_NAMES, default_root, prepared_paths
from ast_repro.sampling import read_weight_file

__all__ = [
    "DATASET_NAMES",
    "default_root",
    "fetch",
    "prepare_audioset",
    "prepare_esc50",
    "prepare_speechcommands",
    "prepared_paths",
    "read_weight_file",
    "validate_datafile",
]
