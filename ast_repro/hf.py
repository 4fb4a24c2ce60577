"""Conversion to and from transformers' `ASTForAudioClassification`.

The Hugging Face port of the original checkpoints (hf_ast_and_notebook_tooling.md 1.4-1.5)
is the same network with other names: timm's fused `qkv` projection is split into
`q_proj`/`k_proj`/`v_proj`, `norm1`/`norm2` become `layernorm_before`/`layernorm_after`,
and the head is `classifier.{layernorm,dense}`. Both the transformers 5.x names and the
4.x names (`encoder.layer.N.attention.attention.query`, ...) are handled.

LayerNorm epsilons: transformers has one `layer_norm_eps` for every LayerNorm, while the
original uses 1e-6 in the blocks and the final norm and 1e-5 in the head. `to_hf` writes the
blocks' value to the config and sets the head's LayerNorm eps on the module itself, so the
converted model computes exactly what this package's model computes; `from_hf` reads both
values off the modules, so the round trip is lossless.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from ast_repro.datafiles import LabelMap
from ast_repro.errors import AstReproError
from ast_repro.layout import speechcommands_labels
from ast_repro.model import AST
from ast_repro.model_config import ASTConfig

if TYPE_CHECKING:
    import transformers

# Prefix of the backbone in `ASTForAudioClassification`'s state dict.
HF_PREFIX = "audio_spectrogram_transformer."
# transformers' `hidden_act` that equals timm's exact (erf) GELU.
HF_ACTIVATION = "gelu"
# Logit tolerance of the conversion check (float32).
DEFAULT_ATOL = 1e-5

# Per-layer names: this package's suffix -> transformers' suffix, for each naming scheme.
_LAYER_NAMES = {
    "v5": ("layers.{i}.", {
        "norm1": "layernorm_before",
        "attn.proj": "attention.o_proj",
        "norm2": "layernorm_after",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }, ("attention.q_proj", "attention.k_proj", "attention.v_proj")),
    "v4": ("encoder.layer.{i}.", {
        "norm1": "layernorm_before",
        "attn.proj": "attention.output.dense",
        "norm2": "layernorm_after",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }, ("attention.attention.query", "attention.attention.key", "attention.attention.value")),
}  # fmt: skip
# Names outside the layers (the same in 4.x and 5.x).
_OUTER_NAMES = {
    "cls_token": HF_PREFIX + "embeddings.cls_token",
    "dist_token": HF_PREFIX + "embeddings.distillation_token",
    "pos_embed": HF_PREFIX + "embeddings.position_embeddings",
    "patch_embed.proj.weight": HF_PREFIX + "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": HF_PREFIX + "embeddings.patch_embeddings.projection.bias",
    "norm.weight": HF_PREFIX + "layernorm.weight",
    "norm.bias": HF_PREFIX + "layernorm.bias",
    "mlp_head.0.weight": "classifier.layernorm.weight",
    "mlp_head.0.bias": "classifier.layernorm.bias",
    "mlp_head.1.weight": "classifier.dense.weight",
    "mlp_head.1.bias": "classifier.dense.bias",
}


class ConversionError(AstReproError, ValueError):
    """A model cannot be converted, or the converted model's logits differ."""


def _transformers() -> ModuleType:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError("ast_repro.hf needs transformers: pip install 'ast-repro[dev]'") from exc
    return transformers


def naming_of(hf_state_dict: Mapping[str, torch.Tensor]) -> str:
    """ "v5" or "v4": which transformers naming scheme a state dict uses."""
    if any(key.startswith(HF_PREFIX + "layers.") for key in hf_state_dict):
        return "v5"
    if any(key.startswith(HF_PREFIX + "encoder.layer.") for key in hf_state_dict):
        return "v4"
    raise ConversionError("not an ASTForAudioClassification state dict (no layer keys found)")


