"""The architecture ablations' keys reach the model (paper Tables 3 and 6, section 2.2).

Table 3's ImageNet sources are checked against timm's own architectures on the meta device
(no weights are downloaded); the path from a config key to the initialized model runs on
small synthetic state dicts in timm's format.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import timm
import torch

from ast_repro import checkpoint as ckpt
from ast_repro import pretrained
from ast_repro.build import build_model
from ast_repro.config import ConfigError
from ast_repro.model import create_model
from ast_repro.model_config import MODEL_SIZES
from ast_repro.pretrained import (
    IMAGENET_SOURCES,
    PROXY_FILE,
    ImageNetSource,
    ModelFileMissing,
    imagenet_source_path,
)
from ast_repro.runtime import setup
from ast_repro.train import train
from ast_repro.weights import imagenet_init
from tests.train_fixtures import tiny_config

# The new keys, absent from checkpoints written before them.
ABLATION_KEYS = ("imagenet_source", "channel_merge", "frequency_patch_size", "time_patch_size")


@pytest.mark.parametrize("name", sorted(IMAGENET_SOURCES))
def test_table3_sources_fit_their_model_size_through_imagenet_init(name: str) -> None:
    source = IMAGENET_SOURCES[name]
    spec = MODEL_SIZES[source.model_size]
    with torch.device("meta"):
        vit = timm.create_model(name, pretrained=False)
        # the paper trained ViT-Large without overlap, 8 x 64 patches
        model = create_model(source.model_size, frequency_stride=16, time_stride=16)
    assert (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == (
        spec.hidden_size,
        spec.num_hidden_layers,
        spec.num_attention_heads,
    )
    assert tuple(vit.patch_embed.grid_size) == spec.source_grid
    state_dict = vit.state_dict()
    assert ("dist_token" in state_dict) == ("distilled" in name)
    imagenet_init(model, state_dict)  # every key and shape fits (meta tensors: no data)
    assert model.pos_embed.shape == (1, 2 + 8 * 64, spec.hidden_size)
    if source.timm_name is not None:
        with torch.device("meta"):
            tagged = timm.create_model(source.timm_name, pretrained=False)
        assert tagged.pretrained_cfg["url"] == source.url
    assert source.url.endswith("/" + source.file)


def test_the_default_base384_weights_are_the_distilled_deit_source() -> None:
    default = IMAGENET_SOURCES["deit_base_distilled_patch16_384"]
    assert default.model_size == "base384"
    assert (default.file, default.url) == (
        MODEL_SIZES["base384"].deit_file,
        MODEL_SIZES["base384"].deit_url,
    )


def test_source_files_are_looked_up_by_their_released_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pretrained.PRETRAINED_DIR_ENV, str(tmp_path))
    with pytest.raises(KeyError, match="vit_huge.*known: vit_base_patch16_384"):
        imagenet_source_path("vit_huge")
    with pytest.raises(ModelFileMissing) as missing:
        imagenet_source_path("vit_large_patch16_384")
    message = str(missing.value)
    assert str(tmp_path / "jx_vit_large_p16_384-b3be5167.pth") in message
    assert "releases/download/v0.1-vitjx/jx_vit_large_p16_384-b3be5167.pth" in message
    (tmp_path / "deit_base_patch16_384-8de9b5d1.pth").write_bytes(b"")
    assert imagenet_source_path("deit_base_patch16_384") == (
        tmp_path / "deit_base_patch16_384-8de9b5d1.pth"
    )


def _tiny_timm(name: str, seed: int) -> dict[str, torch.Tensor]:
    """A random timm model with the `test` size's width, depth and 3 x 3 grid."""
    spec = MODEL_SIZES["test"]
    torch.manual_seed(seed)
    vit = timm.create_model(
        name, pretrained=False, img_size=48, embed_dim=spec.hidden_size,
        depth=spec.num_hidden_layers, num_heads=spec.num_attention_heads,
    )  # fmt: skip
    return vit.state_dict()


