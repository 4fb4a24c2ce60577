"""Tests of ast_repro.sampling: balanced weights, the weight file and the DDP sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from ast_repro.datafiles import Clip, DatafileError, LabelMap
from ast_repro.sampling import (
    DistributedWeightedSampler,
    balanced_weights,
    read_weight_file,
    weight_file_path,
    write_weight_file,
)
from ast_repro.seeding import derive_seed


def test_balanced_weights_hand_case() -> None:
    labels = LabelMap(mids=("a", "b", "c"), names=("A", "B", "C"))
    clips = [
        Clip(Path(f"{i}.wav"), tuple(m.split(","))) for i, m in enumerate(["a", "a", "a,b", "c"])
    ]
    # counts a=3, b=1, c=1
    wa, wb = 1000 / 3.01, 1000 / 1.01
    np.testing.assert_allclose(balanced_weights(clips, labels), [wa, wa, wa + wb, wb], rtol=1e-12)


def test_weight_file_round_trip_and_errors(tmp_path) -> None:
    path = weight_file_path(tmp_path / "audioset_train.json")
    assert path == tmp_path / "audioset_train_weight.csv"
    weights = np.array([332.2259136212625, 990.0990099009902, 0.5])
    write_weight_file(path, weights)
    np.testing.assert_array_equal(read_weight_file(path, num_clips=3), weights)
    assert np.loadtxt(path, delimiter=",").shape == (3,)  # the original's reader agrees
    with pytest.raises(DatafileError, match="stale"):
        read_weight_file(path, num_clips=4)
    with pytest.raises(DatafileError, match="not found"):
        read_weight_file(tmp_path / "missing_weight.csv")
    path.write_text("1.0\n-2.0\n")
    with pytest.raises(DatafileError, match="non-negative"):
        read_weight_file(path)


@pytest.mark.parametrize("num_samples, replicas", [(10, 3), (12, 4), (2, 3)])
def test_distributed_sampler_union_is_the_single_process_draw(num_samples, replicas) -> None:
    weights = np.array([1.0, 5.0, 0.0, 2.0, 10.0, 3.0])
    for epoch in (0, 1):
        reference = WeightedRandomSampler(
            weights,
            num_samples,
            replacement=True,
            generator=torch.Generator().manual_seed(derive_seed(9, epoch)),
        )
        expected = list(reference)
        shards = []
        for rank in range(replicas):
            sampler = DistributedWeightedSampler(
                weights, num_samples=num_samples, num_replicas=replicas, rank=rank, seed=9
            )
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(shards[-1]) == len(sampler) == -(-num_samples // replicas)
        total = len(shards[0]) * replicas
        interleaved = [shards[i % replicas][i // replicas] for i in range(total)]
        wrapped = (expected * (total // num_samples + 1))[:total]
        assert interleaved == wrapped
        assert 2 not in interleaved  # zero weight is never drawn


def test_balanced_sampler_balances_class_frequencies() -> None:
    labels = LabelMap(mids=("common", "rare"), names=("Common", "Rare"))
    clips = [Clip(Path(f"{i}.wav"), ("common",)) for i in range(90)]
    clips += [Clip(Path(f"r{i}.wav"), ("rare",)) for i in range(10)]
    sampler = DistributedWeightedSampler(balanced_weights(clips, labels), num_samples=20_000)
    drawn = np.array(list(sampler))
    rare_share = np.mean(drawn >= 90)
    assert 0.47 < rare_share < 0.53  # 10 % of the clips, half of the draws
    unweighted = DistributedWeightedSampler(np.ones(100), num_samples=20_000)
    assert np.mean(np.array(list(unweighted)) >= 90) < 0.13
