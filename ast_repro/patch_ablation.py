"""The patch-overlap and patch-shape ablations of paper section 2.2, Tables 5 and 6 (notebook 03).

The original sets the patch grid in `ASTModel.__init__` (`src/models/ast_models.py`, its
`fstride`/`tstride` arguments and `get_shape`); the ablation scripts were not released. Here
each table row is a variant of a grid (`ast_repro.experiments.run_grid`):

- Table 5, `stride_variants`: 16 x 16 patches at strides 16, 14, 12 and 10 (overlap 0, 2, 4
  and 6), named `stride<N>` in the grid `stride_grid(profile, dataset)`, so that notebook 05
  reuses the runs for Ensemble-M;
- Table 6, `shape_variants`: patch shapes without ImageNet pretraining, each without overlap:
  frame slices spanning every mel bin and 2 frames wide (128 x 2 on the paper's input),
  16 x 16 and 32 x 32.

Besides the variants: the cost of each stride (`stride_costs`: patch count and FLOPs per
clip), the paper's numbers (`paper_rows`, from `results/paper_reference.json`) and the check
of a measured ordering against the paper's (`compare_ordering`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ast_repro.model import forward_flops, size_config

PAPER_STRIDES = (16, 14, 12, 10)  # Table 5; 10 is the recipe's stride
PATCH = 16  # the ImageNet patch side (ast_repro.config.IMAGENET_PATCH_SIZE)
SHAPE_NAMES = ("frame_slices", "square16", "square32")  # Table 6's rows, in its order


def stride_variant(stride: int) -> str:
    """The grid variant name of a stride, e.g. "stride10" (shared with notebook 05)."""
    return f"stride{stride}"


def stride_grid(profile: str, dataset: str) -> str:
    """The name of Table 5's grid, e.g. "patch_overlap-smoke-audioset".

    Notebook 05 trains its seeds and strides in the same grid, so that the runs of
    notebook 03 are reused for Ensemble-M and the other way round.
    """
    return f"patch_overlap-{profile}-{dataset}"


def stride_variants(strides: Sequence[int] = PAPER_STRIDES) -> dict[str, dict[str, Any]]:
    """Table 5's variants: 16 x 16 patches at each stride along frequency and time.

    Raises:
        ValueError: a stride below 1 or above the patch side (gaps between patches).
    """
    bad = [s for s in strides if not 1 <= s <= PATCH]
    if bad:
        raise ValueError(f"strides {bad} leave gaps or are not positive (patch side {PATCH})")
    return {stride_variant(s): {"frequency_stride": s, "time_stride": s} for s in strides}


def shape_variants(num_mel_bins: int = 128) -> dict[str, dict[str, Any]]:
    """Table 6's variants: patch shapes without ImageNet pretraining, without overlap.

    Args:
        num_mel_bins: the frequency side of the frame slices (128 in the paper).

    Returns:
        {"frame_slices": num_mel_bins x 2, "square16": 16 x 16, "square32": 32 x 32} ->
        overrides of the patch sides, the strides (= the sides) and `imagenet_pretrain`.
    """
    shapes = {"frame_slices": (num_mel_bins, 2), "square16": (16, 16), "square32": (32, 32)}
    return {
        name: {"frequency_patch_size": f, "time_patch_size": t, "frequency_stride": f,
               "time_stride": t, "imagenet_pretrain": False}
        for name, (f, t) in shapes.items()
    }  # fmt: skip


def stride_costs(
    strides: Sequence[int] = PAPER_STRIDES,
    *,
    size: str = "base384",
    num_mel_bins: int = 128,
    frames: int = 1024,
    num_labels: int = 527,
) -> list[dict[str, Any]]:
    """Patch grid and forward FLOPs per clip of each stride (paper Table 5's patch counts).

    Args:
        strides: 16 x 16 patches at these strides.
        size: a model size of `ast_repro.model.MODEL_SIZES`.
        num_mel_bins, frames: the input, (frames, num_mel_bins).
        num_labels: classes of the head.

    Returns:
        One row per stride: variant, stride, overlap, frequency and time patches, patches
        and gflops (`ast_repro.model.forward_flops` / 1e9); 512, 657, 850 and 1212 patches
        for the paper's 128 x 1024 input.
    """
    rows = []
    for stride in strides:
        config = size_config(size, num_mel_bins=num_mel_bins, max_length=frames,
                             num_labels=num_labels, frequency_stride=stride,
                             time_stride=stride)  # fmt: skip
        rows.append({
            "variant": stride_variant(stride),
            "stride": stride,
            "overlap": PATCH - stride,
            "frequency_patches": config.frequency_patches,
            "time_patches": config.time_patches,
            "patches": config.num_patches,
            "gflops": forward_flops(config) / 1e9,
        })  # fmt: skip
    return rows


def paper_rows(reference: Mapping[str, Any], split: str = "balanced") -> dict[str, dict[str, Any]]:
    """The paper's Tables 5 and 6 keyed by this module's variant names.

    Args:
        reference: `paper_reference()`.
        split: Table 5's column, "balanced" or "full" AudioSet mAP.

    Returns:
        {"table5": {"stride16": {"patches": 512, "paper": 0.336}, ...},
         "table6": {"frame_slices": {"shape": "128x2", "patches": 512, "paper": 0.154}, ...}}
        (Table 6: balanced AudioSet mAP without pretraining).

    Raises:
        KeyError: the reference lacks a table or `split`.
    """
    table5 = reference["patch_overlap"]["rows"]
    table6 = reference["patch_shape"]["rows"]
    return {
        "table5": {stride_variant(int(s)): {"patches": row["patches"], "paper": row[split]}
                   for s, row in table5.items()},
        "table6": {name: {"shape": table6[name]["shape"], "patches": table6[name]["patches"],
                          "paper": table6[name]["no_pretraining"]} for name in SHAPE_NAMES},
    }  # fmt: skip


def compare_ordering(
    measured: Mapping[str, float], paper: Mapping[str, float], *, label: str = "smoke"
) -> str:
    """A line saying whether the measured ranking of variants is the paper's.

    Only variants present in both are ranked, highest first; ties in the paper keep its order.

    Args:
        measured: variant -> this run's metric (e.g. mean over seeds).
        paper: variant -> the paper's metric.
        label: the profile named in the line.

    Returns:
        e.g. "smoke ordering matches the paper: no (paper: stride10 > stride12 > ...;
        smoke: stride16 > ...)".

    Raises:
        ValueError: fewer than two variants in common.
    """
    common = [name for name in paper if name in measured]
    if len(common) < 2:
        raise ValueError(f"need two variants in both to compare, got {common}")
    ours = sorted(common, key=lambda name: -measured[name])
    theirs = sorted(common, key=lambda name: -paper[name])
    verdict = "yes" if ours == theirs else "no"
    return (f"{label} ordering matches the paper: {verdict} "
            f"(paper: {' > '.join(theirs)}; {label}: {' > '.join(ours)})")  # fmt: skip
