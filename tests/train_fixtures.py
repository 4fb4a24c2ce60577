"""Tiny labelled datasets and configs for the training-engine tests.

Each class is a tone at its own pitch with a little noise, so a tiny AST separates them in a
few steps; clips are 0.3-0.5 s, features 32 x 32, so a run takes a second or two on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ast_repro.config import TrainConfig, resolve
from ast_repro.datafiles import LabelMap, write_datafile, write_label_csv

SR = 16_000
CLASS_FREQS_HZ = (300.0, 900.0, 2500.0)
MIDS = ("/m/t0", "/m/t1", "/m/t2")
NAMES = ("low tone", "mid tone", "high tone")
# 32 frames x 32 mel bins: a 2 x 2 patch grid for the `test` model at stride 10
TINY_FEATURES = {"target_length": 32, "num_mel_bins": 32}


def write_split(root: Path, name: str, per_class: int, seed: int) -> Path:
    """Write `per_class` clips of every class and their datafile `<root>/<name>.json`."""
    rng = np.random.default_rng(seed)
    entries = []
    for k, freq in enumerate(CLASS_FREQS_HZ):
        for i in range(per_class):
            n = int(SR * rng.uniform(0.3, 0.5))
            t = np.arange(n) / SR
            pitch = freq * rng.uniform(0.95, 1.05)
            x = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(n)
            wav = root / "audio" / f"{name}_{k}_{i}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, x.astype(np.float32), SR, subtype="PCM_16")
            entries.append({"wav": f"audio/{wav.name}", "labels": MIDS[k]})
    datafile = root / f"{name}.json"
    write_datafile(datafile, entries)
    return datafile


def tiny_dataset(root: Path, *, train_per_class: int = 4, eval_per_class: int = 2) -> dict:
    """Train/valid/eval datafiles and a label csv under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    labels = root / "labels.csv"
    write_label_csv(labels, LabelMap(mids=MIDS, names=NAMES))
    return {
        "train_data": str(write_split(root, "train", train_per_class, 1)),
        "valid_data": str(write_split(root, "valid", eval_per_class, 2)),
        "eval_data": str(write_split(root, "eval", eval_per_class, 3)),
        "label_csv": str(labels),
    }


def tiny_overrides(data: dict, **overrides: Any) -> dict[str, Any]:
    """The overrides that put a smoke recipe on the tiny dataset (see `tiny_config`)."""
    return {
        **data,
        **TINY_FEATURES,
        "freqm": 8,
        "timem": 8,
        "imagenet_pretrain": False,
        "batch_size": 4,
        "epochs": 2,
        "lr": 1e-3,
        "loss": "bce",  # the paper's Speech Commands loss (its smoke recipe uses CE)
        "progress": False,
        **overrides,
    }


def tiny_config(data: dict, recipe: str = "smoke_speechcommands", **overrides: Any) -> TrainConfig:
    """A smoke recipe on the tiny dataset: `test` model, 32 x 32 features, no pretraining."""
    return resolve(recipe, tiny_overrides(data, **overrides))
