"""The ImageNet-initialization ablations of paper section 2.2 and Tables 2-4 (notebook 02).

The original builds every model of these tables in `ASTModel.__init__`
(`src/models/ast_models.py`); the ablation scripts themselves were not released. Here each
table row is a variant of a grid (`ast_repro.experiments.run_grid`): config overrides of the
recipe, through the same validated path as `ast-repro train --set`. `INIT_VARIANTS` holds
Table 2 (no pretraining against ImageNet), Table 4 (positional-embedding adaptation) and the
channel merge of the patch kernel; `SOURCE_VARIANTS` holds the other ImageNet weights of
Table 3. The `imagenet` variant is the recipe itself, the row every table marks "used":
distilled DeiT, the "ast" cut-and-interpolate positions and the summed kernel.

Besides the variants: the paper's numbers for each table (`ablation_tables`, from
`results/paper_reference.json`; orderings are compared by
`ast_repro.grid_results.compare_ordering`), and the scale of the patch embedding next to
the positional embedding it is added to (`embedding_scale`), which is what the channel
merge changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ast_repro.model import AST
from ast_repro.results import paper_value, reproduced_row

# Variant names of the grid (results/train/<grid>/<variant>-s<seed>/).
RECIPE_VARIANT = "imagenet"
INIT_VARIANTS: dict[str, dict[str, Any]] = {
    "scratch": {"imagenet_pretrain": False},  # Table 2: no pretraining
    RECIPE_VARIANT: {},  # DeiT distilled, "ast" positions, summed kernel (the original code)
    "pos_bilinear": {"pos_embed_mode": "bilinear"},  # Table 4, whole-grid reading
    "pos_nearest": {"pos_embed_mode": "nearest"},  # Table 4
    "pos_reinit": {"pos_embed_mode": "reinit"},  # Table 4
    "channel_average": {"channel_merge": "average"},  # the paper text's "average"
}
# Table 3; its "DeiT with distillation (used)" row is the `imagenet` variant. The paper trains
# ViT-Large without patch overlap (stride 16) because of GPU memory.
SOURCE_VARIANTS: dict[str, dict[str, Any]] = {
    "vit_base": {"imagenet_source": "vit_base_patch16_384"},
    "vit_large": {"imagenet_source": "vit_large_patch16_384", "model_size": "large384",
                  "frequency_stride": 16, "time_stride": 16},
    "deit_base": {"imagenet_source": "deit_base_patch16_384"},
}  # fmt: skip


# Each table's variants -> the dotted key of their paper number in
# results/paper_reference.json; "{split}" is Table 2's column ("balanced" or "full").
PAPER_REFS: dict[str, dict[str, str]] = {
    "table2": {
        "scratch": "imagenet_pretraining.rows.none.{split}",
        RECIPE_VARIANT: "imagenet_pretraining.rows.imagenet.{split}",
    },
    "table3": {
        "vit_base": "pretrained_weights.rows.vit_base",
        "vit_large": "pretrained_weights.rows.vit_large",
        "deit_base": "pretrained_weights.rows.deit_without_distillation",
        RECIPE_VARIANT: "pretrained_weights.rows.deit_with_distillation",
    },
    "table4": {
        "pos_reinit": "positional_embedding.rows.reinit",
        "pos_nearest": "positional_embedding.rows.nearest",
        RECIPE_VARIANT: "positional_embedding.rows.bilinear",  # the paper's "bilinear (used)"
    },
}


@dataclass(frozen=True)
class AblationTable:
    """One ablation table: its rows as grid variants and the paper's numbers.

    Attributes:
        key: short name, e.g. "table2".
        title: what the table compares, with the paper's table number.
        rows: variant -> the row's label, in the table's order.
        paper: variant -> the paper's AudioSet mAP (weight-averaged; balanced set, or
            Table 2's `split` column); variants without a paper number are absent.
        refs: variant -> the dotted key of its paper number in the reference (empty for
            the channel merge, which is no table of the paper).
    """

    key: str
    title: str
    rows: dict[str, str]
    paper: dict[str, float]
    refs: dict[str, str] = field(default_factory=dict)

    def paper_rows(self) -> list[dict[str, Any]]:
        """The paper's numbers as table rows: variant, row (label) and paper."""
        return [
            {"variant": variant, "row": self.rows[variant], "paper": value}
            for variant, value in self.paper.items()
        ]


