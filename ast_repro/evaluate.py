"""Evaluation: score a model on a datafile (original `validate` in `src/traintest.py`).

The original evaluates in eval mode without gradients, turns the logits into sigmoid
probabilities (also for the CE-trained ESC-50 models) and scores them with mAP, mAUC, d' and
accuracy (original `src/traintest.py`). The same loop serves the per-epoch validation of
`ast_repro.train` (sharded over DDP ranks and gathered on rank 0) and the command

    ast-repro evaluate CHECKPOINT DATAFILE [--label-csv CSV] [--output predictions.npz]

which rebuilds the model from the checkpoint alone and writes a prediction file
(`ast_repro.ensemble.save_predictions`) that `ast-repro ensemble` can average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from ast_repro.cli import int_at_least
from ast_repro.data import make_dataset
from ast_repro.datafiles import DatafileError, LabelMap, read_label_csv, write_label_csv
from ast_repro.ensemble import save_predictions
from ast_repro.fileio import atomic_write_json
from ast_repro.frontend import BatchFrontEnd, batch_front_end, frontend_config, model_inputs
from ast_repro.metrics import compute_metrics, headline
from ast_repro.released import load_labelled_model
from ast_repro.runtime import PRECISIONS, Runtime, gather_to_main, setup


@dataclass(frozen=True)
class EvalResult:
    """A model's outputs on one datafile, rows in datafile order."""

    logits: np.ndarray  # (N, C) float32
    targets: np.ndarray  # (N, C) float32 0/1
    loss: float  # on the logits
    metrics: dict[str, Any]  # ast_repro.metrics.compute_metrics of the sigmoid probabilities

    @property
    def probs(self) -> np.ndarray:
        """(N, C) float32 sigmoid probabilities, the original's outputs."""
        return torch.sigmoid(torch.from_numpy(self.logits)).numpy()


