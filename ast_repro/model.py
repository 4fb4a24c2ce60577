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

from functools import partial
from typing import Any, NamedTuple

import torch
from timm.models.vision_transformer import Block
from torch import nn
from torch.utils.checkpoint import checkpoint

from ast_repro.model_config import (
    IMAGENET_NUM_CLASSES,
    INIT_STD,
    NUM_PREFIX_TOKENS,
    ASTConfig,
    size_config,
)


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
