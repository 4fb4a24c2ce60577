"""The patch-overlap and patch-shape ablations of paper section 2.2, Tables 5 and 6 (notebook 03).

The original sets the patch grid in `ASTModel.__init__` (`src/models/ast_models.py`, its
`fstride`/`tstride` arguments and `get_shape`); the ablation scripts were not released. Here
each table row is a variant of a grid (`ast_repro.experiments.run_grid`):

- Table 5, `stride_variants`: 16 x 16 patches at strides 16, 14, 12 and 10 (overlap 0, 2, 4
  and 6), named `stride<N>` in the grid `stride_grid(recipe, synthetic=...)`, so that notebook 05
  reuses the runs for Ensemble-M;
- Table 6, `shape_variants`: patch shapes without ImageNet pretraining, each without overlap:
  frame slices spanning every mel bin and 2 frames wide (128 x 2 on the paper's input),
  16 x 16 and 32 x 32.

Besides the variants: the cost of each stride (`stride_costs`: patch count and FLOPs per
clip), the paper's numbers (`paper_rows`, from `results/paper_reference.json`) and the
paper numbers a run reproduces (`reproduced_rows`, for the report); measured orderings are
compared with the paper's by `ast_repro.grid_results.compare_ordering`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ast_repro.grid_results import grid_name
from ast_repro.imagenet_ablation import reported_result
from ast_repro.model_config import forward_flops, size_config
from ast_repro.results import reproduced_row

PAPER_STRIDES = (16, 14, 12, 10)  # Table 5; 10 is the recipe's stride
PATCH = 16  # the ImageNet patch side (ast_repro.config.IMAGENET_PATCH_SIZE)
SHAPE_NAMES = ("frame_slices", "square16", "square32")  # Table 6's rows, in its order


def stride_variant(stride: int) -> str:
    """The grid variant name of a stride, e.g. "stride10" (shared with notebook 05)."""
    return f"stride{stride}"


def stride_grid(recipe: str, *, synthetic: bool) -> str:
    """The name of Table 5's grid, e.g. "patch_overlap-smoke_audioset-twin".

    Notebook 05 trains its seeds and strides in the same grid, so that the runs of
    notebook 03 are reused for Ensemble-M and the other way round.
    """
    return grid_name("patch_overlap", recipe, synthetic=synthetic)


def shape_grid(recipe: str, *, synthetic: bool) -> str:
    """The name of Table 6's grid, e.g. "patch_shape-smoke_audioset-twin"."""
    return grid_name("patch_shape", recipe, synthetic=synthetic)


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


def reproduced_rows(
    stride_rows: Sequence[Mapping[str, Any]],
    shape_rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    dataset: str,
    reference: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The paper numbers of Tables 5 and 6 the two grids reproduce, for metrics["reproduced"].

    Table 5's rows are the stride variants in the column of `dataset` ("full" on
    "audioset_full", else "balanced"); Table 6's rows the shape variants without
    pretraining, and its one ImageNet cell (16 x 16) is Table 5's stride-16 run, as in the
    paper (both 0.336).

    Args:
        stride_rows, shape_rows: `run_grid` rows of the stride and the shape grid.
        metric: what the rows measure, "mAP" or "accuracy" (`ast_repro.results.run_metric`).
        dataset: the data (`ast_repro.results.run_dataset`).
        reference: `paper_reference()`.

    Returns:
        One `ast_repro.results.reproduced_row` per paper number with a result: the mean over
        seeds of each variant's `imagenet_ablation.reported_result` (the weight average on
        AudioSet), with those seeds.
    """
    split = "full" if dataset == "audioset_full" else "balanced"
    refs: dict[str, list[str]] = {
        stride_variant(s): [f"patch_overlap.rows.{s}.{split}"] for s in PAPER_STRIDES
    }
    refs[stride_variant(PATCH)].append("patch_shape.rows.square16.imagenet")
    refs.update({name: [f"patch_shape.rows.{name}.no_pretraining"] for name in SHAPE_NAMES})
    results: dict[str, dict[int, float]] = {}
    for row in [*stride_rows, *shape_rows]:
        value = reported_result(row)
        if row["variant"] in refs and value is not None:
            results.setdefault(row["variant"], {})[int(row["seed"])] = value
    return [
        reproduced_row(ref, sum(runs.values()) / len(runs), metric=metric, dataset=dataset,
                       variant=variant, seeds=sorted(runs), reference=reference)
        for variant, runs in results.items()
        for ref in refs[variant]
    ]  # fmt: skip
