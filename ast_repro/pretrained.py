"""Where pretrained weight files come from and where they are kept.

The catalogue of checkpoints released with the original code (with their Dropbox URLs, as
the original's `README.md` and `egs/audioset/download_models.sh` list them, and their
Hugging Face copies), the ImageNet weights compared in paper Table 3, the local folder that
holds downloaded files (the original's `pretrained_models/`), and where the ImageNet weights
of each model size are. Nothing here reads or downloads a file (`ast_repro.checkpoint` reads
them): a missing file is an error that says which URL to fetch and where to save it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ast_repro.errors import AstReproError
from ast_repro.model_config import MODEL_SIZES

# Where pretrained files are looked for (the original's `pretrained_models/`, where
# `src/models/ast_models.py` points TORCH_HOME).
PRETRAINED_DIR_ENV = "AST_REPRO_PRETRAINED_DIR"
PRETRAINED_DIR_NAME = "pretrained_models"
# The digits-trained stand-in for DeiT written by `ast_repro.proxy_pretrain`.
PROXY_FILE = "proxy_deit_test_digits.pth"

_DROPBOX = "https://www.dropbox.com/s/{}/{}?dl=1"
# Where DeiT's and timm 0.4.5's original ViT weights were released.
_DEIT_RELEASES = "https://dl.fbaipublicfiles.com/deit/"
_VIT_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/"


class ModelFileMissing(AstReproError, FileNotFoundError):
    """A weight file is absent; the message says what to download and where to put it."""


class WeightsError(AstReproError, ValueError):
    """A state dict does not fit the model; the message names the key and the shapes."""


@dataclass(frozen=True)
class OriginalCheckpoint:
    """A checkpoint released with the original code (listed in its `README.md`)."""

    url: str
    frequency_stride: int
    time_stride: int
    max_length: int
    num_labels: int
    metric: str
    hf_repo: str | None
    recipe: str  # the `ast_repro.recipes` recipe it was trained with (features, loss)


def _release(key: str, name: str, stride: int, metric: str, hf: str | None) -> OriginalCheckpoint:
    speech, balanced = name.startswith("speechcommands"), name.startswith("audioset_bal_")
    return OriginalCheckpoint(
        url=_DROPBOX.format(key, name),
        frequency_stride=stride,
        time_stride=stride,
        max_length=128 if speech else 1024,
        num_labels=35 if speech else 527,
        metric=metric,
        hf_repo=None if hf is None else "MIT/ast-finetuned-" + hf,
        recipe="speechcommands" if speech else "audioset_" + ("balanced" if balanced else "full"),
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


@dataclass(frozen=True)
class ImageNetSource:
    """ImageNet weights an AST can start from (paper Table 3), as released in timm's format.

    Attributes:
        label: the row of paper Table 3.
        model_size: the `ast_repro.model.MODEL_SIZES` key of the same width and depth.
        file: the released file's name, looked up in `pretrained_dir()`.
        url: where that file was released.
        timm_name: the timm model and pretrained tag holding the same weights, or None where
            timm (>= 1.0) no longer lists them.
    """

    label: str
    model_size: str
    file: str
    url: str
    timm_name: str | None


def _source(label: str, size: str, releases: str, file: str, tag: str | None) -> ImageNetSource:
    return ImageNetSource(label, size, file, releases + file, tag)


# Paper Table 3, keyed by timm's model name. The ViT rows are Google's original
# ImageNet-21k-pretrained, ImageNet-1k-fine-tuned models, the defaults of the timm 0.4.5 the
# original code pins (Table 3's 85.1% top-1 for ViT-Large is theirs); the distilled DeiT is
# the default weights of the base384 size.
IMAGENET_SOURCES: dict[str, ImageNetSource] = {
    "vit_base_patch16_384": _source("ViT-Base", "base384", _VIT_RELEASES,
                                    "jx_vit_base_p16_384-83fb41ba.pth",
                                    "vit_base_patch16_384.orig_in21k_ft_in1k"),
    "vit_large_patch16_384": _source("ViT-Large", "large384", _VIT_RELEASES,
                                     "jx_vit_large_p16_384-b3be5167.pth", None),
    "deit_base_patch16_384": _source("DeiT without distillation", "base384", _DEIT_RELEASES,
                                     "deit_base_patch16_384-8de9b5d1.pth",
                                     "deit_base_patch16_384.fb_in1k"),
    "deit_base_distilled_patch16_384": _source("DeiT with distillation", "base384",
                                               _DEIT_RELEASES,
                                               "deit_base_distilled_patch16_384-d0272ac0.pth",
                                               "deit_base_distilled_patch16_384.fb_in1k"),
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


def imagenet_weights_path(size: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Where the ImageNet weights of a model size are kept.

    Args:
        size: a key of `ast_repro.model.MODEL_SIZES`.
        path: an explicit file, which must exist.

    Returns:
        `path` if given; for the `test` size the digits proxy `pretrained_dir()/PROXY_FILE`;
        else `pretrained_dir()/<DeiT file name>`, which may be absent (timm can fetch it).

    Raises:
        KeyError: unknown size.
        ModelFileMissing: `path` or the proxy is absent; the message says how to get it.
    """
    if size not in MODEL_SIZES:
        raise KeyError(f"unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    spec = MODEL_SIZES[size]
    if path is not None:
        if not Path(path).is_file():
            hint = f"download {spec.deit_url} to it" if spec.deit_url else _proxy_hint(path)
            raise ModelFileMissing(f"{path}: ImageNet weights for size {size!r} not found; {hint}")
        return Path(path)
    if spec.deit_file is None:
        local = pretrained_dir() / PROXY_FILE
        if not local.is_file():
            raise ModelFileMissing(
                f"no ImageNet stand-in for size {size!r} at {local}; {_proxy_hint(local)}"
            )
        return local
    return pretrained_dir() / spec.deit_file


def _proxy_hint(path: str | os.PathLike[str]) -> str:
    return (
        'create it with `python -c "from ast_repro.proxy_pretrain import pretrain_proxy; '
        f"pretrain_proxy('{path}')\"`"
    )


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


def imagenet_source_path(name: str) -> Path:
    """Local path of a Table 3 source's released file: `pretrained_dir()/<file>`.

    Args:
        name: a key of `IMAGENET_SOURCES`, e.g. "vit_large_patch16_384".

    Raises:
        KeyError: unknown name; the message lists the known ones.
        ModelFileMissing: the file is absent; the message gives its URL and where to save it.
    """
    if name not in IMAGENET_SOURCES:
        raise KeyError(f"unknown ImageNet source {name!r}; known: {', '.join(IMAGENET_SOURCES)}")
    source = IMAGENET_SOURCES[name]
    path = pretrained_dir() / source.file
    if not path.is_file():
        raise ModelFileMissing(
            f"{path} not found: download {source.url} and save it there (or set "
            f"{PRETRAINED_DIR_ENV} to the folder holding it, or pretrained_path to the file)"
        )
    return path
