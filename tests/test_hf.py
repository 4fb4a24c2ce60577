"""Conversion to and from transformers' ASTForAudioClassification, with logits parity.

The converted model must compute the same function: logits within 1e-5 (float32) for the
same spectrograms, across strides, lengths and sizes, and a round trip must return the
same tensors bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from ast_repro.layout import speechcommands_labels
from ast_repro.model import AST, create_model
from ast_repro.model_config import ASTConfig, size_config

transformers = pytest.importorskip("transformers")

from ast_repro.hf import (  # noqa: E402 - after the importorskip
    ConversionError,
    check_logits,
    from_hf,
    from_hf_state_dict,
    hf_labels,
    to_hf,
    to_hf_state_dict,
)

ATOL = 1e-5

# (frequency stride, time stride, max_length) on the tiny `test` width.
TINY_CONFIGS = [
    (10, 10, 1024),
    (12, 12, 1024),
    (16, 16, 1024),
    (10, 10, 512),
    (10, 10, 128),
    (10, 12, 1024),
]


def _random_model(config: ASTConfig, seed: int = 0) -> AST:
    """An AST whose every tensor is random (norms and biases included), so no name can hide."""
    torch.manual_seed(seed)
    model = AST(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight"):
                param.uniform_(0.5, 1.5)
            elif param.ndim == 1 or name.endswith("norm.weight"):
                param.normal_(0, 0.1)
    return model.eval()


def _spectrograms(config: ASTConfig, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, config.max_length, config.num_mel_bins, generator=generator) * 0.5


@pytest.mark.parametrize(("fstride", "tstride", "length"), TINY_CONFIGS)
def test_hf_round_trip_is_lossless_and_logits_agree(fstride, tstride, length):
    config = size_config(
        "test",
        frequency_stride=fstride,
        time_stride=tstride,
        max_length=length,
        num_labels=11,
    )
    model = _random_model(config)
    x = _spectrograms(config)
    hf_model = to_hf(model, example_input=x)
    assert isinstance(hf_model, transformers.ASTForAudioClassification)
    assert check_logits(model, hf_model, x) <= ATOL
    back = from_hf(hf_model, example_input=x)
    assert back.config == config
    assert back.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_embeddings_match_hf_hidden_states_and_pooler():
    config = size_config("test", max_length=256, num_labels=4)
    model = _random_model(config)
    x = _spectrograms(config)
    hf_model = to_hf(model)
    with torch.no_grad():
        ours = model(x, return_embeddings=True)
        theirs = hf_model.audio_spectrogram_transformer(input_values=x)
    torch.testing.assert_close(ours.tokens, theirs.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.pooled, theirs.pooler_output, atol=ATOL, rtol=0)


def test_base_size_parity_at_a_short_length():
    config = size_config("base384", max_length=128, num_labels=35)
    model = _random_model(config)
    x = _spectrograms(config, batch=1)
    hf_model = to_hf(model)
    assert sum(p.numel() for p in hf_model.parameters()) == sum(
        p.numel() for p in model.parameters()
    )
    assert check_logits(model, hf_model, x) <= ATOL


def test_layer_norm_epsilons_survive_conversion_and_saving(tmp_path):
    """transformers' config has one eps; the original head LayerNorm uses 1e-5, the blocks
    and the final norm 1e-6. In memory `to_hf` keeps both exactly (logits within 1e-5).
    Saved and reloaded, the head LayerNorm gets the config's 1e-6, which rescales every
    normalized pooled vector by sqrt((var + 1e-5) / (var + 1e-6)): the reloaded logits must
    equal ours under exactly that rescaling (within 1e-5), so the eps is the only change."""
    config = size_config("test", max_length=128, num_labels=5)
    model = _random_model(config)
    x = _spectrograms(config)
    hf_model = to_hf(model, example_input=x)
    assert hf_model.config.layer_norm_eps == 1e-6
    assert hf_model.classifier.layernorm.eps == 1e-5
    assert hf_model.audio_spectrogram_transformer.layernorm.eps == 1e-6
    hf_model.save_pretrained(tmp_path)
    reloaded = transformers.ASTForAudioClassification.from_pretrained(tmp_path).eval()
    assert reloaded.classifier.layernorm.eps == 1e-6
    with torch.no_grad():
        ours = model(x, return_embeddings=True)
        theirs = reloaded(input_values=x).logits
        head_norm, head_linear = model.mlp_head
        offset = head_linear(head_norm.bias)  # the logits of a zero normalized vector
    variance = ours.pooled.var(dim=-1, unbiased=False, keepdim=True)
    scale = torch.sqrt((variance + 1e-5) / (variance + 1e-6))
    assert not torch.allclose(theirs, ours.logits, atol=1e-7, rtol=0)  # the eps does matter
    torch.testing.assert_close(theirs, offset + (ours.logits - offset) * scale, atol=ATOL, rtol=0)
    back = from_hf(reloaded, example_input=x)
    assert back.config.head_layer_norm_eps == 1e-6  # read off the module: exact again


def test_from_hf_of_a_native_transformers_model():
    hf_config = transformers.ASTConfig(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=192,
        max_length=300,
        num_mel_bins=64,
        frequency_stride=12,
        time_stride=14,
        num_labels=6,
    )  # transformers' default eps 1e-12 everywhere, as in the MIT/ checkpoints
    torch.manual_seed(0)
    hf_model = transformers.ASTForAudioClassification(hf_config).eval()
    with torch.no_grad():  # transformers zero-initializes these; make them count
        embeddings = hf_model.audio_spectrogram_transformer.embeddings
        for param in (embeddings.position_embeddings, embeddings.cls_token):
            param.normal_(0, 0.5)
    model = from_hf(hf_model)
    assert model.config.layer_norm_eps == 1e-12 and model.config.head_layer_norm_eps == 1e-12
    assert model.config.grid == ((64 - 16) // 12 + 1, (300 - 16) // 14 + 1)
    x = _spectrograms(model.config)
    assert check_logits(model, hf_model, x) <= ATOL


def test_transformers_4_names_load_into_this_version(tmp_path):
    """Weights written with transformers 4.x names reload (transformers renames them on
    load) and give the same logits; our 4.x table also converts back losslessly."""
    config = size_config("test", max_length=128, num_labels=3)
    model = _random_model(config)
    v4 = to_hf_state_dict(model.state_dict(), num_layers=2, naming="v4")
    assert "audio_spectrogram_transformer.encoder.layer.1.attention.attention.query.weight" in v4
    assert "audio_spectrogram_transformer.encoder.layer.0.output.dense.bias" in v4
    back = from_hf_state_dict(v4, num_layers=2)
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())

    hf_model = to_hf(model)
    hf_model.config.save_pretrained(tmp_path)
    torch.save(v4, tmp_path / "pytorch_model.bin")
    reloaded = transformers.ASTForAudioClassification.from_pretrained(tmp_path).eval()
    reloaded.classifier.layernorm.eps = config.head_layer_norm_eps
    assert check_logits(model, reloaded, _spectrograms(config)) <= ATOL


def test_qkv_is_split_into_query_key_value_rows():
    model = _random_model(size_config("test", max_length=64))
    hf_state = to_hf_state_dict(model.state_dict(), num_layers=2)
    qkv = model.blocks[1].attn.qkv.weight  # (3D, D): rows [query; key; value]
    prefix = "audio_spectrogram_transformer.layers.1.attention."
    assert torch.equal(hf_state[prefix + "q_proj.weight"], qkv[:64])
    assert torch.equal(hf_state[prefix + "k_proj.weight"], qkv[64:128])
    assert torch.equal(hf_state[prefix + "v_proj.weight"], qkv[128:])


def test_a_wrong_conversion_is_caught_by_the_logits_check():
    config = size_config("test", max_length=64, num_labels=2)
    model = _random_model(config).train()
    x = _spectrograms(config)
    hf_model = to_hf(model)
    with torch.no_grad():
        hf_model.audio_spectrogram_transformer.layers[0].attention.k_proj.weight.mul_(1.5)
    with pytest.raises(ConversionError, match="differ"):
        check_logits(model, hf_model, x)
    assert model.training  # the check restores the caller's mode
    unsupported = transformers.ASTForAudioClassification(
        transformers.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, hidden_act="relu", max_length=64)
    )  # fmt: skip
    with pytest.raises(ConversionError, match="gelu"):
        from_hf(unsupported)


def test_keep_imagenet_heads_is_dropped_by_the_conversion():
    config = size_config("test", max_length=64, keep_imagenet_heads=True)
    model = _random_model(config)
    x = _spectrograms(config)
    back = from_hf(to_hf(model, example_input=x))
    assert not back.config.keep_imagenet_heads
    check_logits(back, to_hf(model), x)
    assert create_model("test", max_length=64).state_dict().keys() == back.state_dict().keys()


def test_only_square_patches_convert():
    # Table 6's 32 x 32 patches are square: transformers' one patch_size holds them.
    square = size_config("test", max_length=64, frequency_patch_size=32, time_patch_size=32,
                         frequency_stride=32, time_stride=32, num_labels=2)  # fmt: skip
    model = _random_model(square)
    hf_model = to_hf(model, example_input=_spectrograms(square))
    assert hf_model.config.patch_size == 32
    assert from_hf(hf_model).config == square
    slices = size_config("test", max_length=64, frequency_patch_size=128, time_patch_size=2)
    with pytest.raises(ConversionError, match=r"square patches only.*128 x 2"):
        to_hf(AST(slices))


def _tiny_hf(id2label: dict[int, str]) -> transformers.ASTForAudioClassification:
    hf_config = transformers.ASTConfig(
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=96,
        max_length=128,
        num_mel_bins=32,
        num_labels=len(id2label),
        id2label=id2label,
    )
    return transformers.ASTForAudioClassification(hf_config).eval()


def test_a_transformers_model_names_its_outputs():
    # MIT/ast-finetuned-speech-commands-v2 names its outputs in the original csv's order
    words = speechcommands_labels().names
    labels = hf_labels(_tiny_hf(dict(enumerate(words))))
    assert labels == speechcommands_labels()
    assert labels.mids[:2] == ("/m/spcmd00", "/m/spcmd01") and labels.names[:2] == (
        "backward",
        "follow",
    )
    # the same words in another order are not that label set: they keep their own names
    other = hf_labels(_tiny_hf(dict(enumerate(sorted(words)))))
    assert other.names == tuple(sorted(words)) and other.mids == other.names
    model = _tiny_hf({0: "a", 1: "b"})
    model.config.id2label = {0: "a"}
    with pytest.raises(ConversionError, match="id2label names 1 outputs, the classifier has 2"):
        hf_labels(model)
