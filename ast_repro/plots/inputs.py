"""Figures of what the model reads: spectrograms, waveforms, kernels and patch grids.

Spectrograms and waveforms (notebooks 00-01, 04), the positional grids and patch kernels of
the ImageNet adaptation (notebook 02, paper section 2.2), the patch grid at a stride
(notebook 03, Tables 5-6) and random draws against their density (notebook 04).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from ast_repro.features import FRAME_SHIFT_MS
from ast_repro.model_config import patches_along


def spectrogram(ax: Axes, fbank: torch.Tensor, *, title: str = "", colorbar: bool = True) -> None:
    """Draw a (T, F) log-mel spectrogram with time in seconds across and mel bin up."""
    values = fbank.detach().cpu().numpy().T  # (F, T)
    seconds = values.shape[1] * FRAME_SHIFT_MS / 1000
    image = ax.imshow(
        values, origin="lower", aspect="auto", extent=(0, seconds, 0, values.shape[0]),
        cmap="magma",
    )  # fmt: skip
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)


def waveform(ax: Axes, samples: torch.Tensor, sample_rate: int, *, title: str = "") -> None:
    """Draw a (N,) waveform against time in seconds."""
    values = samples.detach().cpu().numpy()
    ax.plot(np.arange(values.size) / sample_rate, values, linewidth=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylim(-1, 1)
    if title:
        ax.set_title(title)


def histograms(
    ax: Axes,
    samples: Sequence[torch.Tensor],
    labels: Sequence[str],
    *,
    bins: int = 100,
    title: str = "",
) -> None:
    """Overlay density histograms of several tensors' values."""
    for values, label in zip(samples, labels, strict=True):
        ax.hist(values.detach().cpu().flatten().numpy(), bins=bins, density=True, alpha=0.5,
                label=label, histtype="stepfilled")  # fmt: skip
    ax.legend()
    if title:
        ax.set_title(title)


