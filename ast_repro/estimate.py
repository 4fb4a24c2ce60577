"""What a training run costs before it starts: model FLOPs and the device's throughput.

The paper gives no compute budget; the grid runner (`ast_repro.experiments`) prints one
before a grid starts so that a run of hours is not a surprise. The count is arithmetic:
`ast_repro.model.forward_flops` per clip, three times that per training clip (forward and a
backward of about twice the forward) and once per validation clip, every epoch. The rate is
a nominal peak per GPU kind (the vendors' dense bf16 tensor figures) at an assumed
utilization, or on a CPU a quick measurement of a matrix product. Feature extraction and
data loading are not counted, so the figure is a floor, and it is always labelled an estimate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ast_repro.config import TrainConfig
from ast_repro.model_config import ASTConfig, forward_flops, size_config

# Nominal dense bf16 (fp16 where the chip has no bf16) tensor-core FLOP/s per GPU, from the
# vendors' datasheets; matched as a substring of the device name, longest key first.
NOMINAL_FLOPS: dict[str, float] = {
    "B200": 2250e12,
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "V100": 125e12,
    "T4": 65e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}
# An unknown GPU is assumed to be of the A100's class.
UNKNOWN_GPU_FLOPS = 312e12
# Share of the nominal peak a ViT training step reaches (model FLOPs utilization); assumed.
GPU_UTILIZATION = 0.4
# Share of a plain matrix product's measured rate that the model's small products reach.
CPU_UTILIZATION = 0.5
# Training costs the forward pass plus a backward pass of about twice the forward.
TRAIN_FLOPS_FACTOR = 3


@dataclass(frozen=True)
class Throughput:
    """The rate an estimate assumes.

    Attributes:
        device: e.g. "NVIDIA H200" or "cpu (2 threads)".
        count: devices the grid uses (GPUs; 1 on a CPU).
        flops_per_second: one device's peak (nominal) or measured rate.
        source: where `flops_per_second` comes from.
        utilization: share of it a training step is assumed to reach.
    """

    device: str
    count: int
    flops_per_second: float
    source: str
    utilization: float

    def seconds(self, flops: float) -> float:
        """Wall seconds for `flops` spread evenly over every device."""
        return flops / (self.flops_per_second * self.utilization * self.count)

    def describe(self) -> str:
        """One line naming the device, the rate and the assumption."""
        return (
            f"{self.count} x {self.device}, {self.flops_per_second / 1e12:.3g} TFLOP/s "
            f"({self.source}) at {self.utilization:.0%} utilization"
        )


def known_gpu(name: str) -> str | None:
    """The `NOMINAL_FLOPS` key a GPU name contains (longest first), or None if none does."""
    upper = name.upper()
    for key in sorted(NOMINAL_FLOPS, key=len, reverse=True):
        if key in upper:
            return key
    return None


def gpu_flops(name: str) -> tuple[float, str]:
    """(nominal FLOP/s, source) of a GPU from its name, e.g. "NVIDIA H100 80GB HBM3"."""
    key = known_gpu(name)
    if key is not None:
        return NOMINAL_FLOPS[key], f"nominal {key} bf16"
    return UNKNOWN_GPU_FLOPS, "unknown GPU, assumed A100-class"


def measure_cpu_flops(size: int = 384, seconds: float = 0.1) -> float:
    """FLOP/s of a float32 (size x size) matrix product on this CPU, timed for ~`seconds`."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size**3 * count / elapsed


def device_throughput(gpus: int | None = None) -> Throughput:
    """The throughput of this machine: its visible GPUs, or its CPU measured quickly.

    Args:
        gpus: GPUs the grid will use; default every visible one.
    """
    count = torch.cuda.device_count() if gpus is None else gpus
    if count > 0:
        name = torch.cuda.get_device_name(0)
        rate, source = gpu_flops(name)
        return Throughput(name, count, rate, source, GPU_UTILIZATION)
    rate = measure_cpu_flops()
    device = f"cpu ({torch.get_num_threads()} threads)"
    return Throughput(device, 1, rate, "measured fp32 matmul", CPU_UTILIZATION)


def architecture(config: TrainConfig, num_labels: int = 527) -> ASTConfig:
    """The model a run builds (as `ast_repro.build.build_model`), without building it."""
    return size_config(
        config.model_size,
        num_mel_bins=config.num_mel_bins,
        max_length=config.target_length,
        frequency_patch_size=config.frequency_patch_size,
        time_patch_size=config.time_patch_size,
        frequency_stride=config.frequency_stride,
        time_stride=config.time_stride,
        num_labels=num_labels,
    )


def run_flops(config: TrainConfig, train_clips: int, valid_clips: int) -> float:
    """Model FLOPs of a whole run: every epoch's training and validation, every fold.

    Args:
        config: the run's resolved config.
        train_clips: clips drawn per training epoch (the balanced sampler draws as many).
        valid_clips: clips in the validation set, scored after every epoch and by the
            weight-averaged and best models at the end.
    """
    per_clip = forward_flops(architecture(config))
    evaluations = config.epochs + int(config.wa) + int(config.select_best)
    per_fold = per_clip * (
        TRAIN_FLOPS_FACTOR * train_clips * config.epochs + valid_clips * evaluations
    )
    return float(per_fold * max(1, len(config.fold_list())))


def format_duration(seconds: float) -> str:
    """ "42 s", "12 min" or "3.4 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
