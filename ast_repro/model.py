"""The Audio Spectrogram Transformer (paper section 2; original `src/models/ast_models.py`).

A (B, T, F) log-mel spectrogram is cut into 16 x 16 patches with separate frequency and time
strides (the overlap of paper section 2.2, Table 5; other patch shapes for Table 6),
projected to D dimensions, prefixed with the cls and distillation tokens of DeiT, given a
learned positional embedding and passed through pre-norm transformer blocks (timm's
`Block`, attention through PyTorch's `scaled_dot_product_attention`). The final outputs of
the two prefix tokens are averaged and classified by LayerNorm + Linear (original
`src/models/ast_models.py`, `ASTModel.forward`).

Parameter names follow the original checkpoints with `module.v.` and `module.` removed, so
the adapters in `ast_repro.weights` and `ast_repro.hf` are plain renames.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
from timm.models.vision_transformer import Block
from torch import nn
from torch.utils.checkpoint import checkpoint

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


class ASTOutput(NamedTuple):
    """What `AST.forward(..., return_embeddings=True)` returns.

    Attributes:
        logits: (B, C) raw scores; apply sigmoid or softmax outside.
        pooled: (B, D) mean of the cls and distillation outputs, the classifier's input.
        tokens: (B, N + 2, D) every token after the final LayerNorm; the patches are in
            frequency-major order (index = f * time_patches + t) after the 2 prefix tokens.
    """

    logits: torch.Tensor
    pooled: torch.Tensor
    tokens: torch.Tensor


class PatchEmbed(nn.Module):
    """(frequency, time) patches with separate strides, one input channel (16 x 16 by default).

    timm's `PatchEmbed` ties the stride to the patch size and checks the image size, so the
    AST needs its own (the original also replaced timm's, original `src/models/ast_models.py`).
    """

    def __init__(
        self, *, patch_shape: tuple[int, int], frequency_stride: int, time_stride: int, dim: int
    ):
        super().__init__()
        self.proj = nn.Conv2d(
            1, dim, kernel_size=patch_shape, stride=(frequency_stride, time_stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1).transpose(2, 3)  # (B, T, F) -> (B, 1, F, T)
        x = self.proj(x)  # (B, D, f, t)
        return x.flatten(2).transpose(1, 2)  # (B, f * t, D), frequency-major


class AST(nn.Module):
    """The Audio Spectrogram Transformer.

    Args:
        config: the architecture; `config.max_length` and `config.num_mel_bins` fix the input.
    """

    def __init__(self, config: ASTConfig):
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.gradient_checkpointing = config.gradient_checkpointing
        self.patch_embed = PatchEmbed(
            patch_shape=config.patch_shape,
            frequency_stride=config.frequency_stride,
            time_stride=config.time_stride,
            dim=dim,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + NUM_PREFIX_TOKENS, dim))
        block_norm = partial(nn.LayerNorm, eps=config.layer_norm_eps)
        self.blocks = nn.ModuleList(
            Block(
                dim,
                config.num_attention_heads,
                mlp_ratio=config.mlp_ratio,
                qkv_bias=True,
                norm_layer=block_norm,
            )
            for _ in range(config.num_hidden_layers)
        )
        for block in self.blocks:
            _use_fused_attention(block)
        self.norm = block_norm(dim)
        self.mlp_head = nn.Sequential(
            nn.LayerNorm(dim, eps=config.head_layer_norm_eps), nn.Linear(dim, config.num_labels)
        )
        if config.keep_imagenet_heads:
            # NOTE: the original always keeps DeiT's two ImageNet heads, unused (1.538 M
            # parameters); we drop them unless asked, to match its parameter count or keys.
            self.head = nn.Linear(dim, IMAGENET_NUM_CLASSES)
            self.head_dist = nn.Linear(dim, IMAGENET_NUM_CLASSES)
        self._init_weights()

    def _init_weights(self) -> None:
        # The original's non-pretrained path: timm 0.4.5 ViT init for tokens, positions, block
        # and ImageNet-head Linears; PyTorch defaults for the patch conv and the mlp_head.
        for tensor in (self.pos_embed, self.cls_token, self.dist_token):
            nn.init.trunc_normal_(tensor, std=INIT_STD)
        linears = [m for m in self.blocks.modules() if isinstance(m, nn.Linear)]
        if self.config.keep_imagenet_heads:
            linears += [self.head, self.head_dist]
        for linear in linears:
            nn.init.trunc_normal_(linear.weight, std=INIT_STD)
            nn.init.zeros_(linear.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) normalized log-mel -> (B, N + 2, D) tokens after the final LayerNorm."""
        self._check_input(x)
        patches = self.patch_embed(x)  # (B, N, D)
        batch = patches.shape[0]
        prefix = torch.cat(
            (self.cls_token.expand(batch, -1, -1), self.dist_token.expand(batch, -1, -1)), dim=1
        )  # (B, 2, D)
        tokens = torch.cat((prefix, patches), dim=1) + self.pos_embed  # (B, N + 2, D)
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if checkpointing:
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
        return self.norm(tokens)

    def forward(
        self, x: torch.Tensor, *, return_embeddings: bool = False
    ) -> torch.Tensor | ASTOutput:
        """Classify a batch of spectrograms.

        Args:
            x: (B, T, F) normalized log-mel with T = max_length frames and F = num_mel_bins.
            return_embeddings: also return the pooled vector and the token sequence.

        Returns:
            (B, C) logits, or an `ASTOutput` when `return_embeddings` is true.
        """
        # NOTE: the original wraps forward in `autocast()`, so even evaluation ran in fp16;
        # here precision is the caller's choice (train/evaluate use bf16 autocast on GPU).
        tokens = self.forward_features(x)
        pooled = (tokens[:, 0] + tokens[:, 1]) / 2  # (B, D)
        logits = self.mlp_head(pooled)  # (B, C)
        if return_embeddings:
            return ASTOutput(logits=logits, pooled=pooled, tokens=tokens)
        return logits

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.config.max_length, self.config.num_mel_bins)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"AST expects (B, T, F) = (B, {expected[0]}, {expected[1]}) spectrograms, got "
                f"shape {tuple(x.shape)}; pad or crop the time axis to max_length "
                "(ast_repro.features.pad_or_crop) or build the model for another max_length"
            )


def _use_fused_attention(block: nn.Module) -> None:
    """Make timm's attention call `F.scaled_dot_product_attention`.

    timm >= 0.9 picks SDPA unless TIMM_FUSED_ATTN=0 or export mode is set; we switch it on
    per block so those global settings cannot silently select the slow eager path.
    """
    attention = block.attn
    # NOTE: the original (timm 0.4.5) computed attention as explicit softmax(QK^T)V; SDPA
    # is the same function (tests/test_model.py compares them) with flash/memory kernels.
    if not hasattr(attention, "fused_attn"):
        raise RuntimeError(
            "this timm version's Attention has no `fused_attn` switch; ast-repro needs timm >= 1.0"
        )
    attention.fused_attn = True


def create_model(size: str = "base384", **overrides: Any) -> AST:
    """Build a freshly initialized AST of a named size.

    Args:
        size: a key of `MODEL_SIZES` (`tiny224`, `small224`, `base224`, `base384`,
            `large384`, `test`).
        **overrides: other `ASTConfig` fields, e.g. `max_length=512, num_labels=50`.
    """
    return AST(size_config(size, **overrides))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (works on the meta device: no memory is touched)."""
    return sum(p.numel() for p in model.parameters())


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
