"""Weight adaptation and checkpoint loading (original `src/models/ast_models.py`, the original
README.md).

Every expectation is computed independently here: explicit slices, direct `F.interpolate`
calls and explicit channel sums, never the functions under test.
"""

from __future__ import annotations

import json

import pytest
import timm
import torch
import torch.nn.functional as F

from ast_repro import pretrained
from ast_repro.checkpoint import load_imagenet_state_dict, load_original_checkpoint
from ast_repro.model import AST, create_model
from ast_repro.model_config import ASTConfig
from ast_repro.pretrained import ModelFileMissing, WeightsError
from ast_repro.proxy_pretrain import pretrain_proxy
from ast_repro.weights import (
    adapt_patch_kernel,
    adapt_pos_embed,
    audioset_init,
    imagenet_init,
    to_original_state_dict,
)

# The layer names of the original checkpoints (timm 0.4.5 DeiT blocks).
ORIGINAL_BLOCK_PARAMS = {
    "norm1.weight": "D",
    "norm1.bias": "D",
    "attn.qkv.weight": "3D,D",
    "attn.qkv.bias": "3D",
    "attn.proj.weight": "D,D",
    "attn.proj.bias": "D",
    "norm2.weight": "D",
    "norm2.bias": "D",
    "mlp.fc1.weight": "4D,D",
    "mlp.fc1.bias": "4D",
    "mlp.fc2.weight": "D,4D",
    "mlp.fc2.bias": "D",
}