def grid(rows: int, cols: int, *, width: float = 4.0, height: float = 2.6) -> tuple[Figure, Axes]:
    """A figure of rows x cols axes sized for a notebook."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, axes


def pos_embed_grid(
    ax: Axes,
    pos_embed: torch.Tensor,
    grid: tuple[int, int],
    *,
    reference: tuple[int, int] | None = None,
    title: str = "",
) -> AxesImage:
    """Draw how similar each position of a positional grid is to one reference position.

    The cosine similarity to the reference cell shows what the adaptation of paper section
    2.2 (Table 4) does: a 24 x 24 ImageNet grid cut and interpolated to 12 x 101 keeps its
    smooth neighbourhoods, a re-initialized one has none.

    Args:
        pos_embed: (1, H * W, D) or (H * W, D) grid tokens, frequency-major, without the
            cls/dist positions (e.g. `model.pos_embed[:, 2:]`).
        grid: (H, W) = (frequency rows, time columns).
        reference: (row, col) compared with; default the centre cell, marked with a cross.
        title: axes title.

    Returns:
        The image, (H, W) similarities in [-1, 1].

    Raises:
        ValueError: the tokens are not H * W.
    """
    tokens = pos_embed.detach().cpu().float().reshape(-1, pos_embed.shape[-1])  # (H * W, D)
    rows, cols = grid
    if tokens.shape[0] != rows * cols:
        raise ValueError(f"{tokens.shape[0]} positions do not form the grid {rows} x {cols}")
    row, col = reference if reference is not None else (rows // 2, cols // 2)
    similarity = F.cosine_similarity(tokens, tokens[row * cols + col][None], dim=1)
    image = ax.imshow(similarity.reshape(rows, cols).numpy(), origin="lower", aspect="auto",
                      cmap="RdBu_r", vmin=-1, vmax=1)  # fmt: skip
    ax.plot(col, row, marker="x", color="black")
    ax.set_xlabel("time patch")
    ax.set_ylabel("frequency patch")
    ax.set_title(title or f"{rows} x {cols}: cosine similarity to ({row}, {col})")
    return image


def kernels(axes: Sequence[Axes], kernels: Mapping[str, torch.Tensor]) -> AxesImage:
    """Draw 2-D conv kernels side by side on one colour scale, symmetric about zero.

    One scale for all makes the channel merge of paper section 2.2 visible: the RGB kernels
    of a patch filter, their sum (the original code) and their average (a third of it).

    Args:
        axes: one axes per kernel.
        kernels: title -> (P, P) kernel, e.g. `weight[filter, channel]`.

    Returns:
        The last image (for a colorbar).

    Raises:
        ValueError: the numbers of axes and kernels differ, or a kernel is not 2-D.
    """
    if len(axes) != len(kernels):
        raise ValueError(f"{len(kernels)} kernels need as many axes, got {len(axes)}")
    values = {name: kernel.detach().cpu().float() for name, kernel in kernels.items()}
    if any(kernel.ndim != 2 for kernel in values.values()):
        raise ValueError("each kernel must be (P, P); index the filter and the channel first")
    limit = max(kernel.abs().max().item() for kernel in values.values()) or 1.0
    for ax, (name, kernel) in zip(axes, values.items(), strict=True):
        image = ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    return image


# The first patch and its neighbours along time and along frequency: (row, col) -> colour.
_HIGHLIGHTS = {(0, 0): "tab:cyan", (0, 1): "tab:green", (1, 0): "tab:orange"}


def patch_grid(
    ax: Axes,
    fbank: torch.Tensor,
    patch: int | tuple[int, int],
    stride: int | tuple[int, int],
    *,
    title: str = "",
) -> tuple[int, int]:
    """Draw a spectrogram with the outline of every patch the AST cuts from it.

    The first patch and its neighbours along time and frequency are filled, so the overlap
    of paper Table 5 (stride below the patch side) and the shapes of Table 6 are visible.

    Args:
        fbank: (T, F) log-mel spectrogram.
        patch: patch side, or (frequency, time) sides, in mel bins and frames.
        stride: step, or (frequency, time) steps.
        title: axes title; default the patch, stride and patch count.

    Returns:
        (frequency patches, time patches), from `ast_repro.model.patches_along`.
    """
    (patch_f, patch_t), (stride_f, stride_t) = _pair(patch), _pair(stride)
    frames, bins = fbank.shape
    rows, cols = patches_along(bins, patch_f, stride_f), patches_along(frames, patch_t, stride_t)
    spectrogram(ax, fbank, colorbar=False)
    second = FRAME_SHIFT_MS / 1000  # frames -> seconds on the x axis
    outlines = [Rectangle((c * stride_t * second, r * stride_f), patch_t * second, patch_f)
                for r in range(rows) for c in range(cols)]  # fmt: skip
    ax.add_collection(PatchCollection(outlines, facecolor="none", edgecolor="white",
                                      linewidth=0.3, alpha=0.5))  # fmt: skip
    for (r, c), color in _HIGHLIGHTS.items():
        if r < rows and c < cols:
            ax.add_patch(Rectangle((c * stride_t * second, r * stride_f), patch_t * second,
                                   patch_f, facecolor=color, alpha=0.5))  # fmt: skip
    ax.set_title(title or f"{patch_f} x {patch_t} patches, stride {stride_f}/{stride_t}: "
                          f"{rows} x {cols} = {rows * cols}")  # fmt: skip
    return rows, cols


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def samples_vs_density(
    ax: Axes,
    samples: torch.Tensor,
    density: Callable[[np.ndarray], np.ndarray],
    *,
    label: str,
    bins: int = 60,
    title: str = "",
) -> None:
    """A histogram of draws against the density they should follow (e.g. mixup's Beta(10, 10)).

    Args:
        samples: (N,) draws in [0, 1].
        density: the expected density, evaluated on [0, 1] (e.g. `scipy.stats.beta(10, 10).pdf`).
        label: the density's name in the legend.
        bins: histogram bins over [0, 1].
        title: axes title.
    """
    values = samples.detach().cpu().double().numpy()
    ax.hist(values, bins=bins, range=(0, 1), density=True, alpha=0.5,
            label=f"{values.size} draws")  # fmt: skip
    grid_points = np.linspace(0, 1, 201)
    ax.plot(grid_points, density(grid_points), color="black", label=label)
    ax.set_xlabel("value")
    ax.set_ylabel("density")
    ax.legend()
    if title:
        ax.set_title(title)
