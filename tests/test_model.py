"""The AST architecture held to the paper and the original code (original
`src/models/ast_models.py`)."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F

import ast_repro.model as model_module
from ast_repro.model import AST, ASTOutput, count_parameters, create_model
from ast_repro.model_config import (
    MODEL_SIZES,
    ASTConfig,
    forward_flops,
    heads_for_width,
    patches_along,
    size_config,
)

# original `src/models/ast_models.py`: (stride, max_length) -> (frequency patches, time patches,
# patches).
GRIDS = [
    (10, 1024, 12, 101, 1212),
    (12, 1024, 10, 85, 850),
    (14, 1024, 9, 73, 657),
    (16, 1024, 8, 64, 512),
    (10, 512, 12, 50, 600),
    (10, 128, 12, 12, 144),
]

# Paper Table 6 (no overlap, 128 x 1024): (frequency patch, time patch) -> patches.
TABLE6_SHAPES = [((128, 2), 1, 512), ((16, 16), 8, 512), ((32, 32), 4, 128)]

# Parameters logged by the original runs (original `egs/*/run*.sh`): max_length, labels, millions.
LOGGED_PARAMETERS = [(1024, 527, 88.132), (512, 50, 87.295), (128, 35, 86.933)]


@pytest.mark.parametrize(("stride", "length", "rows", "cols", "total"), GRIDS)
def test_patch_grid_is_arithmetic_and_matches_the_conv(stride, length, rows, cols, total):
    config = size_config("test", max_length=length, frequency_stride=stride, time_stride=stride)
    assert (config.frequency_patches, config.time_patches, config.num_patches) == (
        rows,
        cols,
        total,
    )
    model = AST(config)
    with torch.no_grad():
        conv_out = model.patch_embed.proj(torch.zeros(1, 1, 128, length))
    assert tuple(conv_out.shape[-2:]) == (rows, cols)
    assert model.pos_embed.shape == (1, total + 2, config.hidden_size)


@pytest.mark.parametrize(("length", "labels", "millions"), LOGGED_PARAMETERS)
def test_base384_parameter_count_matches_the_original_logs(length, labels, millions):
    with torch.device("meta"):
        with_heads = create_model(
            "base384", max_length=length, num_labels=labels, keep_imagenet_heads=True
        )
        without = create_model("base384", max_length=length, num_labels=labels)
    assert round(count_parameters(with_heads) / 1e6, 3) == millions
    # The two unused DeiT ImageNet heads, Linear(768 -> 1000) each, are the whole difference.
    assert count_parameters(with_heads) - count_parameters(without) == 2 * (768 * 1000 + 1000)


def test_audioset_model_without_imagenet_heads_has_the_hf_count():
    # transformers reports 86.6 M parameters for MIT/ast-finetuned-audioset-10-10-0.4593.
    with torch.device("meta"):
        model = create_model("base384")
    assert round(count_parameters(model) / 1e6, 1) == 86.6


@pytest.mark.parametrize("size", ["tiny224", "small224", "base224", "base384"])
def test_model_sizes_match_timm_deit(size):
    spec = MODEL_SIZES[size]
    with torch.device("meta"):
        deit = timm.create_model(spec.timm_name.split(".")[0], pretrained=False)
    assert (deit.embed_dim, len(deit.blocks), deit.blocks[0].attn.num_heads) == (
        spec.hidden_size,
        spec.num_hidden_layers,
        spec.num_attention_heads,
    )
    assert tuple(deit.patch_embed.grid_size) == spec.source_grid
    assert deit.pretrained_cfg["url"] == spec.deit_url
    assert deit.pretrained_cfg["hf_hub_id"] == "timm/" + spec.timm_name


def test_stride_16_patch_embedding_is_non_overlapping_patching():
    torch.manual_seed(0)
    model = create_model("test", max_length=64, frequency_stride=16, time_stride=16)
    x = torch.randn(2, 64, 128)  # (B, T, F)
    with torch.no_grad():
        embedded = model.patch_embed(x)  # (B, N, D)
        weight = model.patch_embed.proj.weight  # (D, 1, 16, 16)
        bias = model.patch_embed.proj.bias
        image = x.transpose(1, 2)  # (B, F, T)
        patches = image.reshape(2, 8, 16, 4, 16).permute(0, 1, 3, 2, 4)  # (B, f, t, 16, 16)
        patches = patches.reshape(2, 8 * 4, 256)  # frequency-major (B, N, 256)
        expected = patches @ weight.reshape(weight.shape[0], 256).T + bias
    torch.testing.assert_close(embedded, expected, atol=1e-5, rtol=1e-5)


def test_forward_returns_embeddings_consistent_with_logits():
    torch.manual_seed(0)
    model = create_model("test", max_length=128, num_labels=7).eval()
    x = torch.randn(3, 128, 128)
    with torch.no_grad():
        logits = model(x)
        out = model(x, return_embeddings=True)
    assert isinstance(out, ASTOutput)
    assert logits.shape == (3, 7)
    assert out.tokens.shape == (3, 144 + 2, 64)
    torch.testing.assert_close(out.logits, logits, atol=0, rtol=0)
    torch.testing.assert_close(out.pooled, (out.tokens[:, 0] + out.tokens[:, 1]) / 2)
    head_ln, head_linear = model.mlp_head
    torch.testing.assert_close(logits, head_linear(head_ln(out.pooled)), atol=1e-6, rtol=1e-6)
    # The tokens come after the final LayerNorm (weight 1, bias 0 at init): zero mean per token.
    torch.testing.assert_close(out.tokens.mean(-1), torch.zeros(3, 146), atol=1e-5, rtol=0)


def test_wrong_input_shape_is_a_clear_error():
    model = create_model("test", max_length=128)
    with pytest.raises(ValueError, match="max_length"):
        model(torch.zeros(1, 100, 128))
    with pytest.raises(ValueError, match=r"\(B, 128, 128\)"):
        model(torch.zeros(128, 128))


def test_attention_runs_through_sdpa_and_equals_eager(monkeypatch):
    torch.manual_seed(0)
    timm.layers.set_fused_attn(False)  # a global timm setting must not select the eager path
    try:
        model = create_model("test", max_length=128).eval()
    finally:
        timm.layers.set_fused_attn(True)
    assert all(block.attn.fused_attn for block in model.blocks)
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting_sdpa(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    x = torch.randn(2, 128, 128)
    monkeypatch.setattr(F, "scaled_dot_product_attention", counting_sdpa)
    with torch.no_grad():
        fused = model(x)
    monkeypatch.undo()
    assert len(calls) == model.config.num_hidden_layers
    eager = copy.deepcopy(model)
    for block in eager.blocks:
        block.attn.fused_attn = False
    with torch.no_grad():
        torch.testing.assert_close(eager(x), fused, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(monkeypatch):
    torch.manual_seed(0)
    plain = create_model("test", max_length=64, num_labels=3)
    checkpointed = AST(
        ASTConfig.from_dict({**plain.config.to_dict(), "gradient_checkpointing": True})
    )
    checkpointed.load_state_dict(plain.state_dict())
    calls = []
    real_checkpoint = model_module.checkpoint

    def counting_checkpoint(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real_checkpoint(*args, **kwargs)

    monkeypatch.setattr(model_module, "checkpoint", counting_checkpoint)
    x = torch.randn(2, 64, 128)
    target = torch.rand(2, 3)
    for model in (plain, checkpointed):
        model.train()
        F.binary_cross_entropy_with_logits(model(x), target).backward()
    assert calls == [False] * plain.config.num_hidden_layers  # only the checkpointed model
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)
    checkpointed.eval()
    with torch.no_grad():
        checkpointed(x)
    assert len(calls) == plain.config.num_hidden_layers  # no checkpointing in eval mode


def test_fresh_initialization_follows_the_original():
    torch.manual_seed(0)
    model = create_model("test", max_length=1024)
    for tensor in (model.pos_embed, model.cls_token, model.dist_token):
        assert tensor.abs().max() <= 2.0  # timm's trunc_normal_ bounds
    assert abs(model.pos_embed.std().item() - 0.02) < 0.001  # 77k samples
    for name, param in model.blocks.named_parameters():
        if name.endswith("bias") and ".norm" not in name:
            assert torch.count_nonzero(param) == 0, name
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    # PyTorch's default init for the conv and the head: uniform, nonzero biases.
    assert torch.count_nonzero(model.patch_embed.proj.bias) > 0
    assert torch.count_nonzero(model.mlp_head[1].bias) > 0
    assert model.mlp_head[0].eps == 1e-5 and model.norm.eps == 1e-6
    assert model.blocks[0].norm1.eps == 1e-6


def test_config_is_validated_with_the_key_in_the_message():
    with pytest.raises(KeyError, match="unknown_key"):
        ASTConfig.from_dict({"unknown_key": 1})
    with pytest.raises(TypeError, match="max_length"):
        ASTConfig(max_length="1024")
    with pytest.raises(TypeError, match="keep_imagenet_heads"):
        ASTConfig(keep_imagenet_heads=1)
    with pytest.raises(ValueError, match="num_attention_heads"):
        ASTConfig(hidden_size=64, num_attention_heads=3)
    with pytest.raises(ValueError, match="max_length"):
        ASTConfig(max_length=8)
    with pytest.raises(ValueError, match="hidden_size"):
        size_config("base384", hidden_size=512)
    with pytest.raises(KeyError, match="base999"):
        create_model("base999")
    config = size_config("small224", max_length=512, num_labels=50)
    assert ASTConfig.from_dict(config.to_dict()) == config
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (
        384,
        6,
        1536,
    )


@pytest.mark.parametrize(("stride", "length"), [(10, 64), (12, 48), (16, 32)])
def test_forward_flops_equal_what_torch_counts(stride: int, length: int) -> None:
    """Every matrix product of a forward pass, as torch's FLOP counter sees it. The counter
    skips the fused attention kernel on a CPU, so the explicit attention is counted."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(
        "test", num_mel_bins=32, max_length=length, num_labels=5, time_stride=stride
    ).eval()
    for block in model.blocks:
        block.attn.fused_attn = False  # softmax(QK^T)V as explicit matrix products
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(3, length, 32))
    assert counter.get_total_flops() == 3 * forward_flops(model.config)


