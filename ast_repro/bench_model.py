"""Model throughput: this package's AST against transformers' and the original's attention.

In one run, with the same weights and the same input batch, it times
  - `ast_repro.model.AST`, whose timm blocks call PyTorch's fused SDPA attention,
  - the same model with the explicit softmax(QK^T)V attention of the original code (timm
    0.4.5 computed attention that way; `fused_attn = False` restores it),
  - transformers' `ASTForAudioClassification` (converted by `ast_repro.hf.to_hf`) with its
    default "sdpa" attention and with its "eager" attention,
for inference (forward under `torch.inference_mode`) and for a training step (forward,
BCE-with-logits loss, backward), and prints samples per second, the ratios, and, on a GPU,
each path's peak memory. It first checks that every path computes the same logits (float32,
eval mode). Then the training loop of `ast_repro.bench_training` (with Adam) times this
package's AST against transformers' (both SDPA) at the batch and at each of `--batches`:
samples/s, MFU and peak memory, the best batch of each, and which SDPA kernel each calls;
`--compile` adds this package's AST under `torch.compile` at the first batch. Timings are
medians over interleaved rounds after a warm-up. Results go to
results/bench/model-<host>.json; benchmarks/RESULTS.md records the figures with the machine.

    ast-repro bench-model [--size base384] [--frames 1024] [--batch 12] [--precision fp32]
        [--batches 32,64,128] [--steps 3] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import platform
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from ast_repro.bench import time_interleaved
from ast_repro.bench_training import attention_ops, best_batches, measure_training, peak_memory
from ast_repro.fileio import atomic_write_json
from ast_repro.model import AST, create_model
from ast_repro.model_config import MODEL_SIZES, ASTConfig
from ast_repro.results import device_description, git_commit, results_dir

BASELINE = "transformers (sdpa)"
ORIGINAL = "ast_repro, explicit attention (the original's)"
OURS = "ast_repro (sdpa)"
COMPILED = "ast_repro (sdpa, torch.compile)"
# The recipes' batch (the original's AudioSet batch, `egs/audioset/run.sh`), the GPU default.
RECIPE_BATCH = 12


def _explicit_attention(model: AST) -> AST:
    """A copy of `model` whose blocks compute attention as the original code did."""
    explicit = copy.deepcopy(model)
    for block in explicit.blocks:
        block.attn.fused_attn = False
    return explicit


def build_models(model: AST) -> dict[str, torch.nn.Module]:
    """The timed models, all holding `model`'s weights. transformers' are absent (and say
    so) when it is not installed."""
    models: dict[str, torch.nn.Module] = {
        OURS: model,
        ORIGINAL: _explicit_attention(model),
    }
    try:
        from ast_repro.hf import to_hf

        for implementation in ("sdpa", "eager"):
            hf_model = to_hf(model)
            hf_model.set_attn_implementation(implementation)
            models[f"transformers ({implementation})"] = hf_model
    except ImportError:
        print("transformers is not installed: its AST is not timed")
    return models


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out if isinstance(out, torch.Tensor) else out.logits


def check_same_function(models: dict[str, torch.nn.Module], x: torch.Tensor) -> dict[str, float]:
    """Max |logit difference| of every model from the first, in float32 eval mode."""
    with torch.inference_mode():
        outputs = {name: _logits(m.eval(), x).float() for name, m in models.items()}
    first = next(iter(outputs.values()))
    return {name: (out - first).abs().max().item() for name, out in outputs.items()}


def step_functions(
    models: dict[str, torch.nn.Module], x: torch.Tensor, target: torch.Tensor, precision: str
) -> dict[str, dict[str, Callable[[], object]]]:
    """{mode: {model name: one timed call}} for modes "inference" and "train step"."""
    autocast = (
        torch.autocast(x.device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else nullcontext()
    )

    def infer(model: torch.nn.Module) -> Callable[[], object]:
        def call() -> object:
            model.eval()
            with torch.inference_mode(), autocast:
                return _logits(model, x)

        return call

    def train_step(model: torch.nn.Module) -> Callable[[], object]:
        def call() -> object:
            model.train()
            model.zero_grad(set_to_none=True)
            with autocast:
                loss = F.binary_cross_entropy_with_logits(_logits(model, x).float(), target)
            loss.backward()
            return loss

        return call

    return {
        "inference": {name: infer(m) for name, m in models.items()},
        "train step": {name: train_step(m) for name, m in models.items()},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="base384", choices=sorted(MODEL_SIZES))
    parser.add_argument("--frames", type=int, default=1024, help="input frames (max_length)")
    parser.add_argument("--labels", type=int, default=527, help="output classes")
    parser.add_argument(
        "--batch", type=int, default=None, help=f"default: 2 on CPU, {RECIPE_BATCH} on GPU"
    )
    parser.add_argument(
        "--batches",
        default="",
        help="more batch sizes for the training loop, comma-separated, e.g. 32,64,128",
    )
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed call")
    parser.add_argument(
        "--compile", action="store_true", help="also time our AST under torch.compile"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default=None,
        help="default: fp32 on CPU, bf16 autocast on GPU",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median taken)")
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument("--out", type=Path, default=None, help="json file for the results")


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = device.type == "cuda"
    batch = args.batch or (RECIPE_BATCH if on_gpu else 2)
    precision = args.precision or ("bf16" if on_gpu else "fp32")
    torch.manual_seed(0)
    model = create_model(args.size, max_length=args.frames, num_labels=args.labels).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, args.frames, model.config.num_mel_bins, generator=gen, device=device)
    target = (torch.rand(batch, args.labels, generator=gen, device=device) < 0.05).float()
    models = build_models(model)
    agreement = check_same_function(models, x)
    result = {
        "device": device_description(),
        "machine": platform.node(),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "size": args.size,
        "frames": args.frames,
        "batch": batch,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "max_abs_logit_difference_fp32": agreement,
        "samples_per_second": {},
        "speedup_vs_transformers_sdpa": {},
        "speedup_vs_original_attention": {},
        "peak_memory_gib": {},
    }
    print(f"{args.size}, {batch} x {args.frames} frames, {precision}, on {result['device']}")
    differences = ", ".join(f"{k}: {v:.1e}" for k, v in agreement.items())
    print(f"max |logit difference| from ast_repro (fp32): {differences}")
    for mode, calls in step_functions(models, x, target, precision).items():
        seconds = time_interleaved({k: (c, on_gpu) for k, c in calls.items()}, args.repeats)
        rate = {k: batch / s for k, s in seconds.items()}
        result["samples_per_second"][mode] = rate
        ratios = {}
        for key, reference in (("transformers_sdpa", BASELINE), ("original_attention", ORIGINAL)):
            if reference in rate:
                ratios[key] = {k: v / rate[reference] for k, v in rate.items()}
                result[f"speedup_vs_{key}"][mode] = ratios[key]
        if on_gpu:
            result["peak_memory_gib"][mode] = peak_memory(calls, device)
        print(f"\n{mode}:")
        print(f"{'path':50s} {'samples/s':>10s} {'vs transformers':>16s} {'vs original':>12s}")
        for name, value in rate.items():
            hf = ratios.get("transformers_sdpa", {}).get(name)
            orig = ratios.get("original_attention", {}).get(name)
            memory = result["peak_memory_gib"].get(mode, {}).get(name)
            print(
                f"{name:50s} {value:10.2f} "
                f"{'' if hf is None else f'{hf:15.2f}x'} {'' if orig is None else f'{orig:11.2f}x'}"
                + ("" if memory is None else f"  peak {memory:.2f} GiB")
            )
    result.update(training_comparison(models, model.config, batch, args, device, precision))
    out = args.out or results_dir() / "bench" / f"model-{platform.node() or 'host'}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


def training_comparison(
    models: dict[str, torch.nn.Module],
    config: ASTConfig,
    batch: int,
    args: argparse.Namespace,
    device: torch.device,
    precision: str,
) -> dict[str, object]:
    """Our AST against transformers' in the training loop, at `batch` and `--batches`.

    Returns:
        "training" (`measure_training`'s figures per batch), "best_batch" per model,
        "training_speedup_vs_transformers" per batch, "attention_ops" per model.
    """
    timed = {name: models[name] for name in (OURS, BASELINE) if name in models}
    x = torch.randn(2, config.max_length, config.num_mel_bins, device=device)
    kernels = {name: attention_ops(m, x, precision) for name, m in timed.items()}
    extra = [int(b) for b in args.batches.split(",") if b.strip()]
    sizes = [batch, *(b for b in extra if b != batch)]
    common = {"device": device, "precision": precision, "steps": args.steps}
    training = measure_training(timed, config, sizes, repeats=args.repeats, **common)
    if args.compile:
        compiled = copy.deepcopy(models[OURS])
        compiled.compile()
        first = measure_training({COMPILED: compiled}, config, [batch], repeats=args.repeats,
                                 **common)[str(batch)]  # fmt: skip
        training[str(batch)].update(first)
    speedups = {
        size: {
            name: figures["samples_per_second"] / row[BASELINE]["samples_per_second"]
            for name, figures in row.items()
            if figures["samples_per_second"] and row.get(BASELINE, {}).get("samples_per_second")
        }
        for size, row in training.items()
    }
    print(f"\ntraining loop (Adam, {precision}, {args.steps} steps per call):")
    print(
        f"{'batch':>5s} {'path':34s} {'samples/s':>10s} {'MFU':>6s} {'peak GiB':>9s} {'vs hf':>7s}"
    )
    for size, row in training.items():
        for name, figures in row.items():
            rate, mfu, memory = (figures[k] for k in ("samples_per_second", "mfu",
                                                      "peak_memory_gib"))  # fmt: skip
            ratio = speedups[size].get(name)
            print(
                f"{size:>5s} {name:34s} {_fmt(rate, '10.1f')} {_fmt(mfu, '6.1%')} "
                f"{_fmt(memory, '9.2f')} {_fmt(ratio, '6.2f')}x"
            )
    for name, ops in kernels.items():
        print(f"attention kernels of {name}: {', '.join(ops) or 'none (explicit attention)'}")
    return {
        "steps_per_call": args.steps,
        "training": training,
        "best_batch": best_batches(training),
        "training_speedup_vs_transformers": speedups,
        "attention_ops": kernels,
    }


def _fmt(value: float | None, spec: str) -> str:
    width = int(spec.split(".")[0].rstrip("%")) if spec[0].isdigit() else 0
    return format(value, spec) if value is not None else "-".rjust(width)


def forward_seconds(
    configs: dict[str, ASTConfig],
    *,
    batch: int = 1,
    repeats: int = 3,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Measured forward time per clip of each architecture (paper Table 5's cost).

    Each model gets random weights and a random (batch, max_length, num_mel_bins) input;
    the forwards run under `torch.inference_mode` in fp32, timed in interleaved rounds after a
    warm-up (`ast_repro.bench.time_interleaved`) so that a change in machine load affects
    every architecture alike.

    Args:
        configs: name -> architecture, e.g. one per stride.
        batch: clips per forward.
        repeats: timed rounds; the median is taken.
        device: default cuda when present, else cpu.

    Returns:
        name -> median seconds per clip.

    Raises:
        ValueError: batch or repeats below 1.
    """
    if batch < 1 or repeats < 1:
        raise ValueError(f"batch and repeats must be positive, got {batch} and {repeats}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gen = torch.Generator().manual_seed(0)
    calls: dict[str, tuple[Callable[[], object], bool]] = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = AST(config).to(device).eval()
        x = torch.randn(batch, config.max_length, config.num_mel_bins, generator=gen).to(device)
        calls[name] = (partial(_infer, model, x), device.type == "cuda")
    return {name: s / batch for name, s in time_interleaved(calls, repeats).items()}


def _infer(model: AST, x: torch.Tensor) -> object:
    with torch.inference_mode():
        return model(x)
