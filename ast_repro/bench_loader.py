"""Loader throughput: how many clips per second one DataLoader worker delivers per recipe.

The GPU must never wait for data. A training run at R clips/s needs about
R / (one worker's rate) workers, so this command measures one worker's rate on the CPU for
each recipe's training set (AudioSet balanced, ESC-50, Speech Commands; offline twins by
default), along the two front ends a run can use (`frontend` in `ast_repro.config`):
- `worker`: the original's path (`src/dataloader.py`): the worker decodes the clip (and its
  mixup partner), computes the Kaldi fbank and applies masks, noise and normalization;
  from the audio files, and from the memory-mapped waveform cache (`waveform_cache=true`);
- `device`: the worker only reads the zero-padded waveform (from the files or the cache);
  fbank, masks and mixup run batched on the training device (`ast_repro.frontend`), timed
  here too ("batched front end") on the device the command runs on.
Each path runs one worker (`num_workers=1`) over `--clips` clips drawn at random with the
recipe's augmentation; the rate is taken after the first batch (worker start-up excluded).
Results go to results/bench/loader-<host>.json with the machine and its load average,
since on a shared machine the rates move with the neighbours.

    ast-repro bench-loader [--recipes audioset_balanced,esc50,speechcommands] [--clips 96]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ast_repro.build import data_paths
from ast_repro.cli import int_at_least
from ast_repro.config import TrainConfig, resolve
from ast_repro.data import make_dataset
from ast_repro.datafiles import DatafileError, read_label_csv
from ast_repro.fileio import atomic_write_json
from ast_repro.frontend import BatchFrontEnd, frontend_config
from ast_repro.layout import default_root
from ast_repro.results import device_description, git_commit, results_dir
from ast_repro.seeding import make_generator
from ast_repro.waveform_cache import build_cache

RECIPES = ("audioset_balanced", "esc50", "speechcommands")
# GPU training rates (clips/s) to size the workers for: the target for base384 on
# one H100/H200, and the compute bound near 1,000-1,250 clips/s.
TARGET_RATES = (550, 1000)
PATHS = (
    "worker front end, audio files",
    "worker front end, waveform cache",
    "device front end, audio files",
    "device front end, waveform cache",
)


def worker_rate(dataset: Dataset, *, clips: int, batch: int, seed: int = 0) -> float:
    """Clips per second one DataLoader worker delivers from `dataset`, after its first batch.

    Args:
        dataset: yields one clip's training input per index.
        clips: clips to draw (at random, with replacement); at least two batches.
        batch: clips per batch.
        seed: of the draw.

    Raises:
        ValueError: fewer than two batches of clips.
    """
    if clips < 2 * batch:
        raise ValueError(f"clips={clips} must cover at least two batches of {batch}")
    sampler = RandomSampler(
        dataset, replacement=True, num_samples=clips, generator=make_generator(seed)
    )
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=1)
    delivered, start = 0, 0.0
    for index, item in enumerate(loader):
        if index == 0:
            start = time.perf_counter()  # the worker is up and its queue is primed
            continue
        delivered += item[0].shape[0]
    return delivered / max(time.perf_counter() - start, 1e-9)


def frontend_rate(
    dataset: Dataset, frontend: BatchFrontEnd, *, batch: int, device: torch.device
) -> float:
    """Clips per second of the batched front end (fbank, masks, mixup) on `device`.

    Times the front end alone on one batch of the dataset's waveforms already on the
    device (median of 5 calls after a warm-up; CUDA synchronized).
    """
    from ast_repro.bench import time_interleaved

    items = [dataset[i % len(dataset)] for i in range(batch)]
    waveforms = torch.stack([item[0] for item in items]).to(device)
    lengths = torch.tensor([item[1] for item in items], device=device)
    labels = torch.stack([item[2] for item in items]).to(device)

    def call() -> object:
        draws = frontend.draw(make_generator(0, device=device), batch)
        return frontend(waveforms, lengths, labels, draws)

    seconds = time_interleaved({"front end": (call, device.type == "cuda")}, repeats=5)
    return batch / seconds["front end"]


def recipe_rates(
    config: TrainConfig,
    datafile: Path,
    label_csv: Path,
    *,
    clips: int,
    batch: int,
    device: torch.device,
) -> dict[str, float]:
    """One worker's clips/s along each of `PATHS` for a recipe's training datafile, and the
    batched front end's rate on `device` ("batched front end on <device>")."""
    labels = read_label_csv(label_csv)
    cache = str(build_cache(datafile, datafile.parent / "cache", progress=False))
    rates = {}
    for path in PATHS:
        batched = path.startswith("device")
        frontend = dataclasses.replace(frontend_config(config), batched=batched)
        dataset = make_dataset(
            frontend,
            datafile,
            labels,
            training=True,
            seed=config.seed,
            waveform_cache=cache if path.endswith("cache") else None,
        )
        if not batched:
            dataset.set_epoch(1)
        rates[path] = worker_rate(dataset, clips=clips, batch=batch, seed=config.seed)
        if path == PATHS[-1]:
            rates[f"batched front end on {device.type}"] = frontend_rate(
                dataset, BatchFrontEnd(frontend), batch=batch, device=device
            )
    return rates