def loss_on_logits(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean loss of a batch: BCE with logits, or cross entropy with probability targets.

    Args:
        logits: (B, C) raw scores.
        targets: (B, C) multi-hot or soft (mixup) labels.
        kind: "bce" or "ce".
    """
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets)
    if kind == "ce":
        # NOTE: the original's CE takes argmax(labels.long()) (`src/traintest.py`, `train`),
        # which truncates mixup's soft labels to zeros. Cross entropy against the soft label
        # vector equals the original for one-hot labels and is correct under mixup.
        return F.cross_entropy(logits, targets)
    raise ValueError(f"unknown loss {kind!r}; use 'bce' or 'ce'")


@torch.no_grad()
def evaluate_dataset(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    runtime: Runtime,
    batch_size: int,
    loss: str,
    frontend: BatchFrontEnd | None = None,
    num_workers: int = 0,
) -> EvalResult | None:
    """Score `model` on every item of `dataset`, split over the ranks.

    Rank r scores items r, r + W, ...; rank 0 gathers and reorders them.

    Returns:
        The result on rank 0; None on the other ranks.
    """
    model.eval()
    indices = list(range(runtime.rank, len(dataset), runtime.world_size))
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=runtime.device.type == "cuda",
    )
    logits, targets = [], []
    for batch in loader:
        x, y = model_inputs(batch, runtime.device, frontend)
        # the original evaluates under autocast too (original `src/traintest.py`)
        with runtime.autocast():
            out = model(x)
        logits.append(out.float().cpu())
        targets.append(y.float().cpu())
    shard = (indices, torch.cat(logits), torch.cat(targets))
    shards = gather_to_main(shard, runtime)
    if shards is None:
        return None
    order = torch.tensor([i for part in shards for i in part[0]])
    all_logits = torch.empty(len(dataset), shards[0][1].shape[1])
    all_targets = torch.empty_like(all_logits)
    all_logits[order] = torch.cat([part[1] for part in shards])
    all_targets[order] = torch.cat([part[2] for part in shards])
    # NOTE: the original computes its validation loss on sigmoid outputs fed to
    # BCEWithLogitsLoss (a meaningless ~0.694, issue #75); here it is computed on the logits.
    value = float(loss_on_logits(all_logits, all_targets, loss))
    probs = torch.sigmoid(all_logits).numpy()
    return EvalResult(
        logits=all_logits.numpy(),
        targets=all_targets.numpy(),
        loss=value,
        metrics=compute_metrics(probs, all_targets.numpy()),
    )


def check_same_labels(
    given: LabelMap, model: LabelMap, source: str, checkpoint: str | os.PathLike[str]
) -> None:
    """Refuse a label csv whose classes (ids and names, in order) are not the model's.

    Matching ids with other names is refused too: it is how a label csv in another order
    (e.g. Speech Commands' words sorted) would silently score every class as another.

    Raises:
        DatafileError: naming the first class that differs.
    """
    if given == model:
        return
    shared = range(min(given.num_classes, model.num_classes))
    index = next(
        (i for i in shared if (given.mids[i], given.names[i]) != (model.mids[i], model.names[i])),
        None,
    )
    where = (
        f"class {index} is {given.mids[index]} {given.names[index]!r} there but "
        f"{model.mids[index]} {model.names[index]!r} in the model"
        if index is not None
        else f"{given.num_classes} classes there, {model.num_classes} in the model"
    )
    raise DatafileError(
        f"{source}: its classes differ from the {model.num_classes} classes the checkpoint "
        f"{checkpoint} was trained on ({where}); score with the model's own label set"
    )


def evaluate(
    checkpoint: str | os.PathLike[str],
    datafile: str | os.PathLike[str],
    *,
    label_csv: str | os.PathLike[str] | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    num_workers: int = 0,
    output: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a training checkpoint on a datafile.

    Args:
        checkpoint: an `epoch_k.pt`, `best.pt`, `wa.pt` or `last.pt` of a run, or a released
            original file (`ast_repro.released`).
        datafile: AST json datafile to score.
        label_csv: label csv of the datafile; default the label set stored in the checkpoint.
        batch_size: default the run's evaluation batch size.
        device, precision: as in the training config ("auto" picks).
        num_workers: DataLoader workers.
        output: where to write the prediction file (.npz); None writes nothing.

    Returns:
        `compute_metrics` of the sigmoid probabilities plus `loss`, `num_clips`, `datafile`.
    """
    model, config, labels = load_labelled_model(checkpoint)
    runtime = setup(device=device, precision=precision)
    model.to(runtime.device)
    with tempfile.TemporaryDirectory() as tmp:
        if label_csv is None:
            label_csv = Path(tmp) / "labels.csv"
            write_label_csv(label_csv, labels)
        else:
            check_same_labels(read_label_csv(label_csv), labels, f"{label_csv}", checkpoint)
        frontend = frontend_config(config)
        dataset = make_dataset(frontend, datafile, label_csv)
        result = evaluate_dataset(
            model,
            dataset,
            runtime=runtime,
            batch_size=batch_size or config.eval_batch_size,
            loss=config.loss,
            frontend=batch_front_end(frontend),
            num_workers=num_workers,
        )
    runtime.close()
    assert result is not None  # a single process is rank 0
    if output is not None:
        save_predictions(output, probs=result.probs, targets=result.targets, datafile=str(datafile))
    return {
        **result.metrics,
        "loss": result.loss,
        "num_clips": int(result.targets.shape[0]),
        "datafile": str(datafile),
    }


def summary_line(metrics: dict[str, Any]) -> str:
    """'mAP 0.1234  mAUC ...' for logs."""
    values = headline(metrics)
    return "  ".join(f"{key} {value:.4f}" for key, value in values.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro evaluate`."""
    parser.add_argument("checkpoint", type=Path, help="a run's epoch_k.pt, best.pt, wa.pt, ...")
    parser.add_argument("datafile", type=Path, help="AST json datafile to score")
    parser.add_argument("--label-csv", type=Path, help="default: the checkpoint's label set")
    parser.add_argument(
        "--batch-size", type=int_at_least(1), help="default: the run's eval batch size"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--num-workers", type=int_at_least(0), default=0)
    parser.add_argument("-o", "--output", type=Path, help="write predictions here (.npz)")
    parser.add_argument("--metrics-json", type=Path, help="write the metrics here")


def run(args: argparse.Namespace) -> int:
    """Print mAP, mAUC, d' and accuracy of a checkpoint on a datafile."""
    metrics = evaluate(
        args.checkpoint,
        args.datafile,
        label_csv=args.label_csv,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        num_workers=args.num_workers,
        output=args.output,
    )
    print(f"{args.datafile} ({metrics['num_clips']} clips): {summary_line(metrics)}")
    skipped = metrics["num_skipped_ap"]
    if skipped:
        print(f"  {skipped} of {metrics['num_classes']} classes have no positive clip (skipped)")
    if args.output is not None:
        print(f"predictions -> {args.output}")
    if args.metrics_json is not None:
        atomic_write_json(args.metrics_json, {"checkpoint": str(args.checkpoint), **metrics})
    return 0
