"""Checks that need a CUDA device (`pytest -m gpu`); every test skips cleanly without one.

The GPU-scale claims rest on them: flash attention is eligible for the model's attention
and is the kernel SDPA picks, the fused Adam kernel is the one training builds, and the
compiled model computes the eager model's logits on the GPU.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ast_repro.bench_training import attention_ops, training_loop
from ast_repro.config import resolve
from ast_repro.model import create_model
from ast_repro.optim import make_optimizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# The paper's AudioSet input: 1024 frames x 128 mel bins, base384 (1214 tokens, head dim 64).
FRAMES = 1024


@pytest.fixture(scope="module")
def base384() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("base384", max_length=FRAMES, num_labels=527).cuda()


def _batch(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(batch, FRAMES, 128, generator=generator, device="cuda")
    target = (torch.rand(batch, 527, generator=generator, device="cuda") < 0.05).float()
    return x, target


def test_flash_attention_runs_the_model_in_bf16(base384: torch.nn.Module) -> None:
    """With only the flash backend allowed, SDPA raises unless flash can take the inputs."""
    x, target = _batch()
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        loss = training_loop(base384, x, target, "bf16", steps=1)()
    assert torch.isfinite(loss)


def test_flash_is_the_kernel_sdpa_picks(base384: torch.nn.Module) -> None:
    """Left to choose, SDPA runs flash attention forward and backward in bf16."""
    x, _ = _batch()
    ops = attention_ops(base384, x, "bf16")
    assert "aten::_scaled_dot_product_flash_attention" in ops, ops
    assert "aten::_scaled_dot_product_flash_attention_backward" in ops, ops


def test_training_builds_the_fused_adam(base384: torch.nn.Module) -> None:
    optimizer = make_optimizer(base384, resolve("audioset_balanced"))
    assert optimizer.param_groups[0]["fused"]


def test_compiled_logits_match_eager_on_cuda() -> None:
    torch.manual_seed(0)
    model = create_model("test", max_length=128, num_labels=10).cuda().eval()
    x = torch.randn(4, 128, 128, device="cuda")
    with torch.no_grad():
        eager = model(x)
        model.compile()
        compiled = model(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