def workers_needed(per_worker: float, rates: tuple[int, ...] = TARGET_RATES) -> dict[str, int]:
    """Workers that deliver each GPU rate (clips/s): ceil(rate / one worker's rate)."""
    return {str(rate): math.ceil(rate / per_worker) for rate in rates}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipes")
    parser.add_argument("--clips", type=int_at_least(2), default=96, help="clips per path")
    parser.add_argument("--batch", type=int_at_least(1), default=8, help="clips per batch")
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DATASET=DIR",
        help="a prepared dataset root (default: the twin under $AST_REPRO_DATA)",
    )
    parser.add_argument("--device", default=None, help="batched front end's device")
    parser.add_argument("--out", type=Path, default=None, help="json file for the results")


def run(args: argparse.Namespace) -> int:
    roots = dict(item.split("=", 1) for item in args.root)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result: dict[str, Any] = {
        "device": device_description(),
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_before": list(os.getloadavg()),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "clips": args.clips,
        "batch": args.batch,
        "workers_per_path": 1,
        "target_gpu_rates": list(TARGET_RATES),
        "recipes": {},
        "missing": {},
    }
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        base = resolve(recipe)
        root = roots.get(base.dataset) or str(default_root(base.dataset, synthetic=True))
        config = dataclasses.replace(base, data_root=root)
        try:
            paths = data_paths(config)
        except DatafileError as error:
            result["missing"][recipe] = str(error)
            print(f"{recipe}: skipped, no data ({error})")
            continue
        rates = recipe_rates(
            config,
            paths["train"],
            paths["labels"],
            clips=args.clips,
            batch=args.batch,
            device=device,
        )
        result["recipes"][recipe] = {
            "data": str(paths["train"]),
            "target_length": config.target_length,
            "clips_per_second_per_worker": rates,
            "workers_needed": {p: workers_needed(r) for p, r in rates.items() if p in PATHS},
        }
        print(f"\n{recipe} ({config.target_length} frames, {paths['train']}):")
        needs = " / ".join(f"{r} clips/s" for r in TARGET_RATES)
        print(f"  {'path':42s} {'clips/s':>9s}   workers for {needs}")
        for path, rate in rates.items():
            workers = workers_needed(rate) if path in PATHS else None
            need = " / ".join(str(w) for w in workers.values()) if workers else ""
            print(f"  {path:42s} {rate:9.1f}   {need}")
    result["load_average_after"] = list(os.getloadavg())
    out = args.out or results_dir() / "bench" / f"loader-{platform.node() or 'host'}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0
