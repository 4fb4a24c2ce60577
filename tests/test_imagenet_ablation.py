"""The ImageNet-initialization ablations' variants, paper numbers and comparisons (Tables 2-4)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from ast_repro import plots
from ast_repro.config import resolve
from ast_repro.grid_results import compare_ordering
from ast_repro.imagenet_ablation import (
    INIT_VARIANTS,
    RECIPE_VARIANT,
    SOURCE_VARIANTS,
    EmbeddingScale,
    ablation_tables,
    embedding_scale,
    neighbour_similarity,
    reported_result,
    reproduced_rows,
    sincos_grid,
    table_rows,
    variant_means,
)
from ast_repro.model import create_model
from ast_repro.proxy_pretrain import build_proxy_vit
from ast_repro.results import paper_reference
from ast_repro.weights import adapt_pos_embed, imagenet_init


@pytest.fixture(scope="module")
def tables():
    return ablation_tables(paper_reference())


def test_tables_hold_the_papers_numbers_for_their_own_rows(tables) -> None:
    assert tables["table2"].paper == {"scratch": 0.148, RECIPE_VARIANT: 0.347}
    assert tables["table3"].paper["vit_large"] == 0.330
    assert tables["table3"].paper[RECIPE_VARIANT] == 0.347
    assert tables["table4"].paper == {"pos_reinit": 0.305, "pos_nearest": 0.346,
                                      RECIPE_VARIANT: 0.347}  # fmt: skip
    known = set(INIT_VARIANTS) | set(SOURCE_VARIANTS)
    for table in tables.values():
        assert set(table.paper) <= set(table.rows) <= known, table.key


@pytest.mark.parametrize("variant", sorted(INIT_VARIANTS))
def test_every_init_variant_resolves_in_both_profiles(variant: str) -> None:
    for recipe in ("smoke_speechcommands", "audioset_balanced"):
        config = resolve(recipe, INIT_VARIANTS[variant])
        assert config.imagenet_pretrain == (variant != "scratch")
    assert resolve("audioset_balanced", INIT_VARIANTS[RECIPE_VARIANT]) == resolve(
        "audioset_balanced"
    )


@pytest.mark.parametrize("variant", sorted(SOURCE_VARIANTS))
def test_table3_variants_resolve_for_the_paper_recipe(variant: str) -> None:
    config = resolve("audioset_balanced", SOURCE_VARIANTS[variant])
    assert config.imagenet_source
    if variant == "vit_large":  # trained without overlap in the paper
        assert (config.model_size, config.frequency_stride, config.time_stride) == (
            "large384", 16, 16
        )  # fmt: skip


def test_headline_prefers_weight_average_then_test_then_last() -> None:
    assert reported_result({"wa": 0.3, "test": 0.2, "last": 0.1}) == 0.3
    assert reported_result({"wa": None, "test": 0.2, "last": 0.1}) == 0.2
    assert reported_result({"wa": None, "test": None, "last": 0.1}) == 0.1
    assert reported_result({"last": None}) is None


def test_table_rows_keep_the_tables_order_labels_and_paper(tables) -> None:
    rows = [
        {"variant": RECIPE_VARIANT, "seed": 1, "wa": 0.5},
        {"variant": "pos_reinit", "seed": 0, "wa": 0.2},
        {"variant": RECIPE_VARIANT, "seed": 0, "wa": 0.4},
        {"variant": "scratch", "seed": 0, "wa": 0.1},
    ]
    chosen = table_rows(rows, tables["table2"])
    assert [(r["variant"], r["seed"]) for r in chosen] == [
        ("scratch", 0), (RECIPE_VARIANT, 0), (RECIPE_VARIANT, 1)
    ]  # fmt: skip
    assert chosen[0]["row"] == "no pretraining" and chosen[0]["paper"] == 0.148
    assert [r["result"] for r in chosen] == [0.1, 0.4, 0.5]
    assert variant_means(chosen) == {"scratch": 0.1, RECIPE_VARIANT: pytest.approx(0.45)}
    assert "result" not in rows[0]  # the input rows are not changed


def test_compare_ordering_matches_mismatches_and_ignores_paper_ties() -> None:
    paper = {"reinit": 0.305, "nearest": 0.346, "bilinear": 0.347}
    same = compare_ordering({"reinit": 0.1, "nearest": 0.2, "bilinear": 0.3}, paper)
    assert same.matches is True and same.paper == ["reinit", "nearest", "bilinear"]
    assert same.line("smoke").startswith("smoke ordering matches the paper: yes (paper reinit")
    assert same.to_dict() == {"ordering_matches_paper": True, "paper_order": same.paper,
                              "measured_order": same.measured}  # fmt: skip
    swapped = compare_ordering({"reinit": 0.1, "nearest": 0.3, "bilinear": 0.2}, paper)
    assert swapped.matches is False and swapped.measured == ["reinit", "bilinear", "nearest"]
    assert "matches the paper: no" in swapped.line("smoke")
    tie = compare_ordering({"reinit": 0.1, "nearest": 0.2, "bilinear": 0.2}, paper)
    assert tie.matches is False  # the paper separates them, the measurement does not
    assert tie.line("smoke").endswith("smoke reinit 0.100 < nearest 0.200 = bilinear 0.200)")
    equal_in_paper = compare_ordering({"a": 0.2, "b": 0.1}, {"a": 0.3, "b": 0.3})
    assert equal_in_paper.matches is True
    alone = compare_ordering({"reinit": 0.1, "other": 0.5}, paper)
    assert alone.matches is None and "nothing to compare" in alone.line("smoke")


def test_embedding_scale_sum_is_three_times_average_without_bias() -> None:
    torch.manual_seed(0)
    state_dict = build_proxy_vit().state_dict()  # timm format, random weights
    state_dict["patch_embed.proj.bias"] = torch.zeros_like(state_dict["patch_embed.proj.bias"])
    features = torch.randn(2, 128, 128) * 0.5  # (B, T, F), normalized
    scales = {}
    for mode in ("sum", "average"):
        model = create_model("test", max_length=128, num_labels=3)
        imagenet_init(model, state_dict, channel_mode=mode)
        scales[mode] = embedding_scale(model, features)
    assert scales["sum"].patch_rms == pytest.approx(3 * scales["average"].patch_rms, rel=1e-5)
    assert scales["sum"].position_rms == scales["average"].position_rms
    assert scales["sum"].ratio == pytest.approx(3 * scales["average"].ratio, rel=1e-5)
    assert EmbeddingScale(2.0, 0.5).ratio == 4.0


def test_sincos_grid_is_smooth_and_keeps_its_shape_through_adaptation() -> None:
    grid = sincos_grid((24, 24), 64)
    assert grid.shape == (1, 576, 64)
    tokens = grid[0].reshape(24, 24, 64)
    near = torch.cosine_similarity(tokens[12, 12], tokens[12, 13], dim=0)
    far = torch.cosine_similarity(tokens[12, 12], tokens[0, 0], dim=0)
    assert near > far
    for mode in ("ast", "bilinear", "nearest"):
        assert adapt_pos_embed(grid, (24, 24), (12, 101), mode=mode).shape == (1, 1212, 64)


def test_kernels_share_one_symmetric_colour_scale() -> None:
    fig = Figure()
    axes = fig.subplots(1, 3)
    weight = torch.randn(4, 3, 16, 16)
    drawn = {"R": weight[0, 0], "sum": weight[0].sum(0), "average": weight[0].mean(0)}
    image = plots.kernels(list(axes), drawn)
    limit = weight[0].sum(0).abs().max().item()
    assert image.get_clim() == pytest.approx((-limit, limit))
    assert [ax.get_title() for ax in axes] == ["R", "sum", "average"]
    with pytest.raises(ValueError, match="need as many axes"):
        plots.kernels(list(axes[:2]), drawn)
    with pytest.raises(ValueError, match="must be"):
        plots.kernels([axes[0]], {"rgb": weight[0]})


def test_neighbour_similarity_sees_cut_squeeze_and_reinit(tables) -> None:
    source = sincos_grid((24, 24), 64)
    frequency, time = neighbour_similarity(source, (24, 24))
    assert frequency == pytest.approx(time, abs=1e-6)  # a square sine-cosine grid
    cut = adapt_pos_embed(source, (24, 24), (12, 101), mode="ast")
    squeezed = adapt_pos_embed(source, (24, 24), (12, 101), mode="bilinear")
    fresh = adapt_pos_embed(source, (24, 24), (12, 101), mode="reinit",
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert neighbour_similarity(cut, (12, 101))[0] == pytest.approx(frequency, abs=5e-3)
    assert neighbour_similarity(squeezed, (12, 101))[0] < frequency - 0.05
    assert abs(neighbour_similarity(fresh, (12, 101))[0]) < 0.1
    assert neighbour_similarity(cut, (12, 101))[1] > time  # 24 columns stretched to 101
    with pytest.raises(ValueError, match="do not form a grid"):
        neighbour_similarity(source, (12, 101))
    assert tables["table4"].paper_rows()[0] == {
        "variant": "pos_reinit", "row": "reinitialized", "paper": 0.305
    }  # fmt: skip


def test_reproduced_rows_name_each_tables_paper_number_with_the_seed_mean() -> None:
    reference = paper_reference()
    rows = [
        {"variant": "scratch", "seed": 0, "wa": 0.1},
        {"variant": RECIPE_VARIANT, "seed": 0, "wa": 0.4},
        {"variant": RECIPE_VARIANT, "seed": 1, "wa": 0.6},
        {"variant": "pos_reinit", "seed": 1, "wa": None},  # unfinished: no number
        {"variant": "pos_bilinear", "seed": 0, "wa": 0.3},  # no paper number of its own
    ]
    tables = ablation_tables(reference)
    selected = {key: table_rows(rows, tables[key]) for key in ("table2", "table4", "channel")}
    reproduced = reproduced_rows(selected, metric="mAP", dataset="audioset_balanced",
                                 reference=reference)  # fmt: skip
    by_ref = {row["ref"]: row for row in reproduced}
    assert list(by_ref) == [
        "imagenet_pretraining.rows.none.balanced",
        "imagenet_pretraining.rows.imagenet.balanced",
        "positional_embedding.rows.bilinear",  # the recipe's cut + bilinear, "(used)"
    ]
    assert by_ref["imagenet_pretraining.rows.imagenet.balanced"] == {
        "ref": "imagenet_pretraining.rows.imagenet.balanced", "paper": 0.347,
        "value": pytest.approx(0.5), "metric": "mAP", "dataset": "audioset_balanced",
        "variant": RECIPE_VARIANT, "seeds": [0, 1],
    }  # fmt: skip
    full = reproduced_rows({"table2": selected["table2"]}, metric="mAP", dataset="audioset_full",
                           reference=reference)  # fmt: skip
    assert [(r["ref"], r["paper"]) for r in full] == [
        ("imagenet_pretraining.rows.none.full", 0.366),
        ("imagenet_pretraining.rows.imagenet.full", 0.459),
    ]
    assert ablation_tables(reference, "full")["table2"].paper["scratch"] == 0.366
