"""The notebooks' figure helpers draw what they say (ast_repro.plots)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ast_repro import plots
from ast_repro.model import create_model
from ast_repro.weights import adapt_pos_embed


def _axes():
    return Figure().add_subplot()


def test_pos_embed_grid_shows_similarity_to_the_reference_cell():
    torch.manual_seed(0)
    source = torch.randn(1, 24 * 24, 32)  # an ImageNet-like 24 x 24 grid
    adapted = adapt_pos_embed(source, (24, 24), (12, 101))
    ax = _axes()
    image = plots.pos_embed_grid(ax, adapted, (12, 101))
    values = image.get_array()
    assert values.shape == (12, 101)
    assert values[6, 50] == pytest.approx(1.0)  # the centre is the default reference
    assert values.max() == pytest.approx(1.0) and values.min() >= -1
    assert "12 x 101" in ax.get_title()
    model = create_model("test", max_length=64)  # a model's own grid, prefix tokens dropped
    image = plots.pos_embed_grid(_axes(), model.pos_embed[:, 2:], model.config.grid,
                                 reference=(0, 0))  # fmt: skip
    assert image.get_array()[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="do not form the grid 12 x 100"):
        plots.pos_embed_grid(_axes(), adapted, (12, 100))


@pytest.mark.parametrize(
    ("patch", "stride", "grid"),
    [(16, 10, (12, 101)), (16, 16, (8, 64)), ((128, 2), (128, 2), (1, 512)), (32, 32, (4, 32))],
)
def test_patch_grid_outlines_every_patch(patch, stride, grid):
    fbank = torch.randn(1024, 128)  # (T, F)
    ax = _axes()
    assert plots.patch_grid(ax, fbank, patch, stride) == grid
    (outlines,) = [c for c in ax.collections if isinstance(c, PatchCollection)]
    assert len(outlines.get_paths()) == grid[0] * grid[1]
    filled = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(filled) == (3 if grid[0] > 1 else 2)  # no frequency neighbour for 128 x 2
    patch_t = patch[1] if isinstance(patch, tuple) else patch
    assert filled[0].get_width() == pytest.approx(patch_t * 0.01)  # frames are 10 ms
    assert f"= {grid[0] * grid[1]}" in ax.get_title()


def test_variant_metrics_draws_means_seeds_and_the_paper():
    rows = [
        {"variant": "deit", "seed": 0, "mAP": 0.30},
        {"variant": "deit", "seed": 1, "mAP": 0.34},
        {"variant": "vit", "seed": 0, "mAP": 0.20},
        {"variant": "vit", "seed": 1, "mAP": None},  # unfinished: left out
    ]
    ax = _axes()
    means = plots.variant_metrics(ax, rows, metric="mAP", paper={"deit": 0.347})
    assert means == pytest.approx({"deit": 0.32, "vit": 0.20})
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([0.32, 0.20])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["deit", "vit"]
    dots = np.concatenate([c.get_offsets() for c in ax.collections[:-1]])
    assert sorted(dots[:, 1].tolist()) == pytest.approx([0.20, 0.30, 0.34])
    assert ax.collections[-1].get_offsets().tolist() == [[0.0, 0.347]]  # the paper's mark
    assert ax.get_ylabel() == "mAP"


def test_cost_vs_patches_fits_the_quadratic():
    patches = [512, 657, 850, 1212]  # strides 16, 14, 12, 10
    cost = [2e-6 * n**2 + 0.03 * n + 1 for n in patches]
    ax = _axes()
    labels = ["stride 16", "stride 14", "stride 12", "stride 10"]
    coefficients = plots.cost_vs_patches(ax, patches, cost, labels=labels)
    np.testing.assert_allclose(coefficients, [2e-6, 0.03, 1], rtol=1e-6)
    assert ax.collections[0].get_offsets().tolist() == [
        list(p) for p in zip(patches, cost, strict=True)
    ]
    assert [t.get_text() for t in ax.texts] == labels
    (curve,) = ax.get_lines()
    assert curve.get_ydata()[0] == pytest.approx(1.0)  # c at N = 0
    with pytest.raises(ValueError, match="3 or more"):
        plots.cost_vs_patches(_axes(), [512, 1212], [1.0, 2.0])


def test_paper_vs_reproduced_fills_comparable_runs_only():
    ax = _axes()
    plots.paper_vs_reproduced(ax, [0.347, 0.148, 0.459], [0.35, 0.04, 0.44],
                              comparable=[True, False, True], title="all")  # fmt: skip
    filled, hollow = ax.collections
    np.testing.assert_allclose(filled.get_offsets(), [[0.347, 0.35], [0.459, 0.44]])
    np.testing.assert_allclose(hollow.get_offsets(), [[0.148, 0.04]])
    assert len(hollow.get_facecolors()) == 0  # hollow: no face
    (diagonal,) = ax.get_lines()
    assert diagonal.get_xydata().tolist() == [[0, 0], [1, 1]]
    assert ax.get_title() == "all"
    with pytest.raises(ValueError, match="do not pair up"):
        plots.paper_vs_reproduced(_axes(), [0.3], [0.3, 0.4], comparable=[True])


def test_paper_and_reproduced_pairs_bars_and_hatches_the_others():
    ax = _axes()
    plots.paper_and_reproduced(ax, ["stride 16", "stride 10"], [0.336, 0.347], [0.30, 0.35],
                               comparable=[False, True])  # fmt: skip
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([0.336, 0.347, 0.30, 0.35])  # paper bars, then ours
    assert [bar.get_hatch() for bar in ax.patches[2:]] == ["//", None]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stride 16", "stride 10"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "paper", "reproduced (hatched: smoke or other data)"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="one entry each"):
        plots.paper_and_reproduced(_axes(), ["a"], [0.3, 0.2], [0.1], comparable=[True])


def test_epoch_ensembles_draws_epochs_cumulative_and_weight_average():
    curve = {"epochs": [1, 2, 3], "per_epoch": [0.30, 0.32, 0.31], "last": 0.31,
             "cumulative": [0.30, 0.33, 0.34], "wa": 0.35, "wa_range": (2, 3)}  # fmt: skip
    ax = _axes()
    plots.epoch_ensembles(ax, curve, label="s0")
    per_epoch, cumulative, wa = ax.get_lines()
    assert per_epoch.get_ydata().tolist() == [0.30, 0.32, 0.31]
    assert cumulative.get_ydata().tolist() == [0.30, 0.33, 0.34]
    assert cumulative.get_linestyle() == "--"
    assert wa.get_xdata().tolist() == [2, 3] and wa.get_ydata().tolist() == [0.35, 0.35]
    assert wa.get_label() == "s0 weight average 2-3"
    assert per_epoch.get_color() == cumulative.get_color() == wa.get_color()
    # the original's balanced log: no per-epoch numbers, the last epoch and the average
    log = {"per_epoch": None, "last": 0.3358, "cumulative": None, "wa": 0.35,
           "wa_range": (6, 25)}  # fmt: skip
    ax = _axes()
    plots.epoch_ensembles(ax, log, label="original")
    (wa,) = ax.get_lines()
    assert wa.get_xdata().tolist() == [6, 25]
    assert ax.collections[0].get_offsets().tolist() == [[25.0, 0.3358]]
    # one cumulative number (the full log) is a star at the last epoch
    ax = _axes()
    plots.epoch_ensembles(ax, {**log, "per_epoch": [0.41, 0.43], "cumulative": 0.44,
                               "wa_range": (1, 2)})  # fmt: skip
    assert ax.collections[0].get_offsets().tolist() == [[2.0, 0.44]]
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [0.41, 0.35]


def test_models_curve_draws_the_ensemble_the_singles_and_the_spread():
    curve = [{"models": 1, "added": "a", "member": 0.30, "ensemble": 0.30},
             {"models": 2, "added": "b", "member": 0.28, "ensemble": 0.33},
             {"models": 3, "added": "c", "member": 0.31, "ensemble": 0.35}]  # fmt: skip
    spread = [{"models": k, "subsets": 1, "mean": m, "min": m - 0.01, "max": m + 0.01}
              for k, m in ((1, 0.30), (2, 0.32), (3, 0.35))]  # fmt: skip
    ax = _axes()
    plots.models_curve(ax, curve, spread, metric="mAP", title="t")
    mean, ensemble = ax.get_lines()
    assert ensemble.get_ydata().tolist() == [0.30, 0.33, 0.35]
    assert mean.get_ydata().tolist() == [0.30, 0.32, 0.35]
    singles = ax.collections[-1].get_offsets().tolist()
    assert singles == [[1.0, 0.30], [1.0, 0.28], [1.0, 0.31]]
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    assert ax.get_xlabel() == "runs averaged" and ax.get_ylabel() == "mAP"
    ax = _axes()
    plots.models_curve(ax, curve)  # without a spread: the ensemble line alone
    assert len(ax.get_lines()) == 1
