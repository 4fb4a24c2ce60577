"""Training speed accounting: samples per second, MFU, peak memory and the data wait.

The original prints only the time per batch (`src/traintest.py`); the paper reports no
throughput. Every training epoch here records, in `metrics.json`:
- `train_clips_per_second`: clips trained per second over all ranks, from the first request
  for a batch to the end of the last update (the device synchronized before the clock stops);
- `mfu`: model FLOPs utilization, the achieved training FLOP/s (3 x `forward_flops` per clip:
  the forward and a backward of about twice it) over the nominal dense bf16 peak of the GPUs
  (`ast_repro.estimate.NOMINAL_FLOPS`); None on a CPU or a GPU not in that table;
- `peak_memory_gib`: this rank's peak of allocated CUDA memory (GPU runs only);
- `data_wait_fraction`: the share of the epoch the step loop spent blocked in
  `next(iterator)` on the loader (this rank), worker start-up at the epoch's first batch
  included.

How the data wait is measured: the host clock runs around each `next()` call only. The loop
synchronizes with the GPU once per step (the loss is read for the finite-loss check), after
which the host queues the backward pass and the update and asks for the next batch while the
GPU computes them. So time blocked in `next()` overlaps the GPU's backward pass; the fraction
is an upper bound of the time the GPU idles for lack of data, and exact on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

from ast_repro.estimate import NOMINAL_FLOPS, TRAIN_FLOPS_FACTOR, known_gpu
from ast_repro.model_config import ASTConfig, forward_flops

T = TypeVar("T")


def training_flops(config: ASTConfig) -> float:
    """FLOPs of one training clip: forward plus backward, 3 x `forward_flops` (matmuls only)."""
    return float(TRAIN_FLOPS_FACTOR * forward_flops(config))


def peak_flops(device: torch.device) -> float | None:
    """Nominal dense bf16 FLOP/s of one `device`; None for a CPU or an unlisted GPU."""
    if device.type != "cuda":
        return None
    key = known_gpu(torch.cuda.get_device_name(device))
    return None if key is None else NOMINAL_FLOPS[key]


def model_flops_utilization(
    samples_per_second: float, flops_per_sample: float, peak: float | None, devices: int = 1
) -> float | None:
    """Achieved FLOP/s over the devices' nominal peak, e.g. 0.45; None without a peak.

    Args:
        samples_per_second: clips trained per second over all `devices`.
        flops_per_sample: `training_flops` of the model.
        peak: one device's nominal FLOP/s (`peak_flops`), or None.
        devices: how many devices shared the work (the DDP world size).
    """
    if peak is None:
        return None
    return samples_per_second * flops_per_sample / (peak * devices)


class EpochMeter:
    """Times one epoch of the step loop; `iterate` wraps its batches, `record` reports.

    Args:
        device: the training device (CUDA peak memory and synchronization are used there).
        flops_per_sample: `training_flops` of the model.
        world_size: ranks training together; each reports the clips of its own shard.
    """

    def __init__(self, device: torch.device, flops_per_sample: float, world_size: int = 1):
        self.device, self.flops_per_sample, self.world_size = device, flops_per_sample, world_size
        self.clips, self.wait = 0, 0.0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.start = time.perf_counter()

    def iterate(self, batches: Iterable[T]) -> Iterator[T]:
        """Yield the batches, adding the time spent obtaining each one to the data wait."""
        tic = time.perf_counter()
        iterator = iter(batches)  # a DataLoader starts its workers here
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                self.wait += time.perf_counter() - tic
                return
            self.wait += time.perf_counter() - tic
            yield batch
            tic = time.perf_counter()

    def add(self, clips: int) -> None:
        """Count clips this rank has trained on."""
        self.clips += clips

    def rate(self) -> float:
        """Clips per second so far over all ranks (no synchronization: for progress bars)."""
        return self.clips * self.world_size / max(time.perf_counter() - self.start, 1e-9)

    def record(self) -> dict[str, float | None]:
        """The epoch's figures; synchronizes the GPU first so that queued work is counted.

        Returns:
            `train_clips_per_second`, `mfu` (None without a nominal peak),
            `data_wait_fraction` and, on a GPU, `peak_memory_gib`.
        """
        on_gpu = self.device.type == "cuda"
        if on_gpu:
            torch.cuda.synchronize(self.device)
        seconds = max(time.perf_counter() - self.start, 1e-9)
        rate = self.clips * self.world_size / seconds
        record: dict[str, float | None] = {
            "train_clips_per_second": rate,
            "mfu": model_flops_utilization(
                rate, self.flops_per_sample, peak_flops(self.device), self.world_size
            ),
            "data_wait_fraction": self.wait / seconds,
        }
        if on_gpu:
            record["peak_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return record
