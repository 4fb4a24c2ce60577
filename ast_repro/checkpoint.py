"""The package's one reader of weight files, and the writer of training checkpoints.

Every `.pt`/`.pth` file reaches the package through `read_file` (`torch.load` on the CPU with
`weights_only=True`: tensors and plain containers only, no code runs), and every state dict
read from a file loses the DataParallel/DDP `module.` prefix by the one rule of
`ast_repro.weights.strip_wrapper_prefix`. The files read are:
- training checkpoints of this package (`load`, `load_model`);
- state dicts saved bare or as `{"model": ...}` / `{"state_dict": ...}`: DeiT releases, the
  digits proxy, weight averages, ensemble inputs (`read_state_dict`);
- ImageNet weights by model size (`load_imagenet_state_dict`), the original repository's
  released models (`load_original_checkpoint`) and the AudioSet start of AST-P
  (`read_audioset_weights`); which files exist and where they are kept is
  `ast_repro.pretrained`, what is done with their tensors is `ast_repro.weights`.

The original saves `models/audio_model.{epoch}.pth` every epoch, `best_audio_model.pth` when
the main metric improves and, on large training sets only, the optimizer state
(`src/traintest.py`, `train`). Under `results/train/<run>/checkpoints/` this package writes:
- `epoch_{k}.pt`: the model weights after epoch k with the resolved config, the model's
  architecture, the label set and that epoch's metrics: enough to rebuild and evaluate the
  model from the file alone (`load_model`), and the input of weight averaging;
- `best.pt` and `wa.pt`: the same for the best-validation epoch and the weight average;
- `last.pt`: everything needed to continue a killed run bit for bit: the model, optimizer,
  scheduler and grad-scaler states, epoch and global step, the sampler's seed and epoch, the
  RNG states (torch, CUDA, numpy, Python), the per-epoch history and the resolved config.

Every file is a plain dict of tensors and Python scalars, written atomically.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ast_repro.config import TrainConfig
from ast_repro.datafiles import LabelMap
from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_open, atomic_save
from ast_repro.model import AST
from ast_repro.model_config import MODEL_SIZES, ASTConfig
from ast_repro.pretrained import (
    ORIGINAL_CHECKPOINTS,
    ModelFileMissing,
    WeightsError,
    imagenet_weights_path,
)
from ast_repro.seeding import rng_state
from ast_repro.weights import AUDIOSET_GRID, from_original_state_dict, strip_wrapper_prefix

CHECKPOINT_FORMAT = "ast-repro-checkpoint-1"
CHECKPOINT_DIR = "checkpoints"
LAST_NAME, BEST_NAME, WA_NAME = "last.pt", "best.pt", "wa.pt"
EPOCH_PATTERN = "epoch_{epoch}.pt"  # `{epoch}` as ast_repro.ensemble.weight_average expects
# Key of the model's state dict in a checkpoint (this package's, and DeiT's releases).
MODEL_KEY = "model"
# Keys under which files hold a state dict, unwrapped in this order.
STATE_DICT_KEYS = (MODEL_KEY, "state_dict")
# The strides in a released file's name, e.g. `audioset_12_12_0.4467.pth`.
_STRIDES_IN_NAME = re.compile(r"_(\d+)_(\d+)_")

StateDict = dict[str, torch.Tensor]


class CheckpointError(AstReproError, ValueError):
    """A checkpoint is missing or does not hold what is needed; the message names the file."""


# ---------------------------------------------------------------------------- reading


def read_file(path: str | os.PathLike[str], *, what: str = "weight file") -> Any:
    """Read a file written with `torch.save`: the package's only call of `torch.load`.

    Args:
        path: a .pt/.pth file.
        what: what the messages call the file ("weight file", "checkpoint").

    Returns:
        Its content, on the CPU.

    Raises:
        ModelFileMissing: there is no file at `path`.
        WeightsError: the file is not a PyTorch file of tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileMissing(f"{path}: {what} not found")
    with path.open("rb") as file:
        pickled = file.read(1) == b"\x80"  # torch.save's zip archive, or a legacy pickle
    if not (pickled or zipfile.is_zipfile(path)):
        raise WeightsError(f"{path}: not a readable PyTorch {what} (torch.save writes a zip "
                           "archive or a pickle; this file is neither: text or json?)")  # fmt: skip
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's refusal of a pickle that is not plain tensors runs to a dozen lines
        reason = "it holds more than tensors" if "Weights only" in str(exc) else str(exc)
        raise WeightsError(f"{path}: not a readable PyTorch {what} ({reason})") from exc