def to_hf_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, num_layers: int, naming: str = "v5"
) -> dict[str, torch.Tensor]:
    """This package's keys -> transformers' keys (qkv split into q, k, v).

    DeiT's unused ImageNet heads (`head.*`, `head_dist.*`) have no place and are dropped.
    """
    layer_prefix, renames, qkv_names = _LAYER_NAMES[naming]
    out = {hf: state_dict[ours] for ours, hf in _OUTER_NAMES.items()}
    for i in range(num_layers):
        ours, hf = f"blocks.{i}.", HF_PREFIX + layer_prefix.format(i=i)
        for old, new in renames.items():
            for kind in ("weight", "bias"):
                out[f"{hf}{new}.{kind}"] = state_dict[f"{ours}{old}.{kind}"]
        for kind in ("weight", "bias"):
            # qkv rows are [query; key; value], each hidden_size long (timm Attention).
            parts = state_dict[f"{ours}attn.qkv.{kind}"].chunk(3)
            for name, part in zip(qkv_names, parts, strict=True):
                out[f"{hf}{name}.{kind}"] = part
    return out


def from_hf_state_dict(
    hf_state_dict: Mapping[str, torch.Tensor], *, num_layers: int
) -> dict[str, torch.Tensor]:
    """transformers' keys (5.x or 4.x) -> this package's keys (q, k, v merged into qkv)."""
    layer_prefix, renames, qkv_names = _LAYER_NAMES[naming_of(hf_state_dict)]
    out = {ours: hf_state_dict[hf] for ours, hf in _OUTER_NAMES.items()}
    for i in range(num_layers):
        ours, hf = f"blocks.{i}.", HF_PREFIX + layer_prefix.format(i=i)
        for old, new in renames.items():
            for kind in ("weight", "bias"):
                out[f"{ours}{old}.{kind}"] = hf_state_dict[f"{hf}{new}.{kind}"]
        for kind in ("weight", "bias"):
            parts = [hf_state_dict[f"{hf}{name}.{kind}"] for name in qkv_names]
            out[f"{ours}attn.qkv.{kind}"] = torch.cat(parts, dim=0)
    return out


def to_hf_config(
    config: ASTConfig, *, id2label: Mapping[int, str] | None = None
) -> transformers.ASTConfig:
    """transformers' config for an `ASTConfig` (its one eps is the blocks' eps).

    Raises:
        ConversionError: the patches are not square (transformers has one `patch_size`).
    """
    if config.frequency_patch_size != config.time_patch_size:
        raise ConversionError(
            f"transformers' ASTConfig has square patches only; this model's patches are "
            f"{config.frequency_patch_size} x {config.time_patch_size} (frequency x time)"
        )
    if id2label is not None and len(id2label) != config.num_labels:
        raise ValueError(f"id2label has {len(id2label)} names for {config.num_labels} labels")
    extra = {} if id2label is None else {"id2label": {int(k): v for k, v in id2label.items()}}
    return _transformers().ASTConfig(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=HF_ACTIVATION,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=config.layer_norm_eps,
        patch_size=config.frequency_patch_size,
        qkv_bias=True,
        frequency_stride=config.frequency_stride,
        time_stride=config.time_stride,
        max_length=config.max_length,
        num_mel_bins=config.num_mel_bins,
        num_labels=config.num_labels,
        **extra,
    )


def to_hf(
    model: AST,
    *,
    id2label: Mapping[int, str] | None = None,
    example_input: torch.Tensor | None = None,
    atol: float = DEFAULT_ATOL,
) -> transformers.ASTForAudioClassification:
    """Convert to transformers' `ASTForAudioClassification` (same dtype, eval mode).

    Args:
        model: the AST; DeiT's unused ImageNet heads, if kept, are left out.
        id2label: class names for the Hugging Face config.
        example_input: (B, T, F) spectrograms; when given, both models' logits must agree
            within `atol` or `ConversionError` is raised.
        atol: tolerance of that check.

    Raises:
        ConversionError: the patches are not square (a Table 6 shape), or the logits differ.
    """
    with torch.device("meta"):  # no random init: every tensor is assigned below
        hf_model = _transformers().ASTForAudioClassification(
            to_hf_config(model.config, id2label=id2label)
        )
    # NOTE: transformers' config has one LayerNorm eps (written from the blocks, 1e-6); the
    # original head LayerNorm uses 1e-5, which we set on the module. A copy saved with
    # `save_pretrained` reloads with 1e-6 in the head; tests/test_hf.py pins that effect.
    hf_model.classifier.layernorm.eps = model.config.head_layer_norm_eps
    state_dict = to_hf_state_dict(model.state_dict(), num_layers=model.config.num_hidden_layers)
    _assign_all(hf_model, state_dict)
    hf_model.eval()
    if example_input is not None:
        check_logits(model, hf_model, example_input, atol=atol)
    return hf_model


