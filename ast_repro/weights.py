"""Pretrained weights for the AST as pure functions on tensors and state dicts (paper 2.2).

Three kinds of checkpoints reach an `AST`:
- ImageNet DeiT/ViT weights (timm format): the RGB patch kernel becomes a one-channel kernel
  (summed, as the original code does) and the square positional grid is cut and interpolated
  to the spectrogram's patch grid (`imagenet_init`; the original's `ASTModel.__init__` in
  `src/models/ast_models.py`);
- the original repository's AudioSet checkpoint, as the start of ESC-50 fine-tuning
  (`audioset_init`: positions cut or interpolated from 12 x 101, a fresh head; the
  `audioset_pretrain=True` branch of `ASTModel.__init__`);
- the original repository's released .pth files, for inference (`from_original_state_dict`).

The adaptation is pure functions over tensors (`adapt_patch_kernel`, `adapt_pos_embed`);
the rest copies tensors with shape checks. Nothing here reads a file: that is
`ast_repro.checkpoint`, and which files exist is `ast_repro.pretrained`.
Positional grids are (rows, cols) = (frequency, time), flattened frequency-major.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from ast_repro.model import AST
from ast_repro.model_config import (
    INIT_STD,
    NUM_PREFIX_TOKENS,
    ASTConfig,
    grid_side,
    heads_for_width,
)
from ast_repro.pretrained import WeightsError

# ImageNet positional-embedding adaptations (paper Table 4): "ast" is the original's centre
# cut and bilinear interpolation.
PosMode = Literal["ast", "bilinear", "nearest", "reinit"]
ChannelMode = Literal["sum", "average"]
POS_MODES: tuple[str, ...] = get_args(PosMode)
CHANNEL_MODES: tuple[str, ...] = get_args(ChannelMode)

# Patch grid of the original AudioSet checkpoints: 128 x 1024 at stride 10 (the
# `audioset_pretrain` branch of `ASTModel.__init__` reshapes to 12 x 101).
AUDIOSET_GRID = (12, 101)
# Input lengths of the original recipes, tried in this order when a checkpoint's length is
# not given (AudioSet, ESC-50, Speech Commands: `audio_length` in `egs/audioset/run.sh`,
# `egs/esc50/run_esc.sh`, `egs/speechcommands/run_sc.sh`).
RECIPE_LENGTHS = (1024, 512, 128)
# nn.DataParallel / DistributedDataParallel prefix every key of a wrapped model's state dict
# with this; the original saves its models wrapped (`src/traintest.py`, `train`).
WRAPPER_PREFIX = "module."
# The original AST keeps its timm backbone as `self.v` (`src/models/ast_models.py`).
BACKBONE_PREFIX = "v."


# ---------------------------------------------------------------------------- pure adaptation


def adapt_patch_kernel(weight: torch.Tensor, *, mode: ChannelMode = "sum") -> torch.Tensor:
    """Turn an RGB patch kernel into a one-channel kernel.

    The original code sums the three channels, which equals feeding the same spectrogram to
    all three colour inputs; the paper's text says "average", which scales every patch
    embedding by 1/3 (offered for the ablation).

    Args:
        weight: (D, C, P, P) conv kernel; one channel is returned as is.
        mode: "sum" (original code) or "average" (paper's wording).

    Returns:
        (D, 1, P, P) kernel.
    """
    if mode not in CHANNEL_MODES:
        raise ValueError(f"channel mode {mode!r} is not one of {CHANNEL_MODES}")
    if weight.ndim != 4:
        raise ValueError(f"a patch kernel is (D, C, P, P), got shape {tuple(weight.shape)}")
    if mode == "sum":
        return weight.sum(dim=1, keepdim=True)
    return weight.mean(dim=1, keepdim=True)


def adapt_pos_embed(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    *,
    mode: PosMode = "ast",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Adapt the grid part of a positional embedding to another patch grid.

    Modes (paper Table 4; the ablation code was not released, so "bilinear" and "nearest"
    are this package's reading of its rows, marked NOTE below):
    - "ast": the original code. Time axis first: cut the centre columns when the target is
      not longer, else bilinear interpolation (align_corners=False); then the frequency axis
      the same way. This is the paper's "bilinear interpolation (used)" row.
    - "bilinear" / "nearest": resize the whole grid along both axes, no cutting.
    - "reinit": a fresh truncated normal (std 0.02), ignoring the input values.

    Args:
        pos_embed: (1, H * W, D) grid tokens only, without the cls/dist positions.
        old_grid: (H, W) = (frequency rows, time columns) of `pos_embed`.
        new_grid: (h, w) of the result.
        mode: one of `POS_MODES`.
        generator: random source for "reinit".

    Returns:
        (1, h * w, D) grid tokens, frequency-major.
    """
    if mode not in POS_MODES:
        raise ValueError(f"positional-embedding mode {mode!r} is not one of {POS_MODES}")
    rows, cols = old_grid
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1 or pos_embed.shape[1] != rows * cols:
        raise ValueError(
            f"pos_embed of shape {tuple(pos_embed.shape)} is not (1, {rows} * {cols}, D) "
            f"grid tokens for the grid {old_grid}"
        )
    dim = pos_embed.shape[2]
    if mode == "reinit":
        fresh = torch.empty(1, new_grid[0] * new_grid[1], dim, dtype=pos_embed.dtype)
        fresh = torch.nn.init.trunc_normal_(fresh, std=INIT_STD, generator=generator)
        return fresh.to(pos_embed.device)
    grid = pos_embed.transpose(1, 2).reshape(1, dim, rows, cols)  # (1, D, H, W)
    if mode == "ast":
        grid = _ast_resize(grid, new_grid, cut_if_equal=True)
    # NOTE: ablation modes without an original implementation: the whole grid is resized.
    elif mode == "bilinear":
        grid = F.interpolate(grid, size=new_grid, mode="bilinear", align_corners=False)
    else:
        grid = F.interpolate(grid, size=new_grid, mode="nearest")
    return grid.flatten(2).transpose(1, 2)  # (1, h * w, D)


def _ast_resize(
    grid: torch.Tensor, new_grid: tuple[int, int], *, cut_if_equal: bool
) -> torch.Tensor:
    """The original's cut-or-interpolate, time axis first. (1, D, H, W) -> (1, D, h, w).

    `cut_if_equal` mirrors the original's comparisons in `ASTModel.__init__`: `<=` on the
    ImageNet path, `<` on the AudioSet path. Either way an equal size comes back unchanged,
    because bilinear interpolation to the same size is the identity.
    """
    for axis, size in ((3, new_grid[1]), (2, new_grid[0])):
        old = grid.shape[axis]
        if size < old or (cut_if_equal and size == old):
            grid = grid.narrow(axis, old // 2 - size // 2, size)  # centre cut
        elif size > old:
            target = [grid.shape[2], grid.shape[3]]
            target[axis - 2] = size
            grid = F.interpolate(grid, size=tuple(target), mode="bilinear", align_corners=False)
    return grid


# ---------------------------------------------------------------------------- state dicts


def strip_wrapper_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The package's one rule for the DataParallel/DDP prefix: a leading `module.` is removed
    from every key that has one, so a wrapped model's tensors get the bare model's names."""
    return {key.removeprefix(WRAPPER_PREFIX): value for key, value in state_dict.items()}


def strip_original_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original-repository keys (`module.v.*`, `module.mlp_head.*`) -> this package's keys."""
    return {
        key.removeprefix(BACKBONE_PREFIX): value
        for key, value in strip_wrapper_prefix(state_dict).items()
    }


def to_original_state_dict(model: AST) -> dict[str, torch.Tensor]:
    """This package's state dict in the original repository's DataParallel format."""
    return {
        WRAPPER_PREFIX + ("" if key.startswith("mlp_head.") else BACKBONE_PREFIX) + key: value
        for key, value in model.state_dict().items()
    }


def _assign(model: AST, updates: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy tensors into the model after checking every key and shape."""
    own = model.state_dict()
    for key, value in updates.items():
        if key not in own:
            raise WeightsError(f"{source}: {key} has no place in this model")
        if tuple(own[key].shape) != tuple(value.shape):
            raise WeightsError(
                f"{source}: {key} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(own[key].shape)}"
            )
    with torch.no_grad():
        for key, value in updates.items():
            own[key].copy_(value)


def _require(state_dict: Mapping[str, torch.Tensor], keys: list[str], source: str) -> None:
    missing = [key for key in keys if key not in state_dict]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise WeightsError(f"{source}: missing {len(missing)} key(s): {shown}")


def _backbone_keys(model: AST) -> list[str]:
    return [k for k in model.state_dict() if k.startswith(("blocks.", "norm."))]


def _check_width(model: AST, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    width = state_dict["cls_token"].shape[-1]
    if width != model.config.hidden_size:
        raise WeightsError(
            f"{source}: weights are {width} wide, the model's hidden_size is "
            f"{model.config.hidden_size}; build the model with the matching size"
        )


def _imagenet_heads(model: AST, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not model.config.keep_imagenet_heads:
        return {}
    return {k: v for k, v in state_dict.items() if k.startswith(("head.", "head_dist."))}


def imagenet_init(
    model: AST,
    state_dict: Mapping[str, torch.Tensor],
    *,
    pos_mode: PosMode = "ast",
    channel_mode: ChannelMode = "sum",
    source_grid: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
) -> AST:
    """Initialize an AST from ImageNet DeiT (distilled) or ViT weights in timm's format.

    Args:
        model: the AST to fill in place; its `mlp_head` keeps its fresh initialization.
        state_dict: timm keys `patch_embed.proj.*`, `cls_token`, `dist_token`, `pos_embed`,
            `blocks.*`, `norm.*` (`head.*`, `head_dist.*` used only with keep_imagenet_heads).
        pos_mode: positional-embedding adaptation, see `adapt_pos_embed`.
        channel_mode: patch-kernel adaptation, see `adapt_patch_kernel`.
        source_grid: the weights' patch grid; inferred when it is square.
        generator: random source for pos_mode="reinit".

    Returns:
        The same model.
    """
    source = "ImageNet state dict"
    _require(state_dict, ["patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed",
                          "cls_token"], source)  # fmt: skip
    _check_width(model, state_dict, source)
    _require(state_dict, _backbone_keys(model), source)
    kernel = tuple(state_dict["patch_embed.proj.weight"].shape[-2:])
    if kernel != model.config.patch_shape:
        raise WeightsError(
            f"{source}: its patches are {kernel[0]} x {kernel[1]}, the model's "
            f"{model.config.frequency_patch_size} x {model.config.time_patch_size}; the paper "
            "trains other patch shapes without pretraining (Table 6)"
        )
    distilled = "dist_token" in state_dict
    num_prefix = 2 if distilled else 1
    pos_embed = state_dict["pos_embed"]  # (1, prefix + H * W, D)
    grid_tokens = pos_embed[:, num_prefix:]
    if source_grid is None:
        side = grid_side(grid_tokens.shape[1])
        source_grid = (side, side)
    cls_pos = pos_embed[:, :1]
    if distilled:
        dist_token, dist_pos = state_dict["dist_token"], pos_embed[:, 1:2]
    else:
        # NOTE: a plain ViT has no distillation token; we start it (and its position) as a
        # copy of the cls token, so (cls + dist) / 2 begins as the ViT's own cls output.
        dist_token, dist_pos = state_dict["cls_token"], cls_pos
    grid = adapt_pos_embed(
        grid_tokens, source_grid, model.config.grid, mode=pos_mode, generator=generator
    )
    updates = {
        "patch_embed.proj.weight": adapt_patch_kernel(
            state_dict["patch_embed.proj.weight"], mode=channel_mode
        ),
        "patch_embed.proj.bias": state_dict["patch_embed.proj.bias"],
        "cls_token": state_dict["cls_token"],
        "dist_token": dist_token,
        "pos_embed": torch.cat((cls_pos, dist_pos, grid), dim=1),  # (1, N + 2, D)
        **{key: state_dict[key] for key in _backbone_keys(model)},
        **_imagenet_heads(model, state_dict),
    }
    _assign(model, updates, source)
    return model


def audioset_init(
    model: AST,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source_grid: tuple[int, int] = AUDIOSET_GRID,
    name: str = "AudioSet checkpoint",
) -> AST:
    """Initialize an AST from the original AudioSet checkpoint (AST-P; the `audioset_pretrain`
    branch of `ASTModel.__init__`, `src/models/ast_models.py`).

    Everything but the classifier is copied; the positional grid is cut at the centre when
    the new grid is shorter and bilinearly interpolated when longer, time axis first.

    Args:
        model: the AST to fill in place; its `mlp_head` stays fresh (the 527-way head is
            dropped, as in the original).
        state_dict: the checkpoint's tensors, e.g. of `audioset_10_10_0.4593.pth`
            (`module.v.*` keys or this package's keys); read a file with
            `ast_repro.checkpoint.read_state_dict`.
        source_grid: the checkpoint's patch grid, 12 x 101 for the released models.
        name: what error messages call the checkpoint, e.g. its path.

    Returns:
        The same model.

    Raises:
        WeightsError: a key is missing or a shape does not fit the model.
    """
    source, state_dict = name, strip_original_prefixes(state_dict)
    keys = ["patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed", "cls_token",
            "dist_token"]  # fmt: skip
    _require(state_dict, keys, source)
    _check_width(model, state_dict, source)
    _require(state_dict, _backbone_keys(model), source)
    pos_embed = state_dict["pos_embed"]  # (1, 2 + 12 * 101, D)
    rows, cols = source_grid
    if pos_embed.shape[1] != NUM_PREFIX_TOKENS + rows * cols:
        raise WeightsError(
            f"{source}: pos_embed has {pos_embed.shape[1]} tokens, not 2 + {rows} x {cols}; "
            "pass the checkpoint's source_grid"
        )
    dim = pos_embed.shape[2]
    grid = pos_embed[:, NUM_PREFIX_TOKENS:].transpose(1, 2).reshape(1, dim, rows, cols)
    grid = _ast_resize(grid, model.config.grid, cut_if_equal=False)
    # NOTE: the original keeps the checkpoint's stride-10 conv whatever strides were asked for
    # and only adapts the grid (so other strides misbehave, issues #73/#131); the kernel here
    # runs with the model's own strides, consistent with its positional grid.
    updates = {key: state_dict[key] for key in keys if key != "pos_embed"}
    updates["pos_embed"] = torch.cat(
        (pos_embed[:, :NUM_PREFIX_TOKENS], grid.flatten(2).transpose(1, 2)), dim=1
    )
    updates.update({key: state_dict[key] for key in _backbone_keys(model)})
    updates.update(_imagenet_heads(model, state_dict))
    _assign(model, updates, source)
    return model


# ---------------------------------------------------------------------------- released models


def from_original_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    frequency_stride: int,
    time_stride: int,
    max_length: int | None = None,
    num_labels: int | None = None,
    num_mel_bins: int = 128,
    name: str = "original checkpoint",
) -> AST:
    """Build an AST from the state dict of a model released with (or trained by) the original
    code, as `egs/audioset/inference.py` rebuilds `ASTModel`. Width, depth and labels come
    from the tensors; the length is the first of `RECIPE_LENGTHS` that fits the positional
    embedding unless given. DeiT's unused ImageNet heads are dropped.

    Args:
        state_dict: `module.v.*` / `module.mlp_head.*` keys (or this package's keys).
        frequency_stride: patch stride along frequency, in bins.
        time_stride: patch stride along time, in frames.
        max_length: input length in frames; None tries `RECIPE_LENGTHS`.
        num_labels: expected size of the head; None takes the tensors' size.
        num_mel_bins: input height in mel bins.
        name: what error messages call the checkpoint, e.g. its path.

    Returns:
        The AST in eval mode, holding the given tensors (not copies).

    Raises:
        WeightsError: a key is missing, the head has another size than `num_labels`, or no
            length fits the positional embedding.
    """
    state_dict = strip_original_prefixes(state_dict)
    _require(state_dict, ["pos_embed", "cls_token", "mlp_head.1.weight"], name)
    labels = state_dict["mlp_head.1.weight"].shape[0]
    if num_labels is not None and num_labels != labels:
        raise WeightsError(f"{name}: the head has {labels} labels, not {num_labels}")
    width = state_dict["cls_token"].shape[-1]
    depth = len({key.split(".")[1] for key in state_dict if key.startswith("blocks.")})
    num_tokens = state_dict["pos_embed"].shape[1] - NUM_PREFIX_TOKENS
    lengths = RECIPE_LENGTHS if max_length is None else (max_length,)
    for length in lengths:
        config = ASTConfig(
            num_mel_bins=num_mel_bins,
            max_length=length,
            frequency_stride=frequency_stride,
            time_stride=time_stride,
            hidden_size=width,
            num_hidden_layers=depth,
            num_attention_heads=heads_for_width(width),
            num_labels=labels,
        )
        if config.num_patches == num_tokens:
            break
    else:
        raise WeightsError(
            f"{name}: pos_embed has {num_tokens} patch tokens, which no max_length in "
            f"{lengths} gives at strides {frequency_stride}/{time_stride}; pass max_length="
        )
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(("head.", "head_dist."))}
    with torch.device("meta"):  # no random init: every tensor comes from the state dict
        model = AST(config)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{name}: {exc}") from None
    return model.eval()
