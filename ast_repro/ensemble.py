"""Weight averaging, checkpoint and multi-run ensembles, and the ESC-50 5-fold summary.

Implements, from the original code (original `src/traintest.py`, `egs/audioset/ensemble.py`,
`egs/esc50/prep_esc50.py`):
- `weight_average`: `validate_wa`, the uniform average of the model weights of epochs
  wa_start..wa_end inclusive (the paper's "weight averaging", section 2.3);
- `CumulativeEnsemble`: the "cum" checkpoint ensemble, the running mean of the per-epoch
  sigmoid predictions on the evaluation set (`cum_mAP` / `cum_acc`);
- `average_predictions`: `egs/audioset/ensemble.py`, the arithmetic mean of the sigmoid
  probabilities of several runs (Ensemble-S: seeds; Ensemble-M: seeds and patch strides);
- `esc50_summary`: `egs/esc50/get_esc_result.py`, plus the unbiased last-epoch figure.

A prediction file (`save_predictions`) is a .npz with `probs` (N, C) float32, `targets` (N, C)
float32, `datafile` (the evaluation json it scores) and `format_version`. The training engine
writes one per epoch per run; `load_aligned` reads several that score the same clips, and
`ast-repro ensemble` averages them (or checkpoint weights).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ast_repro.checkpoint import MODEL_KEY, StateDict, read_state_dict
from ast_repro.errors import AstReproError
from ast_repro.fileio import atomic_open, atomic_save, atomic_write_json
from ast_repro.metrics import compute_metrics, headline
from ast_repro.pretrained import ModelFileMissing, WeightsError

PREDICTIONS_FORMAT_VERSION = 1

SELECTED_LABEL = "selected on test folds (original)"
LAST_EPOCH_LABEL = "last epoch (unbiased)"


class EnsembleError(AstReproError, ValueError):
    """Inputs to an average do not fit together; the message names the file and the problem."""


@dataclass(frozen=True)
class Predictions:
    """Scores of one model on one evaluation datafile."""

    probs: np.ndarray  # (N, C) float32 sigmoid probabilities
    targets: np.ndarray  # (N, C) float32 0/1 labels
    datafile: str


def save_predictions(
    path: str | os.PathLike[str], *, probs: np.ndarray, targets: np.ndarray, datafile: str
) -> None:
    """Write a prediction file (.npz) atomically.

    Args:
        path: destination, conventionally `.../predictions_{epoch}.npz`.
        probs: (N, C) probabilities.
        targets: (N, C) 0/1 labels.
        datafile: the evaluation datafile the rows follow, in order.
    """
    probs = np.asarray(probs, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    if probs.ndim != 2 or probs.shape != targets.shape:
        raise EnsembleError(
            f"{path}: probs {probs.shape} and targets {targets.shape} must be equal (N, C) shapes"
        )
    with atomic_open(path, "wb") as handle:
        np.savez(
            handle,
            probs=probs,
            targets=targets,
            datafile=np.array(str(datafile)),
            format_version=np.array(PREDICTIONS_FORMAT_VERSION),
        )


def load_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read a prediction file written by `save_predictions`.

    Raises:
        EnsembleError: the file is missing, unreadable, of another format, not (N, C) arrays,
            or holds NaN/inf probabilities (each named with the file).
    """
    path = Path(path)
    if not path.is_file():
        raise EnsembleError(f"{path}: prediction file not found")
    try:
        with np.load(path, allow_pickle=False) as payload:
            missing = {"probs", "targets", "datafile", "format_version"} - set(payload.files)
            if missing:
                raise EnsembleError(f"{path}: not a prediction file (missing {sorted(missing)})")
            version = int(payload["format_version"])
            if version != PREDICTIONS_FORMAT_VERSION:
                raise EnsembleError(f"{path}: prediction format {version} is not supported")
            probs = payload["probs"].astype(np.float32)
            targets = payload["targets"].astype(np.float32)
            datafile = str(payload["datafile"][()])
    except (OSError, ValueError) as exc:
        if isinstance(exc, EnsembleError):
            raise
        raise EnsembleError(f"{path}: cannot read prediction file ({exc})") from None
    if probs.ndim != 2 or probs.shape != targets.shape:
        raise EnsembleError(
            f"{path}: probs {probs.shape} and targets {targets.shape} must be equal (N, C) shapes"
        )
    if not np.isfinite(probs).all():
        raise EnsembleError(f"{path}: its probabilities hold NaN or inf (a diverged run's?)")
    return Predictions(probs=probs, targets=targets, datafile=datafile)


def load_state_dict(source: str | os.PathLike[str] | Mapping[str, Any]) -> StateDict:
    """A model state dict from a checkpoint file or dict, without the `module.` prefix.

    Args:
        source: a path to a `torch.save`d bare state dict or `{"model": state_dict, ...}`,
            or such a dict already in memory (read by `ast_repro.checkpoint.read_state_dict`).

    Raises:
        EnsembleError: the file is missing or unreadable, or holds no state dict.
    """
    try:
        return read_state_dict(source, what="checkpoint")
    except (ModelFileMissing, WeightsError) as exc:
        raise EnsembleError(str(exc)) from None


