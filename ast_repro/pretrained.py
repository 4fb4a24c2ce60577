"""Where pretrained weight files come from and where they are kept (original_ast.md 4.1, 5.5).

The catalogue of checkpoints released with the original code (with their Dropbox URLs and
Hugging Face copies), the local folder that holds downloaded files, and a loader that reads
a .pth state dict safely. Nothing here downloads: a missing file is an error that says
which URL to fetch and where to save it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ast_repro.errors import AstReproError

# Where pretrained files are looked for (the original used `pretrained_models/`, 4.1).
PRETRAINED_DIR_ENV = "AST_REPRO_PRETRAINED_DIR"
PRETRAINED_DIR_NAME = "pretrained_models"
# The digits-trained stand-in for DeiT written by `ast_repro.proxy_pretrain`.
PROXY_FILE = "proxy_deit_test_digits.pth"

_DROPBOX = "https://www.dropbox.com/s/{}/{}?dl=1"


class ModelFileMissing(AstReproError, FileNotFoundError):
    """A weight file is absent; the message says what to download and where to put it."""


class WeightsError(AstReproError, ValueError):
    """A state dict does not fit the model; the message names the key and the shapes."""


@dataclass(frozen=True)
class OriginalCheckpoint:
    """A checkpoint released with the original code (original_ast.md 5.5)."""

    url: str
    frequency_stride: int
    time_stride: int
    max_length: int
    num_labels: int
    metric: str
    hf_repo: str | None


def _release(key: str, name: str, stride: int, metric: str, hf: str | None) -> OriginalCheckpoint:
    speech = name.startswith("speechcommands")
    return OriginalCheckpoint(
        url=_DROPBOX.format(key, name),
        frequency_stride=stride,
        time_stride=stride,
        max_length=128 if speech else 1024,
        num_labels=35 if speech else 527,
        metric=metric,
        hf_repo=None if hf is None else "MIT/ast-finetuned-" + hf,
    )


ORIGINAL_CHECKPOINTS: dict[str, OriginalCheckpoint] = {
    name: _release(key, name, stride, metric, hf)
    for key, name, stride, metric, hf in [
        ("ca0b1v2nlxzyeb4", "audioset_10_10_0.4593.pth", 10, "AudioSet mAP 0.4593 (WA)",
         "audioset-10-10-0.4593"),
        ("1tv0hovue1bxupk", "audioset_10_10_0.4495.pth", 10, "AudioSet mAP 0.4495",
         "audioset-10-10-0.450"),
        ("6u5sikl4b9wo4u5", "audioset_10_10_0.4483.pth", 10, "AudioSet mAP 0.4483",
         "audioset-10-10-0.448"),
        ("kt6i0v9fvfm1mbq", "audioset_10_10_0.4475.pth", 10, "AudioSet mAP 0.4475",
         "audioset-10-10-0.448-v2"),
        ("snfhx3tizr4nuc8", "audioset_12_12_0.4467.pth", 12, "AudioSet mAP 0.4467",
         "audioset-12-12-0.447"),
        ("z18s6pemtnxm4k7", "audioset_14_14_0.4431.pth", 14, "AudioSet mAP 0.4431",
         "audioset-14-14-0.443"),
        ("mdsa4t1xmcimia6", "audioset_16_16_0.4422.pth", 16, "AudioSet mAP 0.4422",
         "audioset-16-16-0.442"),
        ("q0tbqpwv44pquwy", "speechcommands_10_10_0.9812.pth", 10,
         "Speech Commands V2-35 accuracy 0.9812", "speech-commands-v2"),
        ("u5i5v0bej24l47p", "audioset_bal_10_10_0.3499.pth", 10,
         "balanced AudioSet mAP 0.3499", None),
    ]
}  # fmt: skip


def pretrained_dir() -> Path:
    """Folder for weight files: $AST_REPRO_PRETRAINED_DIR, else `pretrained_models/` at the
    root of a source checkout, else `pretrained_models/` in the working directory."""
    if os.environ.get(PRETRAINED_DIR_ENV):
        return Path(os.environ[PRETRAINED_DIR_ENV])
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return root / PRETRAINED_DIR_NAME
    return Path.cwd() / PRETRAINED_DIR_NAME


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a state dict from a .pth file, unwrapping {"model": ...} / {"state_dict": ...}."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileMissing(f"{path}: weight file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({exc})") from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(payload, Mapping) and isinstance(payload.get(wrapper), Mapping):
            payload = payload[wrapper]
    if not isinstance(payload, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in payload.values()
    ):
        raise WeightsError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(payload)


def original_checkpoint_path(name: str) -> Path:
    """Local path of a released original checkpoint, e.g. "audioset_10_10_0.4593.pth".

    Raises:
        ModelFileMissing: the file is not in `pretrained_dir()`; the message gives its URL.
    """
    if name not in ORIGINAL_CHECKPOINTS:
        raise KeyError(f"unknown checkpoint {name!r}; known: {', '.join(ORIGINAL_CHECKPOINTS)}")
    path = pretrained_dir() / name
    if not path.is_file():
        raise ModelFileMissing(
            f"{path} not found: download {ORIGINAL_CHECKPOINTS[name].url} and save it there "
            f"(or set {PRETRAINED_DIR_ENV} to the folder holding it)"
        )
    return path
