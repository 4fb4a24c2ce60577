"""The AST's architecture as data: model sizes, `ASTConfig` and the patch arithmetic.

Kept apart from the modules (`ast_repro.model`) so that configuration, estimates and
checkpoint readers need neither torch nor timm to reason about an architecture (the split
of transformers' `configuration_audio_spectrogram_transformer.py` and its modeling file).
Sizes and constants follow the original `src/models/ast_models.py` and timm's DeiT.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

# DeiT blocks and the final norm use LayerNorm eps 1e-6 (timm DeiT; original
# `src/models/ast_models.py`).
DEIT_LAYER_NORM_EPS = 1e-6
# The original `mlp_head` LayerNorm keeps torch's default eps (original `src/models/ast_models.py`).
HEAD_LAYER_NORM_EPS = 1e-5
# Std of the truncated normal for tokens, positions and block weights (timm 0.4.5 ViT init,
# the original's non-pretrained path, original `src/models/ast_models.py`).
INIT_STD = 0.02
# cls + distillation token in front of the patches (original `src/models/ast_models.py`).
NUM_PREFIX_TOKENS = 2
# DeiT's two ImageNet heads, kept unused by the original (original `src/models/ast_models.py`).
IMAGENET_NUM_CLASSES = 1000
# DeiT's 16 x 16 patches, which the AST keeps to reuse its weights (original
# `src/models/ast_models.py`).
DEIT_PATCH_SIZE = 16
# Where the DeiT ImageNet weights were released (original `src/models/ast_models.py`).
DEIT_URL_BASE = "https://dl.fbaipublicfiles.com/deit/"


@dataclass(frozen=True, kw_only=True)
class ModelSize:
    """A DeiT backbone the AST can start from.

    Attributes:
        hidden_size, num_hidden_layers, num_attention_heads: transformer width, depth, heads.
        source_grid: (rows, cols) patch grid of the ImageNet positional embedding.
        timm_name: timm model (with pretrained tag) holding the size's own ImageNet
            weights; None for `test` (the digits proxy) and `large384` (no DeiT: its
            weights are a Table 3 source, `ast_repro.pretrained.IMAGENET_SOURCES`).
        deit_file: file name of the released weights under `DEIT_URL_BASE`, or None.
    """

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    source_grid: tuple[int, int]
    timm_name: str | None
    deit_file: str | None

    @property
    def deit_url(self) -> str | None:
        return None if self.deit_file is None else DEIT_URL_BASE + self.deit_file


# original `src/models/ast_models.py`. `test` is a tiny size for CPU tests and smoke runs; its
# ImageNet
# stand-in is the digits proxy of `ast_repro.proxy_pretrain` (48 x 48 images, 3 x 3 grid).
# `large384` has no DeiT release: its weights are the `vit_large_patch16_384` source of
# `ast_repro.pretrained.IMAGENET_SOURCES` (paper Table 3).
MODEL_SIZES: dict[str, ModelSize] = {
    f"{width}{resolution}": ModelSize(
        hidden_size=hidden,
        num_hidden_layers=12,
        num_attention_heads=heads,
        source_grid=(resolution // DEIT_PATCH_SIZE, resolution // DEIT_PATCH_SIZE),
        timm_name=f"deit_{width}_distilled_patch16_{resolution}.fb_in1k",
        deit_file=f"deit_{width}_distilled_patch16_{resolution}-{digest}.pth",
    )
    for width, resolution, hidden, heads, digest in [
        ("tiny", 224, 192, 3, "b40b3cf7"),
        ("small", 224, 384, 6, "649709d9"),
        ("base", 224, 768, 12, "df68dfff"),
        ("base", 384, 768, 12, "d0272ac0"),
    ]
}
MODEL_SIZES["large384"] = ModelSize(  # timm `vit_large_patch16_384`
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    source_grid=(24, 24),
    timm_name=None,
    deit_file=None,
)
MODEL_SIZES["test"] = ModelSize(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    source_grid=(3, 3),
    timm_name=None,
    deit_file=None,
)

_SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads")


@dataclass(frozen=True, kw_only=True)
class ASTConfig:
    """Architecture of an AST (transformers' names; defaults are the paper's AudioSet model).

    The patch grid is arithmetic (`patches_along` on each axis), e.g. 12 x 101 = 1212
    patches for 128 x 1024 at stride 10. Patches are frequency_patch_size x time_patch_size,
    16 x 16 as DeiT's unless a Table 6 shape is asked for (transformers' config has one
    square `patch_size`).
    """

    num_mel_bins: int = 128
    max_length: int = 1024
    frequency_patch_size: int = DEIT_PATCH_SIZE
    time_patch_size: int = DEIT_PATCH_SIZE
    frequency_stride: int = 10
    time_stride: int = 10
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: float = 4.0
    num_labels: int = 527
    layer_norm_eps: float = DEIT_LAYER_NORM_EPS
    head_layer_norm_eps: float = HEAD_LAYER_NORM_EPS
    keep_imagenet_heads: bool = False
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = {"int": int, "float": (int, float), "bool": bool}[field.type]
            if isinstance(value, bool) != (field.type == "bool") or not isinstance(value, expected):
                raise TypeError(f"ASTConfig.{field.name} must be {field.type}, got {value!r}")
            if field.type != "bool" and value <= 0:
                raise ValueError(f"ASTConfig.{field.name} must be positive, got {value!r}")
        for axis, patch in (("num_mel_bins", "frequency"), ("max_length", "time")):
            if getattr(self, axis) < getattr(self, f"{patch}_patch_size"):
                raise ValueError(
                    f"ASTConfig.{axis}={getattr(self, axis)} is smaller than "
                    f"{patch}_patch_size={getattr(self, f'{patch}_patch_size')}"
                )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"ASTConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.hidden_size * self.mlp_ratio != self.intermediate_size:
            raise ValueError(
                f"ASTConfig.mlp_ratio={self.mlp_ratio} times hidden_size={self.hidden_size} "
                "is not a whole number"
            )

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(frequency, time) size of one patch in mel bins and frames."""
        return self.frequency_patch_size, self.time_patch_size

    @property
    def frequency_patches(self) -> int:
        return patches_along(self.num_mel_bins, self.frequency_patch_size, self.frequency_stride)

    @property
    def time_patches(self) -> int:
        return patches_along(self.max_length, self.time_patch_size, self.time_stride)

    @property
    def num_patches(self) -> int:
        return self.frequency_patches * self.time_patches

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency_patches, time_patches): rows and columns of the patch grid."""
        return self.frequency_patches, self.time_patches

    @property
    def intermediate_size(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ASTConfig:
        """Build a config from a dict (e.g. one saved in a checkpoint); unknown keys are errors.

        A square `patch_size`, as saved before patches could be rectangular, sets both sides.
        """
        values = dict(values)
        if "patch_size" in values:
            side = values.pop("patch_size")
            values = {"frequency_patch_size": side, "time_patch_size": side, **values}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown ASTConfig keys: {', '.join(unknown)}")
        return cls(**values)


def patches_along(length: int, patch: int, stride: int) -> int:
    """Patches along one axis of `length` frames or mel bins (paper section 2.1).

    The one place of the grid arithmetic, `(length - patch) // stride + 1` (the original's
    `ASTModel.get_shape` runs a dummy conv): 101 for 1024 frames at patch 16 and stride 10.

    Raises:
        ValueError: the patch is longer than the axis, or a size is not positive.
    """
    if min(length, patch, stride) < 1 or patch > length:
        raise ValueError(f"no patch of {patch} fits {length} at stride {stride}")
    return (length - patch) // stride + 1


def size_config(size: str, **overrides: Any) -> ASTConfig:
    """The config of a named size (`MODEL_SIZES`) with other fields overridden.

    Raises:
        KeyError: unknown size or unknown field.
        ValueError: an override of a field that the size fixes (width, depth, heads).
    """
    if size not in MODEL_SIZES:
        raise KeyError(f"unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    fixed = sorted(set(overrides) & set(_SIZE_FIELDS))
    if fixed:
        raise ValueError(f"{', '.join(fixed)} is set by the model size {size!r}")
    spec = MODEL_SIZES[size]
    values = {name: getattr(spec, name) for name in _SIZE_FIELDS}
    return ASTConfig.from_dict({**values, **overrides})


def forward_flops(config: ASTConfig) -> int:
    """Floating-point operations of one clip's forward pass, counting matrix products only.

    Two operations per multiply-add in the patch projection, each block's qkv, attention
    (QK^T and AV over all heads), output projection and MLP, and the classifier; LayerNorm,
    softmax, GELU and the additions are left out (a few percent). Training costs about three
    times this (the backward pass is about twice the forward).

    Args:
        config: the architecture; the token count follows from its patch grid.

    Returns:
        FLOPs per clip, e.g. about 2.6e11 for base384 at 1212 patches.
    """
    patches, dim, hidden = config.num_patches, config.hidden_size, config.intermediate_size
    tokens = patches + NUM_PREFIX_TOKENS
    embed = 2 * patches * config.frequency_patch_size * config.time_patch_size * dim
    # qkv (3 D x D) and output projection (D x D), QK^T and AV (L x L x D each), MLP (2 D x I)
    block = 2 * tokens * (4 * dim * dim + 2 * dim * hidden) + 4 * tokens * tokens * dim
    return embed + config.num_hidden_layers * block + 2 * dim * config.num_labels


def heads_for_width(hidden_size: int) -> int:
    """Attention heads of the DeiT size with this width (checkpoints do not store it)."""
    for spec in MODEL_SIZES.values():
        if spec.hidden_size == hidden_size:
            return spec.num_attention_heads
    known = sorted({spec.hidden_size for spec in MODEL_SIZES.values()})
    raise ValueError(f"no known model size has width {hidden_size} (known: {known})")


def grid_side(num_tokens: int) -> int:
    """Side of a square patch grid with `num_tokens` cells; raises if it is not square."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} grid tokens do not form a square grid")
    return side