def state_dict_of(payload: Any, *, name: str = "state dict") -> StateDict:
    """The state dict in a file's content, without the DataParallel/DDP `module.` prefix.

    Args:
        payload: a mapping of names to tensors, or one under "model" or "state_dict".
        name: what the message calls the payload, e.g. its file.

    Raises:
        WeightsError: no mapping of names to tensors is found.
    """
    for key in STATE_DICT_KEYS:
        if isinstance(payload, Mapping) and isinstance(payload.get(key), Mapping):
            payload = payload[key]
    if not isinstance(payload, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in payload.values()
    ):
        raise WeightsError(
            f"{name}: expected a state dict of tensors (bare, or under 'model' or 'state_dict')"
        )
    return strip_wrapper_prefix(payload)


def read_state_dict(
    source: str | os.PathLike[str] | Mapping[str, Any], *, what: str = "weight file"
) -> StateDict:
    """A state dict from a file (or its already loaded content), see `state_dict_of`.

    Raises:
        ModelFileMissing: there is no file at `source`.
        WeightsError: the file is unreadable or holds no state dict.
    """
    if isinstance(source, Mapping):
        return state_dict_of(source)
    return state_dict_of(read_file(source, what=what), name=str(source))


def is_training_checkpoint(payload: Any) -> bool:
    """Whether a file's content is a training checkpoint written by this package."""
    return isinstance(payload, Mapping) and payload.get("format") == CHECKPOINT_FORMAT


# ---------------------------------------------------------------------------- training runs


def epoch_path(checkpoint_dir: Path, epoch: int) -> Path:
    return checkpoint_dir / EPOCH_PATTERN.format(epoch=epoch)


def unwrap(model: torch.nn.Module) -> AST:
    """The AST inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def model_payload(
    model: torch.nn.Module,
    *,
    config: TrainConfig,
    labels: LabelMap,
    epoch: int,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What every checkpoint holds: weights, architecture, labels, config, epoch, metrics."""
    ast = unwrap(model)
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        MODEL_KEY: {k: v.detach().cpu().clone() for k, v in ast.state_dict().items()},
        "model_config": ast.config.to_dict(),
        "labels": {"mids": list(labels.mids), "names": list(labels.names)},
        "config": config.to_dict(),
        "metrics": metrics or {},
    }


