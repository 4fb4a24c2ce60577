"""Feature-extraction throughput: ast_repro's batched Kaldi fbank against the references.

In one run, on the same 10 s clips, it times
  - `ast_repro.features.kaldi_fbank` on the whole batch (CPU, and CUDA where present),
  - a per-clip loop over torchaudio's `compliance.kaldi.fbank` (what the original does),
  - transformers' `ASTFeatureExtractor` (per-clip loop inside, plus pad and normalize),
and prints clips per second and the ratios. Timings are medians over interleaved repeats
after a warm-up; CUDA timings synchronize the device. Speedups are the median of
within-round ratios, with their range. Results go to
results/bench/fbank-<host>.json; benchmarks/RESULTS.md records the figures with the machine.

    ast-repro bench [--clips 64] [--repeats 9]      (or: python benchmarks/bench_fbank.py)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ast_repro.audio import TARGET_SAMPLE_RATE as SAMPLE_RATE
from ast_repro.features import (
    AUDIOSET_STATS,
    kaldi_fbank,
    normalize,
    pad_or_crop,
    reference_fbank,
)
from ast_repro.fileio import atomic_write_json
from ast_repro.results import device_description, git_commit, results_dir

# AudioSet's 10 s clips at the models' rate.
CLIP_SECONDS = 10


def torchaudio_loop(batch: torch.Tensor) -> list[torch.Tensor]:
    """The original's front end: torchaudio's Kaldi fbank, one clip at a time."""
    return [reference_fbank(clip, SAMPLE_RATE, subtract_mean=False) for clip in batch]


def time_rounds(
    paths: dict[str, tuple[Callable[[], object], bool]], repeats: int
) -> dict[str, list[float]]:
    """Seconds per path in each of `repeats` rounds, after a warm-up. Paths are timed in
    turn within each round, so a change in machine load affects all of them alike."""
    for fn, _ in paths.values():
        fn()  # warm-up: FFT plans, caches, CUDA kernels
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, (fn, cuda) in paths.items():
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def time_interleaved(
    paths: dict[str, tuple[Callable[[], object], bool]], repeats: int
) -> dict[str, float]:
    """Median seconds per path over interleaved rounds (`time_rounds`)."""
    return {name: statistics.median(t) for name, t in time_rounds(paths, repeats).items()}


def paired_speedups(rounds: dict[str, list[float]], baseline: str) -> dict[str, list[float]]:
    """Each path's speedup over `baseline` within each round, sorted.

    A ratio of two times taken seconds apart is steadier than a ratio of medians taken
    over the whole run when the machine's speed drifts (a shared VM)."""
    return {
        name: sorted(b / t for b, t in zip(rounds[baseline], times, strict=True))
        for name, times in rounds.items()
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=int, default=64, help="10 s clips per batch")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds (median taken)")
    parser.add_argument("--out", type=Path, default=None, help="json file for the results")


def run(args: argparse.Namespace) -> int:

    gen = torch.Generator().manual_seed(0)
    batch = (torch.rand(args.clips, CLIP_SECONDS * SAMPLE_RATE, generator=gen) * 2 - 1) * 0.5
    paths: dict[str, tuple[Callable[[], object], bool]] = {
        "torchaudio per-clip loop (cpu)": (lambda: torchaudio_loop(batch), False),
        "ast_repro batched (cpu)": (lambda: kaldi_fbank(batch, SAMPLE_RATE), False),
        "ast_repro batched + pad + normalize (cpu)": (
            lambda: normalize(pad_or_crop(kaldi_fbank(batch, SAMPLE_RATE), 1024), AUDIOSET_STATS),
            False,
        ),
    }
    try:
        from transformers import ASTFeatureExtractor

        extractor = ASTFeatureExtractor()
        clips = [clip.numpy() for clip in batch]
        paths["transformers ASTFeatureExtractor (cpu)"] = (
            lambda: extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="pt"),
            False,
        )
    except ImportError:
        print("transformers is not installed: its extractor is not timed")
    if torch.cuda.is_available():
        on_gpu = batch.cuda()
        paths["torchaudio per-clip loop (cuda)"] = (lambda: torchaudio_loop(on_gpu), True)
        paths["ast_repro batched (cuda)"] = (lambda: kaldi_fbank(on_gpu, SAMPLE_RATE), True)
    rounds = time_rounds(paths, args.repeats)
    rows = {name: statistics.median(times) for name, times in rounds.items()}
    paired = paired_speedups(rounds, "torchaudio per-clip loop (cpu)")
    result = {
        "device": device_description(),
        "machine": platform.node(),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "clips": args.clips,
        "clip_seconds": CLIP_SECONDS,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "clips_per_second": {k: args.clips / v for k, v in rows.items()},
        # Median, lowest and highest over the rounds of the within-round ratio.
        "speedup_vs_torchaudio_cpu_loop": {k: statistics.median(v) for k, v in paired.items()},
        "speedup_range": {k: [v[0], v[-1]] for k, v in paired.items()},
    }
    print(f"{args.clips} clips of {CLIP_SECONDS} s on {result['device']}")
    print(f"{'path':45s} {'clips/s':>10s} {'vs torchaudio loop (cpu)':>26s}   (range)")
    for name, rate in result["clips_per_second"].items():
        low, high = result["speedup_range"][name]
        speedup = result["speedup_vs_torchaudio_cpu_loop"][name]
        print(f"{name:45s} {rate:10.1f} {speedup:25.2f}x   ({low:.2f}-{high:.2f})")
    out = args.out or results_dir() / "bench" / f"fbank-{platform.node() or 'host'}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0