def from_hf(
    hf_model: transformers.ASTForAudioClassification,
    *,
    example_input: torch.Tensor | None = None,
    atol: float = DEFAULT_ATOL,
) -> AST:
    """Convert a transformers `ASTForAudioClassification` (e.g. `MIT/ast-finetuned-*`).

    Dropout settings are not carried over: the AST has none (the original uses 0).

    Args:
        hf_model: the Hugging Face model (transformers 5.x or 4.x names).
        example_input: (B, T, F) spectrograms for a logits check, as in `to_hf`.
        atol: tolerance of that check.

    Returns:
        The AST in eval mode, on the Hugging Face model's dtype.
    """
    hf_config = hf_model.config
    if hf_config.hidden_act != HF_ACTIVATION or not hf_config.qkv_bias:
        raise ConversionError(
            f"only hidden_act='gelu' with qkv_bias=True matches the AST blocks; got "
            f"{hf_config.hidden_act!r}, qkv_bias={hf_config.qkv_bias}"
        )
    if not isinstance(hf_model.classifier.dense, torch.nn.Linear):
        raise ConversionError("the Hugging Face model has no classifier (num_labels=0)")
    config = ASTConfig(
        num_mel_bins=hf_config.num_mel_bins,
        max_length=hf_config.max_length,
        frequency_patch_size=hf_config.patch_size,
        time_patch_size=hf_config.patch_size,
        frequency_stride=hf_config.frequency_stride,
        time_stride=hf_config.time_stride,
        hidden_size=hf_config.hidden_size,
        num_hidden_layers=hf_config.num_hidden_layers,
        num_attention_heads=hf_config.num_attention_heads,
        mlp_ratio=hf_config.intermediate_size / hf_config.hidden_size,
        num_labels=hf_model.classifier.dense.out_features,
        layer_norm_eps=hf_model.audio_spectrogram_transformer.layernorm.eps,
        head_layer_norm_eps=hf_model.classifier.layernorm.eps,
    )
    with torch.device("meta"):  # no random init: every tensor is assigned below
        model = AST(config)
    _assign_all(
        model, from_hf_state_dict(hf_model.state_dict(), num_layers=config.num_hidden_layers)
    )
    model.eval()
    if example_input is not None:
        check_logits(model, hf_model, example_input, atol=atol)
    return model


def hf_labels(hf_model: transformers.ASTForAudioClassification) -> LabelMap:
    """The label names of a transformers model, in the order of its outputs (`id2label`).

    A model whose names are the Speech Commands words in the original csv's order (as
    `MIT/ast-finetuned-speech-commands-v2`) gets that label set's ids, /m/spcmd00.., so it
    scores prepared Speech Commands datafiles directly; other names serve as their own ids.

    Raises:
        ConversionError: `id2label` does not name every output once.
    """
    id2label = {int(k): str(v) for k, v in hf_model.config.id2label.items()}
    num_labels = hf_model.classifier.dense.out_features
    if sorted(id2label) != list(range(num_labels)):
        raise ConversionError(
            f"id2label names {len(id2label)} outputs, the classifier has {num_labels}"
        )
    names = tuple(id2label[i] for i in range(num_labels))
    speech = speechcommands_labels()
    if names == speech.names:
        return speech
    return LabelMap(mids=names, names=names)


def _assign_all(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Give a module built on the meta device its tensors (copies: no storage is shared)."""
    module.load_state_dict(
        {key: value.detach().clone() for key, value in state_dict.items()}, strict=True, assign=True
    )
    left = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise ConversionError(f"no values for {', '.join(left)}")


def check_logits(
    model: AST,
    hf_model: transformers.ASTForAudioClassification,
    example_input: torch.Tensor,
    *,
    atol: float = DEFAULT_ATOL,
) -> float:
    """Largest |logit difference| of the two models on (B, T, F) input; raises above `atol`."""
    modes = model.training, hf_model.training
    model.eval()
    hf_model.eval()
    try:
        with torch.no_grad():
            ours = model(example_input)
            theirs = hf_model(input_values=example_input).logits
    finally:
        model.train(modes[0])
        hf_model.train(modes[1])
    difference = (ours - theirs).abs().max().item()
    if not difference <= atol:
        raise ConversionError(f"converted logits differ by {difference:.3g} (> atol {atol:g})")
    return difference