def test_forward_flops_of_the_paper_model() -> None:
    """base384 at 1212 patches: about 2.6e11 per clip, and the quadratic attention term makes
    stride 10 cost more than 2.37x stride 16 (1212 / 512 patches)."""
    paper = forward_flops(size_config("base384"))
    stride16 = forward_flops(size_config("base384", frequency_stride=16, time_stride=16))
    assert 2.5e11 < paper < 2.7e11
    assert paper / stride16 > 1212 / 512


@pytest.mark.parametrize(("shape", "rows", "total"), TABLE6_SHAPES)
def test_table6_patch_shapes_give_the_papers_counts(shape, rows, total):
    frequency, time = shape
    config = size_config(
        "test", frequency_patch_size=frequency, time_patch_size=time,
        frequency_stride=frequency, time_stride=time,
    )  # fmt: skip
    assert (config.frequency_patches, config.num_patches) == (rows, total)
    assert config.patch_shape == shape
    with torch.device("meta"):
        model = AST(config)
    assert tuple(model.patch_embed.proj.weight.shape) == (config.hidden_size, 1, *shape)
    assert model.pos_embed.shape == (1, total + 2, config.hidden_size)


def test_patches_along_is_the_one_grid_formula():
    assert [patches_along(1024, 16, s) for s in (16, 14, 12, 10)] == [64, 73, 85, 101]
    assert patches_along(128, 128, 128) == 1 and patches_along(1024, 2, 2) == 512
    with pytest.raises(ValueError, match="no patch of 32 fits 16"):
        patches_along(16, 32, 10)


