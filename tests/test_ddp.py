"""DistributedDataParallel: two gloo processes under torchrun train what one process trains.

Two ranks with a per-rank batch of 2 see, step by step, the same 4 clips as one process with
a batch of 4 (rank r takes positions r, r + 2, ... of the epoch's draw), and DDP averages their
gradients, so both runs follow the same trajectory up to float32 rounding. Adam divides by
sqrt(v) + 1e-8, which turns rounding noise in gradients that are zero in exact arithmetic
(e.g. the attention key bias, to which softmax is invariant) into updates of ~lr * 1e-2, so
the weights are compared relative to how far training moved them, and losses and validation
metrics must agree closely. The balanced sampler is used, the AudioSet-full path under DDP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ast_repro import checkpoint as ckpt
from ast_repro.build import build_model
from ast_repro.runtime import setup
from ast_repro.train import train
from tests.train_fixtures import tiny_config, tiny_dataset

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(epochs=2, batch_size=4, mixup=0.5, balanced_sampler=True, lr=1e-3, loss="bce")


def test_two_gloo_ranks_match_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_dataset(tmp_path / "data")
    env = {**os.environ, "AST_REPRO_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1",
           "AST_REPRO_PRETRAINED_DIR": str(tmp_path / "pretrained")}  # fmt: skip
    env.pop("WORLD_SIZE", None)
    sets = [f"{key}={value}" for key, value in {**data, **SETTINGS}.items()]
    sets += ["target_length=32", "num_mel_bins=32", "freqm=8", "timem=8", "progress=false",
             "imagenet_pretrain=false", "run_name=ddp"]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "ast_repro.cli", "train",
               "--recipe", "smoke_speechcommands"]  # fmt: skip
    for item in sets:
        command += ["--set", item]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    monkeypatch.setenv("AST_REPRO_RESULTS", str(tmp_path / "results"))
    config = tiny_config(data, run_name="single", **SETTINGS)
    single = train(config)

    runs = tmp_path / "results" / "train"
    record = json.loads((runs / "ddp" / "metrics.json").read_text())
    assert record["world_size"] == 2 and record["complete"]
    assert done.stdout.count("metrics ->") == 1  # only rank 0 reports and writes
    for a, b in zip(record["metrics"]["epochs"], single["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        for key in ("valid_loss", "mAP", "mAUC", "accuracy", "cum_mAP"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), key

    distributed = ckpt.load(runs / "ddp" / "checkpoints" / "last.pt")
    one = ckpt.load(runs / "single" / "checkpoints" / "last.pt")
    assert distributed["global_step"] == one["global_step"] == 6
    initial = build_model(config, 3, setup(device="cpu")).state_dict()
    difference = sum(((distributed["model"][k] - one["model"][k]) ** 2).sum() for k in initial)
    movement = sum(((one["model"][k] - initial[k]) ** 2).sum() for k in initial)
    assert movement > 0.1
    assert torch.sqrt(difference / movement) < 1e-3