def test_imagenet_source_key_loads_its_file_through_imagenet_init(
    results: Path, data: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in Table 3 row of the `test` size: a plain ViT, without a distillation token.
    source = ImageNetSource(
        "tiny ViT", "test", "vit_test.pth", "https://example/vit_test.pth", None
    )
    monkeypatch.setitem(IMAGENET_SOURCES, "vit_test", source)
    vit = _tiny_timm("vit_tiny_patch16_224", seed=3)
    folder = results.parent / "pretrained"  # AST_REPRO_PRETRAINED_DIR of `results`
    folder.mkdir()
    torch.save(vit, folder / "vit_test.pth")
    config = tiny_config(data, imagenet_pretrain=True, imagenet_source="vit_test",
                         channel_merge="average")  # fmt: skip
    model = build_model(config, 3, setup(device="cpu"))
    rgb = vit["patch_embed.proj.weight"]
    torch.testing.assert_close(
        model.patch_embed.proj.weight, (rgb[:, :1] + rgb[:, 1:2] + rgb[:, 2:]) / 3
    )
    assert torch.equal(model.cls_token, vit["cls_token"])
    assert torch.equal(model.dist_token, vit["cls_token"])  # the ViT's cls starts both
    assert torch.equal(model.blocks[1].attn.qkv.weight, vit["blocks.1.attn.qkv.weight"])
    assert not (folder / PROXY_FILE).exists()  # the source, not the digits proxy
    with pytest.raises(ConfigError, match="needs model_size='test'"):
        tiny_config(data, imagenet_pretrain=True, imagenet_source="vit_test", model_size="tiny224")


def test_channel_merge_reaches_the_model_init(results: Path, data: dict) -> None:
    deit = _tiny_timm("deit_tiny_distilled_patch16_224", seed=4)
    folder = results.parent / "pretrained"
    folder.mkdir()
    torch.save(deit, folder / PROXY_FILE)
    kernels = {}
    for merge in ("sum", "average"):
        config = tiny_config(data, imagenet_pretrain=True, channel_merge=merge)
        kernels[merge] = build_model(config, 3, setup(device="cpu")).patch_embed.proj.weight
    rgb = deit["patch_embed.proj.weight"]  # (D, 3, 16, 16)
    torch.testing.assert_close(kernels["sum"], rgb[:, :1] + rgb[:, 1:2] + rgb[:, 2:])
    torch.testing.assert_close(kernels["sum"], 3 * kernels["average"])


def test_frame_slice_patches_train_save_and_resume(results: Path, data: dict) -> None:
    # Table 6's 128 x 2 shape on the tiny 32-bin features: 32 x 2 slices at stride 2.
    shape = {"frequency_patch_size": 32, "time_patch_size": 2, "frequency_stride": 32,
             "time_stride": 2}  # fmt: skip
    train(tiny_config(data, run_name="slices", epochs=1, **shape))
    last = results / "train" / "slices" / ckpt.CHECKPOINT_DIR / ckpt.LAST_NAME
    model, config, _ = ckpt.load_model(last)
    assert model.config.patch_shape == (32, 2) and model.config.grid == (1, 16)
    assert {key: getattr(config, key) for key in shape} == shape
    resumed = train(tiny_config(data, run_name="slices", epochs=2, **shape), resume=True)
    assert [record["epoch"] for record in resumed["history"]] == [1, 2]
    state = ckpt.load(last)
    state["config"]["time_patch_size"] = 4  # a real difference is refused
    torch.save(state, last)
    with pytest.raises(ConfigError, match=r"time_patch_size: 4 -> 2"):
        train(tiny_config(data, run_name="slices", epochs=3, **shape), resume=True)


def test_a_checkpoint_older_than_the_ablation_keys_loads_and_resumes(
    results: Path, data: dict
) -> None:
    train(tiny_config(data, run_name="older", epochs=1))
    last = results / "train" / "older" / ckpt.CHECKPOINT_DIR / ckpt.LAST_NAME
    state = ckpt.load(last)
    for key in ABLATION_KEYS:  # as written before the keys existed
        del state["config"][key]
    square = state["model_config"].pop("frequency_patch_size")
    del state["model_config"]["time_patch_size"]
    state["model_config"]["patch_size"] = square
    torch.save(state, last)
    model, config, _ = ckpt.load_model(last)
    assert model.config.patch_shape == (16, 16)
    assert dataclasses.asdict(config) == tiny_config(data, run_name="older", epochs=1).to_dict()
    resumed = train(tiny_config(data, run_name="older", epochs=2), resume=True)
    assert [record["epoch"] for record in resumed["history"]] == [1, 2]