def test_frame_slices_are_linear_maps_of_consecutive_frames():
    # Table 6's 128 x 2 patches at stride 2: patch k sees frames 2k and 2k + 1 entire.
    torch.manual_seed(0)
    model = create_model(
        "test", num_mel_bins=32, max_length=16, frequency_patch_size=32, time_patch_size=2,
        frequency_stride=32, time_stride=2,
    )  # fmt: skip
    x = torch.randn(3, 16, 32)  # (B, T, F)
    with torch.no_grad():
        embedded = model.patch_embed(x)  # (B, 8, D)
        weight = model.patch_embed.proj.weight  # (D, 1, F, 2)
        pairs = x.reshape(3, 8, 2, 32).transpose(2, 3)  # (B, 8, F, 2): frames 2k, 2k + 1
        expected = pairs.reshape(3, 8, 64) @ weight.reshape(weight.shape[0], 64).T
        expected = expected + model.patch_embed.proj.bias
        logits = model(x)
    torch.testing.assert_close(embedded, expected, atol=1e-5, rtol=1e-5)
    assert logits.shape == (3, 527)


def test_rectangular_config_round_trips_and_old_square_configs_load():
    config = size_config("test", frequency_patch_size=128, time_patch_size=2)
    assert ASTConfig.from_dict(config.to_dict()) == config
    saved = {k: v for k, v in ASTConfig().to_dict().items() if not k.endswith("patch_size")}
    old = ASTConfig.from_dict({**saved, "patch_size": 16})  # as checkpoints stored it
    assert old == ASTConfig() and old.patch_shape == (16, 16)
    with pytest.raises(ValueError, match="max_length=8 is smaller than time_patch_size=16"):
        ASTConfig(max_length=8)
    with pytest.raises(ValueError, match="frequency_patch_size=256"):
        ASTConfig(frequency_patch_size=256)


def test_large384_is_timm_vit_large():
    spec = MODEL_SIZES["large384"]
    with torch.device("meta"):
        vit = timm.create_model("vit_large_patch16_384", pretrained=False)
    assert (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == (
        spec.hidden_size,
        spec.num_hidden_layers,
        spec.num_attention_heads,
    )
    assert tuple(vit.patch_embed.grid_size) == spec.source_grid
    assert heads_for_width(1024) == 16
