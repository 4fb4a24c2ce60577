"""Label audio files with a trained model (original `egs/audioset/inference.py`).

The original inference script computes the fbank of one clip, pads or crops it to the
model's length, normalizes it, applies the model and a sigmoid and prints the top classes
(original `egs/audioset/inference.py`). `ast-repro predict CHECKPOINT a.wav b.wav --top-k 5` does
the
same from a training checkpoint, which carries the features' settings and the label names.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ast_repro.checkpoint import load_model
from ast_repro.cli import int_at_least
from ast_repro.data import make_dataset
from ast_repro.datafiles import Clip
from ast_repro.frontend import frontend_config
from ast_repro.runtime import resolve_device

# The original inference demo prints the 10 best classes; 5 is enough on a terminal.
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Prediction:
    """One class of one clip."""

    mid: str
    name: str
    probability: float


def predict(
    checkpoint: str | os.PathLike[str],
    wavs: list[str | os.PathLike[str]],
    *,
    top_k: int = DEFAULT_TOP_K,
    device: str = "auto",
) -> list[list[Prediction]]:
    """Top-k classes of each audio file by sigmoid probability.

    Args:
        checkpoint: a training checkpoint (`best.pt`, `wa.pt`, `epoch_k.pt`, ...).
        wavs: audio files; any sample rate (resampled to 16 kHz), first channel.
        top_k: classes per file.
        device: "auto", "cpu", "cuda", ...

    Returns:
        For each file, `top_k` predictions, most probable first.
    """
    model, config, labels = load_model(checkpoint)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    target = resolve_device(device)
    model.to(target)
    if not wavs:
        return []
    # Each file goes through the per-clip front end of the run, without augmentation.
    frontend = replace(frontend_config(config), batched=False)
    dataset = make_dataset(frontend, [Clip(wav=Path(wav), labels=()) for wav in wavs], labels)
    results = []
    for index in range(len(wavs)):
        fbank, _ = dataset[index]  # (T, F)
        with torch.no_grad():
            probs = torch.sigmoid(model(fbank[None].to(target)).float())[0].cpu()  # (C,)
        values, indices = probs.topk(min(top_k, labels.num_classes))
        results.append(
            [
                Prediction(labels.mids[i], labels.names[i], float(v))
                for v, i in zip(values.tolist(), indices.tolist(), strict=True)
            ]
        )
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro predict`."""
    parser.add_argument("checkpoint", type=Path, help="a run's best.pt, wa.pt, epoch_k.pt, ...")
    parser.add_argument("wavs", nargs="+", type=Path, help="audio files to label")
    parser.add_argument(
        "--top-k", type=int_at_least(1), default=DEFAULT_TOP_K, help="classes per file"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")


def run(args: argparse.Namespace) -> int:
    """Print the top-k display names and probabilities of each file."""
    results = predict(args.checkpoint, args.wavs, top_k=args.top_k, device=args.device)
    for wav, predictions in zip(args.wavs, results, strict=True):
        print(wav)
        for rank, p in enumerate(predictions, start=1):
            print(f"  {rank:>2}. {p.probability:.4f}  {p.name}  ({p.mid})")
    return 0