def save(path: Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically."""
    atomic_save(path, lambda handle: torch.save(payload, handle))
    return path


def save_epoch(
    checkpoint_dir: Path,
    payload: dict[str, Any],
    state: dict[str, Any],
    *,
    best: bool,
    keep_previous: bool,
) -> Path:
    """Write the checkpoints of a finished epoch.

    Args:
        checkpoint_dir: results/train/<run>/checkpoints.
        payload: `model_payload` of the epoch.
        state: optimizer, scheduler, scaler, step, sampler and history for `last.pt`; the
            RNG states are added here.
        best: the epoch is the best so far: copy it to `best.pt`.
        keep_previous: keep `epoch_{k-1}.pt` (else it is deleted).

    Returns:
        Path of `epoch_{k}.pt`.
    """
    epoch = payload["epoch"]
    epoch_file = save(epoch_path(checkpoint_dir, epoch), payload)
    if best:
        copy(epoch_file, checkpoint_dir / BEST_NAME)
    save(checkpoint_dir / LAST_NAME, {**payload, **state, "rng": rng_state()})
    if not keep_previous:
        epoch_path(checkpoint_dir, epoch - 1).unlink(missing_ok=True)
    return epoch_file


def copy(source: Path, destination: Path) -> Path:
    """Copy a checkpoint file atomically (e.g. epoch_k.pt -> best.pt)."""
    with open(source, "rb") as src, atomic_open(destination, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return destination


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by this package.

    Raises:
        CheckpointError: the file is missing or is not such a checkpoint.
    """
    try:
        payload = read_file(path, what="checkpoint")
    except (ModelFileMissing, WeightsError) as exc:
        raise CheckpointError(str(exc)) from exc
    if not is_training_checkpoint(payload):
        raise CheckpointError(
            f"{path}: not an ast-repro training checkpoint (no format {CHECKPOINT_FORMAT!r}); "
            "original .pth files load with ast_repro.checkpoint.load_original_checkpoint"
        )
    return payload


def load_model(path: str | os.PathLike[str]) -> tuple[AST, TrainConfig, LabelMap]:
    """Rebuild the model of a training checkpoint from the file alone.

    (`ast_repro.released.load_labelled_model` also takes a released original file.)

    Returns:
        (model in eval mode on the CPU, the run's resolved config, its labels).

    Raises:
        CheckpointError: the file is missing or unreadable, lacks a part (weights, model
            config, labels, config), was written by a newer version (an unknown key), names
            fewer or more labels than its head has outputs, or holds NaN/inf weights.
    """
    path = Path(path)
    payload = load(path)
    missing = [key for key in (MODEL_KEY, "model_config", "labels", "config") if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path}: the checkpoint lacks its {', '.join(missing)}; it cannot be rebuilt "
            "(a damaged or hand-made file: use another epoch's checkpoint)"
        )
    try:
        model_config = ASTConfig.from_dict(payload["model_config"])
        config = TrainConfig.from_dict(payload["config"])
    except (AstReproError, KeyError, TypeError, ValueError) as exc:
        message = str(exc.args[0] if isinstance(exc, KeyError) else exc)
        hint = "written by a newer ast-repro? Upgrade" if "unknown" in message else "damaged?"
        raise CheckpointError(f"{path}: {message} ({hint})") from None
    labels = _labels_of(payload["labels"], model_config.num_labels, path)
    model = AST(model_config)
    try:
        model.load_state_dict(payload[MODEL_KEY])
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path}: weights do not fit its model_config ({first})") from None
    check_finite(model.state_dict(), path)
    return model.eval(), config, labels


def _labels_of(raw: Any, num_labels: int, path: Path) -> LabelMap:
    """The label set stored in a checkpoint, checked against its head's outputs."""
    mids, names = (raw.get(key) if isinstance(raw, Mapping) else None for key in ("mids", "names"))
    if not (isinstance(mids, list | tuple) and isinstance(names, list | tuple)):
        raise CheckpointError(f"{path}: its labels are not {{'mids': [...], 'names': [...]}}")
    if not len(mids) == len(names) == num_labels:
        raise CheckpointError(
            f"{path}: {len(mids)} label ids and {len(names)} names for a head of {num_labels} "
            "outputs; the file is inconsistent (use another epoch's checkpoint)"
        )
    return LabelMap(mids=tuple(map(str, mids)), names=tuple(map(str, names)))


