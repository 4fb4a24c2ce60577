"""Label audio files with a trained model (original `egs/audioset/inference.py`).

The original inference script computes the fbank of one clip, pads or crops it to the
model's length, normalizes it, applies the model and a sigmoid and prints the top classes
(original `egs/audioset/inference.py`). `ast-repro predict CHECKPOINT a.wav b.wav --top-k 5`
does the same from a training checkpoint (or a released original file), which carries the
features' settings and the label names, and says how much of each file the model saw: a
model trained on 1 s clips sees the first second of a 30 s recording. With `--window
SECONDS` it scores the whole recording instead, in windows of the model's input length
starting every SECONDS, and prints a timeline of the top labels per window.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ast_repro.cli import int_at_least
from ast_repro.config import TrainConfig
from ast_repro.data import AudioDataset, make_dataset, samples_for_frames
from ast_repro.datafiles import Clip, LabelMap
from ast_repro.errors import AstReproError
from ast_repro.features import frame_geometry
from ast_repro.frontend import frontend_config, process_sample
from ast_repro.released import load_labelled_model
from ast_repro.runtime import resolve_device

# The original inference demo prints the 10 best classes; 5 is enough on a terminal.
DEFAULT_TOP_K = 5
# Windows scored per forward pass of `--window`.
WINDOW_BATCH = 16


class PredictError(AstReproError, ValueError):
    """A prediction request the model cannot serve (e.g. a window hop longer than its input)."""


@dataclass(frozen=True)
class Prediction:
    """One class of one clip."""

    mid: str
    name: str
    probability: float


@dataclass(frozen=True)
class FilePrediction:
    """The top classes of one file and how much of it the model saw (seconds)."""

    wav: Path
    seconds: float  # the whole recording
    seen_seconds: float  # from its start; the model's input length at most
    top: list[Prediction]


@dataclass(frozen=True)
class WindowPrediction:
    """The top classes of one window of a recording, [start, end) in seconds."""

    start: float
    end: float
    top: list[Prediction]


class Predictor:
    """A model with its front end and label names, ready to score waveforms."""

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str = "auto") -> None:
        model, config, labels = load_labelled_model(checkpoint)
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.config: TrainConfig = config
        self.labels: LabelMap = labels
        # each file goes through the per-clip front end of the run, without augmentation
        self.frontend = replace(frontend_config(config), batched=False)
        rate = self.frontend.sample_rate
        self.input_seconds = samples_for_frames(self.frontend.target_length, rate) / rate

    def dataset(self, wavs: list[str | os.PathLike[str]]) -> AudioDataset:
        """The files as a dataset of the run's front end (clips checked as every command's)."""
        clips = [Clip(wav=Path(wav), labels=()) for wav in wavs]
        dataset = make_dataset(self.frontend, clips, self.labels)
        assert isinstance(dataset, AudioDataset)  # not batched: the per-clip path
        return dataset

    def probabilities(self, waveforms: list[torch.Tensor]) -> torch.Tensor:
        """(B, C) probabilities of (N_b,) waveforms at the front end's rate.

        A model trained with cross entropy gives softmax probabilities (one class per clip,
        summing to 1); a BCE model gives per-class sigmoids, as the original's inference.
        """
        empty = torch.zeros(self.labels.num_classes)
        fbank = torch.stack([process_sample(self.frontend, w, empty)[0] for w in waveforms])
        with torch.no_grad():
            logits = self.model(fbank.to(self.device)).float().cpu()  # (B, C)
        # NOTE: the original's inference applies a sigmoid to every model; for a model
        # trained with cross entropy those values are not probabilities (they sum to ~C/2).
        if self.config.loss == "ce":
            return torch.softmax(logits, dim=-1)
        return torch.sigmoid(logits)

    def top(self, probs: torch.Tensor, top_k: int) -> list[Prediction]:
        """The `top_k` classes of one (C,) row, most probable first."""
        values, indices = probs.topk(min(top_k, self.labels.num_classes))
        return [
            Prediction(self.labels.mids[i], self.labels.names[i], float(v))
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def predict_files(
    checkpoint: str | os.PathLike[str],
    wavs: list[str | os.PathLike[str]],
    *,
    top_k: int = DEFAULT_TOP_K,
    device: str = "auto",
) -> list[FilePrediction]:
    """Top-k classes of each audio file, from its first `input_seconds` (the model's input).

    Args:
        checkpoint: a training checkpoint (`best.pt`, `wa.pt`, `epoch_k.pt`, ...) or a
            released original file (`ast_repro.released`).
        wavs: audio files; any sample rate (resampled to 16 kHz), first channel.
        top_k: classes per file.
        device: "auto", "cpu", "cuda", ...

    Returns:
        For each file, its length, the seconds the model saw and its top classes.

    Raises:
        CheckpointError, AudioError, DeviceError: a bad checkpoint, audio file or device.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    predictor = Predictor(checkpoint, device=device)
    if not wavs:
        return []
    dataset = predictor.dataset(wavs)
    rate = predictor.frontend.sample_rate
    results = []
    for index, wav in enumerate(wavs):
        waveform = dataset.waveform(index)  # (N,)
        probs = predictor.probabilities([waveform])[0]
        seconds = waveform.numel() / rate
        seen = min(seconds, predictor.input_seconds)
        results.append(FilePrediction(Path(wav), seconds, seen, predictor.top(probs, top_k)))
    return results


def predict(
    checkpoint: str | os.PathLike[str],
    wavs: list[str | os.PathLike[str]],
    *,
    top_k: int = DEFAULT_TOP_K,
    device: str = "auto",
) -> list[list[Prediction]]:
    """Top-k classes of each audio file (`predict_files` without the lengths)."""
    return [result.top for result in predict_files(checkpoint, wavs, top_k=top_k, device=device)]


def predict_windows(
    checkpoint: str | os.PathLike[str],
    wav: str | os.PathLike[str],
    *,
    hop_seconds: float,
    top_k: int = DEFAULT_TOP_K,
    device: str = "auto",
) -> list[WindowPrediction]:
    """Score a whole recording in windows of the model's input length.

    Windows start every `hop_seconds` (overlapping when the hop is shorter than the input);
    the last one reaches the end of the recording and is padded as any short clip is.

    Raises:
        PredictError: the hop is not positive or longer than the model's input (windows
            would skip audio).
    """
    predictor = Predictor(checkpoint, device=device)
    length = predictor.input_seconds
    if not 0 < hop_seconds <= length:
        raise PredictError(
            f"--window {hop_seconds:g}: windows start every SECONDS and must not skip audio; "
            f"use a value in (0, {length:.3f}], the model's input length"
        )
    rate = predictor.frontend.sample_rate
    waveform = predictor.dataset([wav]).waveform(0)  # (N,)
    seconds = waveform.numel() / rate
    hop, size = round(hop_seconds * rate), round(length * rate)
    count = 1 + max(0, math.ceil((waveform.numel() - size) / hop))
    # a last window shorter than one Kaldi frame has no features (and adds < 25 ms)
    frame = frame_geometry(rate)[0]
    starts = [i * hop for i in range(count) if i == 0 or waveform.numel() - i * hop >= frame]
    windows = [waveform[start : start + size] for start in starts]
    results: list[WindowPrediction] = []
    for first in range(0, len(windows), WINDOW_BATCH):
        batch = windows[first : first + WINDOW_BATCH]
        for offset, probs in enumerate(predictor.probabilities(batch)):
            start = starts[first + offset] / rate
            end = min(start + length, seconds)
            results.append(WindowPrediction(start, end, predictor.top(probs, top_k)))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `ast-repro predict`."""
    parser.add_argument(
        "checkpoint", type=Path, help="a run's best.pt, wa.pt, epoch_k.pt, ... or a released .pth"
    )
    parser.add_argument("wavs", nargs="+", type=Path, help="audio files to label")
    parser.add_argument(
        "--top-k", type=int_at_least(1), default=DEFAULT_TOP_K, help="classes per file"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        help="score the whole file in windows of the model's input length, one starting "
        "every SECONDS, and print a timeline",
    )


def _line(predictions: list[Prediction]) -> str:
    return "  ".join(f"{p.name} {p.probability:.3f}" for p in predictions)


def run(args: argparse.Namespace) -> int:
    """Print the top-k display names and probabilities of each file (or of each window)."""
    if args.window is not None:
        for wav in args.wavs:
            windows = predict_windows(
                args.checkpoint, wav, hop_seconds=args.window, top_k=args.top_k, device=args.device
            )
            print(f"{wav}: {len(windows)} windows, one every {args.window:g} s")
            for window in windows:
                print(f"  {window.start:7.2f}-{window.end:7.2f} s  {_line(window.top)}")
        return 0
    results = predict_files(args.checkpoint, args.wavs, top_k=args.top_k, device=args.device)
    for result in results:
        print(result.wav)
        if result.seen_seconds < result.seconds:
            print(
                f"  the model saw the first {result.seen_seconds:.2f} s of {result.seconds:.2f} s"
                f" (its input length); --window {math.floor(result.seen_seconds * 1000) / 1000:g}"
                " scores all of it"
            )
        else:
            print(f"  the model saw all {result.seconds:.2f} s")
        for rank, p in enumerate(result.top, start=1):
            print(f"  {rank:>2}. {p.probability:.4f}  {p.name}  ({p.mid})")
    return 0