def average_state_dicts(sources: Sequence[str | os.PathLike[str] | Mapping[str, Any]]) -> StateDict:
    """Uniform average of model weights (the original `validate_wa`).

    Args:
        sources: checkpoint paths or state dicts with identical keys and shapes.

    Returns:
        A state dict whose floating tensors are the mean over `sources`, in their own dtype.
    """
    if not sources:
        raise EnsembleError("no checkpoints to average")
    totals: dict[str, torch.Tensor] = {}
    reference: StateDict = {}
    for i, source in enumerate(sources):
        state = load_state_dict(source)
        name = str(source) if not isinstance(source, Mapping) else f"state dict {i}"
        if i == 0:
            reference = state
        elif state.keys() != reference.keys():
            diff = sorted(set(state) ^ set(reference))[:5]
            raise EnsembleError(f"{name}: keys differ from the first checkpoint, e.g. {diff}")
        for key, value in state.items():
            if value.shape != reference[key].shape:
                raise EnsembleError(
                    f"{name}: {key} has shape {tuple(value.shape)}, "
                    f"the first checkpoint {tuple(reference[key].shape)}"
                )
            if value.is_floating_point():
                # NOTE: sums in float64 (the original sums in the weights' dtype); the result
                # differs from the original only by float32 rounding (~1e-7 relative).
                summed = value.to(torch.float64)
                totals[key] = summed if i == 0 else totals[key] + summed
            else:
                # NOTE: integer buffers (step counters) are taken from the last checkpoint;
                # the original divides them too, turning them into floats. AST has none.
                totals[key] = value.clone()
    count = len(sources)
    return {
        key: (total / count).to(reference[key].dtype)
        if reference[key].is_floating_point()
        else total
        for key, total in totals.items()
    }


