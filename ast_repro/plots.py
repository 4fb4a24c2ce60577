"""Figures the notebooks show, kept here so notebooks hold no function definitions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ast_repro.features import FRAME_SHIFT_MS


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