def check_finite(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Refuse weights holding NaN or inf (a diverged run's), which would predict nan.

    Raises:
        CheckpointError: naming the file and the first such tensor.
    """
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path}: weight {name} holds NaN or inf (saved from a diverged run?); use an "
                "earlier epoch's checkpoint"
            )


# ---------------------------------------------------------------------------- pretrained weights


def load_imagenet_state_dict(size: str, path: str | os.PathLike[str] | None = None) -> StateDict:
    """ImageNet (DeiT) weights for a model size, in timm's format.

    Reads the file `ast_repro.pretrained.imagenet_weights_path` names (`path` if given, else
    the DeiT release in `pretrained_dir()`, or the digits proxy for the `test` size); when
    the DeiT file is absent, asks timm to download the weights (needs internet).

    Raises:
        ModelFileMissing: nothing could be found; the message names the file to fetch and
            where to put it.
        WeightsError: the file holds no state dict.
    """
    local = imagenet_weights_path(size, path)
    if local.is_file():
        return read_state_dict(local)
    spec = MODEL_SIZES[size]
    try:
        import timm

        return dict(timm.create_model(spec.timm_name, pretrained=True).state_dict())
    except Exception as exc:
        raise ModelFileMissing(
            f"ImageNet weights for size {size!r}: timm could not fetch {spec.timm_name!r} "
            f"({type(exc).__name__}: {exc}). Offline, download {spec.deit_url} and save it as "
            f"{local} (or pass path=...)"
        ) from exc


def load_original_checkpoint(
    path: str | os.PathLike[str],
    *,
    frequency_stride: int | None = None,
    time_stride: int | None = None,
    max_length: int | None = None,
    num_labels: int | None = None,
    num_mel_bins: int = 128,
) -> AST:
    """Build an AST from a .pth file released with (or trained by) the original code.

    Strides come from the file name (`audioset_12_12_0.4467.pth`, as
    `egs/audioset/ensemble.py` reads them) unless given; the rest is
    `ast_repro.weights.from_original_state_dict`.

    Returns:
        The AST in eval mode.

    Raises:
        ModelFileMissing: no file at `path`; for a released file the message gives its URL.
        ValueError: the strides are neither given nor in the file name.
        WeightsError: the tensors do not make an AST (see `from_original_state_dict`).
    """
    path = Path(path)
    if not path.is_file():
        known = ORIGINAL_CHECKPOINTS.get(path.name)
        hint = f"; download {known.url} to it" if known else ""
        raise ModelFileMissing(f"{path}: checkpoint not found{hint}")
    state_dict = read_state_dict(path)
    if frequency_stride is None or time_stride is None:
        match = _STRIDES_IN_NAME.search(path.name)
        if match is None:
            raise ValueError(
                f"{path}: cannot read the strides from the file name; pass "
                "frequency_stride= and time_stride="
            )
        frequency_stride = frequency_stride or int(match.group(1))
        time_stride = time_stride or int(match.group(2))
    return from_original_state_dict(
        state_dict,
        frequency_stride=frequency_stride,
        time_stride=time_stride,
        max_length=max_length,
        num_labels=num_labels,
        num_mel_bins=num_mel_bins,
        name=str(path),
    )


class AudioSetWeights(NamedTuple):
    """The weights AST-P starts from, as `ast_repro.weights.audioset_init` takes them."""

    state_dict: StateDict
    grid: tuple[int, int]  # (frequency, time) patch grid the weights were trained on
    run_config: dict[str, Any] | None  # the training run's config; None for an original file


def read_audioset_weights(path: str | os.PathLike[str]) -> AudioSetWeights:
    """Read the start of AST-P: an original AudioSet .pth file (12 x 101 grid) or a checkpoint
    of one of this package's runs (its grid read from its own architecture).

    Raises:
        ModelFileMissing: there is no file at `path`.
        WeightsError: the file is unreadable or holds no state dict.
    """
    payload = read_file(path)
    if is_training_checkpoint(payload):
        grid = ASTConfig.from_dict(payload["model_config"]).grid
        return AudioSetWeights(state_dict_of(payload, name=str(path)), grid, payload["config"])
    return AudioSetWeights(state_dict_of(payload, name=str(path)), AUDIOSET_GRID, None)
