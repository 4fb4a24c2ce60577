"""Models released with the original code, scored as this package's own checkpoints.

The original repository releases state dicts alone (`egs/audioset/download_models.sh`, the
`README.md` list): their outputs are in the order of the label csv each was trained with,
which the file does not name. A model loaded here carries that order as label names, and its
recipe's config (features, normalization, loss), so `ast-repro evaluate` and `ast-repro
predict` take a released file as they take a training checkpoint:

    ast-repro predict pretrained_models/speechcommands_10_10_0.9812.pth word.wav
"""

from __future__ import annotations

import os
from pathlib import Path

from ast_repro.checkpoint import (
    CheckpointError,
    check_finite,
    load_model,
    load_original_checkpoint,
)
from ast_repro.config import TrainConfig, resolve
from ast_repro.datafiles import LabelMap, read_label_csv
from ast_repro.layout import (
    AUDIOSET_LABEL_CSV,
    SPEECHCOMMANDS_LABEL_ORDER,
    default_root,
    prepared_paths,
    speechcommands_labels,
)
from ast_repro.model import AST
from ast_repro.pretrained import ORIGINAL_CHECKPOINTS, ModelFileMissing, WeightsError


def is_released(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a checkpoint released with the original code."""
    return Path(path).name in ORIGINAL_CHECKPOINTS


def released_labels(name: str, label_csv: str | os.PathLike[str] | None = None) -> LabelMap:
    """The label names of a released original checkpoint, in its output order.

    Speech Commands: the original label csv's order (`ast_repro.layout.speechcommands_labels`),
    which transformers' `MIT/ast-finetuned-speech-commands-v2` shares. AudioSet: the official
    `class_labels_indices.csv` (the original's `egs/audioset/data/`), read from `label_csv` or
    from the prepared AudioSet dataset.

    Raises:
        KeyError: `name` is not a released checkpoint.
        CheckpointError: an AudioSet model's label csv is absent (the message says where it
            goes and how to get it).
    """
    if ORIGINAL_CHECKPOINTS[name].num_labels == len(SPEECHCOMMANDS_LABEL_ORDER):
        return speechcommands_labels()
    csv_path = Path(label_csv or prepared_paths("audioset", default_root("audioset"))["labels"])
    if not csv_path.is_file():
        raise CheckpointError(
            f"{name}: its label names are AudioSet's {AUDIOSET_LABEL_CSV}, not found at "
            f"{csv_path}; get the csvs with `ast-repro data audioset` or save the official "
            "file there"
        )
    return read_label_csv(csv_path)


def load_released(path: str | os.PathLike[str]) -> tuple[AST, TrainConfig, LabelMap]:
    """A released original checkpoint with its recipe's config and its label names.

    Returns:
        (model in eval mode on the CPU, the recipe's config at the file's strides, labels).

    Raises:
        CheckpointError: the file is absent (the message gives its URL), is not the
            released model, holds NaN/inf weights, or its label names cannot be found.
    """
    path = Path(path)
    release = ORIGINAL_CHECKPOINTS[path.name]
    try:
        model = load_original_checkpoint(path)
    except (ModelFileMissing, WeightsError) as exc:
        raise CheckpointError(str(exc)) from exc
    check_finite(model.state_dict(), path)
    strides = {"frequency_stride": release.frequency_stride, "time_stride": release.time_stride}
    config = resolve(release.recipe, {**strides, "run_name": path.stem})
    return model, config, released_labels(path.name)


def load_labelled_model(path: str | os.PathLike[str]) -> tuple[AST, TrainConfig, LabelMap]:
    """A model to score with, its config and label names: a training checkpoint of this
    package (`ast_repro.checkpoint.load_model`) or a released original file by its name.

    Raises:
        CheckpointError: see `load_model` and `load_released`.
    """
    return load_released(path) if is_released(path) else load_model(path)
