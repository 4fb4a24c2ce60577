"""Tables 5 and 6: variants, patch counts, FLOPs, paper rows and the ordering check."""

from __future__ import annotations

import pytest
import torch

from ast_repro.bench_model import forward_seconds
from ast_repro.config import resolve
from ast_repro.estimate import architecture
from ast_repro.model_config import size_config
from ast_repro.patch_ablation import (
    paper_rows,
    reproduced_rows,
    shape_variants,
    stride_costs,
    stride_variants,
)
from ast_repro.results import paper_reference


def test_paper_patch_counts_and_quadratic_cost() -> None:
    rows = stride_costs()
    assert [r["patches"] for r in rows] == [512, 657, 850, 1212]
    assert [r["variant"] for r in rows] == ["stride16", "stride14", "stride12", "stride10"]
    assert [r["overlap"] for r in rows] == [0, 2, 4, 6]
    assert (rows[-1]["frequency_patches"], rows[-1]["time_patches"]) == (12, 101)
    assert rows[-1]["gflops"] == pytest.approx(261.0, rel=0.01)  # 1212 patches, base384
    # 2.37x the patches cost more than 2.37x the FLOPs: attention is quadratic
    assert rows[-1]["gflops"] / rows[0]["gflops"] > 1212 / 512


def test_variants_resolve_to_the_paper_grids() -> None:
    for name, overrides in {**stride_variants(), **shape_variants()}.items():
        config = resolve("audioset_balanced", overrides)
        patches = architecture(config).num_patches
        expected = {"stride16": 512, "stride14": 657, "stride12": 850, "stride10": 1212,
                    "frame_slices": 512, "square16": 512, "square32": 128}[name]  # fmt: skip
        assert patches == expected, name
    assert all(not v["imagenet_pretrain"] for v in shape_variants().values())
    assert shape_variants(32)["frame_slices"]["frequency_patch_size"] == 32
    with pytest.raises(ValueError, match="gaps"):
        stride_variants([20])


def test_paper_rows_follow_the_reference() -> None:
    rows = paper_rows(paper_reference())
    assert rows["table5"]["stride10"] == {"patches": 1212, "paper": 0.347}
    assert rows["table6"]["frame_slices"]["paper"] == 0.154
    assert paper_rows(paper_reference(), "full")["table5"]["stride16"]["paper"] == 0.451


def test_forward_seconds_times_each_architecture() -> None:
    configs = {s: size_config("test", max_length=64, num_mel_bins=32, num_labels=3,
                              frequency_stride=s, time_stride=s) for s in (16, 8)}  # fmt: skip
    seconds = forward_seconds(configs, batch=2, repeats=1, device="cpu")
    assert list(seconds) == [16, 8] and all(s > 0 for s in seconds.values())
    with pytest.raises(ValueError, match="positive"):
        forward_seconds(configs, repeats=0)
    assert torch.get_default_dtype() == torch.float32


def test_reproduced_rows_cover_tables_5_and_6_with_seed_means() -> None:
    reference = paper_reference()
    strides = [
        {"variant": "stride16", "seed": 0, "wa": 0.2},
        {"variant": "stride16", "seed": 1, "wa": 0.4},
        {"variant": "stride10", "seed": 0, "wa": None, "last": 0.5},  # no WA: the last epoch
        {"variant": "stride8", "seed": 0, "wa": 0.9},  # no paper number
    ]
    shapes = [{"variant": "frame_slices", "seed": 0, "wa": 0.1},
              {"variant": "square32", "seed": 0, "wa": None}]  # fmt: skip
    rows = reproduced_rows(strides, shapes, metric="mAP", dataset="audioset_balanced",
                           reference=reference)  # fmt: skip
    assert [(r["ref"], r["paper"], r["seeds"]) for r in rows] == [
        ("patch_overlap.rows.16.balanced", 0.336, [0, 1]),
        ("patch_shape.rows.square16.imagenet", 0.336, [0, 1]),  # Table 6's ImageNet cell
        ("patch_overlap.rows.10.balanced", 0.347, [0]),
        ("patch_shape.rows.frame_slices.no_pretraining", 0.154, [0]),
    ]
    assert [r["value"] for r in rows] == pytest.approx([0.3, 0.3, 0.5, 0.1])
    assert {r["metric"] for r in rows} == {"mAP"}
    full = reproduced_rows(strides[:1], [], metric="mAP", dataset="audioset_full",
                           reference=reference)  # fmt: skip
    assert [(r["ref"], r["paper"]) for r in full] == [
        ("patch_overlap.rows.16.full", 0.451),
        ("patch_shape.rows.square16.imagenet", 0.336),
    ]
