"""Checkpoints of training runs: per-epoch weights and the full state to resume from.

The original saves `models/audio_model.{epoch}.pth` every epoch, `best_audio_model.pth` when
the main metric improves and, on large training sets only, the optimizer state
(original_ast.md section 5.2). Under `results/train/<run>/checkpoints/` this package writes:
- `epoch_{k}.pt`: the model weights after epoch k with the resolved config, the model's
  architecture, the label set and that epoch's metrics: enough to rebuild and evaluate the
  model from the file alone (`load_model`), and the input of weight averaging;
- `best.pt` and `wa.pt`: the same for the best-validation epoch and the weight average;
- `last.pt`: everything needed to continue a killed run bit for bit: the model, optimizer,
  scheduler and grad-scaler states, epoch and global step, the sampler's seed and epoch, the
  RNG states (torch, CUDA, numpy, Python), the per-epoch history and the resolved config.

Every file is a plain dict of tensors and Python scalars, written atomically and readable with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ast_repro.config import TrainConfig
from ast_repro.datafiles import LabelMap
from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_open, atomic_save
from ast_repro.model import AST, ASTConfig

CHECKPOINT_FORMAT = "ast-repro-checkpoint-1"
CHECKPOINT_DIR = "checkpoints"
LAST_NAME, BEST_NAME, WA_NAME = "last.pt", "best.pt", "wa.pt"
EPOCH_PATTERN = "epoch_{epoch}.pt"  # `{epoch}` as ast_repro.ensemble.weight_average expects


class CheckpointError(AstReproError, ValueError):
    """A checkpoint is missing or does not hold what is needed; the message names the file."""


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
        "model": {k: v.detach().cpu().clone() for k, v in ast.state_dict().items()},
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
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not an ast-repro training checkpoint (no format {CHECKPOINT_FORMAT!r}); "
            "original .pth files load with ast_repro.weights.load_original_checkpoint"
        )
    return payload


def load_model(path: str | os.PathLike[str]) -> tuple[AST, TrainConfig, LabelMap]:
    """Rebuild the model of a checkpoint from the file alone.

    Returns:
        (model in eval mode on the CPU, the run's resolved config, its labels).
    """
    payload = load(path)
    model = AST(ASTConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["model"])
    labels = LabelMap(
        mids=tuple(payload["labels"]["mids"]), names=tuple(payload["labels"]["names"])
    )
    return model.eval(), TrainConfig.from_dict(payload["config"]), labels


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python's `random`."""
    # the legacy global state is what a user's np.random calls draw from
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's arrays are stored as tensors so the file loads with weights_only=True
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },  # fmt: skip
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved (CUDA states only where the device count matches)."""
    torch.set_rng_state(state["torch"])
    if (
        state["cuda"]
        and torch.cuda.is_available()
        and len(state["cuda"]) == (torch.cuda.device_count())
    ):
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
