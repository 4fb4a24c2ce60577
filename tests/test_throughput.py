"""Training speed accounting (ast_repro.throughput): rates, MFU and the data wait."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import torch

from ast_repro.estimate import NOMINAL_FLOPS, known_gpu
from ast_repro.model_config import forward_flops, size_config
from ast_repro.throughput import (
    EpochMeter,
    model_flops_utilization,
    peak_flops,
    training_flops,
)


def _slow_batches(count: int, delay: float) -> Iterator[int]:
    for i in range(count):
        time.sleep(delay)  # the loader producing a batch
        yield i


def test_training_flops_are_three_forwards() -> None:
    config = size_config("base384", num_labels=527)
    assert training_flops(config) == 3 * forward_flops(config)
    # the bound: ~783 GFLOP per training clip of base384 at 1024 x 128
    assert training_flops(config) == pytest.approx(783e9, rel=0.01)


def test_mfu_is_achieved_over_nominal_flops() -> None:
    per_clip = training_flops(size_config("base384"))
    peak = NOMINAL_FLOPS["H200"]
    # 600 clips/s on one H200 is 600 x 783 GFLOP/s = 0.47 PFLOP/s of its 0.989
    assert model_flops_utilization(600.0, per_clip, peak) == pytest.approx(600 * per_clip / peak)
    assert model_flops_utilization(600.0, per_clip, peak) == pytest.approx(0.475, abs=0.005)
    # the same total rate over 4 GPUs uses a quarter of each
    four = model_flops_utilization(600.0, per_clip, peak, devices=4)
    assert four == pytest.approx(model_flops_utilization(150.0, per_clip, peak))
    assert model_flops_utilization(600.0, per_clip, None) is None


def test_peak_flops_only_for_known_gpus() -> None:
    assert peak_flops(torch.device("cpu")) is None
    assert known_gpu("NVIDIA H200") == "H200"
    assert known_gpu("NVIDIA L40S") == "L40S"  # the longest key wins over "L4"
    assert known_gpu("Some Future Accelerator") is None


def test_data_wait_counts_only_the_loader() -> None:
    """A loader that takes 20 ms per batch and a step that takes 60 ms: a quarter waits."""
    meter = EpochMeter(torch.device("cpu"), flops_per_sample=1e9)
    for _ in meter.iterate(_slow_batches(5, 0.02)):
        time.sleep(0.06)  # the training step
        meter.add(4)
    record = meter.record()
    assert record["data_wait_fraction"] == pytest.approx(0.25, abs=0.1)
    assert meter.wait == pytest.approx(0.1, abs=0.05)
    assert record["train_clips_per_second"] == pytest.approx(20 / 0.4, rel=0.3)
    assert record["mfu"] is None and "peak_memory_gib" not in record  # CPU


def test_rate_counts_every_rank() -> None:
    meter = EpochMeter(torch.device("cpu"), flops_per_sample=1.0, world_size=4)
    for batch in meter.iterate([8, 8]):
        meter.add(batch)
    assert meter.clips == 16
    record = meter.record()
    elapsed = 16 * 4 / record["train_clips_per_second"]
    assert 0 < elapsed < 1.0 and record["data_wait_fraction"] <= 1.0
