"""Training-loop throughput of two models in one run: samples/s, MFU and peak memory.

The comparison the GPU-scale targets are stated in: this package's AST and transformers'
`ASTForAudioClassification`, each in the same plain torch loop (forward under the same
autocast, BCE-with-logits loss, backward, the same Adam kernel as `ast_repro.optim`), on the
same batch, with the same weights and the same attention backend (SDPA), so that a ratio
compares the models and their execution and not two trainers. `ast-repro bench-model` runs
it at the recipe's batch and at each of `--batches` to find the batch that trains fastest;
`attention_ops` reports which SDPA kernel a training step really calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from ast_repro.bench import time_interleaved
from ast_repro.model_config import ASTConfig
from ast_repro.optim import ADAM_BETAS, ADAM_WEIGHT_DECAY, adam_implementation
from ast_repro.throughput import model_flops_utilization, peak_flops, training_flops

# The learning rate of the timed loops (the full AudioSet recipe's); it does not affect speed.
BENCH_LR = 1e-5
# Prefix of the aten operators behind `F.scaled_dot_product_attention`'s kernels
# (flash, efficient, cudnn, math; `_for_cpu` on a CPU).
SDPA_OP_PREFIX = "aten::_scaled_dot_product_"


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, C) logits of our AST (a tensor) or of transformers' (an output object)."""
    out = model(x)
    return out if isinstance(out, torch.Tensor) else out.logits


def training_loop(
    model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, precision: str, steps: int
) -> Callable[[], torch.Tensor]:
    """A call that runs `steps` training steps of `model` on the batch `(x, target)`.

    Args:
        model: on the batch's device; trained in place by Adam with the package's settings.
        x: (B, T, F) spectrograms.
        target: (B, C) 0/1 labels.
        precision: "bf16" (autocast) or "fp32".
        steps: updates per call.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params,
        lr=BENCH_LR,
        betas=ADAM_BETAS,
        weight_decay=ADAM_WEIGHT_DECAY,
        **adam_implementation(params),
    )

    def call() -> torch.Tensor:
        model.train()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with autocast_for(x.device, precision):
                logits = logits_of(model, x)
            loss = F.binary_cross_entropy_with_logits(logits.float(), target)
            loss.backward()
            optimizer.step()
        return loss.detach()

    return call


def attention_ops(model: torch.nn.Module, x: torch.Tensor, precision: str) -> list[str]:
    """The SDPA kernels (aten operator names) one forward and backward of `model` calls.

    E.g. `aten::_scaled_dot_product_flash_attention` and its `_backward` on a GPU where
    flash attention is chosen, `..._flash_attention_for_cpu` on a CPU; an empty list for
    a model that computes attention explicitly.
    """
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with autocast_for(x.device, precision):
            logits = logits_of(model, x)
        logits.float().sum().backward()
    model.zero_grad(set_to_none=True)
    return sorted({e.key for e in prof.key_averages() if e.key.startswith(SDPA_OP_PREFIX)})


def measure_training(
    models: dict[str, torch.nn.Module],
    config: ASTConfig,
    batches: Sequence[int],
    *,
    device: torch.device,
    precision: str,
    steps: int,
    repeats: int,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Samples/s, MFU and peak memory of each model's training loop at each batch size.

    The models are timed in interleaved rounds at each batch (`time_interleaved`), after a
    warm-up call; on a GPU, peak memory is read in one more call per model. A batch that
    does not fit (CUDA out of memory) records None and ends the scan.

    Args:
        models: name -> model, all of architecture `config` and on `device`.
        config: their architecture (for `training_flops`).
        batches: clips per step, e.g. [12, 32, 64].
        device: where the models are.
        precision: "bf16" or "fp32".
        steps: training steps per timed call.
        repeats: timed rounds per batch (the median is taken).
        seed: of the random inputs.

    Returns:
        {str(batch): {model name: {"samples_per_second", "mfu", "peak_memory_gib"}}},
        `mfu` None off a known GPU and `peak_memory_gib` None on a CPU.
    """
    on_gpu = device.type == "cuda"
    per_sample, peak = training_flops(config), peak_flops(device)
    results: dict[str, dict[str, dict[str, float | None]]] = {}
    for batch in batches:
        generator = torch.Generator(device=device).manual_seed(seed)
        shape = (batch, config.max_length, config.num_mel_bins)
        try:
            x = torch.randn(shape, generator=generator, device=device)
            labels = (batch, config.num_labels)
            target = (torch.rand(labels, generator=generator, device=device) < 0.05).float()
            calls = {
                name: training_loop(model, x, target, precision, steps)
                for name, model in models.items()
            }
            seconds = time_interleaved({k: (c, on_gpu) for k, c in calls.items()}, repeats)
            memory = peak_memory(calls, device) if on_gpu else {}
        except torch.cuda.OutOfMemoryError:
            results[str(batch)] = {name: _missing() for name in models}
            print(f"batch {batch}: out of GPU memory; larger batches are not tried")
            break
        finally:
            _release(device)
        row = {}
        for name, elapsed in seconds.items():
            rate = batch * steps / elapsed
            row[name] = {
                "samples_per_second": rate,
                "mfu": model_flops_utilization(rate, per_sample, peak),
                "peak_memory_gib": memory.get(name),
            }
        results[str(batch)] = row
    return results


def best_batches(results: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, int]:
    """For each model, the batch of `measure_training`'s results with the most samples/s."""
    best: dict[str, tuple[float, int]] = {}
    for batch, row in results.items():
        for name, figures in row.items():
            rate = figures["samples_per_second"]
            if rate is not None and rate > best.get(name, (0.0, 0))[0]:
                best[name] = (rate, int(batch))
    return {name: batch for name, (_, batch) in best.items()}


def peak_memory(calls: dict[str, Callable[[], object]], device: torch.device) -> dict[str, float]:
    """Peak GiB allocated during one call of each path (CUDA only; ours and transformers')."""
    peaks = {}
    for name, call in calls.items():
        _release(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        torch.cuda.synchronize(device)
        peaks[name] = torch.cuda.max_memory_allocated(device) / 2**30
    return peaks


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _missing() -> dict[str, float | None]:
    return {"samples_per_second": None, "mfu": None, "peak_memory_gib": None}