def epoch_checkpoint_paths(pattern: str, *, start: int, end: int) -> list[Path]:
    """Checkpoint paths of epochs start..end inclusive.

    Args:
        pattern: a path with `{epoch}`, e.g. "runs/x/models/audio_model.{epoch}.pth".
        start: first epoch (1-based, as the original's wa_start).
        end: last epoch, inclusive (wa_end).
    """
    if "{epoch}" not in pattern:
        raise EnsembleError(f"checkpoint pattern {pattern!r} must contain '{{epoch}}'")
    if not 1 <= start <= end:
        raise EnsembleError(
            f"weight-averaging range must satisfy 1 <= start <= end, got {start}..{end}"
        )
    paths = [Path(pattern.format(epoch=epoch)) for epoch in range(start, end + 1)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise EnsembleError(
            f"weight averaging over epochs {start}..{end} needs every epoch's checkpoint; "
            f"missing: {', '.join(missing)} (train with checkpoints kept for those epochs)"
        )
    return paths


def weight_average(pattern: str, *, start: int, end: int) -> StateDict:
    """Average the weights of epochs start..end inclusive (AudioSet recipes: 1..5, 6..25)."""
    return average_state_dicts(epoch_checkpoint_paths(pattern, start=start, end=end))


def average_predictions(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Ensemble-S / Ensemble-M: the arithmetic mean of the runs' probabilities.

    Args:
        probs: one (N, C) array per run, rows in the same order.

    Returns:
        (N, C) float32 mean probabilities.
    """
    if not probs:
        raise EnsembleError("no predictions to average")
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape != arrays[0].shape:
            raise EnsembleError(
                f"predictions {i} have shape {array.shape}, the first {arrays[0].shape}"
            )
    return np.mean(np.stack(arrays), axis=0).astype(np.float32)


class CumulativeEnsemble:
    """Running mean of per-epoch predictions (the original's `cum_predictions`).

    After `update` with epochs 1..e the mean is the checkpoint ensemble of those e epochs.
    """

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self.count = 0

    def update(self, probs: np.ndarray) -> np.ndarray:
        """Add one epoch's (N, C) probabilities; returns the (N, C) float32 running mean."""
        probs = np.asarray(probs, dtype=np.float64)
        if self._sum is not None and probs.shape != self._sum.shape:
            raise EnsembleError(
                f"epoch {self.count + 1} predictions have shape {probs.shape}, "
                f"earlier epochs {self._sum.shape}"
            )
        self._sum = probs.copy() if self._sum is None else self._sum + probs
        self.count += 1
        return self.mean

    @property
    def mean(self) -> np.ndarray:
        """(N, C) float32 mean of the predictions added so far."""
        if self._sum is None:
            raise EnsembleError("the cumulative ensemble is empty")
        return (self._sum / self.count).astype(np.float32)

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike[str]]) -> CumulativeEnsemble:
        """Rebuild the ensemble from saved per-epoch prediction files (for resuming)."""
        ensemble = cls()
        for path in paths:
            ensemble.update(load_predictions(path).probs)
        return ensemble


def esc50_summary(accuracy: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Summarise 5-fold cross-validation two ways.

    Args:
        accuracy: accuracy[fold][epoch], one row per fold, epochs 1..E in order.

    Returns:
        `selected`: the original's figure, the epoch (1-based) with the best fold-averaged
        accuracy, chosen on the test folds themselves; `last_epoch`: the unbiased figure at
        epoch E. Each holds `label`, `epoch`, `fold_accuracies` and `mean`; plus
        `mean_per_epoch` (E,).
    """
    lengths = {len(row) for row in accuracy}
    if not accuracy or len(lengths) != 1 or 0 in lengths:
        raise EnsembleError(
            "accuracy must be a non-empty [fold][epoch] table with equal rows; "
            f"row lengths {[len(row) for row in accuracy]}"
        )
    table = np.asarray(accuracy, dtype=np.float64)  # (FOLDS, EPOCHS)
    mean_per_epoch = table.mean(axis=0)
    best = int(np.argmax(mean_per_epoch))
    last = table.shape[1] - 1

    def at(epoch_index: int, label: str) -> dict[str, Any]:
        return {
            "label": label,
            "epoch": epoch_index + 1,
            "fold_accuracies": table[:, epoch_index].tolist(),
            "mean": float(mean_per_epoch[epoch_index]),
        }

    return {
        "selected": at(best, SELECTED_LABEL),
        "last_epoch": at(last, LAST_EPOCH_LABEL),
        "mean_per_epoch": mean_per_epoch.tolist(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro ensemble`."""
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="prediction files (.npz), or checkpoints with --weights",
    )
    parser.add_argument(
        "--weights",
        action="store_true",
        help="average checkpoint weights uniformly instead of predictions",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="averaged predictions (.npz) or weights (.pth)"
    )
    parser.add_argument("--metrics-json", type=Path, help="write the ensemble's metrics here")


def _run_weights(args: argparse.Namespace) -> int:
    if args.output is None:
        raise EnsembleError("--weights needs --output for the averaged state dict")
    state = average_state_dicts(args.inputs)
    atomic_save(args.output, lambda handle: torch.save({MODEL_KEY: state}, handle))
    print(f"averaged {len(args.inputs)} checkpoints ({len(state)} tensors) -> {args.output}")
    return 0


def load_aligned(paths: Sequence[str | os.PathLike[str]]) -> list[Predictions]:
    """Read prediction files that score the same datafile with the same targets, row by row.

    Args:
        paths: prediction files (`save_predictions`), e.g. one per run of an ensemble.

    Returns:
        One `Predictions` per path, in order.

    Raises:
        EnsembleError: no path, a file is missing or unreadable, or its datafile or targets
            differ from those of the first file (the message names both).
    """
    if not paths:
        raise EnsembleError("no prediction files to read")
    runs = [load_predictions(path) for path in paths]
    first = runs[0]
    for path, run_ in zip(paths[1:], runs[1:], strict=True):
        if run_.datafile != first.datafile:
            raise EnsembleError(
                f"{path}: scores {run_.datafile}, but {paths[0]} scores {first.datafile}"
            )
        if run_.targets.shape != first.targets.shape or not np.array_equal(
            run_.targets, first.targets
        ):
            raise EnsembleError(f"{path}: targets differ from those of {paths[0]}")
    return runs


def _run_predictions(args: argparse.Namespace) -> int:
    runs = load_aligned(args.inputs)
    first = runs[0]
    print(f"{'input':<40} {'mAP':>8} {'mAUC':>8} {'d_prime':>8} {'acc':>8}")
    # each input by the part of its path that tells it from the others (the run's folder)
    common = Path(os.path.commonpath([p.resolve() for p in args.inputs])) if len(runs) > 1 else None
    for path, run_ in zip(args.inputs, runs, strict=True):
        name = str(path.resolve().relative_to(common)) if common else path.name
        _print_row(
            path.name if name in ("", ".") else name, compute_metrics(run_.probs, run_.targets)
        )
    probs = average_predictions([run_.probs for run_ in runs])
    metrics = compute_metrics(probs, first.targets)
    _print_row(f"ensemble of {len(runs)}", metrics)
    if args.output is not None:
        save_predictions(args.output, probs=probs, targets=first.targets, datafile=first.datafile)
    if args.metrics_json is not None:
        report = {"inputs": [str(p) for p in args.inputs], "datafile": first.datafile, **metrics}
        atomic_write_json(args.metrics_json, report)
    return 0


def _print_row(name: str, metrics: dict[str, Any]) -> None:
    values = headline(metrics)
    print(
        f"{name:<40} {values['mAP']:8.4f} {values['mAUC']:8.4f} "
        f"{values['d_prime']:8.4f} {values['accuracy']:8.4f}"
    )


def run(args: argparse.Namespace) -> int:
    """Average predictions (default) or weights (`--weights`) and report the metrics."""
    return _run_weights(args) if args.weights else _run_predictions(args)
