"""Figures the notebooks show, kept here so notebooks hold no function definitions.

`from ast_repro import plots` gives every figure: those of what the model reads
(`ast_repro.plots.inputs`: spectrograms, waveforms, kernels, patch grids, draws) and those
of what runs measured (`ast_repro.plots.runs`: ablation variants, epochs, ensembles, costs,
paper against reproduced).
"""

from ast_repro.plots.inputs import (
    grid,
    histograms,
    kernels,
    patch_grid,
    pos_embed_grid,
    samples_vs_density,
    spectrogram,
    waveform,
)
from ast_repro.plots.runs import (
    cost_vs_patches,
    epoch_curves,
    epoch_ensembles,
    models_curve,
    paper_and_reproduced,
    paper_vs_reproduced,
    variant_metrics,
)

__all__ = [
    "cost_vs_patches",
    "epoch_curves",
    "epoch_ensembles",
    "grid",
    "histograms",
    "kernels",
    "models_curve",
    "paper_and_reproduced",
    "paper_vs_reproduced",
    "patch_grid",
    "pos_embed_grid",
    "samples_vs_density",
    "spectrogram",
    "variant_metrics",
    "waveform",
]