def _as_grid(tokens: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(1, rows * cols, D) frequency-major -> (1, D, rows, cols)."""
    return tokens[0].T.reshape(-1, rows, cols)[None]


def _as_tokens(grid: torch.Tensor) -> torch.Tensor:
    return grid[0].reshape(grid.shape[1], -1).T[None]


def _original_checkpoint(width: int, depth: int, grid: tuple[int, int], labels: int) -> dict:
    """A random state dict in the original repository's DataParallel format."""
    generator = torch.Generator().manual_seed(1)
    sizes = {"D": width, "3D": 3 * width, "4D": 4 * width}
    state = {
        "module.v.cls_token": (1, 1, width),
        "module.v.dist_token": (1, 1, width),
        "module.v.pos_embed": (1, 2 + grid[0] * grid[1], width),
        "module.v.patch_embed.proj.weight": (width, 1, 16, 16),
        "module.v.patch_embed.proj.bias": (width,),
        "module.v.norm.weight": (width,),
        "module.v.norm.bias": (width,),
        "module.v.head.weight": (1000, width),
        "module.v.head.bias": (1000,),
        "module.v.head_dist.weight": (1000, width),
        "module.v.head_dist.bias": (1000,),
        "module.mlp_head.0.weight": (width,),
        "module.mlp_head.0.bias": (width,),
        "module.mlp_head.1.weight": (labels, width),
        "module.mlp_head.1.bias": (labels,),
    }
    for i in range(depth):
        for name, shape in ORIGINAL_BLOCK_PARAMS.items():
            state[f"module.v.blocks.{i}.{name}"] = tuple(sizes[s] for s in shape.split(","))
    return {key: torch.randn(shape, generator=generator) for key, shape in state.items()}


# ---------------------------------------------------------------- positional embedding


@pytest.mark.parametrize("mode", ["ast", "bilinear", "nearest"])
@pytest.mark.parametrize("grid", [(24, 24), (12, 101), (3, 3)])
def test_adapting_to_the_same_grid_is_the_identity(mode, grid):
    pos = torch.randn(1, grid[0] * grid[1], 8)
    assert torch.equal(adapt_pos_embed(pos, grid, grid, mode=mode), pos)


@pytest.mark.parametrize(
    ("new_grid", "expected"),
    [
        # AudioSet 12 x 101: time interpolated 24 -> 101, then frequency rows 6..17 cut.
        ((12, 101), lambda g: F.interpolate(g, size=(24, 101), mode="bilinear")[:, :, 6:18]),
        # Speech Commands 12 x 12: both axes cut at the centre.
        ((12, 12), lambda g: g[:, :, 6:18, 6:18]),
        # Stride 16 (8 x 64): rows 8..15 cut, time interpolated.
        ((8, 64), lambda g: F.interpolate(g, size=(24, 64), mode="bilinear")[:, :, 8:16]),
        # A grid longer on both axes: time then frequency interpolation.
        ((30, 40), lambda g: F.interpolate(
            F.interpolate(g, size=(24, 40), mode="bilinear"), size=(30, 40), mode="bilinear")),
        # Odd sizes: start at 12 - size // 2.
        ((5, 7), lambda g: g[:, :, 10:15, 9:16]),
    ],
)  # fmt: skip
def test_ast_mode_cuts_the_centre_and_interpolates_time_first(new_grid, expected):
    torch.manual_seed(0)
    pos = torch.randn(1, 24 * 24, 16)
    got = adapt_pos_embed(pos, (24, 24), new_grid, mode="ast")
    assert got.shape == (1, new_grid[0] * new_grid[1], 16)
    torch.testing.assert_close(got, _as_tokens(expected(_as_grid(pos, 24, 24))))


def test_bilinear_nearest_and_reinit_modes():
    torch.manual_seed(0)
    pos = torch.randn(1, 14 * 14, 16)
    grid = _as_grid(pos, 14, 14)
    for mode in ("bilinear", "nearest"):
        got = adapt_pos_embed(pos, (14, 14), (12, 101), mode=mode)
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        want = F.interpolate(grid, size=(12, 101), mode=mode, **kwargs)
        torch.testing.assert_close(got, _as_tokens(want))
    first = adapt_pos_embed(
        pos, (14, 14), (12, 101), mode="reinit", generator=torch.Generator().manual_seed(3)
    )
    again = adapt_pos_embed(
        pos * 0, (14, 14), (12, 101), mode="reinit", generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(first, again)  # independent of the input, reproducible
    assert first.shape == (1, 1212, 16)
    assert abs(first.std().item() - 0.02) < 0.002
    with pytest.raises(ValueError, match="mode"):
        adapt_pos_embed(pos, (14, 14), (12, 101), mode="bicubic")
    with pytest.raises(ValueError, match=r"\(12, 12\)"):
        adapt_pos_embed(pos, (12, 12), (12, 101))


# ---------------------------------------------------------------- patch kernel


def test_summed_kernel_on_mono_equals_rgb_kernel_on_repeated_image():
    torch.manual_seed(0)
    rgb = torch.randn(32, 3, 16, 16)
    mono_image = torch.randn(2, 1, 48, 64)
    rgb_out = F.conv2d(mono_image.repeat(1, 3, 1, 1), rgb, stride=(10, 12))
    mono_out = F.conv2d(mono_image, adapt_patch_kernel(rgb, mode="sum"), stride=(10, 12))
    torch.testing.assert_close(mono_out, rgb_out, atol=1e-4, rtol=1e-5)
    average = adapt_patch_kernel(rgb, mode="average")
    torch.testing.assert_close(average * 3, rgb[:, :1] + rgb[:, 1:2] + rgb[:, 2:])
    with pytest.raises(ValueError, match="channel mode"):
        adapt_patch_kernel(rgb, mode="max")


# ---------------------------------------------------------------- ImageNet initialization


def _small_deit(name: str, width: int, heads: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return timm.create_model(
        name, pretrained=False, embed_dim=width, depth=2, num_heads=heads
    ).state_dict()


def test_imagenet_init_from_a_random_deit_state_dict():
    deit = _small_deit("deit_tiny_distilled_patch16_224", 192, 3)  # 14 x 14 grid
    model = AST(ASTConfig(hidden_size=192, num_hidden_layers=2, num_attention_heads=3))
    head_before = {k: v.clone() for k, v in model.mlp_head.state_dict().items()}
    imagenet_init(model, deit)
    state = model.state_dict()
    rgb = deit["patch_embed.proj.weight"]
    explicit_sum = rgb[:, 0:1] + rgb[:, 1:2] + rgb[:, 2:3]
    torch.testing.assert_close(state["patch_embed.proj.weight"], explicit_sum)
    assert torch.equal(state["patch_embed.proj.bias"], deit["patch_embed.proj.bias"])
    assert torch.equal(state["cls_token"], deit["cls_token"])
    assert torch.equal(state["dist_token"], deit["dist_token"])
    assert torch.equal(state["pos_embed"][:, :2], deit["pos_embed"][:, :2])
    grid = _as_grid(deit["pos_embed"][:, 2:], 14, 14)
    # 12 x 101: time 14 -> 101 bilinear (align_corners False), frequency rows 1..12 cut.
    want = F.interpolate(grid, size=(14, 101), mode="bilinear", align_corners=False)[:, :, 1:13]
    torch.testing.assert_close(state["pos_embed"][:, 2:], _as_tokens(want))
    for key, value in deit.items():
        if key.startswith(("blocks.", "norm.")):
            assert torch.equal(state[key], value), key
    for key, value in model.mlp_head.state_dict().items():
        assert torch.equal(value, head_before[key]), key  # the head stays fresh


def test_imagenet_init_options_heads_and_plain_vit():
    deit = _small_deit("deit_tiny_distilled_patch16_224", 192, 3)
    config = ASTConfig(hidden_size=192, num_hidden_layers=2, num_attention_heads=3, max_length=128)
    kept = imagenet_init(
        AST(ASTConfig.from_dict({**config.to_dict(), "keep_imagenet_heads": True})),
        deit,
        channel_mode="average",
    )
    assert torch.equal(kept.head.weight, deit["head.weight"])
    assert torch.equal(kept.head_dist.bias, deit["head_dist.bias"])
    torch.testing.assert_close(
        kept.patch_embed.proj.weight * 3, deit["patch_embed.proj.weight"].sum(1, keepdim=True)
    )
    vit = _small_deit("vit_tiny_patch16_224", 192, 3)  # no distillation token
    model = imagenet_init(AST(config), vit)
    assert torch.equal(model.cls_token, vit["cls_token"])
    assert torch.equal(model.dist_token, vit["cls_token"])
    assert torch.equal(model.pos_embed[:, 1], vit["pos_embed"][:, 0])
    grid = _as_grid(vit["pos_embed"][:, 1:], 14, 14)
    torch.testing.assert_close(model.pos_embed[:, 2:], _as_tokens(grid[:, :, 1:13, 1:13]))


def test_imagenet_init_rejects_weights_of_another_size():
    deit = _small_deit("deit_tiny_distilled_patch16_224", 192, 3)
    with pytest.raises(WeightsError, match="hidden_size"):
        imagenet_init(create_model("test", max_length=128), deit)
    deeper = AST(ASTConfig(hidden_size=192, num_hidden_layers=3, num_attention_heads=3))
    with pytest.raises(WeightsError, match=r"blocks\.2\."):
        imagenet_init(deeper, deit)
    slices = ASTConfig(hidden_size=192, num_hidden_layers=2, num_attention_heads=3,
                       frequency_patch_size=128, time_patch_size=2)  # fmt: skip
    with pytest.raises(WeightsError, match=r"patches are 16 x 16, the model's 128 x 2.*Table 6"):
        imagenet_init(AST(slices), deit)


def test_load_imagenet_state_dict_offline_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.PRETRAINED_DIR_ENV, str(tmp_path))

    def no_internet(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(timm, "create_model", no_internet)
    with pytest.raises(ModelFileMissing) as info:
        load_imagenet_state_dict("base384")
    message = str(info.value)
    assert "https://dl.fbaipublicfiles.com/deit/deit_base_distilled_patch16_384-d0272ac0.pth" in (
        message
    )
    assert str(tmp_path / "deit_base_distilled_patch16_384-d0272ac0.pth") in message
    assert "deit_base_distilled_patch16_384.fb_in1k" in message
    with pytest.raises(ModelFileMissing, match="deit_tiny_distilled_patch16_224-b40b3cf7.pth"):
        load_imagenet_state_dict("tiny224", path=tmp_path / "missing.pth")
    with pytest.raises(ModelFileMissing, match="pretrain_proxy"):
        load_imagenet_state_dict("test")
    # A DeiT release file wraps its state dict as {"model": ...}; it is found by name.
    saved = {"cls_token": torch.ones(1, 1, 192)}
    torch.save({"model": saved}, tmp_path / "deit_tiny_distilled_patch16_224-b40b3cf7.pth")
    assert torch.equal(load_imagenet_state_dict("tiny224")["cls_token"], saved["cls_token"])


def test_digits_proxy_learns_and_loads_through_imagenet_init(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.PRETRAINED_DIR_ENV, str(tmp_path))
    result = pretrain_proxy(epochs=2, seed=0)
    assert result.path == tmp_path / pretrained.PROXY_FILE
    assert result.test_accuracy > 0.5  # ten classes: chance is 0.1
    record = json.loads((tmp_path / (pretrained.PROXY_FILE + ".json")).read_text())
    assert record["test_accuracy"] == result.test_accuracy and record["seed"] == 0
    proxy = load_imagenet_state_dict("test")
    model = imagenet_init(create_model("test", max_length=128), proxy)
    rgb = proxy["patch_embed.proj.weight"]
    torch.testing.assert_close(model.patch_embed.proj.weight, rgb.sum(1, keepdim=True))
    grid = _as_grid(proxy["pos_embed"][:, 2:], 3, 3)
    want = F.interpolate(F.interpolate(grid, size=(3, 12), mode="bilinear"), size=(12, 12),
                         mode="bilinear")  # fmt: skip
    torch.testing.assert_close(model.pos_embed[:, 2:], _as_tokens(want))
    assert torch.equal(model.blocks[1].mlp.fc2.weight, proxy["blocks.1.mlp.fc2.weight"])


def test_digits_proxy_is_deterministic(tmp_path):
    settings = {"epochs": 1, "batch_size": 256, "seed": 5}  # 6 steps: enough to diverge
    first = torch.load(pretrain_proxy(tmp_path / "a.pth", **settings).path)
    second = torch.load(pretrain_proxy(tmp_path / "b.pth", **settings).path)
    other = torch.load(pretrain_proxy(tmp_path / "c.pth", **{**settings, "seed": 6}).path)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["pos_embed"], other["pos_embed"])


# ---------------------------------------------------------------- original checkpoints


def test_audioset_init_cuts_the_12_by_101_grid_and_keeps_a_fresh_head():
    checkpoint = _original_checkpoint(64, 2, (12, 101), labels=527)
    model = create_model("test", max_length=512, num_labels=50)  # ESC-50: 12 x 50
    head_before = model.mlp_head[1].weight.clone()
    audioset_init(model, checkpoint)
    pos = checkpoint["module.v.pos_embed"]
    assert torch.equal(model.pos_embed[:, :2], pos[:, :2])
    want = _as_grid(pos[:, 2:], 12, 101)[:, :, :, 25:75]  # columns 50 - 25 .. 50 + 25
    torch.testing.assert_close(model.pos_embed[:, 2:], _as_tokens(want))
    assert torch.equal(
        model.blocks[0].attn.qkv.weight, checkpoint["module.v.blocks.0.attn.qkv.weight"]
    )
    assert torch.equal(
        model.patch_embed.proj.weight, checkpoint["module.v.patch_embed.proj.weight"]
    )
    assert torch.equal(model.mlp_head[1].weight, head_before)

    longer = audioset_init(create_model("test", max_length=1536), checkpoint)  # 12 x 153
    want = F.interpolate(_as_grid(pos[:, 2:], 12, 101), size=(12, 153), mode="bilinear")
    torch.testing.assert_close(longer.pos_embed[:, 2:], _as_tokens(want))
    same = audioset_init(create_model("test"), checkpoint)
    assert torch.equal(same.pos_embed, pos)
    stride12 = audioset_init(
        create_model("test", frequency_stride=12, time_stride=12), checkpoint
    )  # 10 x 85: columns 8..92, rows 1..10
    want = _as_grid(pos[:, 2:], 12, 101)[:, :, 1:11, 8:93]
    torch.testing.assert_close(stride12.pos_embed[:, 2:], _as_tokens(want))


def test_load_original_checkpoint_reads_strides_length_and_labels(tmp_path):
    checkpoint = _original_checkpoint(64, 2, (10, 85), labels=527)
    path = tmp_path / "audioset_12_12_0.4467.pth"
    torch.save(checkpoint, path)
    model = load_original_checkpoint(path)
    config = model.config
    assert (config.frequency_stride, config.time_stride, config.max_length) == (12, 12, 1024)
    assert (config.hidden_size, config.num_hidden_layers, config.num_labels) == (64, 2, 527)
    assert not model.training and not config.keep_imagenet_heads
    state = model.state_dict()
    for key, value in checkpoint.items():
        if ".head." in key or ".head_dist." in key:
            continue
        ours = key.removeprefix("module.").removeprefix("v.")
        assert torch.equal(state[ours], value), key
    reference = AST(config).eval()
    reference.load_state_dict(state)
    x = torch.randn(1, 1024, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=0, rtol=0)
    # Exported back to the original format, the same tensors under the same names.
    exported = to_original_state_dict(model)
    assert set(exported) == {k for k in checkpoint if ".head" not in k or "mlp_head" in k}
    speech = _original_checkpoint(64, 2, (12, 12), labels=35)
    torch.save(speech, tmp_path / "speechcommands_10_10_0.9812.pth")
    model = load_original_checkpoint(tmp_path / "speechcommands_10_10_0.9812.pth")
    assert (model.config.max_length, model.config.num_labels) == (128, 35)


def test_load_original_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelFileMissing, match="dropbox.com/s/ca0b1v2nlxzyeb4"):
        load_original_checkpoint(tmp_path / "audioset_10_10_0.4593.pth")
    torch.save(_original_checkpoint(64, 1, (12, 101), 527), tmp_path / "mine.pth")
    with pytest.raises(ValueError, match="frequency_stride"):
        load_original_checkpoint(tmp_path / "mine.pth")
    with pytest.raises(WeightsError, match="max_length"):
        load_original_checkpoint(tmp_path / "mine.pth", frequency_stride=16, time_stride=16)
    assert (
        load_original_checkpoint(
            tmp_path / "mine.pth", frequency_stride=10, time_stride=10
        ).config.max_length
        == 1024
    )
    with pytest.raises(WeightsError, match="not a readable"):
        (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
        load_original_checkpoint(tmp_path / "broken.pth", frequency_stride=10, time_stride=10)