def ablation_tables(
    reference: Mapping[str, Any], split: str = "balanced"
) -> dict[str, AblationTable]:
    """Tables 2, 3, 4 and the channel merge, with the paper's numbers.

    Args:
        reference: `paper_reference()`.
        split: Table 2's column, "balanced" or "full" AudioSet mAP (Tables 3 and 4 exist
            for the balanced set only).

    Returns:
        {"table2", "table3", "table4", "channel"} -> `AblationTable`.

    Raises:
        KeyError: the reference lacks one of the numbers.
    """
    refs = {key: {variant: ref.format(split=split) for variant, ref in table.items()}
            for key, table in PAPER_REFS.items()}  # fmt: skip

    def paper(key: str) -> dict[str, float]:
        values = {variant: paper_value(reference, ref) for variant, ref in refs[key].items()}
        return {variant: value for variant, value in values.items() if value is not None}

    return {
        "table2": AblationTable(
            "table2",
            "Table 2: ImageNet pretraining",
            {"scratch": "no pretraining", RECIPE_VARIANT: "ImageNet pretraining"},
            paper("table2"),
            refs["table2"],
        ),
        "table3": AblationTable(
            "table3",
            "Table 3: pretrained weights",
            {
                "vit_base": "ViT-Base",
                "vit_large": "ViT-Large (stride 16)",
                "deit_base": "DeiT without distillation",
                RECIPE_VARIANT: "DeiT with distillation (used)",
            },
            paper("table3"),
            refs["table3"],
        ),
        "table4": AblationTable(
            "table4",
            "Table 4: positional-embedding adaptation",
            {
                "pos_reinit": "reinitialized",
                "pos_nearest": "nearest-neighbour interpolation",
                "pos_bilinear": "bilinear, whole grid (no cut)",
                RECIPE_VARIANT: "cut + bilinear interpolation (used)",
            },
            paper("table4"),
            refs["table4"],
        ),
        "channel": AblationTable(
            "channel",
            "channel merge of the RGB patch kernel (not a paper table)",
            {RECIPE_VARIANT: "sum (original code)", "channel_average": "average (paper text)"},
            {RECIPE_VARIANT: paper("table2")[RECIPE_VARIANT]},
        ),
    }


def reported_result(row: Mapping[str, Any]) -> float | None:
    """The number a grid row is compared on, as the paper reports it for its recipe.

    The weight-averaged model's metric where the recipe averages weights (AudioSet), else
    the test-set metric of the best-validation model where there is one (Speech Commands),
    else the last epoch's (ESC-50's fold mean).
    """
    for key in ("wa", "test", "last"):
        if row.get(key) is not None:
            return float(row[key])
    return None


def table_rows(rows: Sequence[Mapping[str, Any]], table: AblationTable) -> list[dict[str, Any]]:
    """The grid rows of one table, in its order, with `row` (label), `result` and `paper`.

    Args:
        rows: `run_grid` or `read_grid` rows, of any grids.
        table: from `ablation_tables`.

    Returns:
        Copies of the rows whose variant is in the table; `result` is `reported_result(row)`.
    """
    order = {variant: i for i, variant in enumerate(table.rows)}
    chosen = sorted(
        (row for row in rows if row["variant"] in order),
        key=lambda row: (order[row["variant"]], row["seed"]),
    )
    return [
        {**row, "row": table.rows[row["variant"]], "result": reported_result(row),
         "paper": table.paper.get(row["variant"])}
        for row in chosen
    ]  # fmt: skip


def variant_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """variant -> mean `result` over its seeds (rows without a result are left out)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        if row.get("result") is not None:
            values.setdefault(row["variant"], []).append(float(row["result"]))
    return {variant: sum(runs) / len(runs) for variant, runs in values.items()}


def reproduced_rows(
    selected: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    metric: str,
    dataset: str,
    reference: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The paper numbers of Tables 2-4 a grid reproduces, for metrics["reproduced"].

    Args:
        selected: table key ("table2", "table3", "table4"; others are ignored) -> its
            `table_rows`.
        metric: what `result` measures, "mAP" or "accuracy" (`ast_repro.results.run_metric`).
        dataset: the data it was measured on (`ast_repro.results.run_dataset`); on
            "audioset_full" Table 2's rows name its full-set column, else the balanced one.
        reference: `paper_reference()`.

    Returns:
        One `ast_repro.results.reproduced_row` per (table, variant) with a paper number and
        a result: the mean `result` over the variant's seeds, with those seeds.
    """
    tables = ablation_tables(reference, "full" if dataset == "audioset_full" else "balanced")
    rows = []
    for key in (k for k in selected if k in PAPER_REFS):
        means = variant_means(selected[key])
        for variant, ref in tables[key].refs.items():
            if variant not in means:
                continue
            ran = [
                r for r in selected[key] if r["variant"] == variant and r.get("result") is not None
            ]
            seeds = sorted({int(r["seed"]) for r in ran})
            rows.append(
                reproduced_row(ref, means[variant], metric=metric, dataset=dataset,
                               variant=variant, seeds=seeds, reference=reference)
            )  # fmt: skip
    return rows


@dataclass(frozen=True)
class EmbeddingScale:
    """Root-mean-square size of the two embeddings summed before the first block.

    Attributes:
        patch_rms: RMS of the patch embeddings (conv output with bias) over clips,
            patches and channels.
        position_rms: RMS of the grid's positional embeddings.
    """

    patch_rms: float
    position_rms: float

    @property
    def ratio(self) -> float:
        """patch_rms / position_rms: how much the content outweighs the position."""
        return self.patch_rms / self.position_rms


def embedding_scale(model: AST, features: torch.Tensor) -> EmbeddingScale:
    """How large a model's patch embeddings are next to its positional embeddings.

    `forward_features` adds the two (`ASTModel.forward` in `src/models/ast_models.py`
    does the same); summing the RGB kernel makes the patch term three times the averaged
    kernel's (less the bias), while the positional term stays as it is.

    Args:
        model: an AST, e.g. fresh from `ast_repro.weights.imagenet_init`.
        features: (B, T, F) normalized log-mel spectrograms of the model's input size.

    Returns:
        The two RMS values.
    """
    with torch.no_grad():
        patches = model.patch_embed(features)  # (B, N, D)
        positions = model.pos_embed[:, -patches.shape[1] :]  # (1, N, D) grid tokens only
    return EmbeddingScale(
        patch_rms=patches.pow(2).mean().sqrt().item(),
        position_rms=positions.pow(2).mean().sqrt().item(),
    )


def sincos_grid(grid: tuple[int, int], dim: int, *, temperature: float = 10.0) -> torch.Tensor:
    """A smooth 2-D sine-cosine positional grid (timm's `build_sincos2d_pos_embed`).

    Stands in for a learned ImageNet grid where none is at hand, to show what
    `ast_repro.weights.adapt_pos_embed` does to a grid of the paper's size (24 x 24).

    Args:
        grid: (rows, cols).
        dim: embedding width, a multiple of 4.
        temperature: the longest wavelength in cells; the default 10 (timm's is 10000)
            keeps each position alike to a few neighbours only, which makes a cut and a
            squeeze look different.

    Returns:
        (1, rows * cols, dim) grid tokens, row-major.
    """
    from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed

    return build_sincos2d_pos_embed(list(grid), dim=dim, temperature=temperature)[None]


def neighbour_similarity(pos_embed: torch.Tensor, grid: tuple[int, int]) -> tuple[float, float]:
    """Mean cosine similarity of adjacent positions along frequency and along time.

    A centre cut keeps the source grid's spacing (its neighbours are as alike as before);
    resizing a whole axis to fewer cells puts more source cells between neighbours, which
    makes them less alike; a re-initialized grid has no neighbourhoods at all (about 0).

    Args:
        pos_embed: (1, H * W, D) or (H * W, D) grid tokens, frequency-major.
        grid: (H, W) = (frequency rows, time columns), each at least 2.

    Returns:
        (frequency, time) mean similarities in [-1, 1].

    Raises:
        ValueError: the tokens do not form the grid, or an axis has a single cell.
    """
    rows, cols = grid
    tokens = pos_embed.detach().float().reshape(-1, pos_embed.shape[-1])  # (H * W, D)
    if tokens.shape[0] != rows * cols or min(grid) < 2:
        raise ValueError(f"{tokens.shape[0]} positions do not form a grid {rows} x {cols} "
                         "with at least 2 cells per axis")  # fmt: skip
    cells = tokens.reshape(rows, cols, -1)  # (H, W, D)
    frequency = torch.cosine_similarity(cells[1:], cells[:-1], dim=-1).mean().item()
    time = torch.cosine_similarity(cells[:, 1:], cells[:, :-1], dim=-1).mean().item()
    return frequency, time
